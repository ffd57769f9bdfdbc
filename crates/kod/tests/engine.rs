//! The package engine end to end against the real Debian archive (net and
//! root tiers): `kod bootstrap` compared with mmdebstrap run in the same
//! test with the same sources, then `kod pkg install|remove` in the root.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command as Process;

mod common;

use common::{kod, kod_ok, run_ok};
use kod_testkit::{Tier, tiers};

/// `name version arch` of every package in a root's dpkg database, sorted.
fn installed(root: &Path) -> Vec<String> {
    let out = run_ok(Process::new("dpkg-query").args([
        &format!("--admindir={}", root.join("var/lib/dpkg").display()),
        "-W",
        "-f",
        "${Package} ${Version} ${Architecture}\\n",
    ]));
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// The apt lines for `suite` on the host's mirror, as kod reads them.
fn source_lines(suite: &str) -> Vec<String> {
    let mirror = kod_repo::debian::find_mirror(None, None).expect("a Debian mirror on this host");
    let spec = kod_repo::debian::DebianSource::release(&mirror, suite);
    spec.suites
        .iter()
        .map(|s| format!("deb {} {s} main", spec.base_url(s)))
        .collect()
}

/// Builds `suite`/`variant` with mmdebstrap and with kod in `work`; returns
/// both package lists (rerunning both once when they differ, in case an
/// InRelease changed between the two runs).
fn bootstrap_both(
    work: &Path,
    cache: &Path,
    suite: &str,
    variant: &str,
) -> (Vec<String>, Vec<String>) {
    for attempt in 0..2 {
        let mm = work.join(format!("mm-{attempt}"));
        let kd = work.join(format!("kod-{attempt}"));
        let mut mmdebstrap = Process::new("mmdebstrap");
        mmdebstrap
            .args([
                "--mode=root",
                "--quiet",
                &format!("--variant={variant}"),
                suite,
            ])
            .arg(&mm)
            .args(source_lines(suite));
        run_ok(&mut mmdebstrap);
        let distro = format!("debian:{suite}");
        kod_ok(
            cache,
            [
                OsStr::new("bootstrap"),
                distro.as_ref(),
                kd.as_ref(),
                "--variant".as_ref(),
                variant.as_ref(),
            ],
        );
        let (a, b) = (installed(&mm), installed(&kd));
        if a == b || attempt == 1 {
            check_root(&kd);
            std::fs::rename(&kd, work.join("kod")).unwrap();
            return (a, b);
        }
        eprintln!("package sets differ; building both again in case the archive changed");
    }
    unreachable!()
}

/// dpkg and apt are content in `root`.
fn check_root(root: &Path) {
    let audit = run_ok(Process::new("chroot").arg(root).args(["dpkg", "--audit"]));
    assert_eq!(audit, "", "dpkg --audit found problems");
    let states = run_ok(Process::new("chroot").arg(root).args([
        "dpkg-query",
        "-W",
        "-f",
        "${db:Status-Abbrev}|${Package}\\n",
    ]));
    for line in states.lines() {
        assert!(line.starts_with("ii "), "not installed: {line}");
    }
    run_ok(
        Process::new("chroot")
            .arg(root)
            .args(["apt-get", "check", "-q"]),
    );
    run_ok(
        Process::new("chroot")
            .arg(root)
            .args(["/bin/sh", "-c", "true"]),
    );
}

fn diff(a: &[String], b: &[String]) -> String {
    let only_a: Vec<&String> = a.iter().filter(|x| !b.contains(x)).collect();
    let only_b: Vec<&String> = b.iter().filter(|x| !a.contains(x)).collect();
    format!("only mmdebstrap: {only_a:?}\nonly kod: {only_b:?}")
}

/// Bootstraps `suite`/`variant` with both tools in a new work directory
/// (with a new cache) and checks they install the same packages; returns
/// the directories (kod's root is `WORK/kod`) and kod's package list.
fn same_as_mmdebstrap(
    suite: &str,
    variant: &str,
) -> (tempfile::TempDir, tempfile::TempDir, Vec<String>) {
    let work = tempfile::tempdir_in("/var/tmp").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (mm, kd) = bootstrap_both(work.path(), cache.path(), suite, variant);
    assert_eq!(mm, kd, "{}", diff(&mm, &kd));
    (work, cache, kd)
}

#[test]
fn net_root_bootstrap_bookworm_minbase_like_mmdebstrap_then_install_and_remove() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let (work, cache, kd) = same_as_mmdebstrap("bookworm", "minbase");
    assert!(kd.len() > 80, "{} packages", kd.len());

    let root = work.path().join("kod");
    kod_ok(
        cache.path(),
        [
            OsStr::new("pkg"),
            "install".as_ref(),
            "--root".as_ref(),
            root.as_ref(),
            "git".as_ref(),
        ],
    );
    let version = run_ok(Process::new("chroot").arg(&root).args(["git", "--version"]));
    assert!(version.starts_with("git version 2."), "{version}");
    check_root(&root);

    // `kod --no-wait pkg remove git`, which must fail: its stderr.
    let remove_git_without_waiting = || {
        let out = kod(
            cache.path(),
            [
                OsStr::new("--no-wait"),
                "pkg".as_ref(),
                "remove".as_ref(),
                "--root".as_ref(),
                root.as_ref(),
                "git".as_ref(),
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{err}");
        err
    };
    // Another kod holding the root (its lock file, PARENT/.NAME.kod-lock):
    // with --no-wait, a clear error and nothing removed.
    let mut holder = Process::new("flock")
        .arg("-x")
        .arg(work.path().join(".kod.kod-lock"))
        .args(["-c", "echo locked; read x || true"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "locked\n");
    let err = remove_git_without_waiting();
    assert!(
        err.contains("another kod") && err.contains("--no-wait"),
        "{err}"
    );
    assert!(root.join("usr/bin/git").exists());
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());

    // apt or dpkg working in the root (its dpkg frontend lock, an fcntl
    // lock, held here by the test process): with --no-wait, a clear error
    // naming the flag, and nothing removed.
    let lock_file = root.join("var/lib/dpkg/lock-frontend");
    let dpkg_lock = std::fs::OpenOptions::new()
        .write(true)
        .open(&lock_file)
        .unwrap();
    rustix::fs::fcntl_lock(
        &dpkg_lock,
        rustix::fs::FlockOperation::NonBlockingLockExclusive,
    )
    .unwrap();
    let err = remove_git_without_waiting();
    assert!(
        err.contains("apt or dpkg")
            && err.contains(&lock_file.display().to_string())
            && err.contains("--no-wait"),
        "{err}"
    );
    assert!(root.join("usr/bin/git").exists());
    drop(dpkg_lock);

    kod_ok(
        cache.path(),
        [
            OsStr::new("pkg"),
            "remove".as_ref(),
            "--root".as_ref(),
            root.as_ref(),
            "git".as_ref(),
        ],
    );
    assert!(!root.join("usr/bin/git").exists());
    check_root_audit_only(&root);

    // The root's own apt still works afterwards.
    let script = format!(
        "mount -t proc proc {root}/proc && chroot {root} sh -c \
         'apt-get update -q && apt-get install -y -q hello' ; s=$?; umount {root}/proc; exit $s",
        root = root.display()
    );
    run_ok(Process::new("unshare").args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
    ]));
    let hello = run_ok(Process::new("chroot").arg(&root).arg("hello"));
    assert_eq!(hello.trim(), "Hello, world!");
}

/// After a removal, dpkg is content (the removed package's conffiles stay).
fn check_root_audit_only(root: &Path) {
    let audit = run_ok(Process::new("chroot").arg(root).args(["dpkg", "--audit"]));
    assert_eq!(audit, "", "dpkg --audit found problems");
}

#[test]
fn net_root_bootstrap_trixie_required_like_mmdebstrap() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    same_as_mmdebstrap("trixie", "required");
}

#[test]
fn net_bootstrap_dry_run_touches_nothing() {
    if !tiers(&[Tier::Net]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let dir = work.path().join("root");
    let out = kod_ok(
        cache.path(),
        [
            OsStr::new("bootstrap"),
            "debian:bookworm".as_ref(),
            dir.as_ref(),
            "--variant".as_ref(),
            "minbase".as_ref(),
            "--include".as_ref(),
            "git".as_ref(),
            "--dry-run".as_ref(),
            "--json".as_ref(),
        ],
    );
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = plan["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for expected in ["git", "dpkg", "apt", "libc6", "base-files"] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let size: u64 = plan["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["size"].as_u64().unwrap())
        .sum();
    assert_eq!(plan["download_size"].as_u64().unwrap(), size);
    assert!(!dir.exists(), "a dry run created {}", dir.display());
}
