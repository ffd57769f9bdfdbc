//! kod-install: transactions on a target.
//!
//! Its one job: the transaction core, written once for every package
//! database ([`kod_db::PackageDb`], dpkg's today) and every kind of
//! target. A transaction takes the target's lock, works where the target
//! does not see it, calls the database's steps in order (what runs before
//! unpacking, unpacking and registering in parallel, the database's own
//! tool, one configuration), and changes the target only at commit; a
//! failure, a dropped transaction or a killed kod leave it as it was
//! (leftovers of a killed kod are removed, or a commit it had begun is
//! completed, by the next run).
//!
//! The targets ([`Transaction`]'s constructors):
//! - [`Transaction::create`] ([`Transaction::bootstrap`] for Debian): a new
//!   root built beside its place and renamed into it.
//! - [`Transaction::open`] ([`Transaction::begin`]): an existing root
//!   changed through an overlay in a private mount namespace, whose upper
//!   layer is moved onto the root at commit.
//! - [`Transaction::snapshot`]: a new root made from a copy-on-write
//!   snapshot of an existing one (Btrfs subvolume snapshot, reflink copy,
//!   plain copy; never hard links).
//! - [`Transaction::ephemeral`]: an overlay never merged into its lower
//!   root (the running system's `/` included); its upper layer can be kept.
//!
//! Commands run in a chroot of the view with `/proc`, `/sys` and `/dev`
//! mounted in a private mount namespace; as root of a user namespace (a
//! personal environment changed from the caller's subordinate ids) `/dev`
//! nodes of a new root are left to the host's `/dev`, `/proc` and `/sys`
//! are bound from the host, and overlays keep their marks in
//! `user.overlay.*` attributes (`userxattr`).
//!
//! Progress, notes and `-v` lines go through [`Options::report`]; nothing
//! is printed.
#![deny(missing_docs)]

mod binds;
mod chroot;
mod error;
pub mod leftovers;
mod lock;
mod overlay;
mod skeleton;
mod target;
mod transaction;
mod tree;

use std::path::{Path, PathBuf};

pub use binds::Bound;
pub use error::Error;
pub use kod_db::dpkg::{BootstrapOptions, Dpkg};
pub use kod_db::{Broken, InstallReport, Output, PackageId, PackageState, RemovalPlan};
pub use kod_report::Report;
pub use lock::RUNNING_ROOT_LOCK;
pub use transaction::{CommitReport, Transaction};

/// How a transaction runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Show external commands (through the report) instead of running
    /// them, and do not commit: the target is left untouched.
    pub debug: bool,
    /// Fail at once when another kod holds the root's lock (or the
    /// database's tools hold theirs), instead of waiting for it.
    pub no_wait: bool,
    /// Where decompressed data parts of packages unpacked more than once
    /// are kept ([`kod_unpack::UnpackOptions::data_cache`]); `None` keeps
    /// nothing.
    pub data_cache: Option<PathBuf>,
    /// The journal of transactions (see [`leftovers`]): with one, what a
    /// killed transaction on any root left is cleaned by the next
    /// transaction that uses the same journal.
    pub journal: Option<PathBuf>,
    /// Where progress, notes and `-v` lines go.
    pub report: Report,
    /// More environment for every command the transaction runs in the
    /// target (the database's scripts and hooks): e.g. Debian's `INITRD=No`
    /// holds back the kernel's initramfs hook, for a caller that builds
    /// the initramfs once itself.
    pub script_env: Vec<(String, String)>,
    /// Directories bound into the target while the transaction works, as
    /// (the directory outside, the path in the root): a machine's shared
    /// store (`/home`, `/var/log`, ...), so that what scripts and kod write
    /// there lands where the booted system sees it. Unmounted before the
    /// commit and on rollback; the caller runs in a private mount
    /// namespace, so a killed kod leaves no mount behind.
    pub binds: Vec<(PathBuf, PathBuf)>,
}

/// What [`sync_root`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Synced {
    /// Entries written (files replaced, directories made).
    pub written: u64,
    /// Entries removed.
    pub removed: u64,
}

/// Brings the existing root `onto` to exactly what the root `from` holds
/// (a changed snapshot of it on the same file system), changing only
/// what differs, one file at a time with atomic replaces; mount points
/// and nested subvolumes are left alone. For a root that cannot be
/// swapped for another (the running system's), so not atomic as a whole:
/// run again after an interruption, it finishes. No lock is taken: the
/// caller holds the machine's.
pub fn sync_root(from: &Path, onto: &Path) -> Result<Synced, Error> {
    let done = tree::sync_tree(from, onto).map_err(error::io_error(
        format!("bring {} to", onto.display()),
        from,
    ))?;
    Ok(Synced {
        written: done.moved,
        removed: done.removed,
    })
}

/// A copy-on-write copy of the root `from` at `to` (absent), as a
/// snapshot transaction starts: a Btrfs snapshot when it can be one, else
/// a copy with reflinked files where the file system can (never hard
/// links). No lock is taken: the caller holds the machine's.
pub fn clone_root(from: &Path, to: &Path, report: &Report) -> Result<(), Error> {
    target::snapshot::clone(from, to, report)
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

/// Plans removing `names` from the Debian root `root` as its dpkg status
/// file says now, without a transaction (no lock, no overlay, no
/// privileges beyond reading the file): what `--dry-run` shows.
pub fn plan_removal(
    root: &Path,
    names: &[&str],
    with_dependents: bool,
    purge: bool,
) -> Result<RemovalPlan, Error> {
    Ok(kod_db::dpkg::plan_removal(
        root,
        names,
        with_dependents,
        purge,
    )?)
}
