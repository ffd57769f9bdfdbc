//! Random small universes: every resolution is consistent (checked by the
//! independent checker), and the solver fails exactly when a brute-force
//! search over every assignment finds no consistent system.

mod common;

use common::{check, consistent, one};
use kod_repo::PackageRecord;
use kod_solve::{Request, SolveError, solve};
use proptest::prelude::*;

const NAMES: usize = 5;
const VIRTUALS: [&str; 2] = ["v0", "v1"];
const VERSIONS: [&str; 3] = ["1", "1.5", "2"];
const OPS: [&str; 5] = ["<<", "<=", "=", ">=", ">>"];

/// A relation target and optional constraint, as text.
fn relation() -> impl Strategy<Value = String> {
    (
        0..NAMES + VIRTUALS.len(),
        proptest::option::of((0..OPS.len(), 0..VERSIONS.len())),
    )
        .prop_map(|(t, c)| {
            let name = if t < NAMES {
                format!("p{t}")
            } else {
                VIRTUALS[t - NAMES].to_string()
            };
            match c {
                Some((op, v)) => format!("{name} ({} {})", OPS[op], VERSIONS[v]),
                None => name,
            }
        })
}

/// One package version: Depends, Provides, Conflicts, Breaks.
fn paragraph(name: usize, version: &'static str) -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(proptest::collection::vec(relation(), 1..3), 0..3),
        proptest::option::of((0..VIRTUALS.len(), proptest::option::of(0..VERSIONS.len()))),
        proptest::option::of(relation()),
        proptest::option::of(relation()),
    )
        .prop_map(move |(deps, provides, conflicts, breaks)| {
            let mut p = format!("Package: p{name}\nVersion: {version}\n");
            if !deps.is_empty() {
                let groups: Vec<String> = deps.iter().map(|g| g.join(" | ")).collect();
                p.push_str(&format!("Depends: {}\n", groups.join(", ")));
            }
            if let Some((v, ver)) = provides {
                match ver {
                    Some(ver) => p.push_str(&format!(
                        "Provides: {} (= {})\n",
                        VIRTUALS[v], VERSIONS[ver]
                    )),
                    None => p.push_str(&format!("Provides: {}\n", VIRTUALS[v])),
                }
            }
            if let Some(c) = conflicts {
                p.push_str(&format!("Conflicts: {c}\n"));
            }
            if let Some(b) = breaks {
                p.push_str(&format!("Breaks: {b}\n"));
            }
            p
        })
}

/// A universe (Packages text) and a request of one or two names.
fn universe() -> impl Strategy<Value = (String, Vec<String>)> {
    let packages: Vec<_> = (0..NAMES)
        .flat_map(|n| [paragraph(n, "1"), paragraph(n, "2")])
        .collect();
    (
        packages,
        proptest::collection::vec(any::<bool>(), NAMES * 2),
        proptest::collection::btree_set(0..NAMES, 1..3),
    )
        .prop_map(|(paragraphs, keep, requested)| {
            // Drop some versions (never both of p0, so something exists).
            let kept: Vec<(usize, String)> = paragraphs
                .into_iter()
                .zip(keep)
                .enumerate()
                .filter(|(i, (_, k))| *k || *i == 0)
                .map(|(i, (p, _))| (i / 2, p))
                .collect();
            let mut request: Vec<String> = requested
                .into_iter()
                .filter(|n| kept.iter().any(|(k, _)| k == n))
                .map(|n| format!("p{n}"))
                .collect();
            if request.is_empty() {
                request.push("p0".to_string());
            }
            let text: Vec<String> = kept.into_iter().map(|(_, p)| p).collect();
            (text.join("\n"), request)
        })
}

/// Whether some choice of at most one version per name, holding every
/// requested name, is consistent.
fn brute_force(records: &[&PackageRecord], requested: &[String]) -> bool {
    let mut by_name: Vec<Vec<&PackageRecord>> = Vec::new();
    for n in 0..NAMES {
        let name = format!("p{n}");
        by_name.push(records.iter().copied().filter(|r| r.name == name).collect());
    }
    let choices: Vec<usize> = by_name.iter().map(|v| v.len() + 1).collect();
    let total: usize = choices.iter().product();
    for mut code in 0..total {
        let mut chosen = Vec::new();
        for (n, options) in by_name.iter().enumerate() {
            let pick = code % choices[n];
            code /= choices[n];
            if pick > 0 {
                chosen.push(options[pick - 1]);
            }
        }
        let holds_request = requested
            .iter()
            .all(|q| chosen.iter().any(|r| r.name == q.as_str()));
        if holds_request && consistent(&chosen).is_ok() {
            return true;
        }
    }
    false
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn solutions_are_consistent_and_failures_are_real((text, requested) in universe()) {
        let ix = one(&text);
        let request = Request::new(Vec::<String>::new(), &requested).unwrap();
        let records: Vec<&PackageRecord> = ix.records().collect();
        let possible = brute_force(&records, &requested);
        match solve(&ix, &request, None) {
            Ok(r) => {
                prop_assert!(possible, "solved what brute force calls impossible");
                if let Err(e) = check(&ix, &r, &[], &request.packages, None) {
                    prop_assert!(false, "inconsistent resolution: {e}\n{text}");
                }
            }
            Err(SolveError::Unsatisfiable(e)) => {
                prop_assert!(!possible, "failed though a solution exists:\n{e}\n{text}");
                prop_assert!(!e.lines().is_empty());
            }
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }
}
