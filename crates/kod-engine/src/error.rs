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
}
