//! Transactions run by root of a user namespace, as `kod env` runs them
//! for a personal environment (the caller's subordinate ids mapped through
//! newuidmap, mmdebstrap's unshare mode): a minbase root bootstrapped
//! there must equal one bootstrapped by real root from the same packages,
//! with every owner shifted into the namespace's ids and no device nodes
//! in `/dev`; git then installs (overlay with `userxattr`) and is removed
//! there, leaving a healthy root and no overlay attributes, mount, process
//! or temporary directory.
//!
//! The test binary runs the steps itself in a child process that is root
//! of a new user and mount namespace whose ids 0..65536 are host ids
//! [`BASE`].. (the test, real root, writes the id maps, as newuidmap does
//! for a user). Needs root and the network: `KOD_TEST_ROOT=1 KOD_TEST_NET=1`.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{
    arch, assert_success, child_args, child_test, copy_sources, file_lists, git_debs, healthy,
    in_root, in_root_ok, minbase_debs, minbase_root, mounts_under, packages, pulled_in, snapshot,
};
use kod_install::{BootstrapOptions, Error, Options, Transaction, bootstrap_into, plan_removal};
use kod_testkit::Tier;
use rustix::thread::UnshareFlags;

/// The first host id of the namespace (far above the ids of real users).
const BASE: u32 = 1_200_000_000;
/// How many ids the namespace maps, as /etc/subuid grants by default.
const COUNT: u32 = 65_536;

/// Runs this binary's [`child_in_user_namespace`] with `step` as root of a
/// new user and mount namespace, from `exe` (a copy the namespace's root
/// may run); panics with its output unless it succeeds.
fn in_user_namespace(exe: &Path, step: &str, root: &Path, debs: &[PathBuf]) {
    let (mut pid_r, pid_w) = std::io::pipe().expect("pipe");
    let (go_r, mut go_w) = std::io::pipe().expect("pipe");
    let mut cmd = child_test(exe, "child_in_user_namespace", step, root, debs);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (pid_fd, go_fd) = (pid_w.as_raw_fd(), go_r.as_raw_fd());
    // SAFETY: raw system calls only, on descriptors open until spawn
    // returns; no allocation.
    unsafe {
        cmd.pre_exec(move || {
            rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER | UnshareFlags::NEWNS)?;
            let pid = rustix::process::getpid().as_raw_nonzero().get();
            rustix::io::write(BorrowedFd::borrow_raw(pid_fd), &pid.to_le_bytes())?;
            let mut go = [0u8; 1];
            if rustix::io::read(BorrowedFd::borrow_raw(go_fd), &mut go)? != 1 {
                return Err(std::io::Error::other("no id maps"));
            }
            rustix::thread::set_thread_res_gid(
                rustix::process::Gid::ROOT,
                rustix::process::Gid::ROOT,
                rustix::process::Gid::ROOT,
            )?;
            rustix::thread::set_thread_groups(&[])?;
            rustix::thread::set_thread_res_uid(
                rustix::process::Uid::ROOT,
                rustix::process::Uid::ROOT,
                rustix::process::Uid::ROOT,
            )?;
            Ok(())
        });
    }
    // Writes the maps once the child has unshared (spawn returns only
    // after its exec).
    let mapper = std::thread::spawn(move || {
        let mut pid = [0u8; 4];
        if pid_r.read_exact(&mut pid).is_err() {
            return;
        }
        let pid = i32::from_le_bytes(pid);
        for map in ["uid_map", "gid_map"] {
            fs::write(format!("/proc/{pid}/{map}"), format!("0 {BASE} {COUNT}\n"))
                .expect("write the id map");
        }
        go_w.write_all(b"g").expect("go");
    });
    let child = cmd.spawn().expect("spawn the child");
    drop(cmd);
    drop((pid_w, go_r));
    let out = child.wait_with_output().expect("wait");
    mapper.join().expect("mapper");
    assert_success(&out, format_args!("{step} as root of a user namespace"));
}

#[test]
#[ignore = "helper: run in a user namespace by net_transactions_as_root_of_a_user_namespace"]
fn child_in_user_namespace() {
    let (step, root, debs) = child_args("run by net_transactions_as_root_of_a_user_namespace only");
    assert!(kod_sandbox::in_user_namespace(), "not in a user namespace");
    let options = Options::default();
    match step.as_str() {
        "bootstrap" => {
            bootstrap_into(&root, &debs, &BootstrapOptions::new(&arch()), &options)
                .expect("bootstrap");
        }
        "install" => {
            let mut t = Transaction::begin(&root, &options).expect("begin");
            let report = t.install(&debs).expect("install");
            t.mark_auto_installed(&pulled_in(&report, "git"), true)
                .expect("mark auto");
            t.commit().expect("commit");
        }
        "remove" => {
            let plan = plan_removal(&root, &["git"], false, true).expect("plan");
            let mut t = Transaction::begin(&root, &options).expect("begin");
            t.remove(&plan).expect("remove");
            t.commit().expect("commit");
        }
        other => panic!("unknown step {other}"),
    }
}

#[test]
fn net_transactions_as_root_of_a_user_namespace() {
    if !kod_testkit::tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let mounts = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let tmp = tempfile::tempdir_in("/var/tmp").expect("tmp");
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    // Real root's root, for comparison; then the set of git, computed by
    // apt in it.
    let host = minbase_root(tmp.path(), "host");
    let (theirs, their_packages, their_lists) =
        (snapshot(&host), packages(&host), file_lists(&host));
    copy_sources(&host);
    let git = git_debs(&host);
    let debs = minbase_debs();

    // The namespace's root owns `ns` and runs a copy of this binary.
    let ns = tmp.path().join("ns");
    fs::create_dir(&ns).expect("mkdir");
    rustix::fs::chown(
        &ns,
        Some(rustix::fs::Uid::from_raw(BASE)),
        Some(rustix::fs::Gid::from_raw(BASE)),
    )
    .expect("chown");
    let exe = tmp.path().join("test-binary");
    let built = std::env::current_exe().expect("exe");
    if fs::hard_link(&built, &exe).is_err() {
        fs::copy(&built, &exe).expect("copy the test binary");
    }
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).expect("chmod");

    let root = ns.join("root");
    in_user_namespace(&exe, "bootstrap", &root, &debs);
    let mine = snapshot(&root);
    healthy(&root);
    assert_eq!(packages(&root), their_packages, "names, versions, states");
    assert_eq!(file_lists(&root), their_lists, "dpkg -L");
    for f in ["etc/passwd", "etc/group", "etc/shadow"] {
        assert_eq!(
            fs::read(root.join(f)).expect("namespace's"),
            fs::read(host.join(f)).expect("host's"),
            "{f}"
        );
    }
    // Same paths, kinds and modes; every owner shifted by BASE; /dev
    // without device nodes (the chroot's /dev is the host's).
    let nodes: Vec<&PathBuf> = theirs
        .iter()
        .filter(|(_, n)| n.kind == 'o')
        .map(|(p, _)| p)
        .collect();
    assert!(nodes.contains(&&PathBuf::from("dev/null")), "{nodes:?}");
    assert!(nodes.iter().all(|p| p.starts_with("dev")), "{nodes:?}");
    let mut diffs = Vec::new();
    for (p, n) in &theirs {
        match mine.get(p) {
            None if n.kind == 'o' && p.starts_with("dev") => {}
            None => diffs.push(format!("missing: {p:?}")),
            Some(m) => {
                if (m.kind, m.mode, m.target.as_ref()) != (n.kind, n.mode, n.target.as_ref())
                    || (m.uid, m.gid) != (n.uid + BASE, n.gid + BASE)
                {
                    diffs.push(format!("{p:?}: {m:?} vs {n:?}"));
                }
            }
        }
    }
    diffs.extend(
        mine.keys()
            .filter(|p| !theirs.contains_key(*p))
            .map(|p| format!("extra: {p:?}")),
    );
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    let meta = fs::symlink_metadata(root.join("dev/fd")).expect("dev/fd");
    assert!(meta.file_type().is_symlink() && meta.uid() == BASE);

    // git in, through an overlay mounted in the namespace.
    in_user_namespace(&exe, "install", &root, &git);
    healthy(&root);
    assert!(in_root_ok(&root, "git --version").starts_with("git version"));
    let auto = in_root_ok(&root, "apt-mark showauto");
    assert!(auto.lines().any(|l| l == "git-man"), "{auto}");
    assert_eq!(
        fs::metadata(root.join("usr/bin/git")).expect("git").uid(),
        BASE
    );
    // Planning needs nothing but the status file.
    match plan_removal(&root, &["git-man"], false, true) {
        Err(Error::Db(kod_db::Error::WouldBreak { broken, .. })) => {
            assert_eq!(broken[0].package, "git")
        }
        other => panic!("{other:?}"),
    }

    // And out again.
    in_user_namespace(&exe, "remove", &root, &[]);
    healthy(&root);
    assert!(!in_root(&root, "command -v git").status.success());
    assert!(!packages(&root).contains_key("git"));

    assert!(mounts_under(tmp.path()).is_empty());
    assert_eq!(
        fs::read_to_string("/proc/self/mountinfo").expect("mountinfo"),
        mounts,
        "the mount table changed"
    );
}
