//! Errors of the engine: each says what failed, on what, and what to do.

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A `DISTRO:RELEASE` spec that does not parse.
    #[error("{spec:?} is not DISTRO:RELEASE (e.g. debian:bookworm); {reason}")]
    BadSpec {
        /// What was given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A distribution whose repositories kod cannot read yet.
    #[error(
        "kod reads Debian repositories today; {distribution} repositories come with their \
         backend (the configuration or spec asked for {what})"
    )]
    Unsupported {
        /// The distribution.
        distribution: String,
        /// Where it was asked for.
        what: String,
    },
    /// The configuration has no repository kod can read.
    #[error(
        "the configuration has no Debian repository to read; add one, e.g. official = repos.debian_repo{{suite = \"bookworm\"}}"
    )]
    NoRepository,
    /// Loading repository metadata failed.
    #[error(transparent)]
    Debian(#[from] kod_repo::debian::Error),
    /// No solution, an unknown package, an unknown variant.
    #[error(transparent)]
    Solve(#[from] kod_solve::SolveError),
    /// The installed packages of a root could not be read.
    #[error(transparent)]
    Installed(#[from] kod_db::dpkg::InstalledError),
    /// A download failed.
    #[error(transparent)]
    Fetch(#[from] kod_fetch::FetchError),
    /// A transaction on the target failed (and was rolled back).
    #[error(transparent)]
    Install(#[from] kod_install::Error),
    /// The configuration is wrong.
    #[error(transparent)]
    Config(#[from] kod_config::ConfigError),
    /// A machine's generations (layout, record, default) failed.
    #[error(transparent)]
    Generations(#[from] kod_gen::Error),
    /// Settling the system failed.
    #[error(transparent)]
    Settle(#[from] kod_system::Error),
    /// A configuration key kod accepts but cannot carry out.
    #[error("{key}: {reason}")]
    Refused {
        /// The key.
        key: String,
        /// Why, and what to write instead.
        reason: String,
    },
    /// The machine's file system is not one kod can install on as asked.
    #[error("{}: {reason}", path.display())]
    Machine {
        /// The top level.
        path: std::path::PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The machine's file system has too little room for a rebuild.
    #[error(
        "not enough free space on {}: the rebuild needs about {} MiB (the new packages \
         unpacked, with room for the database and the record), {} MiB are free; make room \
         with `kod generations gc --keep N` or `kod generations delete N`",
        path.display(),
        needed >> 20,
        free >> 20
    )]
    NoSpace {
        /// The top level.
        path: std::path::PathBuf,
        /// Bytes the rebuild needs, about.
        needed: u64,
        /// Bytes free for kod.
        free: u64,
    },
    /// Building the initramfs failed.
    #[error("building the initramfs failed ({status}):\n{output}")]
    Initramfs {
        /// How the tool ended.
        status: String,
        /// The end of its output.
        output: String,
    },
    /// Writing the boot entries on the ESP failed.
    #[error(transparent)]
    Boot(#[from] kod_boot::BootError),
    /// A database step (a command in the target) failed.
    #[error(transparent)]
    Db(#[from] kod_db::Error),
    /// A file of the target could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl EngineError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> EngineError {
        EngineError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
