//! Shared test support: building .deb files with the real tools (`tar`,
//! `ar`, `dpkg-deb`), snapshotting trees, comparing them.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::hash::{DefaultHasher, Hasher};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
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

/// What a tree entry looks like, for comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Option<i64>,
    pub target: Option<PathBuf>,
    pub content: Option<(u64, u64)>,
    /// For a file with several links: the first path (sorted) of its inode.
    pub link_group: Option<PathBuf>,
}

/// Snapshots a tree: every path below `root` (relative, `root` itself
/// excluded). Directory mtimes are included only if `dir_mtimes`.
pub fn snapshot(root: &Path, dir_mtimes: bool) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut stack = vec![root.to_path_buf()];
    let mut paths = Vec::new();
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap_or_else(|e| panic!("read_dir {dir:?}: {e}")) {
            let p = e.expect("dir entry").path();
            let md = fs::symlink_metadata(&p).expect("lstat");
            if md.is_dir() {
                stack.push(p.clone());
            }
            paths.push((p, md));
        }
    }
    paths.sort_by(|a, b| a.0.cmp(&b.0));
    for (p, md) in paths {
        let rel = p.strip_prefix(root).expect("below root").to_path_buf();
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            'd'
        } else if ft.is_symlink() {
            'l'
        } else if ft.is_file() {
            'f'
        } else {
            'o'
        };
        let content = ft.is_file().then(|| {
            let bytes = fs::read(&p).expect("read file");
            let mut h = DefaultHasher::new();
            h.write(&bytes);
            (bytes.len() as u64, h.finish())
        });
        let link_group = (ft.is_file() && md.nlink() > 1).then(|| {
            inodes
                .entry((md.dev(), md.ino()))
                .or_insert_with(|| rel.clone())
                .clone()
        });
        out.insert(
            rel,
            Node {
                kind,
                mode: md.permissions().mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                mtime: (kind != 'd' || dir_mtimes).then(|| md.mtime()),
                target: ft
                    .is_symlink()
                    .then(|| fs::read_link(&p).expect("readlink")),
                content,
                link_group,
            },
        );
    }
    out
}

/// Asserts two snapshots are equal, listing the first differences.
pub fn assert_same_tree(a: &BTreeMap<PathBuf, Node>, b: &BTreeMap<PathBuf, Node>, what: &str) {
    let mut diffs = Vec::new();
    for (p, n) in a {
        match b.get(p) {
            None => diffs.push(format!("only in kod-unpack: {p:?}")),
            Some(m) if m != n => diffs.push(format!("{p:?}: kod-unpack {n:?} vs reference {m:?}")),
            Some(_) => {}
        }
    }
    for p in b.keys() {
        if !a.contains_key(p) {
            diffs.push(format!("only in reference: {p:?}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{what}: {} differences:\n{}",
        diffs.len(),
        diffs
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
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
