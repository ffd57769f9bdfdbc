//! Snapshots of directory trees, to show that something changed nothing
//! (a failed transaction, a refused archive) or that two trees are alike.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// One path of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `d`, `f`, `l` or `o` (device, fifo, socket).
    pub kind: char,
    /// Permission bits (with setuid, setgid, sticky).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size and FNV-1a hash of a regular file's content.
    pub content: Option<(u64, u64)>,
    /// A symlink's target.
    pub target: Option<PathBuf>,
    /// A device's number.
    pub rdev: u64,
    /// Modification time, when asked for.
    pub mtime: Option<i64>,
    /// For a file with several links: the first path (sorted) of its inode.
    pub link_group: Option<PathBuf>,
}

/// What a snapshot records.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Record modification times of non-directories.
    pub file_mtimes: bool,
    /// Record modification times of directories too.
    pub dir_mtimes: bool,
    /// Do not descend into other file systems mounted below the root.
    pub one_file_system: bool,
}

/// Every path below `root` (relative; `root` itself excluded).
pub fn snapshot(root: &Path, options: Options) -> BTreeMap<PathBuf, Node> {
    let dev = fs::symlink_metadata(root)
        .unwrap_or_else(|e| panic!("stat {root:?}: {e}"))
        .dev();
    let mut paths = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap_or_else(|e| panic!("read_dir {dir:?}: {e}")) {
            let p = e.expect("dir entry").path();
            let md = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("lstat {p:?}: {e}"));
            if md.is_dir() && (!options.one_file_system || md.dev() == dev) {
                stack.push(p.clone());
            }
            paths.push((p, md));
        }
    }
    paths.sort_by(|a, b| a.0.cmp(&b.0));
    let mut inodes: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut out = BTreeMap::new();
    for (p, md) in paths {
        let rel = p.strip_prefix(root).expect("below the root").to_path_buf();
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
            let bytes = fs::read(&p).unwrap_or_else(|e| panic!("read {p:?}: {e}"));
            (bytes.len() as u64, fnv(&bytes))
        });
        let link_group = (ft.is_file() && md.nlink() > 1).then(|| {
            inodes
                .entry((md.dev(), md.ino()))
                .or_insert_with(|| rel.clone())
                .clone()
        });
        let mtime_wanted = if kind == 'd' {
            options.dir_mtimes
        } else {
            options.file_mtimes
        };
        out.insert(
            rel,
            Node {
                kind,
                mode: md.permissions().mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                content,
                target: ft
                    .is_symlink()
                    .then(|| fs::read_link(&p).expect("readlink")),
                rdev: md.rdev(),
                mtime: mtime_wanted.then(|| md.mtime()),
                link_group,
            },
        );
    }
    out
}

/// Asserts two snapshots are equal, listing the first 40 differences.
/// `left` and `right` name the trees in the message.
pub fn assert_same(
    a: &BTreeMap<PathBuf, Node>,
    b: &BTreeMap<PathBuf, Node>,
    (left, right): (&str, &str),
    what: &str,
) {
    let mut diffs = Vec::new();
    for (p, n) in a {
        match b.get(p) {
            None => diffs.push(format!("only in {left}: {p:?}")),
            Some(m) if m != n => diffs.push(format!("differs: {p:?}: {n:?} vs {m:?}")),
            Some(_) => {}
        }
    }
    for p in b.keys().filter(|p| !a.contains_key(*p)) {
        diffs.push(format!("only in {right}: {p:?}"));
    }
    crate::assert_no_differences(what, &diffs, 40);
}

fn fnv(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_content_mode_and_new_paths() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("a"), "1").unwrap();
        let before = snapshot(d.path(), Options::default());
        assert_eq!(before.len(), 1);
        fs::write(d.path().join("a"), "2").unwrap();
        let after = snapshot(d.path(), Options::default());
        assert_ne!(before, after);
        fs::write(d.path().join("a"), "1").unwrap();
        fs::write(d.path().join("b"), "").unwrap();
        let r = std::panic::catch_unwind(|| {
            assert_same(
                &before,
                &snapshot(d.path(), Options::default()),
                ("x", "y"),
                "t",
            )
        });
        let msg = *r.unwrap_err().downcast::<String>().unwrap();
        assert!(msg.contains("only in y: \"b\""), "{msg}");
    }
}
