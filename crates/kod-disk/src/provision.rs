//! A checked device ([`Target`]), what kod would do to it
//! ([`Description`], the dry run), and doing it: the table, a device node for
//! every partition, the filesystems ([`Provisioned`]).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use kod_config::{Disk, PartitionKind, PartitionTable};
use serde::Serialize;
use tracing::debug;

use crate::esp::Esp;
use crate::layout::{Layout, LayoutError, kind_name, partition_node};
use crate::loopdev::{self, Loop};
use crate::safety::{self, AllowList, DeviceInfo, SafetyError};
use crate::{ProvisionError, fs, table};

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn a_new_image_is_described_without_a_device() {
        let disk = kod_config::Disk {
            device: "/dev/vda".into(),
            table: kod_config::PartitionTable::Gpt,
            efi: true,
            wipe: true,
            partitions: vec![kod_config::Partition {
                name: "root".into(),
                size: kod_config::Size::Percent(100),
                kind: kod_config::PartitionKind::Btrfs,
                mountpoint: Some("/".into()),
                format: true,
                resume_device: false,
            }],
        };
        let layout = super::Layout::compute("disk0", &disk, 8 << 30, 512).unwrap();
        let text = super::Description::of_new_image(std::path::Path::new("/x/vm.img"), &layout)
            .to_string();
        assert!(
            text.starts_with("devices.disk0: a new image file /x/vm.img (8 GiB, sparse)\n"),
            "{text}"
        );
        let row = text.lines().last().unwrap();
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            [
                "1", "(loop)", "root", "btrfs", "1", "MiB", "8190", "MiB", "new", "btrfs", "/"
            ]
        );
    }

    #[test]
    fn sizes_are_shown_exactly() {
        assert_eq!(human_size(8 << 30), "8 GiB");
        assert_eq!(human_size(5 << 29), "2.5 GiB");
        assert_eq!(human_size(9 << 28), "2.25 GiB");
        assert_eq!(human_size((1 << 30) + (1 << 20)), "1025 MiB");
        assert_eq!(human_size(4096), "4 KiB");
        assert_eq!(human_size(1000), "1000 bytes");
        assert_eq!(human_size(3 << 40), "3 TiB");
    }
}

/// A device that passed the safety checks, claimed (opened with `O_EXCL`)
/// until it is provisioned or dropped.
#[derive(Debug)]
pub struct Target {
    info: DeviceInfo,
    claim: File,
}

impl Target {
    /// Checks `path` (on `allow`, a block device, nothing on it in use; see
    /// [`crate::safety`]) and claims it. Opening the same device twice fails
    /// with [`SafetyError::Busy`], so two configured disks cannot be one.
    pub fn open(path: &Path, allow: &AllowList) -> Result<Target, SafetyError> {
        let (info, claim) = safety::check(path, allow)?;
        Ok(Target { info, claim })
    }

    /// The device.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// The layout of `disk` (configured as `devices.KEY`) on this device.
    pub fn layout(&self, key: &str, disk: &Disk) -> Result<Layout, LayoutError> {
        Layout::compute(key, disk, self.info.size, self.info.sector_size)
    }

    /// What provisioning `layout` would do: for the confirmation prompt, and
    /// all a dry run does.
    pub fn describe(&self, layout: &Layout) -> Description {
        Description {
            device: Some(self.info.clone()),
            image: None,
            layout: layout.clone(),
        }
    }

    /// Writes `layout` (from [`Target::layout`]) onto the device: a new table,
    /// a device node per partition, the filesystems (or, with `format =
    /// false`, the UUIDs of those already there). Everything on the device is
    /// lost.
    pub fn provision(self, layout: &Layout) -> Result<Provisioned, ProvisionError> {
        let info = self.info.clone();
        if layout.disk_bytes != info.size || layout.sector_size != info.sector_size {
            return Err(ProvisionError::LayoutMismatch {
                device: info.path.clone(),
                key: layout.key.clone(),
            });
        }
        let io = |what: String| move |source| ProvisionError::Io { what, source };
        let mut rw = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&info.path)
            .map_err(io(format!("opening {} to write", info.path.display())))?;
        debug!(device = %info.path.display(), key = %layout.key, "writing the partition table");
        let ids = table::write(&mut rw, layout).map_err(io(format!(
            "writing the partition table of {}",
            info.path.display()
        )))?;

        let (nodes, loops, claim) = self.partition_nodes(&rw, layout)?;
        let mut partitions = Vec::with_capacity(layout.partitions.len());
        for ((p, node), partuuid) in layout.partitions.iter().zip(nodes).zip(ids.partitions) {
            let key_path = format!("devices.{}.partitions[{}]", layout.key, p.number);
            let uuid = if p.format {
                fs::make(&node, p.kind, &p.name, &key_path)?
            } else {
                fs::existing(&node, p.kind, &key_path)?
            };
            debug!(node = %node.display(), %uuid, kind = kind_name(p.kind), "partition ready");
            partitions.push(ProvisionedPartition {
                number: p.number,
                name: p.name.clone(),
                kind: p.kind,
                node,
                start: p.start,
                size: p.size,
                uuid,
                partuuid,
                mountpoint: p.mountpoint.clone(),
                resume: p.resume,
                formatted: p.format,
            });
        }
        // The filesystems were written through other nodes: what this one
        // cached of those areas is stale.
        loopdev::flush_buffers(&rw).map_err(io(format!("flushing {}", info.path.display())))?;
        Ok(Provisioned {
            key: layout.key.clone(),
            device: info.path.clone(),
            table: layout.table,
            disk_id: ids.disk,
            partitions,
            loops,
            _rw: rw,
            _claim: claim,
        })
    }

    /// A device node for each partition. A loop device gets a loop device
    /// per partition, on itself, with the partition's offset and size (the
    /// kernel here makes no partition nodes for loop devices). Another disk
    /// has the kernel read the new table; its partition nodes are used when
    /// they match the layout, else loop devices as for a loop device. The
    /// claim is given up for the kernel's nodes (mkfs opens a partition with
    /// `O_EXCL`, which a claimed disk refuses).
    #[allow(clippy::type_complexity)]
    fn partition_nodes(
        self,
        rw: &File,
        layout: &Layout,
    ) -> Result<(Vec<PathBuf>, Vec<Loop>, Option<File>), ProvisionError> {
        use std::os::unix::fs::MetadataExt;
        let info = &self.info;
        if !info.is_loop() {
            match loopdev::reread_partitions(&self.claim) {
                Err(e) => debug!(device = %info.path.display(), error = %e, "BLKRRPART failed"),
                Ok(()) => {
                    let rdev = self.claim.metadata().map(|m| m.rdev()).unwrap_or(0);
                    let kernel = safety::sys_partitions(rdev);
                    let matches = kernel.len() == layout.partitions.len()
                        && kernel
                            .iter()
                            .zip(&layout.partitions)
                            .all(|((n, _, start, size), p)| {
                                *n == p.number && start * 512 == p.start && size * 512 == p.size
                            });
                    if matches {
                        let nodes = kernel
                            .iter()
                            .map(|(_, d, _, _)| {
                                let name = std::fs::canonicalize(format!(
                                    "/sys/dev/block/{}:{}",
                                    rustix::fs::major(*d),
                                    rustix::fs::minor(*d)
                                ))
                                .ok()
                                .and_then(|p| p.file_name().map(|n| n.to_owned()));
                                name.map(|n| Path::new("/dev").join(n))
                            })
                            .collect::<Option<Vec<_>>>();
                        if let Some(nodes) = nodes {
                            debug!(?nodes, "using the kernel's partition nodes");
                            return Ok((nodes, Vec::new(), None));
                        }
                    }
                    debug!(
                        ?kernel,
                        "the kernel's partitions do not match; using loop devices"
                    );
                }
            }
        }
        let mut loops = Vec::with_capacity(layout.partitions.len());
        for p in &layout.partitions {
            let l = Loop::attach_file(rw, &info.path, p.start, p.size).map_err(|e| {
                ProvisionError::Io {
                    what: format!(
                        "a loop device for partition {} of {}",
                        p.number,
                        info.path.display()
                    ),
                    source: e,
                }
            })?;
            loops.push(l);
        }
        let nodes = loops.iter().map(|l| l.path().to_path_buf()).collect();
        Ok((nodes, loops, Some(self.claim)))
    }
}

/// What provisioning a disk does, for the caller's confirmation prompt and
/// `--dry-run` (human text through `Display`, JSON through `Serialize`).
#[derive(Debug, Clone, Serialize)]
pub struct Description {
    /// The device, when it exists ([`Target::describe`]).
    pub device: Option<DeviceInfo>,
    /// The image file to be made, for a dry run of `--image` that must not
    /// create it ([`Description::of_new_image`]).
    pub image: Option<PathBuf>,
    /// The partitions it gets.
    pub layout: Layout,
}

impl Description {
    /// The plan for an image file not made yet: `layout` from
    /// [`Layout::compute`] with the image's size and 512-byte sectors (what
    /// a loop device on it has).
    pub fn of_new_image(path: &Path, layout: &Layout) -> Description {
        Description {
            device: None,
            image: Some(path.to_path_buf()),
            layout: layout.clone(),
        }
    }
}

/// `2.5 GiB`, `1025 MiB`, `4 KiB`, `17 bytes`: the largest binary unit in
/// which the size is a whole number or has at most two (exact) decimals, so
/// that no size is shown rounded.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [(&str, u32); 4] = [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)];
    for (unit, shift) in UNITS {
        let one = 1u64 << shift;
        // Exact in hundredths of the unit.
        if bytes >= one && (bytes as u128 * 100).is_multiple_of(one as u128) {
            let hundredths = bytes as u128 * 100 / one as u128;
            let (whole, frac) = (hundredths / 100, hundredths % 100);
            return match frac {
                0 => format!("{whole} {unit}"),
                f if f % 10 == 0 => format!("{whole}.{} {unit}", f / 10),
                f => format!("{whole}.{f:02} {unit}"),
            };
        }
    }
    format!("{bytes} bytes")
}

impl fmt::Display for Description {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.layout;
        match (&self.device, &self.image) {
            (Some(d), _) => {
                write!(
                    f,
                    "devices.{}: {} ({}, {}, model {}",
                    l.key,
                    d.path.display(),
                    d.name,
                    human_size(d.size),
                    d.model.as_deref().unwrap_or("unknown"),
                )?;
                if let Some(b) = &d.backing_file {
                    write!(f, ", a loop device on {}", b.display())?;
                }
                writeln!(f, ")")?;
            }
            (None, image) => writeln!(
                f,
                "devices.{}: a new image file {} ({}, sparse)",
                l.key,
                image.as_deref().unwrap_or(Path::new("?")).display(),
                human_size(l.disk_bytes),
            )?,
        }
        // Only a disk that is not a loop device has kernel partition nodes.
        let kernel_nodes = self.device.as_ref().filter(|d| !d.is_loop());
        let table = match l.table {
            PartitionTable::Gpt => "gpt",
            PartitionTable::Msdos => "msdos",
        };
        writeln!(
            f,
            "  everything on it is lost: it gets a new {table} partition table with {} partitions:",
            l.partitions.len()
        )?;
        let rows: Vec<[String; 8]> = l
            .partitions
            .iter()
            .map(|p| {
                [
                    p.number.to_string(),
                    match kernel_nodes {
                        Some(d) => partition_node(&d.path.to_string_lossy(), p.number),
                        // Each partition gets a loop device of its own.
                        None => "(loop)".to_string(),
                    },
                    p.name.clone(),
                    kind_name(p.kind).to_string(),
                    human_size(p.start),
                    human_size(p.size),
                    if p.format {
                        format!("new {}", fs::blkid_type(p.kind))
                    } else {
                        format!("kept {}", fs::blkid_type(p.kind))
                    },
                    match (&p.mountpoint, p.kind, p.resume) {
                        (Some(m), _, _) => m.clone(),
                        (None, PartitionKind::LinuxSwap, true) => "swap (resume)".into(),
                        (None, PartitionKind::LinuxSwap, false) => "swap".into(),
                        (None, _, _) => "-".into(),
                    },
                ]
            })
            .collect();
        let head = [
            "#",
            "node",
            "name",
            "type",
            "start",
            "size",
            "filesystem",
            "mountpoint",
        ];
        let mut widths = head.map(str::len);
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.len());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: &[&str]| {
            let mut s = String::from("   ");
            for (c, w) in cells.iter().zip(widths) {
                s.push_str(&format!(" {c:<w$}"));
            }
            writeln!(f, "{}", s.trim_end())
        };
        line(f, &head)?;
        for r in &rows {
            line(f, &r.iter().map(String::as_str).collect::<Vec<_>>())?;
        }
        Ok(())
    }
}

/// A provisioned disk: every partition with its device node and the
/// identifiers fstab and the kernel command line use. The nodes stay valid
/// while this lives; dropping it (or [`release`](Provisioned::release))
/// lets the partitions' loop devices go (each is detached once nothing is
/// mounted from it) and the claim on the disk.
#[derive(Debug)]
pub struct Provisioned {
    /// The `devices` key.
    pub key: String,
    /// The disk.
    pub device: PathBuf,
    /// Its table type.
    pub table: PartitionTable,
    /// The table's identifier (PTUUID: the GPT disk GUID, or the MS-DOS disk
    /// signature).
    pub disk_id: String,
    /// The partitions, in table order.
    pub partitions: Vec<ProvisionedPartition>,
    // Dropped in this order: the partitions' loop devices, then the disk.
    loops: Vec<Loop>,
    _rw: File,
    _claim: Option<File>,
}

/// One partition of a [`Provisioned`] disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProvisionedPartition {
    /// Its number in the table.
    pub number: u32,
    /// Its name (the GPT partition name and the filesystem label).
    pub name: String,
    /// What it holds.
    pub kind: PartitionKind,
    /// The device node to use now (a loop device, or the kernel's node).
    pub node: PathBuf,
    /// Offset on the disk, in bytes.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
    /// The filesystem's UUID, as `UUID=` in fstab wants it.
    pub uuid: String,
    /// The partition's PARTUUID.
    pub partuuid: String,
    /// Where the installed system mounts it.
    pub mountpoint: Option<String>,
    /// The swap to resume from: the kernel command line gets
    /// `resume=UUID=<uuid>`.
    pub resume: bool,
    /// Whether kod made its filesystem (`false`: `format = false` kept it).
    pub formatted: bool,
}

impl ProvisionedPartition {
    /// Whether this is the Btrfs root that holds kod's generations.
    pub fn is_root(&self) -> bool {
        self.kind == PartitionKind::Btrfs && self.mountpoint.as_deref() == Some("/")
    }

    /// The partition's line in the installed system's `/etc/fstab`; `None`
    /// for the root (kod-gen writes the root's lines, one per subvolume) and
    /// for a filesystem without a mount point. The ESP is mounted with
    /// `umask=0077`: it holds the boot loader's random seed.
    pub fn fstab_line(&self) -> Option<String> {
        if self.is_root() {
            return None;
        }
        let u = &self.uuid;
        Some(match (self.kind, self.mountpoint.as_deref()) {
            (PartitionKind::LinuxSwap, _) => format!("UUID={u} none swap defaults 0 0"),
            (_, None) => return None,
            (PartitionKind::Esp, Some(m)) => format!("UUID={u} {m} vfat umask=0077 0 2"),
            (PartitionKind::Vfat, Some(m)) => format!("UUID={u} {m} vfat defaults 0 2"),
            (PartitionKind::Btrfs, Some(m)) => format!("UUID={u} {m} btrfs defaults 0 0"),
            (PartitionKind::Ext4, Some(m)) => format!("UUID={u} {m} ext4 defaults 0 2"),
            (PartitionKind::Xfs, Some(m)) => format!("UUID={u} {m} xfs defaults 0 2"),
        })
    }
}

impl Provisioned {
    /// The Btrfs root (mounted at `/`), if it is on this disk.
    pub fn root(&self) -> Option<&ProvisionedPartition> {
        self.partitions.iter().find(|p| p.is_root())
    }

    /// The swap partition to resume from, if it is on this disk.
    pub fn resume(&self) -> Option<&ProvisionedPartition> {
        self.partitions.iter().find(|p| p.resume)
    }

    /// The EFI system partition's FAT filesystem, if this disk has one.
    pub fn esp(&self) -> Option<Esp<'_>> {
        self.partitions
            .iter()
            .find(|p| p.kind == PartitionKind::Esp)
            .map(|p| Esp::new(&p.node))
    }

    /// This disk's lines of the installed system's fstab (all but the root's;
    /// see [`ProvisionedPartition::fstab_line`]), for `kod_gen::fstab`'s
    /// `extra`.
    pub fn fstab_lines(&self) -> Vec<String> {
        self.partitions
            .iter()
            .filter_map(|p| p.fstab_line())
            .collect()
    }

    /// The loop devices this holds for the partitions (empty when the kernel
    /// made partition nodes).
    pub fn loop_devices(&self) -> Vec<&Path> {
        self.loops.iter().map(|l| l.path()).collect()
    }

    /// Lets the partitions' nodes and the disk go (what dropping does).
    pub fn release(self) {}
}
