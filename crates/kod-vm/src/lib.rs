//! Booting installed images and their generations in qemu under OVMF, and
//! the boot report that tells the host how a boot went.
//!
//! The guest's side is a oneshot unit and a POSIX sh script ([`guest`])
//! kod installs into every generation: after the boot is over and
//! assessed it writes `kod-report: ` lines to the second serial port and
//! runs the host's check commands from a disk labelled `kodchecks`. The
//! host's side makes that [`CheckDisk`], starts qemu ([`Boot`], its
//! arguments in [`Machine`]), reads the port ([`Report`]) and judges the
//! boot ([`Outcome`]). The protocol is in this crate's README.
#![deny(missing_docs)]

mod accel;
mod boot;
mod checkdisk;
mod error;
mod firmware;
pub mod guest;
mod image;
mod qemu;
mod report;

pub use accel::{Accel, Choice, choose};
pub use boot::{Boot, Ending, Outcome, Request, TAIL_LINES, Watch};
pub use checkdisk::{CheckDisk, LABEL};
pub use error::VmError;
pub use firmware::{Firmware, OVMF_DIR};
pub use image::{EntryBoot, esp_offset, generation_boot};
pub use qemu::{Console, DirectBoot, Machine, QEMU};
pub use report::{PREFIX, Report, Run, VERSION};
