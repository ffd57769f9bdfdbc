//! The one error type of this crate.

use std::path::PathBuf;

/// Why a fetch failed. Every variant names what failed (URL, package label or
/// path) and its message says what to do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The server (or the local mirror) has no such file: HTTP 404 or 410, or
    /// a `file://` path that does not exist. Callers may fall back to another
    /// name (e.g. from `Packages.xz` to `Packages.gz`).
    #[error("{url}: not found; check the mirror URL, the suite and the component")]
    NotFound {
        /// The URL asked for.
        url: String,
    },
    /// The server answered with an HTTP status that is not success: at once
    /// for statuses that retrying cannot fix (e.g. 403), after every retry for
    /// server errors (5xx).
    #[error(
        "{url}: the server answered HTTP {status} (after {attempts} attempt(s)); \
         try again later or use another mirror"
    )]
    Status {
        /// The URL asked for.
        url: String,
        /// The last HTTP status received.
        status: u16,
        /// How many requests were made.
        attempts: u32,
    },
    /// The connection failed, timed out or broke off, on every attempt.
    #[error(
        "{url}: network error after {attempts} attempt(s): {reason}; \
         check the network connection and the mirror, or use another mirror"
    )]
    Network {
        /// The URL asked for.
        url: String,
        /// How many requests were made.
        attempts: u32,
        /// What went wrong on the last attempt.
        reason: String,
    },
    /// The TLS handshake failed: the certificate is not trusted, or the
    /// server does not speak TLS. Not retried.
    #[error(
        "{url}: TLS handshake failed: {reason}; if the certificate is right, add its \
         authority to the system's CA store (update-ca-certificates), or use an http:// mirror"
    )]
    Tls {
        /// The URL asked for.
        url: String,
        /// What the TLS library said.
        reason: String,
    },
    /// The URL cannot be fetched at all (unknown scheme, malformed).
    #[error("{url}: cannot fetch this URL: {reason}; use an http://, https:// or file:// URL")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading a `file://` URL failed for another reason than its absence.
    #[error("{url}: cannot read {}: {source}; check the local mirror's permissions", path.display())]
    Local {
        /// The URL given.
        url: String,
        /// The local path it names.
        path: PathBuf,
        /// The error from the file system.
        source: std::io::Error,
    },
    /// Writing or reading the download cache failed.
    #[error(
        "download cache {}: {source}; check its permissions and free space, \
         or point KOD_CACHE_DIR elsewhere", path.display()
    )]
    Cache {
        /// The file or directory in the cache.
        path: PathBuf,
        /// The error from the file system.
        source: std::io::Error,
    },
    /// A downloaded file does not have the SHA256 its signed index gives. The
    /// file was discarded; nothing was put in the cache.
    #[error(
        "{label}: {url} has SHA256 {actual}, but the signed index says {expected}; \
         the mirror is corrupt or out of sync: refresh the index (`kod pkg update`) \
         or use another mirror"
    )]
    HashMismatch {
        /// The package (or file) this was for, e.g. `libc6 2.36-9`.
        label: String,
        /// The URL it came from.
        url: String,
        /// The SHA256 the index gives, in hex.
        expected: String,
        /// The SHA256 of what was received, in hex.
        actual: String,
    },
    /// A downloaded file does not have the size its signed index gives. The
    /// file was discarded; nothing was put in the cache.
    #[error(
        "{label}: {url} is {actual} bytes, but the signed index says {expected}; \
         the mirror is corrupt or out of sync: refresh the index (`kod pkg update`) \
         or use another mirror"
    )]
    SizeMismatch {
        /// The package (or file) this was for.
        label: String,
        /// The URL it came from.
        url: String,
        /// The size the index gives.
        expected: u64,
        /// The size the server announced or sent.
        actual: u64,
    },
    /// A download with several mirror URLs failed on each of them.
    #[error("{label}: every mirror failed: {}", list(errors))]
    Mirrors {
        /// The package (or file) this was for.
        label: String,
        /// One error per URL tried, in order.
        errors: Vec<FetchError>,
    },
}

fn list(errors: &[FetchError]) -> String {
    errors
        .iter()
        .enumerate()
        .map(|(i, e)| format!("({}) {e}", i + 1))
        .collect::<Vec<_>>()
        .join("; ")
}
