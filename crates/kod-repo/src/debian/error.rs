//! What goes wrong while loading Debian repositories, each case saying what
//! failed, on what, and what to do next.

use std::path::PathBuf;

use super::packages::PackagesError;

/// Why loading a Debian repository failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No mirror was given and none could be found.
    #[error(
        "no Debian mirror configured: pass one explicitly (--mirror URL), set it in the \
         configuration, set KOD_DEBIAN_MIRROR, or add a `deb` entry to the host's apt sources \
         (/etc/apt/sources.list or /etc/apt/sources.list.d/)"
    )]
    NoMirror,
    /// A keyring could not be read.
    #[error(
        "cannot read the keyring {path}: {reason}; give a binary or ASCII-armoured OpenPGP \
         keyring as signed_by, or install debian-archive-keyring"
    )]
    Keyring {
        /// The keyring file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The InRelease file does not carry a valid signature.
    #[error(
        "{url}: the signature is not valid ({reason}); the file was altered or corrupted on \
         the way: retry later or use another mirror, and never trust this repository without \
         a signature"
    )]
    BadSignature {
        /// The InRelease URL.
        url: String,
        /// What sequoia said about each signature.
        reason: String,
    },
    /// The InRelease file is signed, but by no key of the keyring.
    #[error(
        "{url}: signed by {issuers}, which is not in {keyrings}; if you trust this repository, \
         add its key to a keyring file and name it in signed_by (for Debian releases: install \
         or update debian-archive-keyring)"
    )]
    UnknownKey {
        /// The InRelease URL.
        url: String,
        /// The key ids or fingerprints the signatures name.
        issuers: String,
        /// The keyrings that were searched.
        keyrings: String,
    },
    /// The Release is past its Valid-Until date.
    #[error(
        "{url}: the Release file expired on {valid_until} (it is now {now}); the mirror is \
         stale or the cached copy is old: run `kod pkg update`, or use another mirror (to \
         use it anyway, knowing it may be outdated or replayed: KOD_CHECK_VALID_UNTIL=no)"
    )]
    Expired {
        /// The InRelease URL.
        url: String,
        /// The Valid-Until date, as written.
        valid_until: String,
        /// The current time, in the same form.
        now: String,
    },
    /// The signed Release file is malformed.
    #[error("{url}: malformed Release file: {reason}; the mirror is broken: use another mirror")]
    BadRelease {
        /// The InRelease URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The mirror has no such suite.
    #[error(
        "suite {suite:?} not found at {mirror} ({url} does not exist); check the suite name \
         (e.g. bookworm, trixie, sid) and the mirror URL"
    )]
    UnknownSuite {
        /// The mirror URL.
        mirror: String,
        /// The suite asked for.
        suite: String,
        /// The InRelease URL tried.
        url: String,
    },
    /// The signed Release lists no package index for a component and
    /// architecture.
    #[error(
        "{url}: the Release lists no Packages index for {component}/binary-{architecture}; \
         check the component (main, contrib, non-free, non-free-firmware) and the architecture"
    )]
    NoPackagesIndex {
        /// The InRelease URL.
        url: String,
        /// The component asked for.
        component: String,
        /// The architecture asked for.
        architecture: String,
    },
    /// A package index that the signed Release lists is missing on the
    /// mirror.
    #[error(
        "{url}: not found on the mirror although the signed Release lists it; the mirror is \
         being updated or broken: retry later, run `kod pkg update`, or use another mirror"
    )]
    MissingIndex {
        /// The URL of the index.
        url: String,
    },
    /// Downloading failed (including a package index whose size or hash
    /// differs from what the signed Release says).
    #[error("{what}: {source}")]
    Fetch {
        /// What was being fetched (e.g. `bookworm main/binary-amd64/Packages.xz`).
        what: String,
        /// The download error.
        #[source]
        source: kod_fetch::FetchError,
    },
    /// Offline mode, and the cache lacks something.
    #[error(
        "{what} is not in the cache ({path}) and the load is offline; run `kod pkg update` \
         while online"
    )]
    NotCached {
        /// What is missing.
        what: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A package index could not be decompressed.
    #[error("{what}: cannot decompress: {reason}; run `kod pkg update` to download it again")]
    Decompress {
        /// The index file.
        what: String,
        /// What went wrong.
        reason: String,
    },
    /// A package index does not parse.
    #[error("{what}: {source}; the mirror is broken: use another mirror")]
    Packages {
        /// The index file.
        what: String,
        /// Where and why.
        #[source]
        source: PackagesError,
    },
    /// Reading or writing the cache failed.
    #[error(
        "cache {path}: {source}; check its permissions and free space, or point KOD_CACHE_DIR \
         elsewhere"
    )]
    Cache {
        /// The file or directory.
        path: PathBuf,
        /// The error from the file system.
        #[source]
        source: std::io::Error,
    },
    /// The repository specification is not usable.
    #[error("{0}")]
    Spec(String),
}

impl Error {
    pub(crate) fn cache(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Cache { path, source }
    }
}
