//! The few Btrfs operations kod needs (snapshot targets, the generation
//! layout), as the kernel's ioctls that `btrfs subvolume
//! create|snapshot|delete` call: whether a directory is a subvolume, a
//! new one, a writable snapshot of one, deleting one.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{Mode, OFlags};

/// `BTRFS_SUPER_MAGIC`, the `f_type` of a Btrfs file system.
const BTRFS_SUPER_MAGIC: i64 = 0x9123_683e;
/// The inode number of every subvolume's root directory.
const SUBVOLUME_ROOT_INO: u64 = 256;
/// `struct btrfs_ioctl_vol_args`: an fd and a name, 4096 bytes in all.
#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; 4088],
}
/// `_IOW(0x94, 1, struct btrfs_ioctl_vol_args)`: BTRFS_IOC_SNAP_CREATE.
const SNAP_CREATE: libc::c_ulong = ioc_write(1);
/// `_IOW(0x94, 14, struct btrfs_ioctl_vol_args)`: BTRFS_IOC_SUBVOL_CREATE.
const SUBVOL_CREATE: libc::c_ulong = ioc_write(14);
/// `_IOW(0x94, 15, struct btrfs_ioctl_vol_args)`: BTRFS_IOC_SNAP_DESTROY.
const SNAP_DESTROY: libc::c_ulong = ioc_write(15);

const fn ioc_write(nr: libc::c_ulong) -> libc::c_ulong {
    // _IOC(_IOC_WRITE = 1, type 0x94, nr, size 4096) on x86 and arm.
    (1 << 30) | ((std::mem::size_of::<VolArgs>() as libc::c_ulong) << 16) | (0x94 << 8) | nr
}

fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Whether `path` is the root directory of a Btrfs subvolume.
pub fn is_subvolume(path: &Path) -> bool {
    let Ok(fd) = open_dir(path) else {
        return false;
    };
    // `f_type`'s integer type differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    let on_btrfs = rustix::fs::fstatfs(&fd).is_ok_and(|s| s.f_type as i64 == BTRFS_SUPER_MAGIC);
    on_btrfs && rustix::fs::fstat(&fd).is_ok_and(|st| st.st_ino == SUBVOLUME_ROOT_INO)
}

fn args(fd: i64, name: &OsStr) -> io::Result<VolArgs> {
    let mut a = VolArgs {
        fd,
        name: [0; 4088],
    };
    let b = name.as_bytes();
    if b.is_empty() || b.len() >= a.name.len() || b.contains(&b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad subvolume name",
        ));
    }
    a.name[..b.len()].copy_from_slice(b);
    Ok(a)
}

fn ioctl(dir: &OwnedFd, op: libc::c_ulong, a: &VolArgs) -> io::Result<()> {
    // SAFETY: `a` is a valid, fully initialised struct of the size `op`
    // encodes, and outlives the call; `dir` is an open directory.
    let r = unsafe { libc::ioctl(dir.as_raw_fd(), op as _, a as *const VolArgs) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A writable snapshot of the subvolume `source` at `dest` (absent; its
/// parent on the same Btrfs file system).
pub fn snapshot(source: &Path, dest: &Path) -> io::Result<()> {
    let (Some(parent), Some(name)) = (dest.parent(), dest.file_name()) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no parent"));
    };
    let src = open_dir(source)?;
    let dir = open_dir(parent)?;
    ioctl(&dir, SNAP_CREATE, &args(src.as_raw_fd() as i64, name)?)
}

/// A new, empty subvolume at `path` (absent; its parent on a Btrfs file
/// system).
pub fn create(path: &Path) -> io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no parent"));
    };
    let dir = open_dir(parent)?;
    ioctl(&dir, SUBVOL_CREATE, &args(0, name)?)
}

/// Deletes the subvolume `path` (and what is in it).
pub fn delete(path: &Path) -> io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no parent"));
    };
    let dir = open_dir(parent)?;
    ioctl(&dir, SNAP_DESTROY, &args(0, name)?)
}
