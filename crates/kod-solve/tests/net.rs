//! kod-solve on the real archive named in the host's apt sources, compared
//! with mmdebstrap and apt choosing from the same sources in the same test.
//! Net tier: `KOD_TEST_NET=1` (needs mmdebstrap and apt).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use kod_repo::debian::{Debian, DebianSource, find_mirror};
use kod_repo::{Backend, Freshness, Index, LoadOptions};
use kod_solve::{Action, Request, SolveError, solve, variant_base};
use kod_testkit::apt::{PrivateApt, simulated_installs};
use kod_testkit::{Tier, tier};

/// `suite` of the host's mirror, for amd64 (what apt and mmdebstrap are
/// given too).
fn source(suite: &str) -> DebianSource {
    let mirror = find_mirror(None, None).unwrap_or_else(|e| panic!("{e}"));
    DebianSource {
        architecture: "amd64".into(),
        ..DebianSource::release(&mirror, suite)
    }
}

/// The index of `source`, its signed metadata refreshed into `cache`.
fn refreshed(source: &DebianSource, cache: &Path) -> Index {
    let options = LoadOptions {
        cache_dir: cache.to_path_buf(),
        freshness: Freshness::Refresh,
    };
    let loaded = Debian::new().load(std::slice::from_ref(source), &options);
    loaded.unwrap_or_else(|e| panic!("{e}"))
}

/// The one-line apt sources of `source`, one per suite.
fn deb_lines(source: &DebianSource) -> Vec<String> {
    source
        .suites
        .iter()
        .map(|suite| {
            format!(
                "deb [arch=amd64] {} {} {}",
                source.base_url(suite),
                suite,
                source.components.join(" ")
            )
        })
        .collect()
}

/// `name version` lines of a dpkg status file's installed packages.
fn status_set(status: &Path) -> BTreeSet<String> {
    let installed =
        kod_db::dpkg::parse_installed(&std::fs::read_to_string(status).expect("status"), "amd64")
            .unwrap_or_else(|e| panic!("{e}"));
    installed
        .packages()
        .iter()
        .map(|p| format!("{} {}", p.name(), p.version()))
        .collect()
}

/// Runs mmdebstrap for `variant` (plus `include`) on `source`'s suites and
/// returns the dpkg status file of the system it made (kept in `out`).
fn mmdebstrap(source: &DebianSource, variant: &str, include: &[&str], out: &Path) -> PathBuf {
    let mut c = Command::new("mmdebstrap");
    c.args([
        "--quiet",
        &format!("--variant={variant}"),
        "--architectures=amd64",
        "--format=null",
        &format!(
            "--customize-hook=copy-out /var/lib/dpkg/status {}",
            out.display()
        ),
    ]);
    if !include.is_empty() {
        c.arg(format!("--include={}", include.join(",")));
    }
    c.arg(&source.suites[0]).arg("/dev/null");
    c.args(deb_lines(source));
    // (mmdebstrap comes with `apt-get install mmdebstrap`.)
    kod_testkit::debs::run(&mut c);
    out.join("status")
}

/// kod's `name version` set for `variant` plus `include`.
fn kod_set(index: &Index, variant: &str, include: &[&str]) -> BTreeSet<String> {
    let base = variant_base(index, variant).unwrap();
    let request = Request::new(base, include).unwrap();
    let r = solve(index, &request, None).unwrap_or_else(|e| panic!("{e}"));
    common::set(&r).into_iter().collect()
}

fn diff(kod: &BTreeSet<String>, other: &BTreeSet<String>, who: &str) -> String {
    format!(
        "only kod: {:?}\nonly {who}: {:?}",
        kod.difference(other).collect::<Vec<_>>(),
        other.difference(kod).collect::<Vec<_>>()
    )
}

/// kod's set equals mmdebstrap's for the same sources; when they differ,
/// the archive may have changed in between: reload and, if kod's answer
/// moved, run mmdebstrap once more.
fn compare_with_mmdebstrap(
    suite: &str,
    variant: &str,
) -> (DebianSource, PathBuf, tempfile::TempDir) {
    let work = tempfile::tempdir().unwrap();
    let source = source(suite);
    let cache = work.path().join("cache");
    let mut kod = kod_set(&refreshed(&source, &cache), variant, &[]);
    let mut attempt = 0;
    loop {
        let out = work.path().join(format!("mm{attempt}"));
        std::fs::create_dir_all(&out).unwrap();
        let status = mmdebstrap(&source, variant, &[], &out);
        let mm = status_set(&status);
        if kod == mm {
            assert!(
                mm.len() > 50,
                "a {variant} system has more than {} packages",
                mm.len()
            );
            return (source, status, work);
        }
        let again = kod_set(&refreshed(&source, &cache), variant, &[]);
        assert!(
            attempt == 0 && again != kod,
            "kod's {suite} {variant} differs from mmdebstrap's:\n{}",
            diff(&again, &mm, "mmdebstrap")
        );
        kod = again;
        attempt += 1;
    }
}

/// apt on private state for `source` (see `kod_testkit::apt`).
struct Apt(PrivateApt);

impl Apt {
    fn new(source: &DebianSource, work: &Path) -> Apt {
        Apt(PrivateApt::new(work, &deb_lines(source)))
    }

    /// What `apt-get install --simulate PACKAGES` installs on the system
    /// whose dpkg status is `status`: `name version` per package.
    fn simulate(&self, status: &Path, packages: &[&str], recommends: bool) -> BTreeSet<String> {
        let mut args = vec![
            "install",
            "--simulate",
            "-o",
            if recommends {
                "APT::Install-Recommends=true"
            } else {
                "APT::Install-Recommends=false"
            },
        ];
        args.extend(packages);
        let stdout = self.0.ok("apt-get", &args, Some(status));
        simulated_installs(&String::from_utf8_lossy(&stdout))
    }
}

/// What kod installs on the system whose status is `status`.
fn kod_changes(
    index: &Index,
    status: &Path,
    packages: &[&str],
    recommends: bool,
) -> BTreeSet<String> {
    let installed =
        kod_db::dpkg::parse_installed(&std::fs::read_to_string(status).expect("status"), "amd64")
            .unwrap();
    let mut request = Request::new(Vec::<String>::new(), packages).unwrap();
    request.recommends = recommends;
    let r = solve(index, &request, Some(&installed)).unwrap_or_else(|e| panic!("{e}"));
    assert!(r.packages.iter().all(|p| p.action
        != Action::Downgrade {
            from: p.version.clone()
        }));
    r.changes()
        .map(|p| format!("{} {}", p.name, p.version))
        .collect()
}

#[test]
fn net_bookworm_minbase_matches_mmdebstrap_and_includes_match_apt() {
    if !tier(Tier::Net) {
        return;
    }
    let (source, status, work) = compare_with_mmdebstrap("bookworm", "minbase");
    // --include git,vim,openssh-server on that system: apt's choice in a
    // chroot of the same sources, with and without Recommends.
    let apt = Apt::new(&source, &work.path().join("apt"));
    let include = ["git", "vim", "openssh-server"];
    let cache = work.path().join("cache");
    for recommends in [false, true] {
        let mut attempt = 0;
        loop {
            let index = refreshed(&source, &cache);
            let kod = kod_changes(&index, &status, &include, recommends);
            let apt = apt.simulate(&status, &include, recommends);
            if kod == apt {
                assert!(kod.iter().any(|p| p.starts_with("git ")));
                break;
            }
            assert!(
                attempt == 0,
                "recommends={recommends}:\n{}",
                diff(&kod, &apt, "apt")
            );
            attempt += 1;
        }
    }
}

#[test]
fn net_trixie_required_matches_mmdebstrap() {
    if !tier(Tier::Net) {
        return;
    }
    compare_with_mmdebstrap("trixie", "required");
}

#[test]
fn net_real_conflicts_are_explained_and_apt_refuses_too() {
    if !tier(Tier::Net) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let source = source("bookworm");
    let index = refreshed(&source, &work.path().join("cache"));
    // Both are mail transport agents; each conflicts with the other
    // through the virtual package mail-transport-agent.
    let pair = ["postfix", "exim4-daemon-light"];
    let request = Request::new(variant_base(&index, "minbase").unwrap(), pair).unwrap();
    let e = solve(&index, &request, None).unwrap_err();
    let SolveError::Unsatisfiable(explanation) = &e else {
        panic!("expected an unsatisfiable request, got {e}");
    };
    let text = e.to_string();
    assert!(
        explanation.lines().iter().any(|l| l
            .contains("(requested) conflicts with mail-transport-agent, which")
            && l.contains("provides; that rules out")),
        "{text}"
    );
    assert!(
        text.contains("postfix") && text.contains("exim4-daemon-light"),
        "{text}"
    );
    let apt = Apt::new(&source, &work.path().join("apt"));
    let empty = work.path().join("empty-status");
    std::fs::write(&empty, "").unwrap();
    let o = apt.0.run(
        "apt-get",
        &["install", "--simulate", pair[0], pair[1]],
        Some(&empty),
    );
    assert!(
        !o.status.success(),
        "apt installs both: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    // Unknown names get close names from the real index.
    for (typo, meant) in [
        ("gti", "git"),
        ("openssh-servr", "openssh-server"),
        ("vmi", "vim"),
    ] {
        let e = solve(
            &index,
            &Request::new(Vec::<String>::new(), [typo]).unwrap(),
            None,
        )
        .unwrap_err();
        let SolveError::UnknownPackage { suggestions, .. } = &e else {
            panic!("{e}");
        };
        assert!(suggestions.iter().any(|s| s == meant), "{typo}: {e}");
    }
}
