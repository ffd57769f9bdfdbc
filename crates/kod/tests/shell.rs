//! `kod shell` end to end (net and root tiers): packages from the real
//! Debian archive on a throwaway overlay of a root bootstrapped here, or of
//! the host's `/`, which must be exactly as before afterwards.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::machine::{assert_same, full_manifest};
use common::{kod, kod_ok};
use kod_testkit::{Tier, tiers};

const SHELL_DIR: &str = "/run/kod/shell";

/// A minbase bookworm root bootstrapped by kod in `work`, with the cache
/// the shells share.
fn bootstrapped(work: &Path) -> (PathBuf, PathBuf) {
    let (root, cache) = (work.join("root"), work.join("cache"));
    kod_ok(
        &cache,
        [
            OsStr::new("bootstrap"),
            "debian:bookworm".as_ref(),
            root.as_ref(),
            "--variant".as_ref(),
            "minbase".as_ref(),
        ],
    );
    (root, cache)
}

/// `kod shell --root ROOT ARGS...`.
fn shell(cache: &Path, root: &Path, args: &[&str]) -> Output {
    let mut all: Vec<&OsStr> = vec!["shell".as_ref(), "--root".as_ref(), root.as_ref()];
    all.extend(args.iter().map(OsStr::new));
    kod(cache, all)
}

/// [`shell`] started in the working directory `cwd`.
fn shell_in(cache: &Path, root: &Path, cwd: &Path, args: &[&str]) -> Output {
    Process::new(env!("CARGO_BIN_EXE_kod"))
        .env("KOD_CACHE_DIR", cache)
        .current_dir(cwd)
        .args(["shell".as_ref(), "--root".as_ref(), root.as_os_str()])
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The mounts this process sees whose mount point or source is under
/// `path`.
fn mounts_of(path: &Path) -> Vec<String> {
    let p = path.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&p))
        .map(str::to_string)
        .collect()
}

/// What shells left in their directory.
fn shell_dirs() -> Vec<String> {
    match std::fs::read_dir(SHELL_DIR) {
        Ok(d) => d
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn net_root_shell_adds_packages_on_a_bootstrapped_root_and_leaves_it_as_it_was() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (root, cache) = bootstrapped(work.path());
    assert!(!root.join("usr/bin/hello").exists());
    let before = full_manifest(&root);

    let o = shell(&cache, &root, &["-p", "hello", "--", "hello"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "Hello, world!\n");

    let o = shell(
        &cache,
        &root,
        &[
            "-p",
            "hello",
            "-p",
            "cowsay",
            "--",
            "sh",
            "-c",
            "hello | /usr/games/cowsay",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("< Hello, world! >"), "{}", stdout(&o));
    assert!(stdout(&o).contains("(oo)"), "{}", stdout(&o));

    // The command's exit status is kod's; a missing command is 127.
    let o = shell(&cache, &root, &["-p", "hello", "--", "sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    let o = shell(&cache, &root, &["-p", "hello", "--", "no-such-command"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot run no-such-command in the shell on"),
        "{}",
        stderr(&o)
    );

    // /proc, /dev, /tmp work inside; the command is the caller (root here)
    // in the caller's working directory, which is there inside when it is
    // under a directory the shell shares (/tmp), and else the caller's
    // home in the root.
    let script = "grep ^Name: /proc/self/status; test -c /dev/null && echo dev; \
                  touch /tmp/kod-shell-test-$$ && echo tmp; rm -f /tmp/kod-shell-test-$$; pwd; id -u";
    let shared = tempfile::tempdir_in("/tmp").unwrap();
    let o = shell_in(
        &cache,
        &root,
        shared.path(),
        &["-p", "hello", "--", "sh", "-c", script],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("Name:\tgrep\ndev\ntmp\n{}\n0\n", shared.path().display()),
        "{}",
        stderr(&o)
    );
    let unshared = tempfile::tempdir_in("/var/tmp").unwrap();
    let o = shell_in(
        &cache,
        &root,
        unshared.path(),
        &["-p", "hello", "--", "sh", "-c", script],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let expected_cwd = std::env::var("HOME")
        .ok()
        .filter(|h| root.join(h.trim_start_matches('/')).is_dir())
        .unwrap_or_else(|| "/".into());
    assert_eq!(
        stdout(&o),
        format!("Name:\tgrep\ndev\ntmp\n{expected_cwd}\n0\n"),
        "{}",
        stderr(&o)
    );

    // An unknown package fails before anything is mounted, naming the
    // close match.
    let o = shell(&cache, &root, &["-v", "-p", "helo", "--", "hello"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("unknown package helo") && err.contains("did you mean hello"),
        "{err}"
    );
    assert!(!err.contains("overlay"), "nothing is mounted: {err}");

    // --keep keeps the layer: the package and what the command wrote.
    let kept = work.path().join("kept");
    let o = shell(
        &cache,
        &root,
        &[
            "--keep",
            kept.to_str().unwrap(),
            "-p",
            "hello",
            "--",
            "sh",
            "-c",
            "echo x > /etc/kod-shell-note",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(kept.join("usr/bin/hello").is_file());
    assert_eq!(
        std::fs::read_to_string(kept.join("etc/kod-shell-note")).unwrap(),
        "x\n"
    );
    let o = shell(
        &cache,
        &root,
        &["--keep", kept.to_str().unwrap(), "-p", "hello"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("exists already"), "{}", stderr(&o));

    // The root is exactly as it was; no mount and no layer is left.
    assert_same("the root", &before, &full_manifest(&root));
    assert!(mounts_of(&root).is_empty(), "{:?}", mounts_of(&root));
    assert!(mounts_of(Path::new(SHELL_DIR)).is_empty());
    assert!(shell_dirs().is_empty(), "{:?}", shell_dirs());
}

#[test]
fn net_root_shell_dies_with_a_killed_kod_and_the_next_one_cleans_up() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (root, cache) = bootstrapped(work.path());
    let before = full_manifest(&root);
    // The command writes its pid into the host's /tmp (shared), then
    // becomes `sleep`.
    let pid_file = tempfile::NamedTempFile::new_in("/tmp").unwrap();
    let mut child = Process::new(assert_cmd::cargo::cargo_bin("kod"))
        .env("KOD_CACHE_DIR", &cache)
        .args(["shell", "--root"])
        .arg(&root)
        .args(["-p", "hello", "--", "sh", "-c"])
        .arg(format!(
            "sleep 301 & echo $! > {0}.bg; echo $$ > {0}; exec sleep 300",
            pid_file.path().display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let pid = loop {
        let text = std::fs::read_to_string(pid_file.path()).unwrap();
        if let Ok(pid) = text.trim().parse::<u32>() {
            break pid;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the command never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // What the command started in the background (in the shell's PID
    // namespace) goes with it.
    let bg_file = format!("{}.bg", pid_file.path().display());
    let bg: u32 = std::fs::read_to_string(&bg_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::fs::remove_file(&bg_file).unwrap();
    let runs = |pid: u32, what: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(what))
    };
    let running = || runs(pid, "sleep\x00300") || runs(bg, "sleep\x00301");
    let t0 = Instant::now();
    while !running() {
        assert!(t0.elapsed() < Duration::from_secs(10), "sleep never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(shell_dirs().len(), 1, "{:?}", shell_dirs());
    child.kill().unwrap();
    child.wait().unwrap();
    let t0 = Instant::now();
    while running() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the command or its child outlived kod"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(mounts_of(&root).is_empty(), "{:?}", mounts_of(&root));
    // The killed shell's layer is left; the next shell removes it.
    assert_eq!(shell_dirs().len(), 1, "{:?}", shell_dirs());
    let o = shell(&cache, &root, &["-p", "hello", "--", "hello"]);
    assert_eq!(stdout(&o), "Hello, world!\n", "{}", stderr(&o));
    assert!(shell_dirs().is_empty(), "{:?}", shell_dirs());
    assert_same("the root", &before, &full_manifest(&root));
}

#[test]
fn net_root_shell_on_the_host_leaves_it_as_it_was() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let status = Path::new("/var/lib/dpkg/status");
    let db_before = std::fs::read(status).unwrap();
    if db_before
        .split(|&b| b == b'\n')
        .any(|l| l == b"Package: hello")
    {
        eprintln!("the host has hello installed; nothing to show here");
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let mounts_before = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    let man_db = Path::new("/var/lib/man-db/auto-update");
    let had_man_db = man_db.exists();
    let o = kod(cache.path(), ["-v", "shell", "-p", "hello", "--", "hello"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "Hello, world!\n");
    // hello has a manual page: man-db's trigger is skipped, and says so.
    if had_man_db {
        assert!(
            stderr(&o).contains("skipping man-db's index"),
            "{}",
            stderr(&o)
        );
        assert!(man_db.exists(), "only the shell's layer loses the switch");
    }
    assert!(!Path::new("/usr/bin/hello").exists());
    assert!(
        std::fs::read(status).unwrap() == db_before,
        "the host's dpkg database changed"
    );
    let mounts_after = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    assert_eq!(mounts_before, mounts_after, "mounts left behind");
    assert!(mounts_of(Path::new(SHELL_DIR)).is_empty());
    assert!(shell_dirs().is_empty(), "{:?}", shell_dirs());
}
