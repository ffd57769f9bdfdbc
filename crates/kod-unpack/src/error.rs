//! What can go wrong while unpacking, and where.

use std::io;
use std::path::PathBuf;

use crate::Changes;

/// Why one archive entry (or the archive itself) could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum Reason {
    /// A system call failed.
    #[error("{op} failed: {source}")]
    Io {
        /// The operation, e.g. `create` or `rename into place`.
        op: &'static str,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// The path has a `..` component.
    #[error("the path has a `..` component; the archive is malformed or malicious, refusing it")]
    DotDot,
    /// Resolving the path (or the hard-link target) left the root through a
    /// symlink (absolute, or with enough `..` to climb out).
    #[error(
        "resolving `{path}` goes through a symlink that points outside the target root; \
         refusing to write through it (the archive is malformed or malicious)"
    )]
    OutsideRoot {
        /// The path (relative to the root) whose resolution left the root.
        path: String,
    },
    /// A hard link names a target that is not a regular file this package
    /// installed earlier in the same archive.
    #[error(
        "hard link to `{target}`, which is not a file this package installed before it; \
         refusing to link to anything else (it may lie outside the root)"
    )]
    HardLinkTarget {
        /// The link target as the archive gives it.
        target: String,
    },
    /// An entry would replace something in the root that it cannot replace.
    #[error("`{path}` already exists as {existing}, which this {new} cannot replace")]
    Replace {
        /// The path, relative to the root.
        path: String,
        /// What is there now (`a directory`, `a file`, ...).
        existing: &'static str,
        /// What the archive wants there.
        new: &'static str,
    },
    /// chown was refused and the caller did not allow skipping ownership.
    #[error(
        "setting owner {uid}:{gid} was not permitted ({source}); run as root, or pass \
         `Ownership::SkipIfNotPermitted` to keep the unpacking user's ownership"
    )]
    Ownership {
        /// The owner the archive asks for.
        uid: u32,
        /// The group the archive asks for.
        gid: u32,
        /// The system error (EPERM).
        #[source]
        source: io::Error,
    },
    /// Two packages of one batch ship the same path and neither declares
    /// `Replaces` on the other.
    #[error(
        "`{path}` is shipped by both {other} and {this} and neither declares Replaces on \
         the other (fix the package set, or unpack them in separate transactions)"
    )]
    Conflict {
        /// The path, as the archive of the reporting package names it.
        path: String,
        /// The package that claimed the path first.
        other: String,
        /// The package reporting the conflict.
        this: String,
    },
    /// A directory in one package is a non-directory in another.
    #[error("`{path}` is a directory in {dir_pkg} but not in {other_pkg}")]
    DirConflict {
        /// The path.
        path: String,
        /// The package shipping a directory there.
        dir_pkg: String,
        /// The package shipping something else there.
        other_pkg: String,
    },
    /// The file is not a Debian binary package, or a member is malformed.
    #[error("{0}")]
    Format(String),
    /// A tar entry type this unpacker does not write.
    #[error("unsupported tar entry type {0:?}")]
    EntryType(tar::EntryType),
    /// Another package of the batch failed, so this one stopped early.
    #[error("stopped because another package of the batch failed")]
    Cancelled,
}

impl Reason {
    pub(crate) fn io(op: &'static str, source: impl Into<io::Error>) -> Self {
        Reason::Io {
            op,
            source: source.into(),
        }
    }
}

/// One package that could not be unpacked: which, where, and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot unpack {package} ({archive}){}{}: {reason}",
    .member.as_deref().map(|m| format!(", member {m}")).unwrap_or_default(),
    .path.as_deref().map(|p| format!(", entry `{p}`")).unwrap_or_default(),
    archive = .archive.display())]
pub struct Failure {
    /// The package name (from its control file), or the archive's file
    /// name when the control part could not be read.
    pub package: String,
    /// The archive file.
    pub archive: PathBuf,
    /// The `ar` member being read (`data.tar.xz`, ...), when known.
    pub member: Option<String>,
    /// The entry of that member, as the archive names it, when known.
    pub path: Option<String>,
    /// What went wrong.
    #[source]
    pub reason: Reason,
}

/// Unpacking a batch failed.
///
/// `failures` holds every package that failed (in batch order, never
/// empty; packages that merely stopped because of another failure are not
/// listed). `changes` holds, per package of the batch, what was written
/// into the root before it stopped, so that the caller can roll back. No
/// `.dpkg-new` file of a failed or stopped package is left behind.
#[derive(Debug, thiserror::Error)]
#[error("{}", describe(self))]
pub struct UnpackError {
    /// Every package that failed, first in batch order first.
    pub failures: Vec<Failure>,
    /// What each package of the batch (in batch order) changed in the root.
    pub changes: Vec<Changes>,
}

fn describe(e: &UnpackError) -> String {
    let created: usize = e.changes.iter().map(|c| c.created.len()).sum();
    let first = e
        .failures
        .first()
        .map_or_else(|| "unpacking failed".to_string(), ToString::to_string);
    let more = match e.failures.len() {
        0 | 1 => String::new(),
        n => format!(" (and {} more failing packages)", n - 1),
    };
    format!(
        "{first}{more}; {created} paths had been created in the root (UnpackError::changes \
         lists them for rollback)"
    )
}
