//! Hand-made malicious .deb files (built with the real `tar` and `ar`):
//! each must be refused with a clear error, and nothing outside the target
//! root may be created or changed. The root lives deep inside a temporary
//! "world" directory so that an escape would be visible (and harmless).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};

use common::{Node, control_for, dpkg_new_files, hand_deb, snapshot};
use kod_unpack::{Ownership, Reason, UnpackError, UnpackOptions, Unpacked, unpack_deb};

struct World {
    _tmp: tempfile::TempDir,
    world: PathBuf,
    root: PathBuf,
    /// A directory next to the root, `world/a/b/etc`, holding `secret`.
    canary: PathBuf,
    build: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let tmp = tempfile::tempdir().expect("tempdir");
        let world = tmp.path().join("world");
        let root = world.join("a/b/root");
        let canary = world.join("a/b/etc");
        fs::create_dir_all(&root).expect("root");
        fs::create_dir_all(&canary).expect("canary");
        fs::write(canary.join("secret"), "canary\n").expect("secret");
        fs::write(canary.join("passwd"), "root:x:0:0::/root:/bin/sh\n").expect("passwd");
        World {
            _tmp: tmp,
            world,
            root,
            canary,
            build: tempfile::tempdir().expect("build dir"),
        }
    }

    fn stage(&self) -> PathBuf {
        let s = self.build.path().join("stage");
        fs::create_dir_all(&s).expect("stage");
        s
    }

    /// Everything in the world except the root's subtree.
    fn outside(&self) -> BTreeMap<PathBuf, Node> {
        snapshot(&self.world, true)
            .into_iter()
            .filter(|(p, _)| !p.starts_with("a/b/root"))
            .collect()
    }

    /// Stages `x` and `name`, a hard link to it.
    fn stage_hard_link(&self, name: &str) {
        fs::write(self.stage().join("x"), "x\n").expect("x");
        fs::hard_link(self.stage().join("x"), self.stage().join(name)).expect("link");
    }

    fn deb(&self, name: &str, tar_args: &[&str]) -> PathBuf {
        hand_deb(
            self.build.path(),
            name,
            &control_for(name, ""),
            &self.stage(),
            tar_args,
        )
    }

    /// Unpacks `deb`, expecting a failure; checks nothing outside changed
    /// and no `.dpkg-new` is left.
    fn refuse(&self, deb: &Path) -> UnpackError {
        let before = self.outside();
        let err = unpack_deb(deb, &self.root, &options()).expect_err("must be refused");
        assert_eq!(before, self.outside(), "something outside the root changed");
        assert_eq!(dpkg_new_files(&self.root), Vec::<PathBuf>::new());
        err
    }
}

fn options() -> UnpackOptions {
    UnpackOptions {
        ownership: Ownership::SkipIfNotPermitted,
        ..UnpackOptions::default()
    }
}

/// How many names the file at `p` has.
fn links(p: &Path) -> u64 {
    fs::metadata(p).expect("stat").nlink()
}

fn only_failure(err: &UnpackError) -> &kod_unpack::Failure {
    assert_eq!(err.failures.len(), 1, "{err}");
    &err.failures[0]
}

#[test]
fn dotdot_member_is_refused() {
    let w = World::new();
    fs::write(w.stage().join("x"), "evil\n").expect("x");
    fs::write(w.stage().join("ok"), "fine\n").expect("ok");
    let deb = w.deb(
        "dotdot",
        &["-P", "--transform=s,^x$,../etc/x,", "./ok", "x"],
    );
    let err = w.refuse(&deb);
    let f = only_failure(&err);
    assert!(matches!(f.reason, Reason::DotDot), "{err}");
    assert_eq!(f.package, "dotdot");
    assert_eq!(f.member.as_deref(), Some("data.tar.xz"));
    assert_eq!(f.path.as_deref(), Some("../etc/x"));
    let msg = err.to_string();
    assert!(
        msg.contains("dotdot") && msg.contains("../etc/x") && msg.contains("`..`"),
        "{msg}"
    );
    assert!(!w.canary.join("x").exists());
    // What was written before the bad entry is reported for rollback.
    assert_eq!(err.changes[0].created, vec![PathBuf::from("/ok")]);
}

#[test]
fn dot_slash_dotdot_member_is_refused() {
    let w = World::new();
    fs::write(w.stage().join("x"), "evil\n").expect("x");
    let deb = w.deb("dotslash", &["-P", "--transform=s,^x$,./../x,", "x"]);
    let err = w.refuse(&deb);
    assert!(matches!(only_failure(&err).reason, Reason::DotDot), "{err}");
    assert!(!w.world.join("a/b/x").exists());
}

#[test]
fn write_through_absolute_symlink_is_refused() {
    let w = World::new();
    symlink(&w.canary, w.stage().join("l")).expect("symlink");
    fs::write(w.stage().join("x"), "evil\n").expect("x");
    let deb = w.deb("abslink", &["--transform=s,^x$,l/x,S", "l", "x"]);
    let err = w.refuse(&deb);
    let f = only_failure(&err);
    assert!(matches!(f.reason, Reason::OutsideRoot { .. }), "{err}");
    assert_eq!(f.path.as_deref(), Some("l/x"));
    assert!(err.to_string().contains("outside the target root"), "{err}");
    assert!(!w.canary.join("x").exists());
    // The symlink itself is an ordinary entry and was created.
    assert_eq!(fs::read_link(w.root.join("l")).expect("l"), w.canary);
}

/// Where, in a [`World`], a refused write would have landed.
type Escaped = fn(&World) -> PathBuf;

#[test]
fn write_through_relative_symlink_climbing_out_is_refused() {
    // Out of the world; then `..` that lands exactly on the canary
    // directory. Each: the symlink's target, the package, where `x` is
    // sent, and where it would have escaped to.
    let cases: [(&str, &str, &str, Escaped); 2] = [
        ("../../..", "climb", "--transform=s,^x$,up/x,S", |w| {
            w.world.join("x")
        }),
        ("..", "climb2", "--transform=s,^x$,up/etc/x,S", |w| {
            w.canary.join("x")
        }),
    ];
    for (target, name, transform, escaped) in cases {
        let w = World::new();
        symlink(target, w.stage().join("up")).expect("symlink");
        fs::write(w.stage().join("x"), "evil\n").expect("x");
        let deb = w.deb(name, &[transform, "up", "x"]);
        let err = w.refuse(&deb);
        assert!(
            matches!(only_failure(&err).reason, Reason::OutsideRoot { .. }),
            "{err}"
        );
        assert!(!escaped(&w).exists());
    }
}

#[test]
fn hard_link_to_absolute_etc_passwd_is_refused() {
    let w = World::new();
    // Even a passwd inside the root is not this package's file.
    fs::create_dir_all(w.root.join("etc")).expect("etc");
    fs::write(w.root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").expect("passwd");
    w.stage_hard_link("y");
    let deb = w.deb(
        "hlabs",
        &["-P", "--transform=s,^x$,/etc/passwd,RS", "x", "y"],
    );
    let err = w.refuse(&deb);
    let f = only_failure(&err);
    assert!(
        matches!(&f.reason, Reason::HardLinkTarget { target } if target == "/etc/passwd"),
        "{err}"
    );
    assert_eq!(links(&w.root.join("etc/passwd")), 1);
    assert_eq!(links(&w.canary.join("passwd")), 1);
    assert!(!w.root.join("y").exists());
}

#[test]
fn hard_link_with_dotdot_is_refused() {
    let w = World::new();
    w.stage_hard_link("y");
    let deb = w.deb(
        "hldotdot",
        &["-P", "--transform=s,^x$,../../etc/passwd,RS", "x", "y"],
    );
    let err = w.refuse(&deb);
    assert!(matches!(only_failure(&err).reason, Reason::DotDot), "{err}");
    assert_eq!(links(&w.canary.join("passwd")), 1);
}

#[test]
fn hard_link_through_outside_symlink_is_refused() {
    let w = World::new();
    symlink(&w.canary, w.stage().join("l")).expect("symlink");
    w.stage_hard_link("h");
    let deb = w.deb("hlsym", &["--transform=s,^x$,l/secret,RS", "l", "x", "h"]);
    let err = w.refuse(&deb);
    assert!(
        matches!(&only_failure(&err).reason, Reason::HardLinkTarget { target } if target == "l/secret"),
        "{err}"
    );
    assert_eq!(links(&w.canary.join("secret")), 1);
    assert!(!w.root.join("h").exists());
}

#[test]
fn absolute_symlinks_nothing_writes_through_are_installed_as_they_are() {
    let w = World::new();
    let s = w.stage();
    fs::create_dir_all(s.join("etc/alternatives")).expect("dirs");
    symlink("/usr/bin/foo-impl", s.join("etc/alternatives/foo")).expect("symlink");
    symlink("/etc", s.join("etc/up")).expect("symlink");
    let deb = w.deb("abs", &["./etc"]);
    let before = w.outside();
    let u: Unpacked = unpack_deb(&deb, &w.root, &options()).expect("unpack");
    assert_eq!(before, w.outside());
    assert_eq!(
        fs::read_link(w.root.join("etc/alternatives/foo")).expect("link"),
        PathBuf::from("/usr/bin/foo-impl")
    );
    assert_eq!(
        fs::read_link(w.root.join("etc/up")).expect("link"),
        PathBuf::from("/etc")
    );
    let mut list = u.list.clone();
    list.sort();
    assert_eq!(
        list,
        [
            "/etc",
            "/etc/alternatives",
            "/etc/alternatives/foo",
            "/etc/up"
        ]
        .iter()
        .map(PathBuf::from)
        .collect::<Vec<_>>()
    );
}

#[test]
fn failed_package_in_a_batch_stops_and_reports_every_package_changes() {
    let w = World::new();
    let s = w.stage();
    fs::create_dir_all(s.join("usr/share/good")).expect("dirs");
    fs::write(s.join("usr/share/good/file"), "good\n").expect("file");
    let good = w.deb("good", &["./usr"]);
    let s2 = w.build.path().join("stage2");
    fs::create_dir_all(s2.join("etc")).expect("etc");
    fs::write(s2.join("etc/c.conf"), "conf\n").expect("conf");
    fs::write(s2.join("x"), "evil\n").expect("x");
    let ctl = control_for("bad", "");
    let build2 = w.build.path().join("b2");
    fs::create_dir_all(&build2).expect("b2");
    // The conffile is left as .dpkg-new (the default) before the bad entry.
    let bad = {
        let work = build2.join("bad.build/ctl");
        fs::create_dir_all(&work).expect("ctl");
        fs::write(work.join("conffiles"), "/etc/c.conf\n").expect("conffiles");
        hand_deb(
            &build2,
            "bad",
            &ctl,
            &s2,
            &["-P", "--transform=s,^x$,../x,", "./etc", "x"],
        )
    };
    let before = w.outside();
    let err = kod_unpack::unpack_all(&[&good, &bad], &w.root, &options()).expect_err("refused");
    assert_eq!(before, w.outside());
    assert_eq!(err.failures.len(), 1, "{err}");
    assert_eq!(err.failures[0].package, "bad");
    assert_eq!(err.changes.len(), 2);
    assert_eq!(dpkg_new_files(&w.root), Vec::<PathBuf>::new());
    // Every path reported as created exists (the removed .dpkg-new is not
    // reported), so a rollback can remove exactly these.
    for c in &err.changes {
        for p in &c.created {
            let rel = p.strip_prefix("/").expect("rooted");
            assert!(
                fs::symlink_metadata(w.root.join(rel)).is_ok(),
                "{p:?} reported but missing"
            );
        }
    }
    assert!(
        err.changes[1]
            .created
            .iter()
            .all(|p| !p.to_string_lossy().ends_with(".dpkg-new"))
    );
}
