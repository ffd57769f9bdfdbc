//! kod chooses what the real apt chooses: the same synthetic universes are
//! served to apt as a local flat repository (`deb [trusted=yes] file:...`)
//! on private state directories, and `apt-get install --simulate` is
//! compared with kod's resolution. Needs apt-get (any Debian system).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::{full_packages, one, universe};
use kod_solve::{Installed, Request, SolveError, solve};
use kod_testkit::apt::simulated_installs;
use proptest::prelude::*;

/// A flat repository with one Packages file, and apt state beside it.
struct Apt {
    dir: tempfile::TempDir,
}

/// What apt did with a request.
#[derive(Debug, PartialEq, Eq)]
enum AptAnswer {
    /// These packages are installed (`name version`).
    Installs(BTreeSet<String>),
    /// apt gave up.
    Fails,
    /// apt needed its problem resolver: its answer is not its greedy walk's.
    Resolver,
}

impl Apt {
    fn new(text: &str) -> Apt {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["repo", "lists/partial", "cache", "parts"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("repo/Packages"), full_packages(text, 0)).unwrap();
        std::fs::write(
            d.join("sources.list"),
            format!("deb [trusted=yes] file:{} ./\n", d.join("repo").display()),
        )
        .unwrap();
        std::fs::write(d.join("status"), "").unwrap();
        let apt = Apt { dir };
        let o = apt
            .command(None)
            .args(["-q", "update"])
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run apt-get (apt is part of every Debian system): {e}")
            });
        assert!(
            o.status.success(),
            "apt-get update: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        apt
    }

    fn command(&self, status: Option<&Path>) -> Command {
        let d = self.dir.path();
        let status = status.map_or_else(|| d.join("status"), Path::to_path_buf);
        let mut c = Command::new("apt-get");
        for o in [
            format!("Dir::State::Lists={}", d.join("lists").display()),
            format!("Dir::Cache={}", d.join("cache").display()),
            format!("Dir::Etc::SourceList={}", d.join("sources.list").display()),
            format!("Dir::Etc::SourceParts={}", d.join("parts").display()),
            format!("Dir::Etc::Preferences={}", d.join("preferences").display()),
            format!("Dir::Etc::PreferencesParts={}", d.join("parts").display()),
            format!("Dir::State::Status={}", status.display()),
            "APT::Architecture=amd64".into(),
            "APT::Architectures=amd64".into(),
            "Acquire::Languages=none".into(),
            "Debug::NoLocking=1".into(),
        ] {
            c.arg("-o").arg(o);
        }
        c
    }

    fn install(&self, packages: &[&str], recommends: bool, status: Option<&Path>) -> AptAnswer {
        let o = self
            .command(status)
            .args([
                "install",
                "--simulate",
                "-o",
                "Debug::pkgProblemResolver=1",
                "-o",
            ])
            .arg(format!("APT::Install-Recommends={recommends}"))
            .args(packages)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        let err = String::from_utf8_lossy(&o.stderr);
        // apt always starts its resolver in debug mode; it only works when
        // the greedy walk left something broken.
        let broken = |t: &str| {
            t.lines().any(|l| {
                l.contains("pkgProblemResolver with broken count:")
                    && !l.trim_end().ends_with("broken count: 0")
            })
        };
        if broken(&err) || broken(&out) {
            return AptAnswer::Resolver;
        }
        if !o.status.success() {
            return AptAnswer::Fails;
        }
        AptAnswer::Installs(simulated_installs(&out))
    }
}

/// kod's answer for the same request, in apt's terms.
fn kod(
    text: &str,
    packages: &[&str],
    recommends: bool,
    installed: Option<&Installed>,
) -> AptAnswer {
    let ix = one(text);
    let mut request = Request::new(Vec::<String>::new(), packages).unwrap();
    request.recommends = recommends;
    match solve(&ix, &request, installed) {
        Ok(r) => AptAnswer::Installs(
            r.changes()
                .map(|p| format!("{} {}", p.name, p.version))
                .collect(),
        ),
        Err(SolveError::Unsatisfiable(_)) => AptAnswer::Fails,
        Err(e) => panic!("{e}"),
    }
}

fn same_as_apt(text: &str, packages: &[&str], recommends: bool) -> AptAnswer {
    let apt = Apt::new(text).install(packages, recommends, None);
    let kod = kod(text, packages, recommends, None);
    assert_eq!(kod, apt, "kod and apt differ for {packages:?} on\n{text}");
    kod
}

fn installs(names: &[&str]) -> AptAnswer {
    AptAnswer::Installs(names.iter().map(|n| n.to_string()).collect())
}

#[test]
fn providers_tied_on_everything_else_go_by_apt_package_ids() {
    // apt numbers packages as its cache meets them and prefers the higher
    // number; `aaa` mentions prov-y before prov-x, so prov-x wins.
    let text = "Package: aaa\nVersion: 1\nSuggests: prov-y, prov-x\n\n\
                Package: app\nVersion: 1\nDepends: virt\n\n\
                Package: prov-x\nVersion: 1\nProvides: virt\n\n\
                Package: prov-y\nVersion: 1\nProvides: virt\n";
    assert_eq!(
        same_as_apt(text, &["app"], false),
        installs(&["app 1", "prov-x 1"])
    );
    let text = text.replace("Suggests: prov-y, prov-x", "Suggests: other");
    assert_eq!(
        same_as_apt(&text, &["app"], false),
        installs(&["app 1", "prov-y 1"])
    );
}

#[test]
fn provider_priority_and_essential() {
    let text = "Package: app\nVersion: 1\nDepends: virt\n\n\
                Package: opt\nVersion: 1\nProvides: virt\nPriority: optional\n\n\
                Package: imp\nVersion: 1\nProvides: virt\nPriority: important\n\n\
                Package: ess\nVersion: 1\nProvides: virt\nPriority: extra\nEssential: yes\n";
    assert_eq!(
        same_as_apt(text, &["app"], false),
        installs(&["app 1", "ess 1"])
    );
    let text = text.replace("Essential: yes\n", "");
    assert_eq!(
        same_as_apt(&text, &["app"], false),
        installs(&["app 1", "imp 1"])
    );
}

#[test]
fn depth_first_or_groups_and_conflicting_recommendations() {
    let text = "Package: app\nVersion: 1\nDepends: lib, python3\n\n\
                Package: lib\nVersion: 1\nDepends: helper, python3\n\n\
                Package: helper\nVersion: 1\nDepends: typing | python3 (>> 3.8), python3\n\n\
                Package: typing\nVersion: 1\nDepends: python3\n\n\
                Package: python3\nVersion: 3.11\n";
    same_as_apt(text, &["app"], false);
    let text = "Package: app\nVersion: 1\nDepends: x, y\n\n\
                Package: x\nVersion: 1\nRecommends: bb | bbs\n\n\
                Package: y\nVersion: 1\nRecommends: bbs\n\n\
                Package: bb\nVersion: 1\nConflicts: bbs\n\n\
                Package: bbs\nVersion: 1\nConflicts: bb\nProvides: bb\n";
    assert_eq!(
        same_as_apt(text, &["app"], true),
        installs(&["app 1", "bbs 1", "x 1", "y 1"])
    );
}

#[test]
fn the_only_solution_of_a_request_dependency_is_protected() {
    // p2 needs p1 (its only solution, so apt protects it) and v0. The
    // provider apt tries first, p3, conflicts with p1; apt cannot unmark a
    // protected package, so it takes p0 (p4's candidate does not provide
    // v0).
    let text = "Package: p0\nVersion: 2\nProvides: v0\n\n\
                Package: p1\nVersion: 1\n\n\
                Package: p2\nVersion: 1\nDepends: p1, v0\n\n\
                Package: p3\nVersion: 2\nProvides: v0\nConflicts: p1\n\n\
                Package: p4\nVersion: 1\nProvides: v0\n\n\
                Package: p4\nVersion: 2\n";
    assert_eq!(
        same_as_apt(text, &["p2"], false),
        installs(&["p0 2", "p1 1", "p2 1"])
    );
    // Something apt marked and a conflict unmarked again leaves nothing
    // behind that only it needed.
    let text = "Package: p0\nVersion: 1\n\n\
                Package: p1\nVersion: 2\nDepends: v0, p3\n\n\
                Package: p2\nVersion: 2\nDepends: p0\nProvides: v0 (= 1)\n\n\
                Package: p3\nVersion: 1\nProvides: v0\nConflicts: v0\n";
    assert_eq!(
        same_as_apt(text, &["p1"], false),
        installs(&["p1 2", "p3 1"])
    );
}

#[test]
fn a_dependency_cannot_unmark_the_package_that_needs_it() {
    // p2 (a provider of v1) needs p1, which breaks p2: apt protects p2
    // while installing its dependencies, so p1 fails, p2 fails, and apt
    // takes the next solution, p3's candidate.
    let text = "Package: p1\nVersion: 1\nBreaks: p2\n\n\
                Package: p2\nVersion: 2\nDepends: p1\nProvides: v1 (= 1)\n\n\
                Package: p3\nVersion: 1\nProvides: v1 (= 1)\n\n\
                Package: p3\nVersion: 2\n\n\
                Package: p4\nVersion: 2\nDepends: v1 (<= 1) | p3\n";
    assert_eq!(
        same_as_apt(text, &["p4"], false),
        installs(&["p3 2", "p4 2"])
    );
}

#[test]
fn installed_packages_like_apt() {
    let text = "Package: x\nVersion: 2\n\nPackage: x\nVersion: 1\n\n\
                Package: a\nVersion: 1\nDepends: x\n\n\
                Package: b\nVersion: 1\nDepends: x (>= 2)\n\n\
                Package: mta-a\nVersion: 1\nProvides: mta\nPriority: important\n\n\
                Package: mta-b\nVersion: 1\nProvides: mta\n\n\
                Package: mailer\nVersion: 1\nDepends: mta\n";
    let status = "Package: x\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n\n\
                  Package: mta-b\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\nProvides: mta\n";
    let apt = Apt::new(text);
    let path = apt.dir.path().join("installed-status");
    std::fs::write(&path, status).unwrap();
    let installed = kod_db::dpkg::parse_installed(status, "amd64").unwrap();
    for request in [["a"], ["b"], ["mailer"]] {
        assert_eq!(
            kod(text, &request, false, Some(&installed)),
            apt.install(&request, false, Some(&path)),
            "{request:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 120,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Wherever apt's greedy walk succeeds on its own, kod installs the
    /// same packages; where apt gives up, so does kod unless a solution
    /// exists (kod's solver is complete, apt's is not).
    #[test]
    fn random_universes_like_apt((text, requested) in universe(), recommends in any::<bool>()) {
        let packages: Vec<&str> = requested.iter().map(String::as_str).collect();
        let apt = Apt::new(&text).install(&packages, recommends, None);
        let kod = kod(&text, &packages, recommends, None);
        match apt {
            AptAnswer::Installs(_) => prop_assert_eq!(kod, apt, "{}", text),
            AptAnswer::Fails | AptAnswer::Resolver => {}
        }
    }
}
