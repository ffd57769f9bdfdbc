//! What can go wrong in a transaction, on what, and what to do about it.

use std::io;
use std::path::PathBuf;

use kod_unpack::UnpackError;

/// A transaction failed. Unless the variant says otherwise, the target was
/// left as it was before the transaction began.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another process holds the target's lock and the caller asked not to
    /// wait.
    #[error(
        "another kod ({holder}) is working on {root} (lock {lock}); wait until it is done, \
         or let kod wait for it"
    )]
    Locked {
        /// The target root.
        root: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// Who holds it, as far as the lock file says (`pid 1234`).
        holder: String,
    },
    /// A system call on a path failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done (`create`, `read`, `rename`, ...).
        op: String,
        /// The path it was done on.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// The target is not something this operation can work on.
    #[error("{root}: {reason}")]
    Target {
        /// The target root.
        root: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A step of the target's package database failed (a package, a
    /// script, a file conflict, a removal that would break others...).
    #[error(transparent)]
    Db(#[from] kod_db::Error),
    /// The transaction committed only in part: a commit was interrupted and
    /// could not be completed. The next transaction on the target finishes
    /// it.
    #[error(
        "committing to {root} failed half-way: {source}; the remaining changes are kept in \
         {pending} and the next kod run on {root} completes them"
    )]
    Commit {
        /// The target root.
        root: PathBuf,
        /// Where the rest of the changes wait.
        pending: PathBuf,
        /// What failed.
        #[source]
        source: Box<Error>,
    },
}

impl From<UnpackError> for Error {
    fn from(e: UnpackError) -> Self {
        Error::Db(kod_db::Error::from(e))
    }
}

/// Builds an [`Error::Io`].
pub(crate) fn io_error(
    op: impl Into<String>,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> Error {
    let op = op.into();
    let path = path.into();
    move |source| Error::Io { op, path, source }
}
