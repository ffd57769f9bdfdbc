//! kod-gen: generations on a machine's top level.
//!
//! Its one job: the on-disk state of a machine's generations, in KodOS's
//! layout (`../shared/reference/kodos.md`) and made safe against a kod
//! that is killed at any point:
//!
//! - [`Top`]: the top level, checked when opened, with its [`Backend`]: a
//!   Btrfs top level (subvolid 5), whose generations' roots are subvolumes
//!   and boot, or a directory on another file system, whose roots are
//!   plain directories and do not boot ([`DOES_NOT_BOOT`]); the layout
//!   ([`Top::prepare`]: `generations/`, `store/home`, the store
//!   directories); generation numbers, never reused ([`Top::allocate`]);
//!   the list of committed generations; deleting one.
//! - The default pointer (`generations/default`): the default generation
//!   and the defaults before it, replaced by atomic rename and synced
//!   ([`Top::set_default`], [`Top::previous_default`],
//!   [`Top::roll_back_default`]; the format in [`Pointer`]).
//! - The [`Record`] of a generation, beside its root, written in a fixed
//!   order with a completion marker last ([`RECORD_COMPLETE`]): a
//!   generation is committed exactly when its marker is there.
//! - Leftovers of killed writes ([`Top::leftovers`],
//!   [`Top::remove_leftovers`]).
//! - The fstab text of a generation ([`Top::fstab`], [`fstab`]).
//! - What people ask of generations: the list with the booted, current,
//!   default and last good marks ([`Top::list`], [`Running`]), what
//!   changed between two records ([`RecordDiff`]), which may be deleted
//!   ([`Top::check_delete`]) and what garbage collection keeps
//!   ([`Top::gc_plan`]).
//! - The machine lock ([`Top::lock`]): one kod at a time changes a
//!   machine's generations.
//!
//! Nothing here prints; `-v` lines go to a [`kod_report::Report`].
#![deny(missing_docs)]

mod diff;
mod durable;
mod error;
mod fstab;
mod gc;
mod listing;
mod lock;
mod pointer;
mod record;
mod running;
mod top;

pub use diff::{
    FilesDiff, PackageChange, PackagesDiff, RecordDiff, ServicesDiff, UserChange, UsersDiff,
};
pub use error::{Error, Result};
pub use fstab::{STORE_BINDS, fstab};
pub use gc::{GcPlan, Keep, Kept};
pub use listing::{Generation, Kernel, Listing, utc};
pub use lock::{Holder, LOCK, MachineLock};
pub use pointer::{HISTORY, Pointer};
pub use record::{InstalledPackages, LockedPackage, Record, parse_lock, render_lock};
pub use running::Running;
pub use top::{
    BUILDING, Backend, BootMarks, DOES_NOT_BOOT, HIGHEST, MAKING_DEFAULT, POINTER, RECORD_COMPLETE,
    Top,
};
