//! dpkg's database (`/var/lib/dpkg`) as a [`PackageDb`]: what
//! `dpkg --unpack` would write, written by kod for packages kod-unpack
//! unpacked in parallel; `preinst install` run as dpkg runs it; packages
//! dpkg already knows handed to the root's own `dpkg --unpack`; one
//! `dpkg --configure -a` per transaction; removal through the root's dpkg;
//! apt's `extended_states` for what was installed as a dependency.
//!
//! [`read_installed`] is what the solver reads; [`plan_removal`] plans
//! from the root's status file alone (dry runs).

mod control;
mod lock;
mod records;
mod register;
mod removal;
mod scripts;
mod status;

use std::path::{Path, PathBuf};

use kod_report::{Report, Stage, Work};
use kod_unpack::{Conffiles, DebMeta, Ownership, UnpackOptions, merged_usr_dirs, setup_merged_usr};
use rayon::prelude::*;

pub use records::{InstalledError, StatusError, parse_installed, read_installed};
pub use removal::plan_removal;

use register::{Ident, ident};
use scripts::{NoServices, failed, run_checked, script_env};
use status::{ADMIN, INFO, Status};

use crate::{Error, PackageDb, PackageId, PackageState, RemovalPlan, Root, Sorted, Step, io_error};

/// Where dpkg keeps its status database inside a root.
pub const DPKG_STATUS: &str = status::STATUS;

/// How a new root's dpkg database is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapOptions {
    /// The native Debian architecture (`amd64`, ...).
    pub architecture: String,
    /// Foreign architectures dpkg may install (written to
    /// `/var/lib/dpkg/arch` after the native one).
    pub foreign_architectures: Vec<String>,
    /// Create the merged-/usr symlinks (`bin -> usr/bin`, ...) before
    /// unpacking, as bookworm and later expect.
    pub merged_usr: bool,
}

impl BootstrapOptions {
    /// Native `architecture`, no foreign ones, merged /usr.
    pub fn new(architecture: &str) -> BootstrapOptions {
        BootstrapOptions {
            architecture: architecture.to_string(),
            foreign_architectures: Vec::new(),
            merged_usr: true,
        }
    }
}

/// A `.deb` read before installing: its control part and identity.
#[derive(Debug)]
pub struct Deb {
    path: PathBuf,
    /// The archive's size in bytes.
    size: u64,
    meta: DebMeta,
    id: Ident,
}

/// The dpkg database of one root, as a transaction sees it.
#[derive(Debug)]
pub struct Dpkg {
    status: Status,
    /// The architectures dpkg accepts, native first.
    arch: Vec<String>,
}

/// The native architecture of the dpkg in `root` (its
/// `var/lib/dpkg/arch`), if it says.
pub fn root_architecture(root: &Path) -> Option<String> {
    let fs = Root::open(root).ok()?;
    architectures(&fs).into_iter().next()
}

/// `var/lib/dpkg/arch`, one architecture per line, native first.
fn architectures(fs: &Root) -> Vec<String> {
    let rel = format!("{ADMIN}/arch");
    fs.read(&rel)
        .ok()
        .flatten()
        .map(|b| {
            String::from_utf8_lossy(&b)
                .split_whitespace()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

impl Dpkg {
    /// Re-reads the status file after the root's own dpkg changed it.
    fn reload(&mut self, fs: &Root) -> Result<(), Error> {
        self.status = Status::load(fs)?.unwrap_or_default();
        Ok(())
    }

    /// Runs `preinst install` of each package that has one, in order, as
    /// dpkg does before unpacking a package that was not installed: from
    /// `/var/lib/dpkg/tmp.ci/`, where the package's control members are
    /// (debconf finds the package's name and templates there).
    fn run_preinsts(&self, step: &Step<'_>, debs: &[&Deb]) -> Result<(), Error> {
        let with: Vec<&&Deb> = debs
            .iter()
            .filter(|d| d.meta.member("preinst").is_some())
            .collect();
        if with.is_empty() {
            return Ok(());
        }
        let fs = step.fs;
        let _guard = NoServices::install(fs, step.report)?;
        let stage = step
            .report
            .stage(Stage::PreInstall, Work::items(with.len() as u64));
        let started = std::time::Instant::now();
        let tmp_ci = format!("{ADMIN}/tmp.ci");
        for deb in with.iter() {
            let id = &deb.id;
            let gone = |e| io_error("empty", fs.show(&tmp_ci))(e);
            fs.remove_tree(&tmp_ci).map_err(gone)?;
            fs.create_dir_all(&tmp_ci, 0o755)
                .map_err(io_error("create", fs.show(&tmp_ci)))?;
            for m in deb.meta.members.iter().filter(|m| !m.name.contains('/')) {
                let rel = format!("{tmp_ci}/{}", m.name);
                fs.write(&rel, &m.data, m.mode & 0o7777)
                    .map_err(io_error("write", fs.show(&rel)))?;
            }
            let script = format!("/{tmp_ci}/preinst");
            let argv = [script.as_str(), "install"];
            let env = script_env(&self.status, &id.name, &id.arch, "preinst");
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let ran = step
                .runner
                .run(&format!("preinst of {}", id.name), &argv, &env)?;
            fs.remove_tree(&tmp_ci).map_err(gone)?;
            if !ran.success {
                return Err(failed(
                    format!("the preinst of {} ({})", id.name, id.version),
                    step.runner,
                    &argv,
                    &env,
                    ran,
                ));
            }
            stage.advance(Work::items(1), &id.name);
        }
        step.report.verbose(|| {
            format!(
                "  ran {} preinsts in {:.3} s",
                with.len(),
                started.elapsed().as_secs_f64()
            )
        });
        Ok(())
    }
}

impl PackageDb for Dpkg {
    type Archive = Deb;
    type Setup = BootstrapOptions;

    const NAME: &'static str = "dpkg";
    const FAMILY: &'static str = "Debian";
    const MARK: &'static str = status::STATUS;

    /// What mmdebstrap's setup puts into an empty root for dpkg and apt:
    /// their directories, an empty `status`, `arch`, `/etc/fstab`, the
    /// frontend lock file, merged-/usr symlinks.
    fn create(fs: &Root, b: &BootstrapOptions, _report: &Report) -> Result<Dpkg, Error> {
        for d in [
            "etc/apt/apt.conf.d",
            "etc/apt/sources.list.d",
            "etc/apt/preferences.d",
            "var/cache/apt",
            "var/lib/apt/lists/partial",
            "var/lib/dpkg/triggers",
            "var/lib/dpkg/info",
            "var/lib/dpkg/alternatives",
            "var/lib/dpkg/updates",
            "etc/dpkg/dpkg.cfg.d",
            "var/log/apt",
        ] {
            fs.create_dir_all(d, 0o755)
                .map_err(io_error("create", fs.show(d)))?;
        }
        let mut arch = vec![b.architecture.clone()];
        arch.extend(b.foreign_architectures.iter().cloned());
        let mut arch_text = String::new();
        for a in &arch {
            arch_text.push_str(a);
            arch_text.push('\n');
        }
        for (rel, data) in [
            (status::STATUS, String::new()),
            ("var/lib/dpkg/arch", arch_text),
            (
                "etc/fstab",
                "# UNCONFIGURED FSTAB FOR BASE SYSTEM\n".to_string(),
            ),
        ] {
            fs.write(rel, data.as_bytes(), 0o644)
                .map_err(io_error("write", fs.show(rel)))?;
        }
        // As dpkg would leave it; kod's later transactions lock it.
        fs.write(lock::DPKG_FRONTEND_LOCK, b"", 0o640)
            .map_err(io_error("write", fs.show(lock::DPKG_FRONTEND_LOCK)))?;
        if b.merged_usr {
            setup_merged_usr(fs.path(), &merged_usr_dirs(&b.architecture))
                .map_err(io_error("set up merged /usr in", fs.path()))?;
        }
        Ok(Dpkg {
            status: Status::default(),
            arch,
        })
    }

    fn open(fs: &Root) -> Result<Option<Dpkg>, Error> {
        let Some(status) = Status::load(fs)? else {
            return Ok(None);
        };
        let mut arch = architectures(fs);
        if arch.is_empty() {
            // dpkg's own architecture, as dpkg would assume.
            arch.extend(
                status
                    .entries
                    .iter()
                    .find(|e| e.name == "dpkg" && e.is_installed())
                    .map(|e| e.arch.clone()),
            );
        }
        Ok(Some(Dpkg { status, arch }))
    }

    fn lock_tools(
        root: &Path,
        wait: bool,
        report: &Report,
    ) -> Result<Option<std::fs::File>, Error> {
        lock::frontend_lock(root, wait, report).map(Some)
    }

    fn packages(&self) -> Vec<PackageState> {
        self.status
            .entries
            .iter()
            .filter(|e| e.state != "not-installed")
            .map(|e| PackageState {
                id: PackageId {
                    name: e.name.clone(),
                    version: e.version().to_string(),
                    architecture: e.arch.clone(),
                },
                state: e.state.clone(),
            })
            .collect()
    }

    fn owners(&self, fs: &Root, path: &str) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        for e in self.status.entries.iter().filter(|e| e.is_installed()) {
            let rel = format!("{INFO}/{}.list", e.stem());
            let Some(list) = fs.read(&rel).map_err(io_error("read", fs.show(&rel)))? else {
                continue;
            };
            if String::from_utf8_lossy(&list).lines().any(|l| l == path) {
                out.push(e.name.clone());
            }
        }
        Ok(out)
    }

    fn read_archives(&self, archives: &[PathBuf]) -> Result<Vec<Deb>, Error> {
        archives
            .par_iter()
            .map(|path| {
                let meta = kod_unpack::read_meta(path)?;
                let id = ident(&meta, path)?;
                let size = std::fs::metadata(path)
                    .map_err(io_error("stat", path))?
                    .len();
                Ok(Deb {
                    path: path.clone(),
                    size,
                    meta,
                    id,
                })
            })
            .collect()
    }

    fn sort(&self, debs: &[Deb]) -> Result<Sorted, Error> {
        let mut sorted = Sorted::default();
        for (i, deb) in debs.iter().enumerate() {
            let id = &deb.id;
            if id.arch != "all" && !self.arch.contains(&id.arch) {
                return Err(Error::Package {
                    package: id.name.clone(),
                    archive: deb.path.clone(),
                    reason: format!(
                        "architecture {} is not one the root accepts ({}); add it with dpkg \
                         --add-architecture in the root first",
                        id.arch,
                        self.arch.join(", ")
                    ),
                });
            }
            let dup = sorted.new.iter().chain(&sorted.by_tool).any(|&j| {
                let o = &debs[j].id;
                o.name == id.name && (o.arch == id.arch || !o.same || !id.same)
            });
            if dup {
                return Err(Error::Package {
                    package: id.name.clone(),
                    archive: deb.path.clone(),
                    reason: "given twice in one installation; give each package once".into(),
                });
            }
            let pid = PackageId {
                name: id.name.clone(),
                version: id.version.clone(),
                architecture: id.arch.clone(),
            };
            match self.status.get(&id.name, &id.arch) {
                Some(e)
                    if e.is_installed() && e.state == "installed" && e.version() == id.version =>
                {
                    sorted.report.unchanged.push(pid);
                }
                Some(e) if e.is_present() => {
                    sorted.report.upgraded.push(pid);
                    sorted.by_tool.push(i);
                }
                _ => {
                    sorted.report.unpacked.push(pid);
                    sorted.new.push(i);
                }
            }
        }
        Ok(sorted)
    }

    fn before_unpack(&mut self, step: &Step<'_>, new: &[&Deb], fresh: bool) -> Result<(), Error> {
        if !fresh {
            return self.run_preinsts(step, new);
        }
        // Nothing could run before the files were there: the preinsts run
        // now, base-passwd's first (it creates /etc/passwd and /etc/group,
        // which the others need).
        let mut order = new.to_vec();
        order.sort_by_key(|d| d.id.name != "base-passwd");
        self.run_preinsts(step, &order)
    }

    /// Packages dpkg already knows: copied into the root and unpacked by
    /// the root's dpkg, which handles the old version's scripts, files and
    /// conffiles.
    fn install_with_tool(&mut self, step: &Step<'_>, debs: &[&Deb]) -> Result<(), Error> {
        if debs.is_empty() {
            return Ok(());
        }
        let fs = step.fs;
        let dir = "var/cache/kod-install";
        fs.create_dir_all(dir, 0o755)
            .map_err(io_error("create", fs.show(dir)))?;
        let mut inside = Vec::new();
        for deb in debs {
            let rel = format!("{dir}/{}_{}.deb", deb.id.name, deb.id.arch);
            let data = std::fs::read(&deb.path).map_err(io_error("read", &deb.path))?;
            fs.write(&rel, &data, 0o644)
                .map_err(io_error("write", fs.show(&rel)))?;
            inside.push(format!("/{rel}"));
        }
        let mut argv = vec![
            "/usr/bin/dpkg",
            "--unpack",
            "--force-confdef",
            "--force-confold",
        ];
        argv.extend(inside.iter().map(String::as_str));
        let ran = run_checked(
            fs,
            step.runner,
            step.report,
            "unpacking packages dpkg already knows".into(),
            &argv,
            &[],
            &|_| {},
        );
        fs.remove_tree(dir)
            .map_err(io_error("remove", fs.show(dir)))?;
        ran?;
        self.reload(fs)
    }

    fn unpack(&mut self, step: &Step<'_>, new: &[&Deb], fresh: bool) -> Result<(u64, u64), Error> {
        let fs = step.fs;
        let files: Vec<&Path> = new.iter().map(|d| d.path.as_path()).collect();
        // A new root gets its conffiles in place, as mmdebstrap's
        // extraction leaves them before dpkg runs: postinsts configured
        // before the package owning a conffile still find it (passwd's
        // needs login's /etc/login.defs). An existing root gets them as
        // `.dpkg-new`, for dpkg to weigh against what is there.
        let unpack_options = UnpackOptions {
            ownership: Ownership::Archive,
            conffiles: if fresh {
                Conffiles::Install
            } else {
                Conffiles::LeaveDpkgNew
            },
            data_cache: step.data_cache.map(Path::to_path_buf),
            // Read after the preinsts of an existing root, which may have
            // added some (a new root has none yet).
            diversions: status::diversions(fs)?,
            report: step.report.clone(),
        };
        step.report.verbose(|| {
            format!(
                "+ unpack {} packages into {}",
                files.len(),
                fs.path().display()
            )
        });
        let started = std::time::Instant::now();
        let unpacked = {
            let total = new.iter().map(|d| d.size).sum();
            // kod-unpack advances the stage as each package is done.
            let _stage = step
                .report
                .stage(Stage::Unpack, Work::new(new.len() as u64, total));
            kod_unpack::unpack_all(&files, fs.path(), &unpack_options)?
        };
        step.report.verbose(|| {
            format!(
                "  unpacked {} packages ({} files; {} from kept data) in {:.3} s",
                unpacked.len(),
                unpacked.iter().map(|u| u.files).sum::<u64>(),
                unpacked.iter().filter(|u| u.from_kept_data).count(),
                started.elapsed().as_secs_f64()
            )
        });
        if !fresh {
            register::check_files(fs, &self.status, &unpacked)?;
        }
        let interests = status::file_interests(fs)?;
        let started = std::time::Instant::now();
        register::register(fs, &mut self.status, &unpacked, &interests, fresh)?;
        step.report.verbose(|| {
            format!(
                "  registered them in {} in {:.3} s",
                fs.show(ADMIN).display(),
                started.elapsed().as_secs_f64()
            )
        });
        Ok((
            unpacked.iter().map(|u| u.files).sum(),
            unpacked.iter().map(|u| u.bytes).sum(),
        ))
    }

    /// Records in apt's `/var/lib/apt/extended_states` that `names` were
    /// installed automatically, as dependencies (`auto`), or on purpose:
    /// what `apt-get install` records, so that `apt autoremove` in the
    /// root knows what it may take out.
    fn mark_auto_installed(&mut self, fs: &Root, names: &[&str], auto: bool) -> Result<(), Error> {
        const STATES: &str = "var/lib/apt/extended_states";
        let old = fs
            .read(STATES)
            .map_err(io_error("read", fs.show(STATES)))?
            .unwrap_or_default();
        let old = String::from_utf8_lossy(&old);
        let mut stanzas: Vec<String> = control::parse_stanzas(&old)
            .map_err(|e| Error::Target {
                root: fs.path().to_path_buf(),
                reason: format!("{STATES}: {e}; fix or remove it"),
            })?
            .into_iter()
            .filter(|s| !s.get("Package").is_some_and(|p| names.contains(&p)))
            .map(|s| s.text)
            .collect();
        if auto {
            let native = self.arch.first().cloned().unwrap_or_default();
            for name in names {
                let arch = match self.status.entries.iter().find(|e| e.name == *name) {
                    Some(e) if e.arch != "all" => e.arch.clone(),
                    _ => native.clone(),
                };
                stanzas.push(format!(
                    "Package: {name}\nArchitecture: {arch}\nAuto-Installed: 1\n"
                ));
            }
        }
        let mut text = String::new();
        for s in stanzas {
            text.push_str(&s);
            text.push('\n');
        }
        fs.create_dir_all("var/lib/apt", 0o755)
            .map_err(io_error("create", fs.show("var/lib/apt")))?;
        fs.write(STATES, text.as_bytes(), 0o644)
            .map_err(io_error("write", fs.show(STATES)))
    }

    fn configure(&mut self, step: &Step<'_>) -> Result<(), Error> {
        let argv = [
            "/usr/bin/dpkg",
            "--configure",
            "-a",
            "--force-confdef",
            "--force-confold",
        ];
        let pending = self
            .status
            .entries
            .iter()
            .filter(|e| e.is_installed() && e.state != "installed")
            .count();
        let started = std::time::Instant::now();
        {
            let stage = step
                .report
                .stage(Stage::Configure, Work::items(pending as u64));
            // dpkg says `Setting up NAME (VERSION) ...` as it configures each.
            let setting_up = |line: &str| {
                if let Some(rest) = line.strip_prefix("Setting up ") {
                    let name = rest.split_whitespace().next().unwrap_or(rest);
                    stage.advance(Work::items(1), name);
                }
            };
            run_checked(
                step.fs,
                step.runner,
                step.report,
                "configuring the packages".into(),
                &argv,
                &[],
                &setting_up,
            )?;
        }
        step.report
            .verbose(|| format!("  configured in {:.3} s", started.elapsed().as_secs_f64()));
        self.reload(step.fs)
    }

    fn plan_removal(
        &self,
        root: &Path,
        names: &[&str],
        with_dependents: bool,
        purge: bool,
    ) -> Result<RemovalPlan, Error> {
        removal::plan(root, &self.status, names, with_dependents, purge)
    }

    fn remove(&mut self, step: &Step<'_>, plan: &RemovalPlan) -> Result<(), Error> {
        let names: Vec<&str> = plan.packages().collect();
        if names.is_empty() {
            return Ok(());
        }
        let action = if plan.purge { "--purge" } else { "--remove" };
        let mut argv = vec!["/usr/bin/dpkg", action];
        argv.extend(&names);
        run_checked(
            step.fs,
            step.runner,
            step.report,
            format!("removing {}", names.join(", ")),
            &argv,
            &[],
            &|_| {},
        )?;
        self.reload(step.fs)
    }
}
