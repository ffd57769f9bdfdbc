//! Writing a [`Layout`]'s partition table onto a device: GPT through the
//! `gpt` crate (headers, entries, their CRCs, the backup and the protective
//! MBR), MS-DOS with the small writer here (one sector).

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};

use gpt::partition_types::{OperatingSystem, Type};
use kod_config::PartitionTable;
use uuid::Uuid;

use crate::layout::{ALIGN, Layout, PartType};

/// The identifiers a new table got: the disk's (GPT disk GUID, or the MS-DOS
/// disk signature as 8 hex digits) and each partition's PARTUUID, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableIds {
    /// The disk's identifier, as `blkid` writes PTUUID.
    pub disk: String,
    /// Each partition's PARTUUID, as `blkid` and fstab write it.
    pub partitions: Vec<String>,
}

/// Zeroes what a previous table or whole-disk filesystem left outside the
/// partitions (the first MiB, and the last MiB after the last partition,
/// where a backup GPT lives), then writes the table `layout` describes.
pub fn write(dev: &mut File, layout: &Layout) -> io::Result<TableIds> {
    let zeros = vec![0u8; ALIGN as usize];
    dev.seek(SeekFrom::Start(0))?;
    dev.write_all(&zeros)?;
    let last_end = layout.partitions.last().map_or(ALIGN, |p| p.end());
    let tail = layout.disk_bytes.saturating_sub(ALIGN).max(last_end);
    if tail < layout.disk_bytes {
        dev.seek(SeekFrom::Start(tail))?;
        dev.write_all(&zeros[..(layout.disk_bytes - tail) as usize])?;
    }
    dev.sync_all()?;
    let ids = match layout.table {
        PartitionTable::Gpt => write_gpt(dev, layout)?,
        PartitionTable::Msdos => write_msdos(dev, layout)?,
    };
    dev.sync_all()?;
    Ok(ids)
}

fn write_gpt(dev: &mut File, layout: &Layout) -> io::Result<TableIds> {
    let lb = match layout.sector_size {
        512 => gpt::disk::LogicalBlockSize::Lb512,
        4096 => gpt::disk::LogicalBlockSize::Lb4096,
        n => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a GPT on {n}-byte sectors"),
            ));
        }
    };
    let ss = layout.sector_size;
    let total_lba = layout.disk_bytes / ss;
    let mbr =
        gpt::mbr::ProtectiveMBR::with_lb_size(u32::try_from(total_lba - 1).unwrap_or(u32::MAX));
    mbr.overwrite_lba0(dev).map_err(io::Error::other)?;

    let disk_guid = Uuid::new_v4();
    let mut disk = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(lb)
        .create_from_device(&mut *dev, Some(disk_guid))
        .map_err(io::Error::other)?;
    let mut parts = std::collections::BTreeMap::new();
    let mut ids = Vec::new();
    for p in &layout.partitions {
        let PartType::Gpt(guid) = p.part_type else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an MS-DOS type in a GPT layout",
            ));
        };
        let part_guid = Uuid::new_v4();
        parts.insert(
            p.number,
            gpt::partition::Partition {
                part_type_guid: Type {
                    guid,
                    os: OperatingSystem::None,
                },
                part_guid,
                first_lba: p.start / ss,
                last_lba: p.end() / ss - 1,
                flags: 0,
                name: p.name.clone(),
            },
        );
        ids.push(part_guid.hyphenated().to_string());
    }
    disk.update_partitions(parts).map_err(io::Error::other)?;
    disk.write().map_err(io::Error::other)?;
    Ok(TableIds {
        disk: disk_guid.hyphenated().to_string(),
        partitions: ids,
    })
}

/// One MS-DOS boot sector: no boot code, a random disk signature, up to
/// four primary entries addressed by LBA (CHS fields set to the "beyond
/// CHS" values, as fdisk does for large disks).
fn write_msdos(dev: &mut File, layout: &Layout) -> io::Result<TableIds> {
    let signature = Uuid::new_v4().as_fields().0;
    let mut sector = [0u8; 512];
    sector[440..444].copy_from_slice(&signature.to_le_bytes());
    let ss = layout.sector_size;
    for (i, p) in layout.partitions.iter().enumerate() {
        let PartType::Msdos(id) = p.part_type else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a GPT type in an MS-DOS layout",
            ));
        };
        let e = &mut sector[446 + 16 * i..446 + 16 * (i + 1)];
        e[0] = 0; // not active: kod boots through UEFI.
        e[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]);
        e[4] = id;
        e[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
        let (start, count) = (p.start / ss, p.size / ss);
        let too_far = || io::Error::new(io::ErrorKind::InvalidInput, "beyond 2^32 sectors");
        e[8..12].copy_from_slice(&u32::try_from(start).map_err(|_| too_far())?.to_le_bytes());
        e[12..16].copy_from_slice(&u32::try_from(count).map_err(|_| too_far())?.to_le_bytes());
    }
    sector[510] = 0x55;
    sector[511] = 0xaa;
    dev.seek(SeekFrom::Start(0))?;
    dev.write_all(&sector)?;
    Ok(TableIds {
        disk: format!("{signature:08x}"),
        partitions: (1..=layout.partitions.len())
            .map(|n| format!("{signature:08x}-{n:02x}"))
            .collect(),
    })
}

/// A partition of an existing GPT, as [`read_gpt`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundPartition {
    /// Its number (1-based).
    pub number: u32,
    /// Its type GUID.
    pub type_guid: Uuid,
    /// Its first byte.
    pub offset: u64,
    /// Its length in bytes.
    pub size: u64,
}

/// The partitions of the GPT on `path` (an image file or a device), read
/// only, in number order: how kod finds a made image's root and ESP.
pub fn read_gpt(path: &std::path::Path) -> io::Result<Vec<FoundPartition>> {
    let disk = gpt::GptConfig::new()
        .writable(false)
        .open(path)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("no GPT: {e}")))?;
    let ss: u64 = (*disk.logical_block_size()).into();
    Ok(disk
        .partitions()
        .iter()
        .filter(|(_, p)| p.is_used())
        .map(|(&number, p)| FoundPartition {
            number,
            type_guid: p.part_type_guid.guid,
            offset: p.first_lba * ss,
            size: (p.last_lba + 1 - p.first_lba) * ss,
        })
        .collect())
}
