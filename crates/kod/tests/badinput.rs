//! Bad packages from a repository served on 127.0.0.1, through the whole
//! pipeline (`kod pkg install --root`): each is refused with a clear error
//! and leaves the root exactly as it was (root and net tiers: the root is
//! a real bookworm minbase made by `kod bootstrap`).

mod common;

use std::ffi::OsStr;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{kod, kod_ok};
use kod_testkit::debrepo::{DebRepo, ReleaseOptions};
use kod_testkit::debs::{control_for, dpkg_deb_build, hand_deb, run};
use kod_testkit::http::{Fault, FileServer};
use kod_testkit::tree::{self, Options};
use kod_testkit::{Tier, tiers};

const SUITE: &str = "kodbad";

/// Packages: one good, the rest bad in one way each.
fn build_debs(dir: &Path) -> Vec<PathBuf> {
    let stage = dir.join("stage");
    std::fs::create_dir_all(&stage).unwrap();
    std::fs::write(stage.join("x"), "evil\n").unwrap();
    symlink("/etc", stage.join("l")).unwrap();
    let hand = |name: &str, tar: &[&str]| hand_deb(dir, name, &control_for(name, ""), &stage, tar);
    let mut debs = vec![
        hand(
            "kod-dotdot",
            &["-P", "--transform=s,^x$,../etc/kod-escaped,", "x"],
        ),
        hand(
            "kod-through-symlink",
            &["--transform=s,^x$,l/kod-escaped,S", "l", "x"],
        ),
        {
            std::fs::hard_link(stage.join("x"), stage.join("h")).unwrap();
            hand(
                "kod-hardlink",
                &["-P", "--transform=s,^x$,/etc/passwd,RS", "x", "h"],
            )
        },
    ];
    for (name, postinst) in [("kod-good", "exit 0"), ("kod-failing-postinst", "exit 1")] {
        let tree = dir.join(name);
        std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
        std::fs::create_dir_all(tree.join("usr/share/kod-fixture")).unwrap();
        std::fs::write(tree.join("usr/share/kod-fixture").join(name), "ok\n").unwrap();
        std::fs::write(tree.join("DEBIAN/control"), control_for(name, "")).unwrap();
        let script = tree.join("DEBIAN/postinst");
        std::fs::write(&script, format!("#!/bin/sh\n{postinst}\n")).unwrap();
        run(Command::new("chmod").arg("755").arg(&script));
        debs.push(dpkg_deb_build(
            &tree,
            &dir.join(format!("{name}.deb")),
            "xz",
        ));
    }
    debs
}

/// A repository of `debs`; `kod-good` is also listed a second time as
/// `kod-wrong-hash`, whose SHA256 in the signed index is not its own.
fn publish(debs: &[PathBuf]) -> DebRepo {
    let repo = DebRepo::new(SUITE);
    let mut paragraphs = String::new();
    for deb in debs {
        let p = repo.add_deb(deb);
        if p.starts_with("Package: kod-good\n") {
            let wrong = p
                .replace("Package: kod-good", "Package: kod-wrong-hash")
                .lines()
                .map(|l| match l.strip_prefix("SHA256: ") {
                    Some(_) => format!("SHA256: {}", "0".repeat(64)),
                    None => l.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\n");
            paragraphs.push_str(&wrong);
            paragraphs.push_str("\n\n");
        }
        paragraphs.push_str(&p);
        paragraphs.push('\n');
    }
    repo.publish(&paragraphs, &ReleaseOptions::default());
    repo
}

fn snapshot(root: &Path) -> std::collections::BTreeMap<PathBuf, tree::Node> {
    tree::snapshot(
        root,
        Options {
            file_mtimes: true,
            dir_mtimes: true,
            one_file_system: true,
        },
    )
}

/// `kod pkg install --root ROOT PKG` must fail, saying `expected`, and leave
/// ROOT as it was.
fn refused(cache: &Path, root: &Path, pkg: &str, expected: &str) {
    let before = snapshot(root);
    let out = kod(
        cache,
        [
            OsStr::new("pkg"),
            "install".as_ref(),
            "--root".as_ref(),
            root.as_ref(),
            pkg.as_ref(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{pkg} was not refused: {err}");
    assert!(
        err.contains(expected),
        "{pkg}: expected {expected:?} in:\n{err}"
    );
    tree::assert_same(&before, &snapshot(root), ("before", "after"), pkg);
    assert!(
        !Path::new("/etc/kod-escaped").exists(),
        "{pkg} escaped the root"
    );
    let leftovers: Vec<_> = std::fs::read_dir(root.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".kod-"))
        .collect();
    assert!(
        leftovers.iter().all(|n| n.ends_with(".kod-lock")),
        "left behind: {leftovers:?}"
    );
}

#[test]
fn net_root_bad_packages_leave_the_root_unchanged() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let work = tempfile::tempdir_in("/var/tmp").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let c = cache.path();
    let root = work.path().join("root");
    kod_ok(
        c,
        [
            OsStr::new("bootstrap"),
            "debian:bookworm".as_ref(),
            root.as_ref(),
            "--variant".as_ref(),
            "minbase".as_ref(),
        ],
    );

    let debs = build_debs(&work.path().join("debs"));
    let repo = publish(&debs);
    let server = FileServer::start(repo.serve_dir());
    // The root's own apt sources name only the fixture repository, with its
    // keyring inside the root.
    std::fs::copy(repo.keyring(), root.join("etc/apt/kod-fixture.gpg")).unwrap();
    std::fs::write(
        root.join("etc/apt/sources.list"),
        format!(
            "deb [signed-by=/etc/apt/kod-fixture.gpg] {}/repo {SUITE} main\n",
            server.url()
        ),
    )
    .unwrap();

    refused(c, &root, "kod-dotdot", "../etc/kod-escaped");
    refused(c, &root, "kod-through-symlink", "l/kod-escaped");
    refused(c, &root, "kod-hardlink", "/etc/passwd");
    refused(c, &root, "kod-failing-postinst", "kod-failing-postinst");
    refused(c, &root, "kod-wrong-hash", "kod-wrong-hash");

    // The network dropping mid-download every time: retried, then a clean
    // failure naming the package.
    let pool = "/repo/pool/main/kod-good.deb";
    server.set_fault(
        pool,
        Fault {
            fail_first: 0,
            truncate_at: Some((100, 100)),
        },
    );
    refused(c, &root, "kod-good", "kod-good");
    assert!(server.hits(pool) > 1, "the download was not retried");

    // Dropped once: resumed, and the good package installs.
    server.set_fault(
        pool,
        Fault {
            fail_first: 0,
            truncate_at: Some((200, 1)),
        },
    );
    let hits = server.hits(pool);
    kod_ok(
        c,
        [
            OsStr::new("pkg"),
            "install".as_ref(),
            "--root".as_ref(),
            root.as_ref(),
            "kod-good".as_ref(),
        ],
    );
    assert!(root.join("usr/share/kod-fixture/kod-good").is_file());
    assert!(server.hits(pool) > hits);
}
