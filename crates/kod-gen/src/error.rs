//! The errors of kod-gen: each names what failed, on which path, and what
//! to do.

use std::io;
use std::path::PathBuf;

/// A kod-gen result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong with a machine's generations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file operation failed.
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        /// What kod was doing ("read", "create the subvolume", …).
        what: &'static str,
        /// On what.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
    /// The path cannot be a machine's top level on the directory backend
    /// (it is not on Btrfs, and not a directory that could hold one).
    #[error(
        "{} cannot hold a machine's generations: {reason}; name the Btrfs top level of the machine's disk (mounted with subvolid=5) for bootable generations, or a directory on another disk file system (XFS, ext4) for generations that do not boot",
        path.display()
    )]
    Unfit {
        /// The path given.
        path: PathBuf,
        /// Why not: not a directory, the running system's `/`, a virtual
        /// file system.
        reason: String,
    },
    /// The path is on Btrfs but is not its top level.
    #[error(
        "{} is not the top level of its Btrfs file system ({reason}): mount the file system with -o subvolid=5 and name that mount point",
        path.display()
    )]
    NotTopLevel {
        /// The path given.
        path: PathBuf,
        /// Why: a directory inside a subvolume, or which subvolume.
        reason: String,
    },
    /// Something in the layout is there but of the wrong kind.
    #[error("{} {problem}: move it away, then run kod again", path.display())]
    Layout {
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A generation that does not exist.
    #[error("generation {generation} does not exist ({} is missing)", path.display())]
    NoGeneration {
        /// Its number.
        generation: u64,
        /// Its directory.
        path: PathBuf,
    },
    /// A generation whose record is not complete: a write was interrupted.
    #[error(
        "generation {generation} is not committed: its record is incomplete ({} is missing); it is what an interrupted kod left, and `kod` removes it on its next run",
        marker.display()
    )]
    Incomplete {
        /// Its number.
        generation: u64,
        /// The completion marker that is missing.
        marker: PathBuf,
    },
    /// Writing the record of a generation that is already committed.
    #[error(
        "generation {generation} is already committed ({} exists): a committed record is never rewritten; make a new generation",
        marker.display()
    )]
    Committed {
        /// Its number.
        generation: u64,
        /// Its completion marker.
        marker: PathBuf,
    },
    /// Deleting the default generation.
    #[error(
        "generation {generation} is the default generation (the next boot starts it): make another generation the default first (roll back), then delete it"
    )]
    IsDefault {
        /// Its number.
        generation: u64,
    },
    /// Deleting the generation the running system booted.
    #[error(
        "generation {generation} is the booted generation (the running system started from it): boot another generation first, then delete it"
    )]
    IsBooted {
        /// Its number.
        generation: u64,
    },
    /// Deleting the generation `/` is now.
    #[error(
        "generation {generation} is the current generation (the running system's / is it): boot another generation first, then delete it"
    )]
    IsCurrent {
        /// Its number.
        generation: u64,
    },
    /// A numbered directory in `generations/` that kod did not make.
    #[error(
        "{} is not a generation kod made (it holds neither record-complete nor .kod-building; a KodOS generation?): kod leaves it alone; remove it yourself if it is not needed",
        path.display()
    )]
    NotKods {
        /// Its number.
        generation: u64,
        /// Its directory.
        path: PathBuf,
    },
    /// A file kod owns does not say what it should.
    #[error("{}: {problem}; remove or repair the file, then run kod again", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line where there is one.
        problem: String,
    },
    /// A configuration file name in a record that would leave `config/`.
    #[error(
        "configuration file name {}: it must be a relative path without `..`, `.` or empty parts",
        path.display()
    )]
    ConfigPath {
        /// The name given.
        path: PathBuf,
    },
    /// A file system is mounted below a generation kod was to remove.
    #[error(
        "cannot remove {}: {mount} is mounted inside it; unmount it (umount -R {}), then run kod again",
        path.display(), path.display()
    )]
    Mounted {
        /// What was to be removed.
        path: PathBuf,
        /// The mount point inside it.
        mount: String,
    },
    /// The machine lock is held by another kod (and the caller did not
    /// wait).
    #[error("{} is held by {holder}: wait for it to finish, then run kod again", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// Who holds it (`kod pid 12 (rebuild)`).
        holder: String,
    },
    /// No default generation to go back to.
    #[error(
        "no previous default generation to go back to (the pointer's history holds no committed generation): name one"
    )]
    NoPrevious,
}

/// A closure making an [`Error::Io`] for `what` on `path`.
pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { what, path, source }
}
