//! The partition table a configured disk gets on a device of a given size:
//! pure arithmetic, no device touched.
//!
//! Every partition starts and ends on a 1 MiB boundary (what sgdisk, parted
//! and fdisk do, and what keeps partitions aligned to any erase block or
//! RAID stripe below 1 MiB). The first starts at 1 MiB. Sizes in bytes are
//! rounded up to the next MiB; `N%` is N percent of the space the byte-sized
//! partitions leave, rounded down to a MiB; a partition of `100%` takes the
//! rest of the disk and so must be the last one, and when percentages add up
//! to exactly 100 the last of them takes the rest too, so no rounding
//! remainder is left unused.

use std::collections::BTreeMap;
use std::fmt;

use kod_config::{Disk, PartitionKind, PartitionTable, Size};
use serde::Serialize;
use uuid::Uuid;

/// 1 MiB: partition alignment, and the first partition's start.
pub const ALIGN: u64 = 1 << 20;

/// Bytes a GPT keeps at the end of the disk for its backup: the 128 entries
/// of 128 bytes, in whole sectors, and the backup header's sector.
fn gpt_backup_bytes(sector_size: u64) -> u64 {
    (128 * 128u64).div_ceil(sector_size) * sector_size + sector_size
}

/// The mount point of the root file system.
pub const ROOT_MOUNTPOINT: &str = "/";

/// A planned partition table for one disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layout {
    /// The `devices` key of the configuration (`disk0`), for messages.
    pub key: String,
    /// The table type.
    pub table: PartitionTable,
    /// The device's logical sector size in bytes (512 or 4096).
    pub sector_size: u64,
    /// The device's size in bytes.
    pub disk_bytes: u64,
    /// Partitions in table order (numbers 1, 2, ...).
    pub partitions: Vec<PlannedPartition>,
}

/// One partition of a [`Layout`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedPartition {
    /// The partition number in the table, from 1.
    pub number: u32,
    /// The configured name: the GPT partition name and the filesystem label.
    pub name: String,
    /// What it holds.
    pub kind: PartitionKind,
    /// Offset from the start of the disk, in bytes (a multiple of [`ALIGN`]).
    pub start: u64,
    /// Length in bytes (a multiple of [`ALIGN`]).
    pub size: u64,
    /// The type written into the table.
    pub part_type: PartType,
    /// Where the installed system mounts it.
    pub mountpoint: Option<String>,
    /// Whether a new filesystem is made (`format = false`: the existing one
    /// is kept and its UUID read).
    pub format: bool,
    /// The swap partition the kernel resumes from (`resume=UUID=...`).
    pub resume: bool,
}

impl PlannedPartition {
    /// The offset of the partition's first byte after its last one.
    pub fn end(&self) -> u64 {
        self.start + self.size
    }

    /// Whether this is the Btrfs root, which holds kod's generations.
    pub fn is_root(&self) -> bool {
        self.mountpoint.as_deref() == Some(ROOT_MOUNTPOINT)
    }
}

/// A partition type as a table stores it; serialized as it is displayed
/// (`C12A7328-...`, `ef`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartType {
    /// A GPT type GUID.
    Gpt(Uuid),
    /// An MS-DOS system id byte.
    Msdos(u8),
}

impl Serialize for PartType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for PartType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // sgdisk, sfdisk and the UEFI specification write them in
            // upper case.
            PartType::Gpt(g) => write!(f, "{}", g.hyphenated().to_string().to_uppercase()),
            PartType::Msdos(b) => write!(f, "{b:02x}"),
        }
    }
}

/// GPT type GUIDs (UEFI specification; the Discoverable Partitions
/// Specification for the root).
pub mod gpt_types {
    use uuid::{Uuid, uuid};

    /// EFI system partition.
    pub const ESP: Uuid = uuid!("C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    /// Linux swap.
    pub const LINUX_SWAP: Uuid = uuid!("0657FD6D-A4AB-43C4-84E5-0933C84B4F4F");
    /// Linux filesystem data.
    pub const LINUX_FS: Uuid = uuid!("0FC63DAF-8483-4772-8E79-3D69D8477DE4");
    /// Microsoft basic data (FAT data partitions).
    pub const MS_BASIC_DATA: Uuid = uuid!("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7");
    /// Root partition for x86-64.
    pub const ROOT_X86_64: Uuid = uuid!("4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709");
    /// Root partition for 64-bit ARM.
    pub const ROOT_AARCH64: Uuid = uuid!("B921B045-1DF0-41C3-AF44-4C6F280D3FAE");
}

/// MS-DOS system ids.
pub mod msdos_types {
    /// EFI system partition.
    pub const ESP: u8 = 0xef;
    /// Linux swap.
    pub const LINUX_SWAP: u8 = 0x82;
    /// Linux filesystem.
    pub const LINUX: u8 = 0x83;
    /// FAT32 with LBA addressing.
    pub const FAT32_LBA: u8 = 0x0c;
}

/// The GPT type of a partition of `kind`. The Btrfs root gets the
/// architecture's root type, so systemd's discoverable-partitions tools
/// recognise it (and find the ESP on the root's disk); other Linux
/// filesystems, and the root on an architecture without a known root type,
/// get the generic Linux filesystem type.
pub fn gpt_type(kind: PartitionKind, root: bool) -> Uuid {
    match kind {
        PartitionKind::Esp => gpt_types::ESP,
        PartitionKind::LinuxSwap => gpt_types::LINUX_SWAP,
        PartitionKind::Vfat => gpt_types::MS_BASIC_DATA,
        PartitionKind::Btrfs if root => match std::env::consts::ARCH {
            "x86_64" => gpt_types::ROOT_X86_64,
            "aarch64" => gpt_types::ROOT_AARCH64,
            _ => gpt_types::LINUX_FS,
        },
        PartitionKind::Btrfs | PartitionKind::Ext4 | PartitionKind::Xfs => gpt_types::LINUX_FS,
    }
}

/// The MS-DOS system id of a partition of `kind`.
pub fn msdos_type(kind: PartitionKind) -> u8 {
    match kind {
        PartitionKind::Esp => msdos_types::ESP,
        PartitionKind::LinuxSwap => msdos_types::LINUX_SWAP,
        PartitionKind::Vfat => msdos_types::FAT32_LBA,
        PartitionKind::Btrfs | PartitionKind::Ext4 | PartitionKind::Xfs => msdos_types::LINUX,
    }
}

/// The configuration name of a partition kind (`linux-swap`).
pub fn kind_name(kind: PartitionKind) -> &'static str {
    match kind {
        PartitionKind::Esp => "esp",
        PartitionKind::LinuxSwap => "linux-swap",
        PartitionKind::Btrfs => "btrfs",
        PartitionKind::Ext4 => "ext4",
        PartitionKind::Xfs => "xfs",
        PartitionKind::Vfat => "vfat",
    }
}

/// The longest filesystem label each mkfs accepts, in bytes.
fn label_limit(kind: PartitionKind) -> usize {
    match kind {
        PartitionKind::Esp | PartitionKind::Vfat => 11,
        PartitionKind::LinuxSwap => 15,
        PartitionKind::Ext4 => 16,
        PartitionKind::Xfs => 12,
        PartitionKind::Btrfs => 255,
    }
}

/// The node of partition `number` of the disk `device`: `/dev/sda1`, and
/// `/dev/nvme0n1p1` (a `p` between) when the disk's name ends in a digit, as
/// the kernel names them (nvme, mmcblk, loop, md).
pub fn partition_node(device: &str, number: u32) -> String {
    if device.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{device}p{number}")
    } else {
        format!("{device}{number}")
    }
}

/// Why a configured disk cannot be laid out, or uses a key kod does not
/// carry out. Every message names the configuration key and what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// The disk has no partitions.
    #[error(
        "devices.{key} has no partitions: add a `partitions` list, or remove the disk from `devices`"
    )]
    NoPartitions {
        /// The `devices` key.
        key: String,
    },
    /// The device is too small for the first partition to start at 1 MiB.
    #[error(
        "devices.{key}: the device has {disk_bytes} bytes, too small for a partition table with partitions aligned to 1 MiB: use a larger device or image"
    )]
    DiskTooSmall {
        /// The `devices` key.
        key: String,
        /// The device's size.
        disk_bytes: u64,
    },
    /// The partitions do not fit.
    #[error(
        "devices.{key}.partitions[{number}] ({name:?}) does not fit: it would end at byte {end}, but the usable space ends at byte {usable_end} ({disk_bytes} bytes on the device); make it or the partitions before it smaller, or use a larger device (`--size`)"
    )]
    DoesNotFit {
        /// The `devices` key.
        key: String,
        /// Partition number.
        number: u32,
        /// Partition name.
        name: String,
        /// Where it would end.
        end: u64,
        /// Where the usable space ends.
        usable_end: u64,
        /// The device's size.
        disk_bytes: u64,
    },
    /// A percentage came out smaller than 1 MiB.
    #[error(
        "devices.{key}.partitions[{number}] ({name:?}): {percent}% of the {remaining} bytes left after the fixed-size partitions is less than 1 MiB; give it a fixed size or a larger share, or use a larger device"
    )]
    PercentTooSmall {
        /// The `devices` key.
        key: String,
        /// Partition number.
        number: u32,
        /// Partition name.
        name: String,
        /// The percentage.
        percent: u8,
        /// The space the percentages share.
        remaining: u64,
    },
    /// `100%` on a partition that is not the last.
    #[error(
        "devices.{key}.partitions[{number}] ({name:?}) takes 100% (the rest of the disk) but is not the last partition: move it to the end, or give it a smaller size"
    )]
    HundredPercentNotLast {
        /// The `devices` key.
        key: String,
        /// Partition number.
        number: u32,
        /// Partition name.
        name: String,
    },
    /// Percentages that add up to more than 100.
    #[error(
        "devices.{key}: the partitions' percentages add up to {total}%, more than 100%: make them smaller"
    )]
    PercentOver100 {
        /// The `devices` key.
        key: String,
        /// Their sum.
        total: u32,
    },
    /// More partitions than an MS-DOS table has primary slots.
    #[error(
        "devices.{key} has {count} partitions, but an msdos table holds at most 4 (kod makes no extended partitions): use `type = \"gpt\"`, or at most 4 partitions"
    )]
    TooManyPrimaries {
        /// The `devices` key.
        key: String,
        /// How many are configured.
        count: usize,
    },
    /// An MS-DOS table cannot address past 2^32 sectors.
    #[error(
        "devices.{key}.partitions[{number}] ({name:?}) ends at byte {end}, beyond what an msdos table can address ({limit} bytes): use `type = \"gpt\"`"
    )]
    BeyondMsdos {
        /// The `devices` key.
        key: String,
        /// Partition number.
        number: u32,
        /// Partition name.
        name: String,
        /// Where it ends.
        end: u64,
        /// The table's limit.
        limit: u64,
    },
    /// A name longer than the GPT's 36 UTF-16 units.
    #[error(
        "devices.{key}.partitions[{number}].name {name:?} is longer than the 36 characters a GPT partition name holds: shorten it"
    )]
    NameTooLong {
        /// The `devices` key.
        key: String,
        /// Partition number.
        number: u32,
        /// The name.
        name: String,
    },
    /// A name longer than the filesystem's label.
    #[error(
        "devices.{key}.partitions[{number}].name {name:?} is the {fs} filesystem's label, which holds at most {max} bytes: shorten it"
    )]
    LabelTooLong {
        /// The `devices` key.
        key: String,
        /// Partition number.
        number: u32,
        /// The name.
        name: String,
        /// The filesystem.
        fs: &'static str,
        /// Its limit.
        max: usize,
    },
    /// A mount point that is not an absolute path, or one on swap.
    #[error("devices.{key}.partitions[{number}].mountpoint {mountpoint:?}: {why}")]
    BadMountpoint {
        /// The `devices` key.
        key: String,
        /// Partition number.
        number: u32,
        /// The mount point.
        mountpoint: String,
        /// What is wrong and what to do.
        why: &'static str,
    },
    /// Two partitions with the same mount point.
    #[error(
        "{first} and {second} are both mounted at {mountpoint:?}: give one of them another mountpoint, or none"
    )]
    DuplicateMountpoint {
        /// The first partition's key path.
        first: String,
        /// The second partition's key path.
        second: String,
        /// The mount point.
        mountpoint: String,
    },
    /// Two disks naming the same device.
    #[error(
        "devices.{first} and devices.{second} both name {device}: give each disk its own device"
    )]
    DuplicateDevice {
        /// The first `devices` key.
        first: String,
        /// The second `devices` key.
        second: String,
        /// The device.
        device: String,
    },
    /// A root that is not Btrfs.
    #[error(
        "devices.{key}.partitions[{number}] is mounted at \"/\" but is {kind}: kod keeps its generations as Btrfs subvolumes, so the root partition must be `type = \"btrfs\"`"
    )]
    RootNotBtrfs {
        /// The `devices` key.
        key: String,
        /// Partition number.
        number: u32,
        /// Its kind.
        kind: &'static str,
    },
    /// A configuration key that kod accepts but does not carry out.
    #[error("{key} = {value} is not implemented: {what}")]
    Unsupported {
        /// The key path (`devices.disk0.wipe`).
        key: String,
        /// The configured value.
        value: String,
        /// Why, and what to configure instead.
        what: &'static str,
    },
}

fn round_up(n: u64) -> u64 {
    n.div_ceil(ALIGN).saturating_mul(ALIGN)
}

fn round_down(n: u64) -> u64 {
    n / ALIGN * ALIGN
}

impl Layout {
    /// The table for the disk configured as `devices.KEY` on a device of
    /// `disk_bytes` bytes with `sector_size`-byte logical sectors.
    pub fn compute(
        key: &str,
        disk: &Disk,
        disk_bytes: u64,
        sector_size: u64,
    ) -> Result<Layout, LayoutError> {
        let key = key.to_string();
        check_keys(&key, disk)?;
        let n = disk.partitions.len();
        if n == 0 {
            return Err(LayoutError::NoPartitions { key });
        }
        if disk.table == PartitionTable::Msdos && n > 4 {
            return Err(LayoutError::TooManyPrimaries { key, count: n });
        }
        let usable_end = round_down(match disk.table {
            PartitionTable::Gpt => disk_bytes.saturating_sub(gpt_backup_bytes(sector_size)),
            PartitionTable::Msdos => disk_bytes,
        });
        if usable_end <= ALIGN {
            return Err(LayoutError::DiskTooSmall { key, disk_bytes });
        }
        let mut percent_total = 0u32;
        let mut last_percent = None;
        for (i, p) in disk.partitions.iter().enumerate() {
            if let Size::Percent(pc) = p.size {
                if pc >= 100 && i + 1 != n {
                    return Err(LayoutError::HundredPercentNotLast {
                        key,
                        number: i as u32 + 1,
                        name: p.name.clone(),
                    });
                }
                percent_total += u32::from(pc);
                last_percent = Some(i);
            }
        }
        if percent_total > 100 {
            return Err(LayoutError::PercentOver100 {
                key,
                total: percent_total,
            });
        }
        let fixed: Vec<u64> = disk
            .partitions
            .iter()
            .map(|p| match p.size {
                Size::Bytes(b) => round_up(b),
                Size::Percent(_) => 0,
            })
            .collect();
        let fixed_total = fixed.iter().fold(0u64, |a, b| a.saturating_add(*b));
        let remaining = usable_end.saturating_sub(ALIGN).saturating_sub(fixed_total);

        let mut partitions = Vec::with_capacity(n);
        let mut cursor = ALIGN;
        for (i, p) in disk.partitions.iter().enumerate() {
            let number = i as u32 + 1;
            let size = match p.size {
                Size::Bytes(_) => fixed[i],
                Size::Percent(pc) => {
                    let takes_rest = pc >= 100 || (percent_total == 100 && last_percent == Some(i));
                    let size = if takes_rest {
                        let after: u64 = fixed[i + 1..].iter().sum();
                        usable_end.saturating_sub(cursor).saturating_sub(after)
                    } else {
                        round_down((u128::from(remaining) * u128::from(pc) / 100) as u64)
                    };
                    if size < ALIGN {
                        return Err(LayoutError::PercentTooSmall {
                            key,
                            number,
                            name: p.name.clone(),
                            percent: pc,
                            remaining,
                        });
                    }
                    size
                }
            };
            let end = cursor.saturating_add(size);
            if end > usable_end {
                return Err(LayoutError::DoesNotFit {
                    key,
                    number,
                    name: p.name.clone(),
                    end,
                    usable_end,
                    disk_bytes,
                });
            }
            if disk.table == PartitionTable::Msdos {
                let limit = (1u64 << 32) * sector_size;
                if end > limit {
                    return Err(LayoutError::BeyondMsdos {
                        key,
                        number,
                        name: p.name.clone(),
                        end,
                        limit,
                    });
                }
            }
            let root = p.mountpoint.as_deref() == Some(ROOT_MOUNTPOINT);
            partitions.push(PlannedPartition {
                number,
                name: p.name.clone(),
                kind: p.kind,
                start: cursor,
                size,
                part_type: match disk.table {
                    PartitionTable::Gpt => PartType::Gpt(gpt_type(p.kind, root)),
                    PartitionTable::Msdos => PartType::Msdos(msdos_type(p.kind)),
                },
                mountpoint: p.mountpoint.clone(),
                format: p.format,
                resume: p.resume_device,
            });
            cursor = end;
        }
        Ok(Layout {
            key,
            table: disk.table,
            sector_size,
            disk_bytes,
            partitions,
        })
    }

    /// The Btrfs root partition (mounted at `/`), if this disk has it.
    pub fn root(&self) -> Option<&PlannedPartition> {
        self.partitions.iter().find(|p| p.is_root())
    }
}

/// The per-partition keys: names, labels, mount points, and the keys the
/// model accepts that kod does not carry out.
fn check_keys(key: &str, disk: &Disk) -> Result<(), LayoutError> {
    if !disk.wipe {
        return Err(LayoutError::Unsupported {
            key: format!("devices.{key}.wipe"),
            value: "false".into(),
            what: "kod only writes a new partition table (losing what is on the disk); keeping an existing table is not done yet: set `wipe = true` to repartition the disk, or remove it from `devices` to leave it alone",
        });
    }
    let has_esp = disk.partitions.iter().any(|p| p.kind == PartitionKind::Esp);
    let has_root = disk
        .partitions
        .iter()
        .any(|p| p.mountpoint.as_deref() == Some(ROOT_MOUNTPOINT));
    if !disk.efi && (has_esp || has_root) {
        return Err(LayoutError::Unsupported {
            key: format!("devices.{key}.efi"),
            value: "false".into(),
            what: "booting this disk through the BIOS needs a BIOS boot loader, which kod does not install: set `efi = true` (and give the disk an `esp` partition); `efi = false` is accepted only on a data disk without the root or an ESP",
        });
    }
    for (i, p) in disk.partitions.iter().enumerate() {
        let number = i as u32 + 1;
        if p.name.encode_utf16().count() > 36 {
            return Err(LayoutError::NameTooLong {
                key: key.into(),
                number,
                name: p.name.clone(),
            });
        }
        let max = label_limit(p.kind);
        if p.name.len() > max {
            return Err(LayoutError::LabelTooLong {
                key: key.into(),
                number,
                name: p.name.clone(),
                fs: kind_name(p.kind),
                max,
            });
        }
        if p.resume_device && p.kind != PartitionKind::LinuxSwap {
            return Err(LayoutError::Unsupported {
                key: format!("devices.{key}.partitions[{number}].resume_device"),
                value: "true".into(),
                what: "the kernel resumes from hibernation only from swap: set it on a `linux-swap` partition",
            });
        }
        if let Some(m) = &p.mountpoint {
            let why = if p.kind == PartitionKind::LinuxSwap {
                Some("swap is not mounted: remove the mountpoint")
            } else if !m.starts_with('/') {
                Some("a mount point is an absolute path: write it with a leading `/`")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(LayoutError::BadMountpoint {
                    key: key.into(),
                    number,
                    mountpoint: m.clone(),
                    why,
                });
            }
            if m == ROOT_MOUNTPOINT && p.kind != PartitionKind::Btrfs {
                return Err(LayoutError::RootNotBtrfs {
                    key: key.into(),
                    number,
                    kind: kind_name(p.kind),
                });
            }
        }
    }
    Ok(())
}

/// Checks across all configured disks that each names its own device and
/// that no two partitions share a mount point (the root included).
pub fn check_devices(devices: &BTreeMap<String, Disk>) -> Result<(), LayoutError> {
    let mut seen_dev: BTreeMap<&str, &str> = BTreeMap::new();
    let mut seen_mnt: BTreeMap<&str, String> = BTreeMap::new();
    for (key, disk) in devices {
        if let Some(first) = seen_dev.insert(&disk.device, key) {
            return Err(LayoutError::DuplicateDevice {
                first: first.into(),
                second: key.clone(),
                device: disk.device.clone(),
            });
        }
        for (i, p) in disk.partitions.iter().enumerate() {
            let Some(m) = &p.mountpoint else { continue };
            let here = format!("devices.{key}.partitions[{}]", i + 1);
            if let Some(first) = seen_mnt.insert(m, here.clone()) {
                return Err(LayoutError::DuplicateMountpoint {
                    first,
                    second: here,
                    mountpoint: m.clone(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kod_config::Partition;
    use proptest::prelude::*;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    #[cfg(target_arch = "x86_64")]
    const ROOT_TYPE: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
    #[cfg(target_arch = "aarch64")]
    const ROOT_TYPE: &str = "B921B045-1DF0-41C3-AF44-4C6F280D3FAE";
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    const ROOT_TYPE: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

    fn part(name: &str, size: Size, kind: PartitionKind, mnt: Option<&str>) -> Partition {
        Partition {
            name: name.into(),
            size,
            kind,
            mountpoint: mnt.map(str::to_string),
            format: true,
            resume_device: false,
        }
    }

    fn disk(table: PartitionTable, partitions: Vec<Partition>) -> Disk {
        Disk {
            device: "/dev/vda".into(),
            table,
            efi: true,
            wipe: true,
            partitions,
        }
    }

    /// `disk.disk_definition("/dev/vda", "2GB")` with the plan's `/efi`.
    fn debian_vm() -> Disk {
        let mut swap = part("Swap", Size::Bytes(2 * GIB), PartitionKind::LinuxSwap, None);
        swap.resume_device = true;
        disk(
            PartitionTable::Gpt,
            vec![
                part("Boot", Size::Bytes(GIB), PartitionKind::Esp, Some("/efi")),
                swap,
                part("Root", Size::Percent(100), PartitionKind::Btrfs, Some("/")),
            ],
        )
    }

    #[test]
    fn the_debian_vm_layout_on_8_gib() {
        let l = Layout::compute("disk0", &debian_vm(), 8 * GIB, 512).unwrap();
        let got: Vec<(u64, u64, String)> = l
            .partitions
            .iter()
            .map(|p| (p.start, p.size, p.part_type.to_string()))
            .collect();
        // The root ends at the last whole MiB before the 33 sectors of the
        // backup GPT: 8 GiB - 1 MiB.
        assert_eq!(
            got,
            vec![
                (MIB, GIB, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B".into()),
                (
                    MIB + GIB,
                    2 * GIB,
                    "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F".into()
                ),
                (MIB + 3 * GIB, 8 * GIB - 2 * MIB - 3 * GIB, ROOT_TYPE.into()),
            ]
        );
        assert_eq!(l.root().map(|p| p.number), Some(3));
        assert!(l.partitions[1].resume);
    }

    #[test]
    fn msdos_uses_the_disk_to_its_last_mib_and_type_bytes() {
        let d = disk(
            PartitionTable::Msdos,
            vec![
                part(
                    "ESP",
                    Size::Bytes(100 * MIB),
                    PartitionKind::Esp,
                    Some("/efi"),
                ),
                part("swap", Size::Bytes(MIB + 1), PartitionKind::LinuxSwap, None),
                part(
                    "data",
                    Size::Bytes(10 * MIB),
                    PartitionKind::Vfat,
                    Some("/d"),
                ),
                part("root", Size::Percent(100), PartitionKind::Btrfs, Some("/")),
            ],
        );
        let l = Layout::compute("d", &d, GIB + 512 * 1000, 512).unwrap();
        let types: Vec<String> = l
            .partitions
            .iter()
            .map(|p| p.part_type.to_string())
            .collect();
        assert_eq!(types, ["ef", "82", "0c", "83"]);
        // One byte over a MiB is rounded up to two.
        assert_eq!(l.partitions[1].size, 2 * MIB);
        assert_eq!(l.partitions[3].end(), GIB);
    }

    #[test]
    fn percentages_share_what_the_fixed_sizes_leave() {
        let d = disk(
            PartitionTable::Gpt,
            vec![
                part("a", Size::Percent(25), PartitionKind::Ext4, Some("/a")),
                part(
                    "fixed",
                    Size::Bytes(100 * MIB),
                    PartitionKind::Xfs,
                    Some("/x"),
                ),
                part("b", Size::Percent(75), PartitionKind::Ext4, Some("/b")),
            ],
        );
        let l = Layout::compute("d", &d, 1001 * MIB + 33 * 512, 512).unwrap();
        // 1000 MiB usable from 1 MiB, minus 100 fixed = 900; a gets 225, b
        // (the last of percentages summing to 100) the rest: 675.
        assert_eq!(l.partitions[0].size, 225 * MIB);
        assert_eq!(l.partitions[2].size, 675 * MIB);
        assert_eq!(l.partitions[2].end(), 1001 * MIB);
    }

    #[test]
    fn node_names_take_a_p_after_a_digit() {
        assert_eq!(partition_node("/dev/sda", 1), "/dev/sda1");
        assert_eq!(partition_node("/dev/vda", 3), "/dev/vda3");
        assert_eq!(partition_node("/dev/nvme0n1", 2), "/dev/nvme0n1p2");
        assert_eq!(partition_node("/dev/mmcblk0", 1), "/dev/mmcblk0p1");
        assert_eq!(partition_node("/dev/loop7", 1), "/dev/loop7p1");
    }

    #[test]
    fn refusals_name_the_key_and_the_fix() {
        let e = |d: &Disk, bytes| {
            Layout::compute("disk0", d, bytes, 512)
                .unwrap_err()
                .to_string()
        };

        let d = disk(
            PartitionTable::Gpt,
            vec![
                part("root", Size::Percent(100), PartitionKind::Btrfs, Some("/")),
                part("swap", Size::Bytes(GIB), PartitionKind::LinuxSwap, None),
            ],
        );
        let m = e(&d, 8 * GIB);
        assert!(
            m.contains("devices.disk0.partitions[1]") && m.contains("not the last"),
            "{m}"
        );

        let m = e(&debian_vm(), 3 * GIB);
        assert!(
            m.contains("partitions[2]") && m.contains("does not fit"),
            "{m}"
        );

        let d = disk(
            PartitionTable::Msdos,
            (0..5)
                .map(|i| {
                    part(
                        &format!("p{i}"),
                        Size::Bytes(MIB),
                        PartitionKind::Ext4,
                        None,
                    )
                })
                .collect(),
        );
        assert!(e(&d, GIB).contains("at most 4"));

        let d = disk(
            PartitionTable::Gpt,
            vec![
                part("a", Size::Percent(60), PartitionKind::Ext4, None),
                part("b", Size::Percent(50), PartitionKind::Ext4, None),
            ],
        );
        assert!(e(&d, GIB).contains("110%"));

        let mut d = debian_vm();
        d.wipe = false;
        let m = e(&d, 8 * GIB);
        assert!(
            m.contains("devices.disk0.wipe = false is not implemented"),
            "{m}"
        );

        let mut d = debian_vm();
        d.efi = false;
        assert!(e(&d, 8 * GIB).contains("devices.disk0.efi = false"));

        let mut d = debian_vm();
        d.partitions[0].resume_device = true;
        assert!(e(&d, 8 * GIB).contains("partitions[1].resume_device"));

        let mut d = debian_vm();
        d.partitions[0].name = "EFI-SYSTEM-P".into();
        assert!(e(&d, 8 * GIB).contains("at most 11 bytes"));

        let mut d = debian_vm();
        d.partitions[2].kind = PartitionKind::Ext4;
        assert!(e(&d, 8 * GIB).contains("must be `type = \"btrfs\"`"));

        let mut d = debian_vm();
        d.partitions[1].mountpoint = Some("/swap".into());
        assert!(e(&d, 8 * GIB).contains("swap is not mounted"));

        let d = disk(PartitionTable::Gpt, vec![]);
        assert!(e(&d, 8 * GIB).contains("no partitions"));

        let d = disk(
            PartitionTable::Gpt,
            vec![part("a", Size::Percent(1), PartitionKind::Ext4, None)],
        );
        assert!(e(&d, 20 * MIB).contains("less than 1 MiB"));
    }

    #[test]
    fn a_data_disk_may_say_efi_false() {
        let mut d = disk(
            PartitionTable::Gpt,
            vec![part(
                "data",
                Size::Percent(100),
                PartitionKind::Xfs,
                Some("/srv"),
            )],
        );
        d.efi = false;
        assert!(Layout::compute("data", &d, GIB, 512).is_ok());
    }

    #[test]
    fn two_disks_may_not_share_a_device_or_a_mountpoint() {
        let mut devices = BTreeMap::new();
        devices.insert("a".to_string(), debian_vm());
        let mut b = disk(
            PartitionTable::Gpt,
            vec![part(
                "data",
                Size::Percent(100),
                PartitionKind::Ext4,
                Some("/efi"),
            )],
        );
        b.device = "/dev/vdb".into();
        devices.insert("b".to_string(), b.clone());
        assert!(
            check_devices(&devices)
                .unwrap_err()
                .to_string()
                .contains("devices.a.partitions[1] and devices.b.partitions[1]")
        );
        b.partitions[0].mountpoint = Some("/srv".into());
        devices.insert("b".to_string(), b.clone());
        assert_eq!(check_devices(&devices), Ok(()));
        b.device = "/dev/vda".into();
        devices.insert("b".to_string(), b);
        assert!(
            check_devices(&devices)
                .unwrap_err()
                .to_string()
                .contains("both name /dev/vda")
        );
    }

    fn size_strategy() -> impl Strategy<Value = Size> {
        prop_oneof![
            (1u64..4 * GIB).prop_map(Size::Bytes),
            (1u8..=100).prop_map(Size::Percent),
        ]
    }

    proptest! {
        /// Whatever the sizes, a computed layout is aligned, ordered, inside
        /// the usable space and without overlaps, and gives every byte-sized
        /// partition at least what it asked for.
        #[test]
        fn layouts_are_aligned_ordered_and_inside_the_disk(
            sizes in prop::collection::vec(size_strategy(), 1..6),
            disk_mib in 2u64..65536,
            extra_sectors in 0u64..2048,
            gpt in any::<bool>(),
        ) {
            let table = if gpt { PartitionTable::Gpt } else { PartitionTable::Msdos };
            let parts = sizes.iter().enumerate()
                .map(|(i, s)| part(&format!("p{i}"), *s, PartitionKind::Ext4, None))
                .collect();
            let d = disk(table, parts);
            let bytes = disk_mib * MIB + extra_sectors * 512;
            if let Ok(l) = Layout::compute("d", &d, bytes, 512) {
                let usable_end = if gpt { bytes - 33 * 512 } else { bytes };
                let mut prev_end = MIB;
                for (p, s) in l.partitions.iter().zip(&sizes) {
                    prop_assert_eq!(p.start % MIB, 0);
                    prop_assert_eq!(p.size % MIB, 0);
                    prop_assert!(p.size >= MIB);
                    prop_assert_eq!(p.start, prev_end);
                    prop_assert!(p.end() <= usable_end);
                    if let Size::Bytes(b) = s {
                        prop_assert!(p.size >= *b && p.size - *b < MIB);
                    }
                    prev_end = p.end();
                }
                // A last partition of 100% leaves less than a MiB unused.
                if let Some(Size::Percent(100)) = sizes.last() {
                    prop_assert!(usable_end - prev_end < MIB);
                }
            }
        }

        /// A layout is refused only for a reason the configuration shows:
        /// with a disk large enough and percentages below 100 in total, a
        /// layout exists.
        #[test]
        fn a_large_enough_disk_always_has_a_layout(
            bytes in prop::collection::vec(1u64..GIB, 1..4),
            percent in 1u8..=100,
        ) {
            let mut parts: Vec<Partition> = bytes.iter().enumerate()
                .map(|(i, b)| part(&format!("p{i}"), Size::Bytes(*b), PartitionKind::Ext4, None))
                .collect();
            parts.push(part("rest", Size::Percent(percent), PartitionKind::Ext4, None));
            let d = disk(PartitionTable::Gpt, parts);
            let need: u64 = bytes.iter().map(|b| b.div_ceil(MIB) * MIB).sum::<u64>() + 2 * MIB;
            prop_assert!(Layout::compute("d", &d, need + 200 * MIB, 512).is_ok());
        }
    }
}
