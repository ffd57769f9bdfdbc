//! kod's Debian version ordering against the real `dpkg --compare-versions`:
//! proptest generates the versions, one shell loop asks dpkg about all of
//! the pairs.

use std::cmp::Ordering;
use std::io::Write;
use std::process::{Command, Stdio};

use kod_repo::{Scheme, Version};
use proptest::prelude::{ProptestConfig, prop_assert, prop_assert_eq, proptest};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRunner};

/// Asks dpkg to order every pair, in one shell process.
fn dpkg_order(pairs: &[(String, String)]) -> Vec<Ordering> {
    let script = r#"while read -r a b; do
  if dpkg --compare-versions "$a" lt "$b"; then echo lt
  elif dpkg --compare-versions "$a" eq "$b"; then echo eq
  else echo gt; fi
done"#;
    let mut child = Command::new("sh")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sh and dpkg run");
    let mut input = String::new();
    for (a, b) in pairs {
        input.push_str(&format!("{a} {b}\n"));
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success());
    let answers: Vec<Ordering> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| match l {
            "lt" => Ordering::Less,
            "eq" => Ordering::Equal,
            "gt" => Ordering::Greater,
            other => panic!("dpkg loop printed {other:?}"),
        })
        .collect();
    assert_eq!(answers.len(), pairs.len(), "dpkg answered every pair");
    answers
}

/// Pairs of versions that share a prefix, so the comparison reaches deep
/// into both strings: epochs, digit runs with leading zeros, letters, `~`,
/// `+`, `.`, and revisions.
fn pair_strategy() -> impl Strategy<Value = (String, String)> {
    let epoch = proptest::option::weighted(0.2, 0u32..3);
    let part = "[0-9a-z.+~]{0,5}";
    let revision = proptest::option::weighted(0.5, "[0-9a-z.+~]{1,5}");
    (
        "[0-9][0-9a-z.+~]{0,6}",
        (epoch.clone(), part, revision.clone()),
        (epoch, part, revision),
    )
        .prop_map(|(prefix, a, b)| {
            let make = |(e, s, r): (Option<u32>, String, Option<String>)| {
                let mut v = String::new();
                if let Some(e) = e {
                    v.push_str(&format!("{e}:"));
                }
                v.push_str(&prefix);
                v.push_str(&s);
                if let Some(r) = r {
                    v.push('-');
                    v.push_str(&r);
                }
                v
            };
            (make(a), make(b))
        })
}

#[test]
fn ordering_matches_dpkg_on_generated_pairs() {
    let mut runner = TestRunner::new(Config::default());
    let strategy = pair_strategy();
    let mut pairs: Vec<(String, String)> = (0..1500)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect();
    // Hand-picked edge cases ride along.
    for (a, b) in [
        ("1.0~rc1", "1.0"),
        ("1.0~~", "1.0~"),
        ("1:1.0", "2.0"),
        ("1.0-1", "1.0-1~bpo12+1"),
        ("1.002", "1.2"),
        ("0:1.0", "1.0"),
        ("1.0", "1.0-0"),
        ("2.30-1+b1", "2.30-1.1"),
        ("1.0a", "1.0+"),
        ("1.0+", "1.0."),
        ("7.4.052", "7.4.052-1"),
        ("10", "9"),
        ("1.0-1-1", "1.0-1-2"),
        ("00000000000000000000001", "1"),
    ] {
        pairs.push((a.into(), b.into()));
    }
    let expected = dpkg_order(&pairs);
    let mut wrong = Vec::new();
    for ((a, b), want) in pairs.iter().zip(expected) {
        let va = Version::parse(Scheme::Debian, a).unwrap_or_else(|e| panic!("{e}"));
        let vb = Version::parse(Scheme::Debian, b).unwrap_or_else(|e| panic!("{e}"));
        if va.cmp(&vb) != want {
            wrong.push(format!(
                "{a} vs {b}: dpkg says {want:?}, kod {:?}",
                va.cmp(&vb)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} disagreements:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// One Debian version from a small alphabet, so that a few dozen of them
/// hold equal ones written differently (`1.0`, `1.00`, `0:1.0`, `1.0-0`)
/// and ones that differ only deep inside.
fn version_strategy() -> impl Strategy<Value = String> {
    (
        proptest::option::weighted(0.15, 0u32..2),
        "[0-9]{1,2}",
        "[0-9a-c.+~]{0,4}",
        proptest::option::weighted(0.5, "[0-9a~+.]{1,3}"),
    )
        .prop_map(|(epoch, major, rest, revision)| {
            let epoch = epoch.map(|e| format!("{e}:")).unwrap_or_default();
            let revision = revision.map(|r| format!("-{r}")).unwrap_or_default();
            format!("{epoch}{major}{rest}{revision}")
        })
}

proptest! {
    // Each case asks dpkg about every pair of its 24 versions (276 pairs).
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    /// `Ord for Version` is a total order (antisymmetric, transitive, its
    /// equality the same as `==`) and orders every pair as dpkg does.
    #[test]
    fn ordering_is_a_total_order_that_agrees_with_dpkg(
        texts in proptest::collection::vec(version_strategy(), 24)
    ) {
        let versions: Vec<Version> = texts
            .iter()
            .map(|t| Version::parse(Scheme::Debian, t).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        for a in &versions {
            for b in &versions {
                prop_assert_eq!(a.cmp(b), b.cmp(a).reverse(), "{} vs {}", a, b);
                prop_assert_eq!(a == b, a.cmp(b) == Ordering::Equal, "{} vs {}", a, b);
                for c in &versions {
                    if a <= b && b <= c {
                        prop_assert!(a <= c, "{} <= {} <= {} but not {} <= {}", a, b, c, a, c);
                    }
                }
            }
        }
        let mut pairs = Vec::new();
        for (i, a) in texts.iter().enumerate() {
            for b in &texts[i + 1..] {
                pairs.push((a.clone(), b.clone()));
            }
        }
        let expected = dpkg_order(&pairs);
        for ((a, b), want) in pairs.iter().zip(expected) {
            let kod = Version::parse(Scheme::Debian, a)
                .unwrap()
                .cmp(&Version::parse(Scheme::Debian, b).unwrap());
            prop_assert_eq!(kod, want, "{} vs {}: dpkg says {:?}", a, b, want);
        }
    }
}
