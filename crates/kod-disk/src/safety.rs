//! Which devices may be written: only those the caller put on an
//! [`AllowList`] (built from the plan; tests list only loop devices they
//! made), and of those only a device nothing is using.
//!
//! A device is in use when it, one of its partitions, or a loop device
//! stacked on any of them (or sharing the image file a loop device reads)
//! is mounted, holds the running root, is an active swap, or is held by
//! device-mapper or md (LVM, RAID, dm-crypt). Mounts are matched by device
//! number as well as by name: a mount's source may be a symlink
//! (`/dev/disk/by-uuid/...`), and Btrfs reports an anonymous device number in
//! mountinfo. Last, the device is opened with `O_EXCL`, which the kernel
//! refuses while it or a partition of it is mounted or claimed; the claim is
//! kept while kod writes, so nothing can mount it meanwhile.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;
use tracing::debug;

/// The devices the caller allows kod to write, by path; a device matches
/// when its path or its device number equals a listed one's.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    paths: Vec<PathBuf>,
}

impl AllowList {
    /// A list of the given device paths.
    pub fn new<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) -> AllowList {
        AllowList {
            paths: paths
                .into_iter()
                .map(|p| p.as_ref().to_path_buf())
                .collect(),
        }
    }

    /// Whether `path` (with device number `rdev`, when it is a block device)
    /// is listed.
    fn allows(&self, path: &Path, rdev: Option<u64>) -> bool {
        self.paths.iter().any(|p| {
            p == path
                || rdev.is_some_and(|r| {
                    fs::metadata(p).is_ok_and(|m| m.file_type().is_block_device() && m.rdev() == r)
                })
        })
    }
}

/// Why a device may not be written. Each names the device and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SafetyError {
    /// The path does not exist or cannot be read.
    #[error("{device}: {source}; check the device path")]
    NotFound {
        /// The device.
        device: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The device is not on the allow list.
    #[error(
        "{device} is not among the devices this run may write ({allowed}): kod writes only the devices the configuration names (or `--disk`/`--image` gives)"
    )]
    NotAllowed {
        /// The device.
        device: PathBuf,
        /// The listed devices.
        allowed: String,
    },
    /// Not a block device.
    #[error(
        "{device} is not a block device: give a disk (/dev/sdX, /dev/nvmeXnY, /dev/vdX), or an image file through `--image`"
    )]
    NotBlockDevice {
        /// The path.
        device: PathBuf,
    },
    /// The kernel marks the device read-only.
    #[error(
        "{device} is read-only (/sys/block/{name}/ro): make it writable (`blockdev --setrw`) or choose another device"
    )]
    ReadOnly {
        /// The device.
        device: PathBuf,
        /// Its kernel name.
        name: String,
    },
    /// The device is a device-mapper or md device rather than a disk.
    #[error(
        "{device} is a {what} device ({name}), not a disk: kod partitions whole disks; give the disk beneath it"
    )]
    Mapped {
        /// The device.
        device: PathBuf,
        /// Its kernel name.
        name: String,
        /// "device-mapper" or "md RAID".
        what: &'static str,
    },
    /// The device, or something on it, holds the running system's root.
    #[error(
        "{device} holds the running system's root file system (through {member}): kod never writes the disk it runs from; boot from other media or choose another device"
    )]
    HoldsRunningRoot {
        /// The device.
        device: PathBuf,
        /// Which of its parts holds it.
        member: String,
    },
    /// Something on the device is mounted.
    #[error(
        "{device} is in use: {member} is mounted at {at}; unmount it (`umount {at}`) or choose another device"
    )]
    Mounted {
        /// The device.
        device: PathBuf,
        /// Which of its parts is mounted.
        member: String,
        /// Where.
        at: String,
    },
    /// Something on the device is an active swap.
    #[error(
        "{device} is in use: {member} is an active swap; turn it off (`swapoff {path}`) or choose another device"
    )]
    ActiveSwap {
        /// The device.
        device: PathBuf,
        /// Which of its parts.
        member: String,
        /// The swap's path as /proc/swaps gives it.
        path: String,
    },
    /// Something on the device is held by device-mapper or md.
    #[error(
        "{device} is in use: {member} is held by {holders} (LVM, RAID or dm-crypt); stop those (`vgchange -an`, `mdadm --stop`, `cryptsetup close`) or choose another device"
    )]
    Held {
        /// The device.
        device: PathBuf,
        /// Which of its parts.
        member: String,
        /// The holders' kernel names.
        holders: String,
    },
    /// The kernel refused an exclusive open.
    #[error(
        "{device} is in use: the kernel refuses to let kod have it alone (a mount, swap or another program holds it); find the user with `lsblk {device}` or `fuser -vm {device}`"
    )]
    Busy {
        /// The device.
        device: PathBuf,
    },
}

/// What kod knows about a block device it may write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    /// The path it was opened by.
    pub path: PathBuf,
    /// The kernel's name (`sda`, `loop3`).
    pub name: String,
    /// `major:minor`.
    pub number: String,
    /// The model, when the kernel knows it (`/sys/block/X/device/model`).
    pub model: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// Logical sector size in bytes.
    pub sector_size: u64,
    /// For a loop device, the file (or device) it reads.
    pub backing_file: Option<PathBuf>,
}

impl DeviceInfo {
    /// Whether this is a loop device (the kernel makes no partition nodes
    /// for those here, so each partition gets a loop device of its own).
    pub fn is_loop(&self) -> bool {
        self.name.starts_with("loop")
    }
}

/// One block device related to the one checked: itself, a partition, a loop
/// device on top, or a loop device sharing its backing file.
#[derive(Debug, Clone)]
struct Member {
    rdev: u64,
    /// How the message names it (`/dev/loop4 (a loop device on /dev/loop3)`).
    label: String,
}

fn sys_dir(rdev: u64) -> PathBuf {
    PathBuf::from(format!(
        "/sys/dev/block/{}:{}",
        rustix::fs::major(rdev),
        rustix::fs::minor(rdev)
    ))
}

fn sys_name(rdev: u64) -> Option<String> {
    let link = fs::canonicalize(sys_dir(rdev)).ok()?;
    Some(link.file_name()?.to_string_lossy().into_owned())
}

fn read_trim(path: &Path) -> Option<String> {
    let s = fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn dev_number(text: &str) -> Option<u64> {
    let (maj, min) = text.trim().split_once(':')?;
    Some(rustix::fs::makedev(maj.parse().ok()?, min.parse().ok()?))
}

/// The partitions of the disk `rdev` as sysfs lists them (number, rdev).
pub(crate) fn sys_partitions(rdev: u64) -> Vec<(u32, u64, u64, u64)> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir(sys_dir(rdev)) else {
        return out;
    };
    for e in dir.flatten() {
        let p = e.path();
        let (Some(n), Some(d)) = (read_trim(&p.join("partition")), read_trim(&p.join("dev")))
        else {
            continue;
        };
        let start = read_trim(&p.join("start")).and_then(|s| s.parse().ok());
        let size = read_trim(&p.join("size")).and_then(|s| s.parse().ok());
        if let (Ok(n), Some(d), Some(start), Some(size)) = (n.parse(), dev_number(&d), start, size)
        {
            out.push((n, d, start, size));
        }
    }
    out.sort();
    out
}

/// A bound loop device: its rdev, name, and what it reads (the backing
/// path, and the backing's identity: `Block(rdev)` or `File(dev, ino)`).
struct LoopDev {
    rdev: u64,
    name: String,
    backing: PathBuf,
    identity: Option<Backing>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backing {
    Block(u64),
    File(u64, u64),
}

fn backing_identity(path: &Path) -> Option<Backing> {
    let m = fs::metadata(path).ok()?;
    Some(if m.file_type().is_block_device() {
        Backing::Block(m.rdev())
    } else {
        Backing::File(m.dev(), m.ino())
    })
}

fn bound_loops() -> Vec<LoopDev> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir("/sys/block") else {
        return out;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        let (Some(back), Some(dev)) = (
            read_trim(&e.path().join("loop/backing_file")),
            read_trim(&e.path().join("dev")).and_then(|d| dev_number(&d)),
        ) else {
            continue;
        };
        let backing = PathBuf::from(back);
        out.push(LoopDev {
            rdev: dev,
            identity: backing_identity(&backing),
            name,
            backing,
        });
    }
    out
}

/// The device `rdev` and everything whose use would make writing it
/// unsafe: its partitions, loop devices on it or on its partitions, loop
/// devices sharing a loop device's backing file, and the block device a
/// loop device reads; transitively.
fn family(rdev: u64, name: &str) -> Vec<Member> {
    let loops = bound_loops();
    let mut seen = BTreeSet::from([rdev]);
    let mut out = vec![Member {
        rdev,
        label: format!("/dev/{name}"),
    }];
    let mut i = 0;
    while i < out.len() {
        let cur = out[i].clone();
        let cur_name = sys_name(cur.rdev).unwrap_or_default();
        let mut found: Vec<Member> = Vec::new();
        for (n, d, _, _) in sys_partitions(cur.rdev) {
            found.push(Member {
                rdev: d,
                label: format!(
                    "/dev/{} (partition {n} of /dev/{cur_name})",
                    sys_name(d).unwrap_or_default()
                ),
            });
        }
        let own = loops.iter().find(|l| l.rdev == cur.rdev);
        for l in &loops {
            if l.identity == Some(Backing::Block(cur.rdev)) {
                found.push(Member {
                    rdev: l.rdev,
                    label: format!("/dev/{} (a loop device on /dev/{cur_name})", l.name),
                });
            }
            if let Some(own) = own
                && l.rdev != own.rdev
                && own.identity.is_some()
                && l.identity == own.identity
            {
                found.push(Member {
                    rdev: l.rdev,
                    label: format!(
                        "/dev/{} (a loop device on {}, as /dev/{cur_name} is)",
                        l.name,
                        own.backing.display()
                    ),
                });
            }
        }
        if let Some(Backing::Block(b)) = own.and_then(|o| o.identity) {
            found.push(Member {
                rdev: b,
                label: format!(
                    "/dev/{} (which /dev/{cur_name} reads)",
                    sys_name(b).unwrap_or_default()
                ),
            });
        }
        for m in found {
            if seen.insert(m.rdev) {
                out.push(m);
            }
        }
        i += 1;
    }
    out
}

/// A field of mountinfo or /proc/swaps, its octal escapes (space, tab,
/// newline, backslash) undone.
fn unescape(s: &str) -> String {
    kod_root::tree::unescape_mountinfo(s)
        .to_string_lossy()
        .into_owned()
}

/// A mount: its device number as mountinfo gives it, its source's device
/// number when the source is a block device, and its mount point.
struct Mount {
    number: Option<u64>,
    source: Option<u64>,
    at: String,
}

fn mounts() -> io::Result<Vec<Mount>> {
    let text = fs::read_to_string("/proc/self/mountinfo")?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let source = right.split(' ').nth(1).map(unescape);
            Some(Mount {
                number: f.get(2).and_then(|n| dev_number(n)),
                source: source
                    .filter(|s| s.starts_with('/'))
                    .and_then(|s| fs::metadata(s).ok())
                    .filter(|m| m.file_type().is_block_device())
                    .map(|m| m.rdev()),
                at: unescape(f.get(4)?),
            })
        })
        .collect())
}

fn swaps() -> io::Result<Vec<(String, u64)>> {
    let text = fs::read_to_string("/proc/swaps")?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let p = unescape(l.split_whitespace().next()?);
            let m = fs::metadata(&p).ok()?;
            m.file_type().is_block_device().then(|| (p, m.rdev()))
        })
        .collect())
}

/// Checks that `path` may be written (see the module's documentation) and
/// claims it: the returned file is the device opened read-only with
/// `O_EXCL`, which keeps others from mounting it while it is open.
pub(crate) fn check(path: &Path, allow: &AllowList) -> Result<(DeviceInfo, File), SafetyError> {
    let device = path.to_path_buf();
    let meta = fs::metadata(path).map_err(|source| SafetyError::NotFound {
        device: device.clone(),
        source,
    })?;
    let is_block = meta.file_type().is_block_device();
    let rdev = is_block.then(|| meta.rdev());
    if !allow.allows(path, rdev) {
        return Err(SafetyError::NotAllowed {
            device,
            allowed: if allow.paths.is_empty() {
                "none".into()
            } else {
                allow
                    .paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        });
    }
    let Some(rdev) = rdev else {
        return Err(SafetyError::NotBlockDevice { device });
    };
    let sys = sys_dir(rdev);
    let name = sys_name(rdev)
        .unwrap_or_else(|| format!("{}:{}", rustix::fs::major(rdev), rustix::fs::minor(rdev)));
    if name.starts_with("dm-") || name.starts_with("md") {
        return Err(SafetyError::Mapped {
            device,
            what: if name.starts_with("dm-") {
                "device-mapper"
            } else {
                "md RAID"
            },
            name,
        });
    }
    if read_trim(&sys.join("ro")).as_deref() == Some("1") {
        return Err(SafetyError::ReadOnly { device, name });
    }

    let members = family(rdev, &name);
    debug!(device = %device.display(), members = ?members.iter().map(|m| &m.label).collect::<Vec<_>>(), "checking");
    let not_found = |source| SafetyError::NotFound {
        device: device.clone(),
        source,
    };
    let mounts = mounts().map_err(not_found)?;
    let is_member = |d: Option<u64>| d.and_then(|d| members.iter().find(|m| m.rdev == d));
    if let Some(root) = mounts.iter().find(|m| m.at == "/")
        && let Some(m) = is_member(root.source).or_else(|| is_member(root.number))
    {
        return Err(SafetyError::HoldsRunningRoot {
            device,
            member: m.label.clone(),
        });
    }
    for mount in &mounts {
        if let Some(m) = is_member(mount.source).or_else(|| is_member(mount.number)) {
            return Err(SafetyError::Mounted {
                device,
                member: m.label.clone(),
                at: mount.at.clone(),
            });
        }
    }
    for (p, d) in swaps().map_err(not_found)? {
        if let Some(m) = is_member(Some(d)) {
            return Err(SafetyError::ActiveSwap {
                device,
                member: m.label.clone(),
                path: p,
            });
        }
    }
    for m in &members {
        let holders: Vec<String> = fs::read_dir(sys_dir(m.rdev).join("holders"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        if !holders.is_empty() {
            return Err(SafetyError::Held {
                device,
                member: m.label.clone(),
                holders: holders.join(", "),
            });
        }
    }

    let claim = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::EBUSY) {
                SafetyError::Busy {
                    device: device.clone(),
                }
            } else {
                SafetyError::NotFound {
                    device: device.clone(),
                    source: e,
                }
            }
        })?;
    let size = read_trim(&sys.join("size"))
        .and_then(|s| s.parse::<u64>().ok())
        .map(|sectors| sectors * 512)
        .ok_or_else(|| not_found(io::Error::other("no size in sysfs")))?;
    let sector_size = read_trim(&sys.join("queue/logical_block_size"))
        .and_then(|s| s.parse().ok())
        .unwrap_or(512);
    let info = DeviceInfo {
        path: device,
        model: read_trim(&sys.join("device/model")),
        size,
        sector_size,
        backing_file: read_trim(&sys.join("loop/backing_file")).map(PathBuf::from),
        number: format!("{}:{}", rustix::fs::major(rdev), rustix::fs::minor(rdev)),
        name,
    };
    Ok((info, claim))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_escapes_are_undone() {
        assert_eq!(unescape(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape(r"/x\134y"), r"/x\y");
        assert_eq!(unescape(r"/plain\04"), r"/plain\04");
    }

    #[test]
    fn a_path_not_listed_is_refused_before_anything_else() {
        let allow = AllowList::new(["/dev/loop999"]);
        let e = check(Path::new("/dev/null"), &allow).unwrap_err();
        assert!(matches!(e, SafetyError::NotAllowed { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("/dev/null is not among the devices this run may write (/dev/loop999)"),
            "{e}"
        );
    }

    #[test]
    fn a_listed_file_is_not_a_block_device() {
        let allow = AllowList::new(["/dev/null"]);
        let e = check(Path::new("/dev/null"), &allow).unwrap_err();
        assert!(matches!(e, SafetyError::NotBlockDevice { .. }), "{e}");
    }
}
