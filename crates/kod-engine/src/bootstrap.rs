//! A new root filesystem of a distribution in a directory: resolve the
//! variant's base set (plus includes), fetch, unpack, register, configure.

use std::path::{Path, PathBuf};

use kod_fetch::Download;
use kod_repo::{Freshness, Index};
use kod_report::Report;
use kod_root::Root;
use kod_solve::{Request, Resolution};
use serde::Serialize;

use crate::sources::{DistroSpec, Repositories};
use crate::{EngineError, packages};

/// What a bootstrap will install, decided before anything is touched.
pub struct BootstrapPlan {
    /// The distribution and release.
    pub spec: DistroSpec,
    /// The mmdebstrap variant (`minbase`, `required`, ...).
    pub variant: String,
    /// The repositories read.
    pub repositories: Repositories,
    /// Their index.
    pub index: Index,
    /// The resolved package set.
    pub resolution: Resolution,
}

/// One package of a plan, for people and JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedPackage {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Architecture.
    pub architecture: String,
    /// Download size in bytes.
    pub size: u64,
}

/// What a bootstrap did.
#[derive(Debug, Clone, Serialize)]
pub struct BootstrapReport {
    /// The new root.
    pub root: PathBuf,
    /// Packages installed.
    pub packages: usize,
    /// Bytes downloaded or taken from the cache.
    pub download_size: u64,
    /// Whether the root was really created (false for a debug run).
    pub committed: bool,
}

impl BootstrapPlan {
    /// Reads the repositories of `spec` and resolves `variant` plus
    /// `includes` (`NAME`, `NAME=VERSION`, `NAME/SUITE`).
    pub fn new(
        spec: &DistroSpec,
        variant: &str,
        includes: &[String],
        mirror: Option<&str>,
        report: &Report,
    ) -> Result<BootstrapPlan, EngineError> {
        let repositories = Repositories::for_spec(spec, mirror)?;
        let index = repositories.load(Freshness::Cached, report)?;
        let base = kod_solve::variant_base(&index, variant)?;
        let request = Request::new(base, includes)?;
        let resolution = packages::resolve(&index, &request, None, report)?;
        Ok(BootstrapPlan {
            spec: spec.clone(),
            variant: variant.to_string(),
            repositories,
            index,
            resolution,
        })
    }

    /// The packages, sorted by name.
    pub fn packages(&self) -> Vec<PlannedPackage> {
        planned_packages(&self.resolution, &self.index)
    }

    /// The downloads of the plan, each checked against the signed index.
    pub fn downloads(&self) -> Vec<Download> {
        downloads(&self.resolution, &self.index)
    }

    /// Builds the root in `dir` (absent or empty): nothing is left there
    /// unless the whole bootstrap succeeds.
    pub fn run(
        &self,
        dir: &Path,
        options: &kod_install::Options,
        report: &Report,
    ) -> Result<BootstrapReport, EngineError> {
        let debs = packages::fetch(&self.downloads(), report)?;
        let arch = self.index.native_architecture().to_string();
        let mut t = kod_install::Transaction::bootstrap(
            dir,
            &kod_install::BootstrapOptions::new(&arch),
            options,
        )?;
        t.install(&debs)?;
        self.repositories.write_into(t.fs())?;
        copy_host_files(t.fs())?;
        let committed = t.commit()?;
        Ok(BootstrapReport {
            root: dir.to_path_buf(),
            packages: self.resolution.packages.len(),
            download_size: self.resolution.download_size,
            committed: committed.committed,
        })
    }
}

/// The packages of `resolution`, sorted by name, with their sizes.
pub(crate) fn planned_packages(resolution: &Resolution, index: &Index) -> Vec<PlannedPackage> {
    resolution
        .packages
        .iter()
        .map(|p| PlannedPackage {
            name: p.name.to_string(),
            version: p.version.to_string(),
            architecture: p.architecture.to_string(),
            size: p
                .record
                .map(|id| index.record(id).location.size)
                .unwrap_or(0),
        })
        .collect()
}

/// The downloads of `resolution`, each checked against the signed index.
pub(crate) fn downloads(resolution: &Resolution, index: &Index) -> Vec<Download> {
    resolution
        .packages
        .iter()
        .filter_map(|p| p.record)
        .map(|id| packages::download(index, id))
        .collect()
}

/// The host's resolv.conf and hostname, as mmdebstrap copies them, so the
/// new root can reach the network and knows a name.
fn copy_host_files(root: &Root) -> Result<(), EngineError> {
    for file in ["etc/resolv.conf", "etc/hostname"] {
        let host = Path::new("/").join(file);
        let Ok(text) = std::fs::read(&host) else {
            continue;
        };
        // A package may have shipped it as a symlink (systemd-resolved).
        let shipped = root
            .exists(file)
            .map_err(|e| EngineError::io(&root.show(file), e))?;
        if !shipped {
            root.write(file, &text, 0o644)
                .map_err(|e| EngineError::io(&root.show(file), e))?;
        }
    }
    Ok(())
}
