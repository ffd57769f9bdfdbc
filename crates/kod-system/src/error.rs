//! What can go wrong while settling, on what, and what to do about it.

use std::io;
use std::path::PathBuf;

/// A step of settling could not be planned or applied. Messages never
/// hold a clear-text password.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file operation in the root (or on the host) failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The configured timezone is not in the root's zoneinfo.
    #[error(
        "{key}: unknown timezone {zone:?}: {path} does not exist in the target; use a name \
         from the tz database (`Europe/Berlin`, `UTC`) and make sure the tzdata package is \
         installed"
    )]
    UnknownTimezone {
        /// The configuration key.
        key: String,
        /// The zone as configured.
        zone: String,
        /// The zoneinfo file that is missing, in the root.
        path: PathBuf,
    },
    /// A value of the configuration cannot be used as written.
    #[error("{key}: {value:?} {reason}")]
    BadValue {
        /// The configuration key.
        key: String,
        /// The value (never a password).
        value: String,
        /// What is wrong and what to write instead.
        reason: String,
    },
    /// A file a step needs is not in the root.
    #[error("{key}: {path} is missing in the target; {hint}")]
    Missing {
        /// The configuration key.
        key: String,
        /// The file, in the root.
        path: PathBuf,
        /// What to do.
        hint: String,
    },
    /// A service has settings, but kod knows no configuration file for it.
    #[error(
        "services.{service}.settings.{setting}: kod does not know where the settings of \
         service {service:?} go (it knows openssh's sshd_config.d); write its configuration \
         file with a helper (`configs.copy_file`) instead"
    )]
    UnknownSettingsPlace {
        /// The service's key.
        service: String,
        /// The first of its settings.
        setting: String,
    },
    /// A unit the configuration enables does not exist in the root.
    #[error(
        "{key}: unit {unit} is not in the target (looked in /etc/systemd/system, \
         /usr/lib/systemd/system and /lib/systemd/system); check its name \
         (`service_name`) and that its package is installed"
    )]
    UnitNotFound {
        /// The configuration key.
        key: String,
        /// The unit.
        unit: String,
    },
    /// An account file of the root cannot be read as one.
    #[error("{path}: line {line}: {reason}; repair the file in the target")]
    BadAccountFile {
        /// The file, in the root.
        path: PathBuf,
        /// The line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// No id is free for a new user or group.
    #[error("no free id from 1000 to 59999 for {name}: the target's accounts use them all")]
    NoFreeId {
        /// The user or group.
        name: String,
    },
    /// Hashing a clear password failed (the password itself is not shown).
    #[error("users.{user}.password: cannot hash the password: {reason}")]
    Hash {
        /// The user.
        user: String,
        /// Why.
        reason: String,
    },
    /// A helper effect names an owner that is no account of the root.
    #[error("{key}: owner {owner:?} is no user of the target; add it under `users`")]
    UnknownOwner {
        /// The configuration key.
        key: String,
        /// The owner.
        owner: String,
    },
    /// Something the configuration asks for that kod cannot do yet.
    #[error("{key}: {what} is not supported yet; {hint}")]
    Unsupported {
        /// The configuration key.
        key: String,
        /// What.
        what: String,
        /// What to do instead.
        hint: String,
    },
    /// The id map beside the generations cannot be read or written.
    #[error("id map {path}: {reason}; fix or remove the file (ids are then chosen anew)")]
    IdMap {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A command run in the target failed.
    #[error("{why}: `{command}` {status}: {output}")]
    Command {
        /// Why it ran (its configuration key and purpose).
        why: String,
        /// The command as shown.
        command: String,
        /// How it ended.
        status: String,
        /// Its last lines.
        output: kod_db::Output,
    },
    /// The runner could not run a command.
    #[error(transparent)]
    Runner(#[from] kod_db::Error),
}

/// A closure mapping an `io::Error` on `path` to [`Error::Io`].
pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}
