//! Shared test support: building .deb files with the real tools (`tar`,
//! `ar`, `dpkg-deb`), snapshotting trees, comparing them.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs a command, panicking with its output if it fails.
pub fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub const CONTROL: &str = "Package: PKG\nVersion: 1.0-1\nArchitecture: all\nMaintainer: kod tests <kod@example.org>\nDescription: kod-unpack test fixture\n";

pub fn control_for(pkg: &str, extra: &str) -> String {
    format!("{}{extra}", CONTROL.replace("PKG", pkg))
}

/// Builds a .deb by hand (`tar` + `ar`), so that its data.tar may hold
/// anything `dpkg-deb --build` would refuse. `tar_args` are passed to
/// `tar -cf data.tar -C stage` (names, `--transform`, `-P`, ...).
pub fn hand_deb(dir: &Path, name: &str, control: &str, stage: &Path, tar_args: &[&str]) -> PathBuf {
    let work = dir.join(format!("{name}.build"));
    fs::create_dir_all(work.join("ctl")).expect("mkdir ctl");
    fs::write(work.join("ctl/control"), control).expect("write control");
    fs::write(work.join("debian-binary"), "2.0\n").expect("write debian-binary");
    run(Command::new("tar")
        .arg("-czf")
        .arg(work.join("control.tar.gz"))
        .arg("-C")
        .arg(work.join("ctl"))
        .arg("--owner=0")
        .arg("--group=0")
        .arg("."));
    run(Command::new("tar")
        .arg("-cf")
        .arg(work.join("data.tar"))
        .arg("--owner=0")
        .arg("--group=0")
        .arg("-C")
        .arg(stage)
        .args(tar_args));
    run(Command::new("xz").arg("-f").arg(work.join("data.tar")));
    let deb = dir.join(format!("{name}.deb"));
    let _ = fs::remove_file(&deb);
    run(Command::new("ar")
        .arg("rc")
        .arg(&deb)
        .arg("debian-binary")
        .arg("control.tar.gz")
        .arg("data.tar.xz")
        .current_dir(&work));
    deb
}

/// Builds a .deb with `dpkg-deb --build` from `tree` (which holds DEBIAN/).
pub fn dpkg_deb_build(tree: &Path, out: &Path, compression: &str) -> PathBuf {
    run(Command::new("dpkg-deb")
        .arg("--root-owner-group")
        .arg(format!("-Z{compression}"))
        .arg("--build")
        .arg(tree)
        .arg(out));
    out.to_path_buf()
}

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
