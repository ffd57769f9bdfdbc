//! Installing packages into, and removing them from, an existing root.

use std::path::{Path, PathBuf};

use kod_fetch::{Cache, Client, ClientOptions, Download, Fetcher};
use kod_install::{RemovalPlan, Transaction};
use kod_repo::debian::host_architecture;
use kod_repo::{Freshness, Index};
use kod_report::{Report, Stage, Work};
use kod_solve::{Action, Request, Resolution};
use serde::Serialize;

use crate::EngineError;
use crate::sources::Repositories;

/// What installing packages into a root will change, decided before
/// anything is touched.
pub struct InstallPlan {
    /// The root.
    pub root: PathBuf,
    /// The repositories the root reads.
    pub repositories: Repositories,
    /// Their index.
    pub index: Index,
    /// The packages asked for (names).
    pub requested: Vec<String>,
    /// The resolution: every package of the root afterwards.
    pub resolution: Resolution,
}

/// One change of a plan, for people and JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedChange {
    /// Package name.
    pub name: String,
    /// The version it will have.
    pub version: String,
    /// `install`, `upgrade` or `downgrade`.
    pub action: &'static str,
    /// The version it had, for upgrades and downgrades.
    pub from: Option<String>,
    /// Whether it was asked for (not pulled in as a dependency).
    pub requested: bool,
    /// Download size in bytes.
    pub size: u64,
}

/// The native architecture of the dpkg in `root` (the host's when the
/// root does not say).
pub fn root_architecture(root: &Path) -> String {
    kod_db::dpkg::root_architecture(root).unwrap_or_else(|| host_architecture().to_string())
}

impl InstallPlan {
    /// Resolves `requests` (`NAME`, `NAME=VERSION`, `NAME/SUITE`) against
    /// the repositories of the root's apt sources, keeping what is
    /// installed.
    pub fn new(
        root: &Path,
        requests: &[String],
        report: &Report,
    ) -> Result<InstallPlan, EngineError> {
        let arch = root_architecture(root);
        let repositories = Repositories::of_root(root, &arch)?;
        let index = repositories.load(Freshness::Cached, report)?;
        let installed = kod_db::dpkg::read_installed(root, &arch)?;
        let request = Request::new(Vec::<String>::new(), requests)?;
        let resolution = resolve(&index, &request, Some(&installed), report)?;
        Ok(InstallPlan {
            root: root.to_path_buf(),
            repositories,
            index,
            requested: request.packages.iter().map(|p| p.name.clone()).collect(),
            resolution,
        })
    }

    /// The packages that change, sorted by name.
    pub fn changes(&self) -> Vec<PlannedChange> {
        self.resolution
            .changes()
            .map(|p| {
                let (action, from) = match &p.action {
                    Action::Install => ("install", None),
                    Action::Upgrade { from } => ("upgrade", Some(from.to_string())),
                    Action::Downgrade { from } => ("downgrade", Some(from.to_string())),
                    Action::Keep => ("keep", None),
                };
                PlannedChange {
                    name: p.name.to_string(),
                    version: p.version.to_string(),
                    action,
                    from,
                    requested: self.requested.iter().any(|r| r == p.name.as_str()),
                    size: p
                        .record
                        .map(|id| self.index.record(id).location.size)
                        .unwrap_or(0),
                }
            })
            .collect()
    }

    /// Downloads, unpacks, registers and configures the changes in one
    /// transaction; the root is unchanged if any step fails.
    pub fn run(
        &self,
        options: &kod_install::Options,
        report: &Report,
    ) -> Result<Vec<PlannedChange>, EngineError> {
        let changes = self.changes();
        if changes.is_empty() {
            return Ok(changes);
        }
        let debs = self.fetch(report)?;
        let mut t = Transaction::begin(&self.root, options)?;
        self.install_into(&mut t, &debs, &changes)?;
        t.commit()?;
        Ok(changes)
    }

    /// Installs the changes into a throwaway overlay on the root
    /// ([`Transaction::ephemeral`], its work directory in `work_dir`) and
    /// keeps its upper layer, configured, at `layer` (absent, on
    /// `work_dir`'s file system): what `kod shell` runs on. `unpacked` is
    /// called between unpacking and configuring, when there are changes.
    /// The root is never written.
    pub fn run_into_layer(
        &self,
        work_dir: &Path,
        layer: &Path,
        unpacked: impl FnOnce(&Transaction) -> Result<(), EngineError>,
        options: &kod_install::Options,
        report: &Report,
    ) -> Result<Vec<PlannedChange>, EngineError> {
        let changes = self.changes();
        let debs = self.fetch(report)?;
        let mut t = Transaction::ephemeral(&self.root, work_dir, Some(layer), options)?;
        if !changes.is_empty() {
            self.install_into(&mut t, &debs, &changes)?;
            unpacked(&t)?;
        }
        t.commit()?;
        Ok(changes)
    }

    /// The archives of the changes, from the shared cache (downloaded
    /// there first when missing).
    fn fetch(&self, report: &Report) -> Result<Vec<PathBuf>, EngineError> {
        let downloads: Vec<Download> = self
            .resolution
            .changes()
            .filter_map(|p| p.record)
            .map(|id| download(&self.index, id))
            .collect();
        fetch(&downloads, report)
    }

    /// Installs `debs` in `t` and tells apt which of `changes` were asked
    /// for and which were pulled in.
    fn install_into(
        &self,
        t: &mut Transaction,
        debs: &[PathBuf],
        changes: &[PlannedChange],
    ) -> Result<(), EngineError> {
        t.install(debs)?;
        let requested: Vec<&str> = changes
            .iter()
            .filter(|c| c.requested)
            .map(|c| c.name.as_str())
            .collect();
        let pulled: Vec<&str> = changes
            .iter()
            .filter(|c| !c.requested && c.action == "install")
            .map(|c| c.name.as_str())
            .collect();
        t.mark_auto_installed(&requested, false)?;
        t.mark_auto_installed(&pulled, true)?;
        Ok(())
    }
}

/// What removing `names` from `root` takes out (with the installed
/// packages that depend on them when `with_dependents`); an error names
/// the packages that would break otherwise. Planned from the root's status
/// file, without a transaction, so a dry run needs no privileges;
/// `_options` is not needed for that.
pub fn plan_removal(
    root: &Path,
    names: &[String],
    with_dependents: bool,
    purge: bool,
    _options: &kod_install::Options,
) -> Result<RemovalPlan, EngineError> {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    Ok(kod_install::plan_removal(
        root,
        &names,
        with_dependents,
        purge,
    )?)
}

/// Carries out a removal plan through the root's own dpkg, in one
/// transaction.
pub fn remove(
    root: &Path,
    plan: &RemovalPlan,
    options: &kod_install::Options,
) -> Result<(), EngineError> {
    let mut t = Transaction::begin(root, options)?;
    t.remove(plan)?;
    t.commit()?;
    Ok(())
}

/// Resolves through the shared solver, reported as the resolve stage (its
/// count is the packages of the result).
pub(crate) fn resolve(
    index: &Index,
    request: &Request,
    installed: Option<&kod_db::Installed>,
    report: &Report,
) -> Result<Resolution, EngineError> {
    let stage = report.stage(Stage::Resolve, Work::default());
    let resolution = kod_solve::solve(index, request, installed)?;
    stage.advance(Work::items(resolution.packages.len() as u64), "");
    Ok(resolution)
}

/// The download of a record, checked against the signed index.
pub(crate) fn download(index: &Index, id: kod_repo::RecordId) -> Download {
    let r = index.record(id);
    Download {
        urls: vec![index.download_url(r)],
        size: r.location.size,
        sha256: r.location.sha256.0,
        label: format!("{} {}", r.name, r.version),
    }
}

/// Fetches into the shared cache; returns the cached files in order.
pub(crate) fn fetch(downloads: &[Download], report: &Report) -> Result<Vec<PathBuf>, EngineError> {
    let cache = Cache::open(&kod_fetch::cache_dir())?;
    let fetcher =
        Fetcher::new(Client::new(ClientOptions::default()), cache).with_report(report.clone());
    Ok(fetcher.fetch_all(downloads)?)
}
