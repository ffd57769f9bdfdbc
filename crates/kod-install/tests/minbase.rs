//! A real minbase root built the kod way, against a real mmdebstrap root
//! made in the same test from the same archive (the host's apt sources):
//! mmdebstrap downloads the minbase set and keeps the .deb files; kod
//! unpacks, registers and configures the same files into an empty root.
//! Then git is installed and removed with kod's transactions, and apt
//! inside the root must still work.
//!
//! Needs root and the network: `KOD_TEST_ROOT=1 KOD_TEST_NET=1`.

mod common;

use std::fs;

use common::{
    arch, copy_sources, file_lists, git_debs, healthy, in_root, in_root_ok, mmdebstrap_minbase,
    net_tmp, packages, pulled_in,
};
use kod_install::{BootstrapOptions, Options, Transaction, bootstrap_into};

#[test]
fn net_minbase_matches_mmdebstrap_then_git_installs_and_removes() {
    let Some(tmp) = net_tmp() else { return };
    let mm = tmp.path().join("mmdebstrap");
    let debs = mmdebstrap_minbase(&mm, &tmp.path().join("debs"));
    assert!(debs.len() > 50, "only {} packages", debs.len());

    let root = tmp.path().join("kod");
    let (installed, committed) = bootstrap_into(
        &root,
        &debs,
        &BootstrapOptions::new(&arch()),
        &Options::default(),
    )
    .expect("bootstrap");
    assert_eq!(installed.unpacked.len(), debs.len());
    assert!(committed.committed);
    healthy(&root);
    assert_eq!(
        packages(&root),
        packages(&mm),
        "package names, versions, states"
    );
    assert_eq!(
        file_lists(&root),
        file_lists(&mm),
        "dpkg -L of every package"
    );
    for f in [
        "etc/passwd",
        "etc/group",
        "etc/shadow",
        "var/lib/dpkg/diversions",
    ] {
        assert_eq!(
            fs::read(root.join(f)).expect("kod's"),
            fs::read(mm.join(f)).expect("mmdebstrap's"),
            "{f}"
        );
    }

    // git and its dependencies, as apt computes them in this root.
    copy_sources(&root);
    let git = git_debs(&root);
    let mut t = Transaction::begin(&root, &Options::default()).expect("begin");
    let report = t.install(&git).expect("install git");
    assert!(report.unpacked.iter().any(|p| p.name == "git"));
    t.mark_auto_installed(&pulled_in(&report, "git"), true)
        .expect("mark auto");
    let c = t.commit().expect("commit git");
    assert!(c.moved > 0);
    healthy(&root);
    assert!(
        in_root_ok(&root, "git --version").starts_with("git version"),
        "git --version"
    );
    // apt sees git as manual and its dependencies as automatic.
    let auto = in_root_ok(&root, "apt-mark showauto");
    assert!(
        auto.lines().any(|l| l == "git-man") && !auto.lines().any(|l| l == "git"),
        "{auto}"
    );

    // Removing git-man alone would break git: refused, listing it.
    let t = Transaction::begin(&root, &Options::default()).expect("begin");
    let e = t
        .plan_removal(&["git-man"], false, true)
        .expect_err("breaks git");
    assert!(e.to_string().contains("would break git"), "{e}");
    let plan = t.plan_removal(&["git-man"], true, true).expect("plan");
    assert_eq!(plan.dependents, vec!["git".to_string()]);
    drop(t);
    let mut t = Transaction::begin(&root, &Options::default()).expect("begin");
    let plan = t.plan_removal(&["git"], false, true).expect("plan");
    t.remove(&plan).expect("remove git");
    let c = t.commit().expect("commit removal");
    assert!(c.removed > 0);
    healthy(&root);
    assert!(
        !in_root(&root, "command -v git").status.success(),
        "git still there"
    );
    assert!(!packages(&root).contains_key("git"));

    // apt inside still works, from the network.
    in_root_ok(
        &root,
        "apt-get update -q >/dev/null && apt-get install -y -q hello >/dev/null",
    );
    assert!(in_root_ok(&root, "hello").contains("Hello, world!"));
    healthy(&root);
}
