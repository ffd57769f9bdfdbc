//! Loop devices, set up with the kernel's ioctls: a whole image as a disk,
//! and one loop device per partition (offset and size limit) where the
//! kernel makes no partition nodes.
//!
//! Every loop device is configured with `LO_FLAGS_AUTOCLEAR` in the same
//! `LOOP_CONFIGURE` call that binds it, so there is no moment in which a
//! bound device would outlive kod: the kernel detaches it when its last
//! opener closes it. A [`Loop`] is that opener; dropping it (also while
//! unwinding, and implicitly when the process dies) lets it go, once the
//! mounts on it are gone.
//!
//! Done here rather than with `losetup` because `losetup` cannot set
//! autoclear, and rather than with the loopdev-3 crate because that crate
//! needs bindgen and libclang at build time for one struct.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use tracing::debug;

const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_NAME_SIZE: usize = 64;

/// `struct loop_info64` of `<linux/loop.h>`.
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` of `<linux/loop.h>`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// A bound loop device, detached by the kernel once this handle and every
/// other user (a mount, a loop device on top) have let it go.
#[derive(Debug)]
pub struct Loop {
    path: PathBuf,
    file: File,
}

impl Loop {
    /// Binds a free loop device to `backing` (an image file or a block
    /// device) from byte `offset` for `size_limit` bytes (0: to the end),
    /// with autoclear set.
    pub fn attach(backing: &Path, offset: u64, size_limit: u64) -> io::Result<Loop> {
        let back = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(backing)?;
        Loop::attach_file(&back, backing, offset, size_limit)
    }

    /// [`attach`](Loop::attach) with the backing already open (`name` is
    /// what the kernel records as the backing file's name).
    pub(crate) fn attach_file(
        back: &File,
        name: &Path,
        offset: u64,
        size_limit: u64,
    ) -> io::Result<Loop> {
        let control = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open("/dev/loop-control")?;
        // Another process may take the free device between the two calls:
        // the configure then fails with EBUSY, and a new one is asked for.
        let mut last = None;
        for _ in 0..32 {
            // SAFETY: LOOP_CTL_GET_FREE takes no argument; the fd is open.
            let n = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let path = PathBuf::from(format!("/dev/loop{n}"));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_CLOEXEC)
                .open(&path)?;
            let mut info = LoopInfo64 {
                lo_device: 0,
                lo_inode: 0,
                lo_rdevice: 0,
                lo_offset: offset,
                lo_sizelimit: size_limit,
                lo_number: 0,
                lo_encrypt_type: 0,
                lo_encrypt_key_size: 0,
                lo_flags: LO_FLAGS_AUTOCLEAR,
                lo_file_name: [0; LO_NAME_SIZE],
                lo_crypt_name: [0; LO_NAME_SIZE],
                lo_encrypt_key: [0; 32],
                lo_init: [0; 2],
            };
            let name = name.as_os_str().as_encoded_bytes();
            let len = name.len().min(LO_NAME_SIZE - 1);
            info.lo_file_name[..len].copy_from_slice(&name[..len]);
            let config = LoopConfig {
                fd: back.as_raw_fd() as u32,
                block_size: 0,
                info,
                reserved: [0; 8],
            };
            // SAFETY: `config` is a fully initialised `struct loop_config`
            // that outlives the call; both fds are open.
            let r = unsafe {
                libc::ioctl(
                    file.as_raw_fd(),
                    LOOP_CONFIGURE,
                    &config as *const LoopConfig,
                )
            };
            if r == 0 {
                debug!(loop_device = %path.display(), offset, size_limit, "loop device bound");
                return Ok(Loop { path, file });
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EBUSY) {
                return Err(e);
            }
            last = Some(e);
        }
        Err(last.unwrap_or_else(|| io::Error::other("no free loop device")))
    }

    /// The device node (`/dev/loop7`).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        // With other users left (a mount), the kernel keeps the device and
        // detaches it after the last of them, as autoclear does; alone, this
        // detaches it now rather than on close, so the caller sees it gone.
        // SAFETY: LOOP_CLR_FD takes no argument; the fd is open.
        let r = unsafe { libc::ioctl(self.file.as_raw_fd(), LOOP_CLR_FD) };
        debug!(loop_device = %self.path.display(), cleared = r == 0, "loop device released");
    }
}

/// `BLKFLSBUF`: the block device's page cache written out and dropped.
const BLKFLSBUF: libc::c_ulong = 0x1261;
/// `BLKRRPART`: the kernel reads the partition table again.
const BLKRRPART: libc::c_ulong = 0x125F;

/// Writes out and drops the page cache of the block device `dev` (open), so
/// that reads through another node (a partition, the image file) and later
/// reads through this one agree.
pub fn flush_buffers(dev: &File) -> io::Result<()> {
    dev.sync_all()?;
    // SAFETY: BLKFLSBUF takes no argument; the fd is an open block device.
    if unsafe { libc::ioctl(dev.as_raw_fd(), BLKFLSBUF, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks the kernel to read the partition table of `dev` (open) again.
pub fn reread_partitions(dev: &File) -> io::Result<()> {
    // SAFETY: BLKRRPART takes no argument; the fd is an open block device.
    if unsafe { libc::ioctl(dev.as_raw_fd(), BLKRRPART, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
