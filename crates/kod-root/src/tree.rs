//! Walking and removing trees with `*at` calls that never follow symlinks:
//! what a transaction needs to move its changes onto a root and to throw
//! its work away.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, StatxFlags};
use rustix::io::Errno;

/// Opens directory `name` of `dir` without following a symlink there.
pub fn open_dir_at(dir: &OwnedFd, name: &str) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens the directory `path`.
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// The names in `dir` (sorted, without `.` and `..`); non-UTF-8 names
/// are an error.
pub fn names(dir: &OwnedFd) -> io::Result<Vec<String>> {
    let d = rustix::fs::Dir::read_from(dir)?;
    let mut out = Vec::new();
    for e in d {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        out.push(
            String::from_utf8(n.to_vec()).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidData, "a file name is not UTF-8")
            })?,
        );
    }
    out.sort();
    Ok(out)
}

/// `lstat` of `name` in `dir`; `None` when absent.
pub fn lstat_at(dir: &OwnedFd, name: &str) -> io::Result<Option<rustix::fs::Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The file type of a stat.
pub fn kind(st: &rustix::fs::Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// The mount a directory is on: its mount id where the kernel says
/// (bind mounts of the same filesystem differ too), and its device.
fn mount_of(fd: &OwnedFd) -> io::Result<(u64, u64)> {
    let st = rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)?;
    let id = if st.stx_mask & StatxFlags::MNT_ID.bits() != 0 {
        st.stx_mnt_id
    } else {
        0
    };
    Ok((id, rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor)))
}

/// Removes `name` in `dir`, a directory tree or anything else, never
/// following symlinks nor entering a file system mounted below `dir`.
/// Absent is fine.
pub fn remove_at(dir: &OwnedFd, name: &str) -> io::Result<()> {
    remove_on(dir, name, mount_of(dir)?)
}

fn remove_on(dir: &OwnedFd, name: &str, mount: (u64, u64)) -> io::Result<()> {
    let Some(st) = lstat_at(dir, name)? else {
        return Ok(());
    };
    if kind(&st) == FileType::Directory {
        let sub = open_dir_at(dir, name)?;
        if mount_of(&sub)? != mount {
            return Err(io::Error::other(format!(
                "a file system is mounted on {name}; unmount it first"
            )));
        }
        for n in names(&sub)? {
            remove_on(&sub, &n, mount)?;
        }
        match rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    } else {
        match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Removes the tree at `path` without following symlinks. Absent is fine.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to remove /",
        ));
    };
    let dir = open_dir(parent)?;
    remove_at(&dir, &name.to_string_lossy())
}

/// The mount points at `dir` or below it in this process's mount namespace
/// (from `/proc/self/mountinfo`).
pub fn mounts_at_or_below(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|p| p.starts_with(dir))
        .collect())
}

/// mountinfo's (and `/proc/swaps`') octal escapes (`\040` for a space)
/// undone.
pub fn unescape_mountinfo(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo(r"/mnt/a\040b"), Path::new("/mnt/a b"));
        assert_eq!(unescape_mountinfo(r"/x\134y"), Path::new(r"/x\y"));
        assert_eq!(unescape_mountinfo(r"/end\04"), Path::new(r"/end\04"));
    }

    #[test]
    fn the_root_file_system_is_a_mount_at_or_below_slash() {
        let all = mounts_at_or_below(Path::new("/")).unwrap();
        assert!(all.iter().any(|p| p == Path::new("/")), "{all:?}");
        assert!(all.iter().all(|p| p.starts_with("/")));
    }
}
