//! Bad input and interruptions, each leaving the target exactly as it was
//! (every path, type, mode, owner, size and content compared before and
//! after), with no mount, process or temporary directory left behind:
//! a failing postinst, a failing preinst, an unpack failure in the middle
//! of a batch, a file conflict, and kod killed with SIGKILL in the middle
//! of an install and of a bootstrap (the next run cleans up).
//!
//! The roots are minbase roots built by kod from the host release's
//! packages (downloaded once by mmdebstrap into a cache): root and network,
//! `KOD_TEST_ROOT=1 KOD_TEST_NET=1`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    Fixture, arch, assert_same_tree, child_args, child_test, in_root_ok, install, leftovers,
    minbase_debs, minbase_root, mounts_under, net_tmp, processes_in, run, snapshot,
};
use kod_db::Error as DbError;
use kod_install::{BootstrapOptions, Error, Options, Transaction, bootstrap_into};

/// No mount, no process, no temporary directory left for `root`.
fn nothing_left(root: &Path) {
    assert!(
        mounts_under(root.parent().expect("parent")).is_empty(),
        "mounts left"
    );
    if root.exists() {
        assert!(processes_in(root).is_empty(), "processes left in the root");
    }
    assert_eq!(
        leftovers(root),
        Vec::<PathBuf>::new(),
        "temporary directories left"
    );
}

/// After a successful install: dpkg finds nothing to audit, nothing is
/// left.
fn installed_cleanly(root: &Path) {
    assert_eq!(in_root_ok(root, "dpkg --audit"), "");
    nothing_left(root);
}

/// Bootstraps a new root at `root` from `debs`, expecting failure.
fn bootstrap_fails(root: &Path, debs: &[PathBuf]) -> Error {
    bootstrap_into(
        root,
        debs,
        &BootstrapOptions::new(&arch()),
        &Options::default(),
    )
    .expect_err("must fail")
}

/// Installs `debs` into `root` in one transaction, expecting failure; the
/// root must be unchanged.
fn install_fails(root: &Path, debs: &[PathBuf]) -> Error {
    let before = snapshot(root);
    let result = Transaction::begin(root, &Options::default())
        .and_then(|mut t| t.install(debs).and_then(|_| t.commit()));
    let e = result.expect_err("the transaction must fail");
    assert_same_tree(
        &before,
        &snapshot(root),
        "root after the failed transaction",
    );
    nothing_left(root);
    e
}

/// A hand-made .deb (real `tar` and `ar`) whose data holds `../escape`.
fn malicious_deb(dir: &Path) -> PathBuf {
    let work = dir.join("evil.build");
    fs::create_dir_all(work.join("ctl")).expect("mkdir");
    fs::create_dir_all(work.join("data")).expect("mkdir");
    fs::write(
        work.join("ctl/control"),
        "Package: kod-evil\nVersion: 1\nArchitecture: all\nMaintainer: k <k@example.org>\nDescription: evil\n",
    )
    .expect("control");
    fs::write(work.join("data/escape"), "x").expect("file");
    fs::write(work.join("debian-binary"), "2.0\n").expect("debian-binary");
    run(Command::new("tar")
        .args(["-czf", "control.tar.gz", "-C", "ctl", "."])
        .current_dir(&work));
    run(Command::new("tar")
        .args([
            "-czf",
            "data.tar.gz",
            "-C",
            "data",
            "--transform",
            "s,^\\./escape,./../escape,",
            "./escape",
        ])
        .current_dir(&work));
    let deb = dir.join("kod-evil_1_all.deb");
    run(Command::new("ar")
        .arg("rc")
        .arg(&deb)
        .args(["debian-binary", "control.tar.gz", "data.tar.gz"])
        .current_dir(&work));
    deb
}

#[test]
fn net_failing_maintainer_scripts_leave_the_root_unchanged() {
    let Some(tmp) = net_tmp() else { return };
    let root = minbase_root(tmp.path(), "root");
    let good = Fixture {
        files: &[("/usr/share/kod-good/file", "good\n")],
        members: &[("postinst", "#!/bin/sh\necho configured > /etc/kod-good\n")],
        ..Fixture::new("kod-good")
    }
    .build(tmp.path());
    let bad_postinst = Fixture {
        files: &[("/etc/kod-bad.conf", "x\n")],
        members: &[
            ("conffiles", "/etc/kod-bad.conf\n"),
            ("postinst", "#!/bin/sh\necho about to fail >&2\nexit 1\n"),
        ],
        ..Fixture::new("kod-bad-postinst")
    }
    .build(tmp.path());
    let e = install_fails(&root, &[good.clone(), bad_postinst]);
    let msg = e.to_string();
    assert!(matches!(e, Error::Db(DbError::Command { .. })), "{msg}");
    assert!(
        msg.contains("kod-bad-postinst") && msg.contains("exit status 1"),
        "{msg}"
    );
    assert!(msg.contains("about to fail"), "{msg}");

    let bad_preinst = Fixture {
        members: &[("preinst", "#!/bin/sh\necho refusing >&2\nexit 3\n")],
        ..Fixture::new("kod-bad-preinst")
    }
    .build(tmp.path());
    let e = install_fails(&root, &[good.clone(), bad_preinst]);
    let msg = e.to_string();
    assert!(
        msg.contains("preinst of kod-bad-preinst") && msg.contains("status 3"),
        "{msg}"
    );
    assert!(msg.contains("refusing"), "{msg}");

    // The same good package alone goes in.
    install(&root, &[good]);
    assert_eq!(
        fs::read_to_string(root.join("etc/kod-good")).expect("postinst ran"),
        "configured\n"
    );
    installed_cleanly(&root);
}

#[test]
fn net_unpack_failure_and_file_conflict_leave_the_root_unchanged() {
    let Some(tmp) = net_tmp() else { return };
    let root = minbase_root(tmp.path(), "root");
    let mut batch = Vec::new();
    for i in 0..6 {
        let name = format!("kod-filler{i}");
        let path = format!("/usr/share/{name}/data");
        let content = "filler\n".repeat(20_000);
        batch.push(
            Fixture {
                files: &[(path.as_str(), content.as_str())],
                ..Fixture::new(&name)
            }
            .build(tmp.path()),
        );
    }
    batch.insert(3, malicious_deb(tmp.path()));
    let e = install_fails(&root, &batch);
    assert!(matches!(e, Error::Db(DbError::Unpack(_))), "{e}");
    assert!(e.to_string().contains("kod-evil"), "{e}");
    assert!(!tmp.path().join("escape").exists());

    // A file of an installed package, without Replaces: refused.
    let owner = in_root_ok(&root, "dpkg -S /usr/share/doc/hostname/copyright");
    assert!(owner.starts_with("hostname:"), "{owner}");
    let thief = Fixture {
        files: &[("/usr/share/doc/hostname/copyright", "mine\n")],
        ..Fixture::new("kod-thief")
    }
    .build(tmp.path());
    let e = install_fails(&root, &[thief]);
    match &e {
        Error::Db(DbError::FileConflict {
            package,
            path,
            owner,
        }) => {
            assert_eq!(
                (package.as_str(), path.as_str(), owner.as_str()),
                ("kod-thief", "/usr/share/doc/hostname/copyright", "hostname")
            );
        }
        other => panic!("{other}"),
    }
    // With Replaces it takes the file over, as dpkg would.
    let heir = Fixture {
        control: "Replaces: hostname\n",
        files: &[("/usr/share/doc/hostname/copyright", "mine\n")],
        ..Fixture::new("kod-heir")
    }
    .build(tmp.path());
    install(&root, &[heir]);
    assert_eq!(
        in_root_ok(&root, "dpkg -S /usr/share/doc/hostname/copyright"),
        "kod-heir: /usr/share/doc/hostname/copyright\n"
    );
    installed_cleanly(&root);
}

#[test]
fn net_failed_bootstrap_leaves_no_root() {
    let Some(tmp) = net_tmp() else { return };
    let root = tmp.path().join("new");
    let bad = Fixture {
        members: &[("postinst", "#!/bin/sh\nexit 7\n")],
        ..Fixture::new("kod-bad-postinst")
    }
    .build(tmp.path());
    let mut debs = minbase_debs();
    debs.push(bad);
    let e = bootstrap_fails(&root, &debs);
    assert!(
        e.to_string().contains("kod-bad-postinst") && e.to_string().contains("status 7"),
        "{e}"
    );
    assert!(!root.exists(), "a half root was left");
    nothing_left(&root);

    let mut debs = minbase_debs();
    debs.push(malicious_deb(tmp.path()));
    let e = bootstrap_fails(&root, &debs);
    assert!(matches!(e, Error::Db(DbError::Unpack(_))), "{e}");
    assert!(!root.exists());
    nothing_left(&root);
}

/// A package whose postinst says it started (a file in the host's
/// /dev/shm, which the chroot sees through its /dev) and waits until told
/// to stop, so that kod can be killed while it configures.
fn slow_package(dir: &Path, token: &str) -> PathBuf {
    let script = format!(
        "#!/bin/sh\ntouch /dev/shm/kod-ready-{token}\n\
         while [ ! -e /dev/shm/kod-stop-{token} ]; do sleep 0.1; done\n\
         rm -f /dev/shm/kod-ready-{token}\nexit 0\n"
    );
    Fixture {
        files: &[("/usr/share/kod-slow/file", "slow\n")],
        members: &[("postinst", script.as_str())],
        ..Fixture::new("kod-slow")
    }
    .build(dir)
}

/// Runs [`child_transaction`] in a child process, waits until the slow
/// postinst runs, kills the child with SIGKILL, and lets the postinst end.
fn run_and_kill(mode: &str, root: &Path, debs: &[PathBuf], token: &str) {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = child_test(&exe, "child_transaction", mode, root, debs)
        .spawn()
        .expect("spawn the child");
    let ready = PathBuf::from(format!("/dev/shm/kod-ready-{token}"));
    let stop = PathBuf::from(format!("/dev/shm/kod-stop-{token}"));
    let start = Instant::now();
    while !ready.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the slow postinst never started"
        );
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("the child ended before it was killed: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    // dpkg died with kod (parent-death signal); its postinst is told to end.
    fs::write(&stop, "").expect("stop file");
    let start = Instant::now();
    while ready.exists() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = fs::remove_file(&stop);
}

#[test]
#[ignore = "helper: run as a child process by the SIGKILL tests"]
fn child_transaction() {
    let (mode, root, debs) = child_args("run by the SIGKILL tests only");
    let result = if mode == "bootstrap" {
        bootstrap_into(
            &root,
            &debs,
            &BootstrapOptions::new(&arch()),
            &Options::default(),
        )
        .map(|_| ())
    } else {
        Transaction::begin(&root, &Options::default())
            .and_then(|mut t| t.install(&debs).and_then(|_| t.commit()))
            .map(|_| ())
    };
    panic!("the child was meant to be killed, it ended: {result:?}");
}

#[test]
fn net_sigkill_during_install_is_cleaned_up_by_the_next_run() {
    let Some(tmp) = net_tmp() else { return };
    let root = minbase_root(tmp.path(), "root");
    let before = snapshot(&root);
    let token = format!("install-{}", std::process::id());
    let slow = slow_package(tmp.path(), &token);
    run_and_kill("install", &root, &[slow], &token);
    assert_same_tree(&before, &snapshot(&root), "root after kod was killed");
    let left = leftovers(&root);
    assert_eq!(
        left.len(),
        1,
        "the transaction's directory stays until the next run: {left:?}"
    );
    // The next run on the root removes it and works.
    let t = Transaction::begin(&root, &Options::default()).expect("next run");
    assert!(
        !left[0].exists(),
        "{} was not cleaned up",
        left[0].display()
    );
    drop(t);
    assert_same_tree(&before, &snapshot(&root), "root after the next run");
    nothing_left(&root);
}

#[test]
fn net_sigkill_during_bootstrap_leaves_only_the_staging_directory() {
    let Some(tmp) = net_tmp() else { return };
    let token = format!("bootstrap-{}", std::process::id());
    let root = tmp.path().join("new");
    let mut debs = minbase_debs();
    debs.push(slow_package(tmp.path(), &token));
    run_and_kill("bootstrap", &root, &debs, &token);
    assert!(!root.exists(), "a half root appeared");
    let left = leftovers(&root);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        left[0]
            .file_name()
            .expect("name")
            .to_string_lossy()
            .contains(".kod-tmp-")
    );
    let t = Transaction::bootstrap(&root, &BootstrapOptions::new(&arch()), &Options::default())
        .expect("next run");
    assert!(
        !left[0].exists(),
        "{} was not cleaned up",
        left[0].display()
    );
    drop(t);
    assert!(!root.exists());
    nothing_left(&root);
}
