//! kod-fetch has one job: getting files over HTTP(S) or from `file://`
//! mirrors. Metadata is fetched whole and conditionally
//! ([`Client::get_conditional`]); packages are downloaded in parallel
//! ([`Fetcher::fetch_all`]), streamed to disk while hashed, checked against
//! the size and SHA256 of their signed index, and kept in a content-addressed
//! [`Cache`] shared by every target, with retries and resume of partial
//! files. Progress goes to a [`kod_report::Report`]; this crate draws
//! nothing.
#![deny(missing_docs)]

mod cache;
mod client;
mod error;
mod fetcher;
mod resolver;

pub use cache::Cache;
pub use client::{Client, ClientOptions, Conditional, Validators};
pub use error::FetchError;
pub use fetcher::{Download, Fetcher};

use std::path::{Path, PathBuf};

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

/// Where decompressed data parts of packages are kept beside the download
/// cache in `cache_dir` (by kod-unpack; files named `<SHA256 of the .deb>.*`,
/// removed with the package by [`Cache::remove`]).
pub fn kept_data_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("unpacked")
}

/// A SHA256 in lower-case hex.
pub fn to_hex(sha256: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(64);
    for b in sha256 {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Parses a SHA256 written in hex (64 digits, either case), as indices give
/// it; `None` when it is not one.
pub fn sha256_from_hex(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        // SHA256 of the empty string, as sha256sum prints it.
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let bytes = sha256_from_hex(empty).unwrap();
        assert_eq!(bytes[0], 0xe3);
        assert_eq!(to_hex(&bytes), empty);
        assert_eq!(sha256_from_hex(&empty.to_uppercase()), Some(bytes));
        assert_eq!(sha256_from_hex(&empty[1..]), None);
        assert_eq!(sha256_from_hex(&format!("{}g", &empty[1..])), None);
    }
}
