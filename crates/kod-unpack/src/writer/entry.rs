//! Archive entries as the writer takes them, and their paths: normalized,
//! split, and written as dpkg's `.list` writes them.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::error::Reason;

/// One archive entry, already parsed from whatever container carries it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The path relative to the root, normalized by [`normalize`]: no
    /// leading `./` or `/`, no `.` or empty components; empty for the root.
    pub(crate) path: Vec<u8>,
    pub(crate) kind: EntryKind,
    /// Permission bits including setuid, setgid and sticky (`0o7777`).
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// Seconds since the epoch.
    pub(crate) mtime: i64,
    /// Extended attributes (name, value) to set on a regular file; only
    /// tree archives carry them.
    pub(crate) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What an entry is.
#[derive(Debug, Clone)]
pub(crate) enum EntryKind {
    Directory,
    /// A regular file of this size; its bytes follow in the data reader.
    File(u64),
    Symlink(Vec<u8>),
    /// A hard link to this archive path (raw, not yet normalized).
    HardLink(Vec<u8>),
    CharDevice(u32, u32),
    BlockDevice(u32, u32),
    Fifo,
}

impl EntryKind {
    pub(super) fn noun(&self) -> &'static str {
        match self {
            EntryKind::Directory => "directory",
            EntryKind::File(_) => "file",
            EntryKind::Symlink(_) => "symlink",
            EntryKind::HardLink(_) => "hard link",
            EntryKind::CharDevice(..) | EntryKind::BlockDevice(..) => "device node",
            EntryKind::Fifo => "fifo",
        }
    }
}

/// Splits a raw archive path into clean components: leading `/`, `.` and
/// empty components dropped, `..` refused.
pub(crate) fn normalize(raw: &[u8]) -> Result<Vec<u8>, Reason> {
    let mut out = Vec::with_capacity(raw.len());
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err(Reason::DotDot),
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    Ok(out)
}

pub(super) fn split_parent(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b"", path),
    }
}

pub(super) fn with_suffix(name: &[u8], suffix: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(name.len() + suffix.len());
    v.extend_from_slice(name);
    v.extend_from_slice(suffix);
    v
}

/// `/` + path, the form of dpkg's `.list` (`/.` for the root).
pub(crate) fn list_path(path: &[u8]) -> PathBuf {
    if path.is_empty() {
        return PathBuf::from("/.");
    }
    PathBuf::from(OsString::from_vec(with_suffix(b"/", path)))
}

pub(super) const DPKG_NEW: &[u8] = b".dpkg-new";

/// An archive path as a path.
pub(super) fn as_path(p: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_strips_dot_and_slashes_and_refuses_dotdot() {
        assert_eq!(normalize(b"./usr//bin/./ls").expect("ok"), b"usr/bin/ls");
        assert_eq!(normalize(b"./").expect("ok"), b"");
        assert_eq!(normalize(b"/etc/x/").expect("ok"), b"etc/x");
        assert!(matches!(normalize(b"./../x"), Err(Reason::DotDot)));
        assert!(matches!(normalize(b"a/../../x"), Err(Reason::DotDot)));
    }

    #[test]
    fn list_paths_are_absolute_with_dot_for_the_root() {
        assert_eq!(list_path(b""), PathBuf::from("/."));
        assert_eq!(list_path(b"usr/bin"), PathBuf::from("/usr/bin"));
    }
}
