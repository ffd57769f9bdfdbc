//! kod-fetch has one job: getting files over HTTP(S) or from `file://`
//! mirrors. Metadata is fetched whole and conditionally
//! ([`Client::get_conditional`]); packages are downloaded in parallel,
//! streamed to disk while hashed, checked against the size and SHA256 of
//! their signed index, and kept in a content-addressed cache shared by every
//! target, with retries, resume of partial files and progress output.
#![deny(missing_docs)]

mod client;
mod error;

pub use client::{Client, ClientOptions, Conditional, Validators};
pub use error::FetchError;

use std::path::PathBuf;

/// The download cache directory: `KOD_CACHE_DIR` when set; else
/// `/var/cache/kod` when running as root; else `$XDG_CACHE_HOME/kod`
/// (or `~/.cache/kod`).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KOD_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/cache/kod");
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("kod");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".cache/kod"),
        None => {
            std::env::temp_dir().join(format!("kod-cache-{}", rustix::process::geteuid().as_raw()))
        }
    }
}
