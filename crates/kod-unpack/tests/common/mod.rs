//! Shared test support: building .deb files with the real tools (`tar`,
//! `ar`, `dpkg-deb`), snapshotting trees, comparing them.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

#[allow(unused_imports)] // each test binary uses some of them
pub use kod_testkit::debs::{CONTROL, control_for, dpkg_deb_build, hand_deb, run};

pub use kod_testkit::tree::Node;

/// Snapshots a tree with file mtimes; directory mtimes only if `dir_mtimes`.
pub fn snapshot(root: &Path, dir_mtimes: bool) -> BTreeMap<PathBuf, Node> {
    kod_testkit::tree::snapshot(
        root,
        kod_testkit::tree::Options {
            file_mtimes: true,
            dir_mtimes,
            one_file_system: false,
        },
    )
}

/// Asserts kod-unpack's tree `a` equals the reference tree `b`.
pub fn assert_same_tree(a: &BTreeMap<PathBuf, Node>, b: &BTreeMap<PathBuf, Node>, what: &str) {
    kod_testkit::tree::assert_same(a, b, ("kod-unpack", "reference"), what)
}

/// Every `*.dpkg-new` below `root`.
pub fn dpkg_new_files(root: &Path) -> Vec<PathBuf> {
    snapshot(root, false)
        .into_keys()
        .filter(|p| p.to_string_lossy().ends_with(".dpkg-new"))
        .collect()
}

/// The member list of a .deb as dpkg's .list has it, from the real
/// `dpkg-deb --fsys-tarfile` and `tar -t`.
pub fn reference_list(deb: &Path) -> Vec<PathBuf> {
    let tarball = run(Command::new("dpkg-deb").arg("--fsys-tarfile").arg(deb));
    let mut child = Command::new("tar")
        .arg("-t")
        .arg("--quoting-style=literal")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn tar -t");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&tarball).expect("feed tar");
    });
    let out = child.wait_with_output().expect("tar -t");
    writer.join().expect("writer thread");
    assert!(out.status.success(), "tar -t failed");
    String::from_utf8(out.stdout)
        .expect("utf-8 names")
        .lines()
        .map(|l| {
            let l = l.strip_prefix('.').unwrap_or(l);
            let l = l.strip_suffix('/').unwrap_or(l);
            PathBuf::from(if l.is_empty() { "/." } else { l })
        })
        .collect()
}

/// Runs this test binary's ignored test `child` alone as nobody (uid and
/// gid 65534, through setpriv), handing it `spec` in the environment
/// variable `var`; returns what it printed after `RESULT ` (panics with its
/// output when it printed no result).
pub fn child_result_as_nobody(child: &str, var: &str, spec: &str) -> String {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            child,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(var, spec)
        .output()
        .expect("setpriv");
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r.to_string()))
        .unwrap_or_else(|| {
            panic!(
                "child printed no result: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}
