//! A machine's next generation (`kod rebuild -n`): a copy-on-write
//! snapshot of the default generation becomes generation N+1 (highest
//! number ever used + 1); the difference between the new plan and the
//! default's record is applied there — packages by resolved closure
//! (installed, upgraded, purged), the system settled again (units the
//! configuration no longer enables disabled), the initramfs made for a new
//! kernel or changed modules — then the root is committed, the record
//! written and the default pointer moved, in that order. The default
//! generation (and a running system on it) is only read. A rebuild whose
//! plan equals the default's record makes no generation.
//!
//! Without `update`, versions installed in the default generation are
//! kept (a package is upgraded only where the new closure needs it); with
//! it, the repositories are refreshed and every package of the closure
//! is taken at its newest version (apt's full-upgrade).

use std::path::Path;

use kod_config::{Config, SourceFile};
use kod_gen::{MachineLock, Record, RecordDiff, Top};
use kod_plan::Plan;
use kod_repo::Freshness;
use kod_report::Report;
use kod_root::Root;
use kod_solve::Action;
use serde::Serialize;

use crate::machine::{MachinePlan, MachineReport};
use crate::{EngineError, fault, packages};

/// One package that changes between the default generation and the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageChange {
    /// The package.
    pub name: String,
    /// `install`, `upgrade`, `downgrade` or `remove`.
    pub action: &'static str,
    /// The version installed now (none for an install).
    pub from: Option<String>,
    /// The version of the next generation (none for a removal).
    pub to: Option<String>,
}

/// What a rebuild will do, decided before anything is written.
pub struct RebuildPlan {
    /// The configuration's plan with the next generation's resolution.
    pub machine: MachinePlan,
    /// The default generation it starts from.
    pub from: u64,
    /// Its record.
    pub current: Record,
    /// The packages that change.
    pub packages: Vec<PackageChange>,
    /// What settling would write or run, planned against the default
    /// generation's root: exact when no package changes; `None` when the
    /// packages change in a way it depends on (it is planned again on the
    /// new root once they are in).
    pub settle: Option<Vec<String>>,
    /// The next generation's record, as far as it is known before
    /// building.
    pub next: Record,
    /// The default's record against it (packages, services, users, the
    /// configuration's files).
    pub diff: RecordDiff,
}

impl RebuildPlan {
    /// Resolves `plan` against generation `from` of `top` (the default
    /// when `None`): its installed versions kept unless `update`.
    pub fn new(
        top: &Top,
        from: Option<u64>,
        config: Config,
        files: Vec<SourceFile>,
        plan: Plan,
        update: bool,
        report: &Report,
    ) -> Result<RebuildPlan, EngineError> {
        let from = match from {
            Some(n) => n,
            None => top.default()?.ok_or_else(|| EngineError::Machine {
                path: top.path().to_path_buf(),
                reason: "has no default generation to rebuild from; install one with \
                     `kod install --target`"
                    .into(),
            })?,
        };
        let current = Record::read(top, from)?;
        let root = top.rootfs(from);
        let freshness = if update {
            Freshness::Refresh
        } else {
            Freshness::Cached
        };
        let mut machine = MachinePlan::resolve(config, files, plan, freshness, None, report)?;
        let arch = machine.index.native_architecture().to_string();
        let installed = kod_db::dpkg::read_installed(&root, &arch)?;
        if !update {
            // The same closure, with what the default has installed kept.
            let kept = installed.only(|name| machine.resolution.get(name).is_some(), &arch);
            machine = machine.re_resolve(Some(&kept), report)?;
        }
        let packages = changes(&installed, &machine);
        let settle = planned_settling(top, from, &machine, &current, packages.is_empty(), report)?;
        let hashes = settle
            .as_ref()
            .map(|s| s.password_hashes.clone())
            .unwrap_or_default();
        let next = machine.record(
            next_packages(&machine),
            settle
                .as_ref()
                .map(|s| s.enabled_services.clone())
                .unwrap_or_else(|| kod_system::services::enabled_units(&machine.plan)),
            match &settle {
                Some(_) => machine.sanitized(&hashes)?,
                // Without a settlement (planned once the packages are in)
                // no password hashes are made yet: a configuration with a
                // clear password has no stored copy to compare until then.
                None => machine.sanitized(&hashes).unwrap_or_default(),
            },
        )?;
        let diff = RecordDiff::between(&current, &next);
        Ok(RebuildPlan {
            machine,
            from,
            current,
            packages,
            settle: settle.map(|s| s.changes.iter().map(ToString::to_string).collect()),
            next,
            diff,
        })
    }

    /// Whether the next generation would equal the default: no package,
    /// setting, service, user or configuration file changes.
    pub fn is_noop(&self) -> bool {
        self.packages.is_empty()
            && self.settle.as_ref().is_some_and(Vec::is_empty)
            && self.diff.is_empty()
            && same_plan(&self.current.configuration, &self.next.configuration)
    }

    /// Builds generation N+1 on `top` (whose lock `lock` is, taken before
    /// the plan was made and leftovers removed under it) and makes it
    /// the default; `in_place`, it then becomes the root the rebuild
    /// started from, which is kept under its number
    /// ([`crate::in_place`]). On failure nothing of it stays and the
    /// generation it started from, its record and the pointer are as
    /// they were.
    pub fn build(
        &self,
        top: &Top,
        _lock: &MachineLock,
        in_place: bool,
        options: &kod_install::Options,
        report: &Report,
    ) -> Result<MachineReport, EngineError> {
        self.check_space(top)?;
        let made = crate::machine::new_generation(top, |n| {
            self.build_generation(top, n, options, report)
        })?;
        if in_place && made.committed {
            crate::in_place::apply(top, self.from, made.generation, report)?;
        }
        Ok(made)
    }

    /// About what the next generation takes beyond what it shares with
    /// the default: the packages installed or upgraded, unpacked (the
    /// index's installed sizes), and room for the database, the record
    /// and the metadata the snapshot copies on write.
    pub fn space_needed(&self) -> u64 {
        const ROOM: u64 = 64 << 20;
        let m = &self.machine;
        let unpacked: u64 = m
            .resolution
            .changes()
            .filter_map(|p| p.record)
            .map(|id| m.index.record(id).installed_size.unwrap_or(0) << 10)
            .sum();
        unpacked + ROOM
    }

    /// Fails before anything is written when the file system of `top`
    /// has less room than [`RebuildPlan::space_needed`].
    fn check_space(&self, top: &Top) -> Result<(), EngineError> {
        let st =
            rustix::fs::statvfs(top.path()).map_err(|e| EngineError::io(top.path(), e.into()))?;
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        let mut needed = self.space_needed();
        if top.backend() == kod_gen::Backend::Directory {
            // The next root is a copy (reflinked where the file system
            // can, which this cannot tell beforehand): room for all of it.
            let root = top.rootfs(self.from);
            needed += tree_size(&root).map_err(|e| EngineError::io(&root, e))?;
        }
        if free < needed {
            return Err(EngineError::NoSpace {
                path: top.path().to_path_buf(),
                needed,
                free,
            });
        }
        Ok(())
    }

    fn build_generation(
        &self,
        top: &Top,
        n: u64,
        options: &kod_install::Options,
        report: &Report,
    ) -> Result<MachineReport, EngineError> {
        let m = &self.machine;
        let downloads: Vec<_> = m
            .resolution
            .changes()
            .filter_map(|p| p.record)
            .map(|id| packages::download(&m.index, id))
            .collect();
        let debs = packages::fetch(&downloads, report)?;
        let options = m.transaction_options(top, options);
        let mut t =
            kod_install::Transaction::snapshot(&top.rootfs(self.from), &top.rootfs(n), &options)?;
        fault::point("snapshot");
        if !debs.is_empty() {
            t.install(&debs)?;
            let wanted = m.wanted();
            let (asked, pulled): (Vec<&PackageChange>, Vec<&PackageChange>) = self
                .packages
                .iter()
                .filter(|c| c.action == "install")
                .partition(|c| wanted.contains(&c.name));
            let names = |v: &[&PackageChange]| -> Vec<String> {
                v.iter().map(|c| c.name.clone()).collect()
            };
            let (asked, pulled) = (names(&asked), names(&pulled));
            t.mark_auto_installed(&asked.iter().map(String::as_str).collect::<Vec<_>>(), false)?;
            t.mark_auto_installed(&pulled.iter().map(String::as_str).collect::<Vec<_>>(), true)?;
        }
        let gone: Vec<&str> = self
            .packages
            .iter()
            .filter(|c| c.action == "remove")
            .map(|c| c.name.as_str())
            .collect();
        if !gone.is_empty() {
            // Purged: what the configuration no longer has leaves no
            // configuration files behind in the new generation either.
            let removal = t.plan_removal(&gone, false, true)?;
            t.remove(&removal)?;
        }
        fault::point("installed");
        t.configure()?;
        fault::point("configured");
        let users = configured_users(&self.current);
        let files = helper_files(&self.current, top);
        let previous = crate::machine::Previous {
            enabled_services: &self.current.enabled_services,
            users: &users,
            files: &files,
        };
        m.finish(t, top, n, previous, report)
    }
}

/// The bytes the files under `dir` take on its file system (mount points
/// below it left out).
fn tree_size(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let device = std::fs::symlink_metadata(dir)?.dev();
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.dev() != device {
                continue;
            }
            total += meta.blocks() * 512;
            if meta.is_dir() {
                todo.push(entry.path());
            }
        }
    }
    Ok(total)
}

/// The packages of the next generation, as its record lists them.
fn next_packages(m: &MachinePlan) -> Vec<kod_gen::LockedPackage> {
    m.resolution
        .packages
        .iter()
        .map(|p| kod_gen::LockedPackage {
            name: p.name.to_string(),
            version: p.version.to_string(),
            arch: p.architecture.to_string(),
        })
        .collect()
}

/// The packages installed in the default generation's root against the
/// next generation's, sorted by name.
fn changes(installed: &kod_db::Installed, m: &MachinePlan) -> Vec<PackageChange> {
    let mut out: Vec<PackageChange> = m
        .resolution
        .packages
        .iter()
        .filter_map(|p| {
            let from = installed.get(&p.name).map(|c| c.version().to_string());
            let to = Some(p.version.to_string());
            let action = match (&p.action, &from) {
                (_, None) => "install",
                (Action::Keep, Some(_)) => return None,
                (_, Some(f)) if Some(f) == to.as_ref() => return None,
                (Action::Downgrade { .. }, Some(_)) => "downgrade",
                (_, Some(_)) => "upgrade",
            };
            Some(PackageChange {
                name: p.name.to_string(),
                action,
                from,
                to,
            })
        })
        .collect();
    let mut gone: Vec<&str> = installed
        .packages()
        .iter()
        .map(|c| c.name())
        .filter(|name| m.resolution.get(name).is_none())
        .collect();
    gone.sort_unstable();
    gone.dedup();
    out.extend(gone.into_iter().map(|name| PackageChange {
        name: name.to_string(),
        action: "remove",
        from: installed.get(name).map(|c| c.version().to_string()),
        to: None,
    }));
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Settling planned against the default generation's root with the
/// shared store bound in (read only: nothing is applied), as generation
/// `from` itself so that only real changes show; with the password
/// hashes it keeps (in the settlement). `None` when packages change and the plan fails there
/// (a unit of a package not installed yet).
fn planned_settling(
    top: &Top,
    from: u64,
    m: &MachinePlan,
    current: &Record,
    packages_unchanged: bool,
    report: &Report,
) -> Result<Option<kod_system::Settlement>, EngineError> {
    let root_path = top.rootfs(from);
    let root = Root::open(&root_path).map_err(|e| EngineError::io(&root_path, e))?;
    let _bound = kod_install::Bound::mount(&root, &top.shared_dirs(), report, false)?;
    let ids = kod_system::IdMap::load(&top.path().join(crate::machine::ID_MAP))?;
    let users = configured_users(current);
    let files = helper_files(current, top);
    let input = kod_system::Input::new(&m.config, &m.plan, from, &ids)
        .after(&current.enabled_services, &users)
        .after_files(&files);
    match kod_system::plan(&root, &input) {
        Ok(s) => Ok(Some(s)),
        Err(_) if !packages_unchanged => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The files the install-stage helpers of the plan in `record` wrote in
/// the generation's own root: what the shared store holds (`/home`,
/// `/root`, ...) every generation sees, so it is not the generation's to
/// remove.
fn helper_files(record: &Record, top: &Top) -> Vec<std::path::PathBuf> {
    let shared: Vec<std::path::PathBuf> = top.shared_dirs().into_iter().map(|(_, at)| at).collect();
    record.configuration["stages"]["install"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|step| match step["kind"].as_str()? {
            "write-file" => step["path"].as_str(),
            "copy-file" => step["target"].as_str(),
            _ => None,
        })
        .map(std::path::PathBuf::from)
        .filter(|p| !shared.iter().any(|s| p.starts_with(s)))
        .collect()
}

/// The logins the plan in `record` configured.
fn configured_users(record: &Record) -> Vec<String> {
    record.configuration["users"]
        .as_object()
        .map(|u| u.keys().cloned().collect())
        .unwrap_or_default()
}

/// Whether two plans (as records keep them) are the same, leaving out
/// where the configuration was read from.
fn same_plan(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    let strip = |v: &serde_json::Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("source");
        }
        v
    };
    strip(a) == strip(b)
}
