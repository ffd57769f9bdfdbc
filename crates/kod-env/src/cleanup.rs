//! `kod env cleanup`: the cached packages no environment uses.
//!
//! A cached `.deb` is in use when some environment has that package, at
//! that version, installed (its dpkg database says so). Other cached files
//! (repository metadata, packages of other distributions' formats) are
//! kept: this only ever removes Debian packages.

use std::path::PathBuf;

use kod_fetch::Cache;
use serde::Serialize;

use crate::error::EnvError;
use crate::status::{Installed, dpkg_installed};
use crate::store::Env;

/// A cached package no environment has installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unused {
    /// The cached file.
    pub path: PathBuf,
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Bytes.
    pub size: u64,
}

/// What a cleanup removes and keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Cleanup {
    /// Packages to remove.
    pub unused: Vec<Unused>,
    /// Cached packages some environment uses.
    pub in_use: usize,
    /// Bytes the removal frees.
    pub bytes: u64,
}

/// The cached packages of `cache` that none of `envs` has installed.
pub fn plan(cache: &Cache, envs: &[Env]) -> Result<Cleanup, EnvError> {
    let mut installed: Vec<Installed> = Vec::new();
    for env in envs {
        let status = env.root().join("var/lib/dpkg/status");
        if let Ok(text) = std::fs::read_to_string(&status) {
            installed.extend(dpkg_installed(&text));
        }
    }
    let files = cache.files().map_err(|e| EnvError::Cache(e.to_string()))?;
    let mut out = Cleanup::default();
    for (path, size) in files {
        // Not a .deb (repository metadata): not ours to judge.
        let Ok(meta) = kod_unpack::read_meta(&path) else {
            continue;
        };
        let name = meta.control.package().to_string();
        let version = meta.control.get("Version").unwrap_or("").to_string();
        if installed
            .iter()
            .any(|i| i.name == name && i.version == version)
        {
            out.in_use += 1;
        } else {
            out.bytes += size;
            out.unused.push(Unused {
                path,
                name,
                version,
                size,
            });
        }
    }
    Ok(out)
}

/// Removes what `plan` found unused.
pub fn apply(cache: &Cache, plan: &Cleanup) -> Result<(), EnvError> {
    let paths: Vec<PathBuf> = plan.unused.iter().map(|u| u.path.clone()).collect();
    cache
        .remove(&paths)
        .map_err(|e| EnvError::Cache(e.to_string()))
}
