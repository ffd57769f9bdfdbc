//! The `*at` calls the writer makes in a directory of the root: creating
//! exclusively (a stale `.dpkg-new` removed first), times, device nodes,
//! removing what is in the way, opening directories confined.

use std::os::fd::OwnedFd;

use kod_root::Root;
use rustix::fs::{AtFlags, FileType, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

use super::entry::{EntryKind, as_path};
use crate::error::Reason;

/// Creates `new` in `dir` exclusively with `op`; a stale `new` (left by an
/// interrupted run) is removed and `op` retried once.
pub(super) fn fresh<T>(
    dir: &OwnedFd,
    new: &[u8],
    what: &'static str,
    mut op: impl FnMut() -> Result<T, Errno>,
) -> Result<T, Reason> {
    match op() {
        Err(Errno::EXIST) => {
            rustix::fs::unlinkat(dir, new, AtFlags::empty()).map_err(|err| {
                Reason::io("remove a stale .dpkg-new (or what is in the way)", err)
            })?;
            op().map_err(|err| Reason::io(what, err))
        }
        r => r.map_err(|err| Reason::io(what, err)),
    }
}

/// Access and modification times both `mtime` (as dpkg and tar set them).
pub(super) fn times(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// The file type and device number of a device node or fifo entry.
pub(super) fn node(kind: &EntryKind) -> (FileType, u64) {
    match *kind {
        EntryKind::CharDevice(a, b) => (FileType::CharacterDevice, rustix::fs::makedev(a, b)),
        EntryKind::BlockDevice(a, b) => (FileType::BlockDevice, rustix::fs::makedev(a, b)),
        _ => (FileType::Fifo, 0),
    }
}

/// Removes what is at `name` in `dir` (an empty directory too); whether
/// something was there.
pub(super) fn remove_existing(dir: &OwnedFd, name: &[u8]) -> Result<bool, Errno> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).map(|()| true)
        }
        Ok(_) => rustix::fs::unlinkat(dir, name, AtFlags::empty()).map(|()| true),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A directory inside the root, resolved confined.
#[derive(Debug)]
pub(super) struct Dir {
    pub(super) path: Vec<u8>,
    pub(super) fd: OwnedFd,
    pub(super) dev: u64,
    pub(super) ino: u64,
}

/// Opens `rel` as a directory, resolving it as the root says.
pub(super) fn open_dir(root: &Root, rel: &[u8]) -> Result<OwnedFd, Errno> {
    root.open_at(as_path(rel), OFlags::PATH | OFlags::DIRECTORY)
}
