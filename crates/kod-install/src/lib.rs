//! kod-install: transactions on a target root.
//!
//! Its one job: take packages unpacked by kod-unpack and make them
//! installed packages of the target's own package database (dpkg's today),
//! configure them once per transaction, remove packages, and make every
//! transaction all-or-nothing with one lock per root.
//!
//! - [`Transaction::bootstrap`] starts a new root (absent or empty): work
//!   happens in a staging directory next to it, renamed into place at
//!   commit. [`Transaction::begin`] starts a transaction on an existing
//!   root: work happens in an overlay (the root as lower layer), whose
//!   changes are moved onto the root at commit. Either way the root is not
//!   touched before [`Transaction::commit`]; dropping the transaction, an
//!   error, or a killed kod leave it as it was (leftovers of a killed kod
//!   are removed, or a commit it had begun is completed, by the next run).
//! - [`Transaction::install`] unpacks new packages in parallel and writes
//!   what `dpkg --unpack` would have written: status stanzas (`install ok
//!   unpacked`, conffiles as `newconffile`), `info/` files, trigger
//!   interests and activations; it runs `preinst install` as dpkg does.
//! - [`Transaction::commit`] runs `dpkg --configure -a` once, in a chroot
//!   with `/proc`, `/sys` and `/dev` mounted in a private mount namespace
//!   and services kept from starting, then commits with one `syncfs`.
//! - [`Transaction::plan_removal`] / [`Transaction::remove`]: removal
//!   through the root's dpkg, with the packages it takes out listed first;
//!   [`plan_removal`] plans from the root's status file alone (dry runs).
//! - As root of a user namespace (a personal environment changed from the
//!   caller's subordinate ids), transactions work the same way: `/dev`
//!   nodes of a new root are left to the host's `/dev`, `/proc` and `/sys`
//!   are bound from the host into the chroot, and the overlay keeps its
//!   marks in `user.overlay.*` attributes (`userxattr`).
//! - [`bootstrap_into`]: a new root from a set of `.deb` files in one call.
#![deny(missing_docs)]

mod chroot;
mod control;
mod db;
mod error;
mod lock;
mod overlay;
mod register;
mod removal;
mod rootfs;
mod transaction;
mod tree;

use std::path::Path;

pub use error::{Broken, Error, Output};
pub use removal::{RemovalPlan, plan_removal};
pub use transaction::{
    BootstrapOptions, CommitReport, InstallReport, PackageId, PackageState, Transaction,
};

/// How a transaction runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Print every external command (and mount) before running it, and
    /// the output of the commands.
    pub verbose: bool,
    /// Print external commands instead of running them, and do not commit:
    /// the target is left untouched.
    pub debug: bool,
    /// Fail at once when another kod holds the root's lock, instead of
    /// waiting for it.
    pub no_wait: bool,
    /// Where decompressed data parts of packages unpacked more than once
    /// are kept ([`kod_unpack::UnpackOptions::data_cache`]); `None` keeps
    /// nothing.
    pub data_cache: Option<std::path::PathBuf>,
}

/// Creates the new root `root` from `debs` (a complete, installable set:
/// the Essential packages and their dependencies at least): bootstrap,
/// install, configure, commit.
pub fn bootstrap_into<P: AsRef<Path> + Sync>(
    root: &Path,
    debs: &[P],
    bootstrap: &BootstrapOptions,
    options: &Options,
) -> Result<(InstallReport, CommitReport), Error> {
    let mut t = Transaction::bootstrap(root, bootstrap, options)?;
    let installed = t.install(debs)?;
    let committed = t.commit()?;
    Ok((installed, committed))
}
