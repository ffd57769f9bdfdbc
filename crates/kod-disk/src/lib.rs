//! Provisioning the configured disks: from the plan's `devices` to
//! partitioned, formatted devices whose UUIDs the caller writes into fstab,
//! touching only devices the caller allowed and nothing is using.
//!
//! The steps, each its own module: [`Layout`] computes a disk's table (pure);
//! [`Target::open`] checks a device ([`safety`]: allowed, a block device, not
//! mounted, not the running root, not swap, not held by dm/md) and claims
//! it; [`Target::describe`] says what would happen (the confirmation prompt
//! and the dry run); [`Target::provision`] writes the table, gives each
//! partition a device node and makes the filesystems, returning
//! [`Provisioned`]; [`Esp`] fills the FAT ESP without mounting it. Image
//! files are made with [`create_image`] and attached with [`attach_image`].
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let disk: kod_config::Disk = unimplemented!();
//! use kod_disk::{AllowList, Target, attach_image, create_image, parse_size};
//! let image = std::path::Path::new("/var/tmp/vm.img");
//! create_image(image, parse_size("8G")?)?;
//! let lo = attach_image(image)?; // detached when dropped and unmounted
//! let target = Target::open(lo.path(), &AllowList::new([lo.path()]))?;
//! let layout = target.layout("disk0", &disk)?;
//! println!("{}", target.describe(&layout)); // a dry run stops here
//! let disk = target.provision(&layout)?;
//! let root = disk.root().expect("the root is on this disk");
//! // mount root.node, install, write fstab with disk.fstab_lines() ...
//! disk.esp().expect("an ESP").write_file("/loader/loader.conf", b"timeout 3\n")?;
//! drop(disk); // after unmounting: the partitions' loop devices go
//! drop(lo);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod esp;
mod fs;
mod image;
pub mod layout;
mod loopdev;
mod provision;
pub mod safety;
mod table;

use std::io;
use std::path::PathBuf;

pub use esp::Esp;
pub use image::{SizeError, attach_image, create_image, parse_size};
pub use layout::{Layout, LayoutError, PlannedPartition, check_devices, partition_node};
pub use loopdev::Loop;
pub use provision::{Description, Provisioned, ProvisionedPartition, Target, human_size};
pub use safety::{AllowList, DeviceInfo, SafetyError};
pub use table::{FoundPartition, read_gpt};

/// Why provisioning a checked device failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// A system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What kod was doing.
        what: String,
        /// The error.
        source: io::Error,
    },
    /// A tool is not installed.
    #[error("{tool} is not installed: install the {package} package")]
    ToolMissing {
        /// The command.
        tool: String,
        /// The Debian package that has it.
        package: &'static str,
    },
    /// A tool failed.
    #[error("{command} failed ({status}):\n{output}")]
    Command {
        /// The command line.
        command: String,
        /// How it ended.
        status: String,
        /// What it printed.
        output: String,
    },
    /// `format = false` on a partition without the expected filesystem.
    #[error(
        "{partition} has `format = false`, but {device} holds {found}, not a {expected} filesystem: set `format = true` to make one (losing what is there)"
    )]
    NoFilesystem {
        /// The partition's key path.
        partition: String,
        /// Its device node.
        device: PathBuf,
        /// The kind configured.
        expected: &'static str,
        /// What blkid found.
        found: String,
    },
    /// A layout computed for another device.
    #[error(
        "the layout of devices.{key} was computed for another device than {device}: compute it with Target::layout"
    )]
    LayoutMismatch {
        /// The device.
        device: PathBuf,
        /// The `devices` key.
        key: String,
    },
    /// A path in the ESP that climbs out of it.
    #[error("{path:?} is not a path inside the ESP: write it without `..`")]
    BadEspPath {
        /// The path.
        path: String,
    },
}
