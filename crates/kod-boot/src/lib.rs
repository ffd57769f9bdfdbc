//! Boot entries per generation on the ESP: one Boot Loader Specification
//! (type #1) entry per kept generation with systemd's boot counting,
//! kernels and initramfs images under content-derived names shared between
//! generations, a retention limit that never drops the booted, default or
//! last good generation, and a write order that leaves a bootable ESP when
//! interrupted anywhere (FAT has no atomic rename). Also places the
//! systemd-boot binary and reads back the entries' tries counters.
//!
//! The engine calls [`plan`] on the ESP's current [`EspState`] after a
//! generation is committed (and after rollback or delete), then
//! [`Plan::apply`]; `--dry-run` prints the plan instead.
#![deny(missing_docs)]

mod counter;
mod entry;
mod error;
mod esp;
mod order;
mod plan;
mod retain;
mod sdboot;

pub use counter::{Counter, EntryName};
pub use entry::{Blob, Extra, Generation, Settings};
pub use error::BootError;
pub use esp::{DirEntry, DirEsp, Esp, MtoolsEsp, Source};
pub use order::{EntryInfo, boot_order, default_entry};
pub use plan::{EspState, Op, Plan, Roles, plan};
pub use retain::retain;
pub use sdboot::{SYSTEMD_BOOT, place_systemd_boot};
