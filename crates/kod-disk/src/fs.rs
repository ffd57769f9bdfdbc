//! Filesystems, made with each one's standard mkfs tool with a UUID kod
//! chose (so the UUID fstab names is known before the tool runs, and is
//! checked afterwards with `blkid`), and the external commands kod runs here.

use std::path::Path;
use std::process::Command;

use kod_config::PartitionKind;
use tracing::debug;
use uuid::Uuid;

use crate::ProvisionError;
use crate::layout::kind_name;

/// The Debian package that has each tool this crate runs, for the message
/// when one is missing.
fn package_of(tool: &str) -> &'static str {
    match tool {
        "mkfs.vfat" => "dosfstools",
        "mkfs.btrfs" => "btrfs-progs",
        "mkfs.ext4" => "e2fsprogs",
        "mkfs.xfs" => "xfsprogs",
        t if t.starts_with('m') && t != "mkswap" => "mtools",
        _ => "util-linux",
    }
}

/// Runs `cmd`, returning its standard output; a missing tool, a failure or
/// a signal is an error naming the command line and what it printed.
pub(crate) fn run(cmd: &mut Command) -> Result<String, ProvisionError> {
    let line = format!("{cmd:?}").replace('"', "");
    debug!(command = %line, "running");
    let out = cmd.output().map_err(|e| {
        let tool = cmd.get_program().to_string_lossy().into_owned();
        if e.kind() == std::io::ErrorKind::NotFound {
            ProvisionError::ToolMissing {
                package: package_of(&tool),
                tool,
            }
        } else {
            ProvisionError::Io {
                what: format!("running {line}"),
                source: e,
            }
        }
    })?;
    if !out.status.success() {
        return Err(ProvisionError::Command {
            command: line,
            status: out.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
            .trim()
            .to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `TYPE` blkid reports for a filesystem of `kind`.
pub(crate) fn blkid_type(kind: PartitionKind) -> &'static str {
    match kind {
        PartitionKind::Esp | PartitionKind::Vfat => "vfat",
        PartitionKind::LinuxSwap => "swap",
        PartitionKind::Btrfs => "btrfs",
        PartitionKind::Ext4 => "ext4",
        PartitionKind::Xfs => "xfs",
    }
}

/// Makes a filesystem of `kind` labelled `label` on `dev` and returns its
/// UUID as blkid and fstab write it (`1234-ABCD` for FAT, whose volume id
/// is 32 bits; the usual 8-4-4-4-12 form for the others). Signatures a
/// previous filesystem left are wiped first, so blkid finds only the new
/// one.
pub(crate) fn make(
    dev: &Path,
    kind: PartitionKind,
    label: &str,
    partition: &str,
) -> Result<String, ProvisionError> {
    run(Command::new("wipefs").args(["-a", "-q"]).arg(dev))?;
    let uuid = Uuid::new_v4();
    let u = uuid.hyphenated().to_string();
    let mut cmd;
    let fs_uuid = match kind {
        PartitionKind::Esp | PartitionKind::Vfat => {
            let id = uuid.as_fields().0;
            cmd = Command::new("mkfs.vfat");
            // FAT32 always: the UEFI specification wants it for the ESP, and
            // mkfs.vfat shrinks the clusters to make it fit small partitions.
            cmd.args(["-F", "32", "-n", label, "-i", &format!("{id:08X}")]);
            format!("{:04X}-{:04X}", id >> 16, id & 0xffff)
        }
        PartitionKind::LinuxSwap => {
            cmd = Command::new("mkswap");
            cmd.args(["-L", label, "-U", &u]);
            u
        }
        PartitionKind::Btrfs => {
            cmd = Command::new("mkfs.btrfs");
            cmd.args(["-f", "-q", "-L", label, "-U", &u]);
            u
        }
        PartitionKind::Ext4 => {
            cmd = Command::new("mkfs.ext4");
            cmd.args(["-F", "-q", "-L", label, "-U", &u]);
            u
        }
        PartitionKind::Xfs => {
            cmd = Command::new("mkfs.xfs");
            cmd.args(["-f", "-q", "-L", label, "-m", &format!("uuid={u}")]);
            u
        }
    };
    run(cmd.arg(dev))?;
    let found = existing(dev, kind, partition)?;
    if found != fs_uuid {
        return Err(ProvisionError::Command {
            command: format!("blkid -p {}", dev.display()),
            status: "a different UUID".into(),
            output: format!("expected {fs_uuid}, found {found}"),
        });
    }
    Ok(fs_uuid)
}

/// The UUID of the filesystem of `kind` already on `dev` (`format =
/// false`), read with `blkid -p` (the device itself, not the cache);
/// `partition` is the configuration's key path, for the message.
pub(crate) fn existing(
    dev: &Path,
    kind: PartitionKind,
    partition: &str,
) -> Result<String, ProvisionError> {
    let out = Command::new("blkid")
        .args(["-p", "-o", "export"])
        .arg(dev)
        .output()
        .map_err(|e| ProvisionError::Io {
            what: "running blkid".into(),
            source: e,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .map(str::to_string)
    };
    let want = blkid_type(kind);
    match (field("TYPE"), field("UUID")) {
        (Some(t), Some(u)) if t == want => Ok(u),
        (found, _) => Err(ProvisionError::NoFilesystem {
            partition: partition.to_string(),
            device: dev.to_path_buf(),
            expected: kind_name(kind),
            found: found.unwrap_or_else(|| "nothing blkid recognises".into()),
        }),
    }
}
