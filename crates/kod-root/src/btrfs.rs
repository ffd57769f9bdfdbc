//! The few Btrfs operations kod needs (snapshot targets, the generation
//! layout), as the kernel's ioctls that `btrfs subvolume
//! create|snapshot|delete` call: whether a directory is a subvolume, a
//! new one, a writable snapshot of one, deleting one; and what fstab and
//! the top-level check need: the file system's UUID (`BTRFS_IOC_FS_INFO`,
//! what `blkid` shows) and the id of the subvolume a path is in
//! (`BTRFS_IOC_INO_LOOKUP`, what `btrfs inspect-internal rootid` shows).

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

/// `struct btrfs_ioctl_fs_info_args`, 1024 bytes.
#[repr(C)]
struct FsInfoArgs {
    max_id: u64,
    num_devices: u64,
    fsid: [u8; 16],
    nodesize: u32,
    sectorsize: u32,
    clone_alignment: u32,
    csum_type: u16,
    csum_size: u16,
    flags: u64,
    generation: u64,
    metadata_uuid: [u8; 16],
    reserved: [u8; 944],
}
/// `_IOR(0x94, 31, struct btrfs_ioctl_fs_info_args)`: BTRFS_IOC_FS_INFO.
const FS_INFO: libc::c_ulong =
    (2 << 30) | ((std::mem::size_of::<FsInfoArgs>() as libc::c_ulong) << 16) | (0x94 << 8) | 31;
/// `struct btrfs_ioctl_ino_lookup_args`, 4096 bytes.
#[repr(C)]
struct InoLookupArgs {
    treeid: u64,
    objectid: u64,
    name: [u8; 4080],
}
/// `_IOWR(0x94, 18, struct btrfs_ioctl_ino_lookup_args)`: BTRFS_IOC_INO_LOOKUP.
const INO_LOOKUP: libc::c_ulong =
    (3 << 30) | ((std::mem::size_of::<InoLookupArgs>() as libc::c_ulong) << 16) | (0x94 << 8) | 18;

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

/// The UUID of the Btrfs file system `path` is on, as `blkid` and fstab's
/// `UUID=` write it (lowercase, `8-4-4-4-12`). Not on Btrfs: an error
/// (`ENOTTY`).
pub fn fs_uuid(path: &Path) -> io::Result<String> {
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    // SAFETY: all-zero bytes are a valid FsInfoArgs (integers and arrays);
    // zero flags ask for nothing beyond the basic fields.
    let mut a: FsInfoArgs = unsafe { std::mem::zeroed() };
    // SAFETY: `a` is a valid struct of the size FS_INFO encodes and
    // outlives the call; `fd` is open.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), FS_INFO as _, &mut a as *mut FsInfoArgs) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(format_uuid(&a.fsid))
}

fn format_uuid(b: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{byte:02x}"));
    }
    s
}

/// The id of the subvolume `path` is in (5 for the top level). Needs no
/// privileges. Not on Btrfs: an error (`ENOTTY`).
pub fn subvolume_id(path: &Path) -> io::Result<u64> {
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    let mut a = InoLookupArgs {
        treeid: 0,
        // BTRFS_FIRST_FREE_OBJECTID: only the tree id is looked up.
        objectid: SUBVOLUME_ROOT_INO,
        name: [0; 4080],
    };
    // SAFETY: `a` is a valid struct of the size INO_LOOKUP encodes and
    // outlives the call; `fd` is open.
    let r = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            INO_LOOKUP as _,
            &mut a as *mut InoLookupArgs,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(a.treeid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_and_uuid_text_are_the_kernels() {
        assert_eq!(std::mem::size_of::<FsInfoArgs>(), 1024);
        assert_eq!(std::mem::size_of::<InoLookupArgs>(), 4096);
        // From linux/btrfs.h as compiled on x86_64.
        assert_eq!(FS_INFO, 0x8400_941f);
        assert_eq!(INO_LOOKUP, 0xd000_9412);
        let b = [
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
            0xcd, 0xef,
        ];
        assert_eq!(format_uuid(&b), "12345678-9abc-def0-0123-456789abcdef");
    }

    #[test]
    fn off_btrfs_the_ioctls_fail() {
        assert!(fs_uuid(Path::new("/proc")).is_err());
        assert!(subvolume_id(Path::new("/proc")).is_err());
    }
}
