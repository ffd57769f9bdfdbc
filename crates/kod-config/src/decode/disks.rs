//! `devices`: disks, their partition tables and partitions, and sizes.

use super::Result;
use super::fields::{Fields, type_error};
use crate::error::ConfigError;
use crate::model::*;
use crate::node::Node;
use crate::path::KeyPath;

pub(super) fn disk(node: &Node, path: &KeyPath) -> Result<Disk> {
    let mut f = Fields::of(node, path)?;
    let device = f.required_string("device")?;
    if !device.starts_with("/dev/") {
        return Err(ConfigError::invalid(
            path.key("device").to_string(),
            format!("{device:?} is not a device path (/dev/...)"),
        ));
    }
    let table = match f.string("type")?.as_deref() {
        None | Some("gpt") => PartitionTable::Gpt,
        Some("msdos") | Some("mbr") => PartitionTable::Msdos,
        Some(other) => {
            return Err(ConfigError::invalid(
                path.key("type").to_string(),
                format!("unknown partition table {other:?}; expected \"gpt\" or \"msdos\""),
            ));
        }
    };
    let efi = f.bool("efi")?.unwrap_or(true);
    let wipe = f.bool("wipe")?.unwrap_or(false);
    let partitions = match f.node("partitions") {
        Some((Node::List(items), p)) => items
            .iter()
            .enumerate()
            .map(|(i, n)| partition(n, &p.index(i + 1)))
            .collect::<Result<Vec<_>>>()?,
        Some((other, p)) => return Err(type_error(&p, "a list of partitions", other)),
        None => Vec::new(),
    };
    f.finish()?;
    Ok(Disk {
        device,
        table,
        efi,
        wipe,
        partitions,
    })
}

fn partition(node: &Node, path: &KeyPath) -> Result<Partition> {
    let mut f = Fields::of(node, path)?;
    let name = f.required_string("name")?;
    let size_text = f.required_string("size")?;
    let size = parse_size(&size_text).ok_or_else(|| {
        ConfigError::invalid(
            path.key("size").to_string(),
            format!("{size_text:?} is not a size; write e.g. \"512MB\", \"3GB\" or \"100%\" (sizes are binary: 1GB = 1 GiB)"),
        )
    })?;
    let kind_text = f.required_string("type")?;
    let kind = PartitionKind::parse(&kind_text).ok_or_else(|| {
        ConfigError::invalid(
            path.key("type").to_string(),
            format!(
                "unknown partition type {kind_text:?}; expected one of {}",
                PartitionKind::NAMES.join(", ")
            ),
        )
    })?;
    let mountpoint = f.string("mountpoint")?;
    let format = f.bool("format")?.unwrap_or(true);
    // KodOS spells it resumeDevice.
    let resume = f
        .bool("resume_device")?
        .or(f.bool("resumeDevice")?)
        .unwrap_or(false);
    f.finish()?;
    Ok(Partition {
        name,
        size,
        kind,
        mountpoint,
        format,
        resume_device: resume,
    })
}

/// "512MB", "3GB", "1.5G", "100%": binary units, as sgdisk reads them.
fn parse_size(s: &str) -> Option<Size> {
    let s = s.trim();
    if let Some(p) = s.strip_suffix('%') {
        let n: u8 = p.trim().parse().ok()?;
        return (1..=100).contains(&n).then_some(Size::Percent(n));
    }
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().ok()?;
    let shift = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches('B')
        .trim_end_matches('I')
    {
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return None,
    };
    let bytes = num * (1u64 << shift) as f64;
    (bytes >= 1.0 && bytes < u64::MAX as f64).then_some(Size::Bytes(bytes as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_binary() {
        assert_eq!(parse_size("1GB"), Some(Size::Bytes(1 << 30)));
        assert_eq!(parse_size("512MiB"), Some(Size::Bytes(512 << 20)));
        assert_eq!(parse_size("3G"), Some(Size::Bytes(3 << 30)));
        assert_eq!(parse_size("1.5GB"), Some(Size::Bytes(3 << 29)));
        assert_eq!(parse_size("100%"), Some(Size::Percent(100)));
        assert_eq!(parse_size("0%"), None);
        assert_eq!(parse_size("12"), None);
        assert_eq!(parse_size("3 parsecs"), None);
    }
}
