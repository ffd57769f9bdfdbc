//! A configured machine's generation 0 on a mounted Btrfs top level
//! (`kod install --target TOP`): the base system and every planned
//! package in one transaction into `generations/0/rootfs`, the system
//! settled there (kod-system), fstab and `/.generation`, the stored copy
//! of the configuration without clear passwords, the kod binary, then the
//! commit, the record and the default pointer (kod-gen), in that order.
//! A failure leaves no generation and no default behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kod_config::{Config, SourceFile};
use kod_gen::{InstalledPackages, LockedPackage, Record, Top};
use kod_plan::Plan;
use kod_repo::{Freshness, Index};
use kod_report::{Report, Stage, Work};
use kod_root::Root;
use kod_solve::{Request, Resolution};
use serde::Serialize;

use crate::sources::Repositories;
use crate::{EngineError, fault, packages};

/// The Debian priority set a machine starts from, before its packages
/// (apt, dpkg, the shell and core utilities; the configuration adds the
/// rest, systemd included).
pub const BASE_VARIANT: &str = "required";

/// Where kod keeps the stable user and group ids of a machine, in the
/// shared store (`store/var/kod`, bound to `/var/kod`).
pub const ID_MAP: &str = "store/var/kod/ids.json";

/// Where an installed machine keeps its configuration (the sanitised
/// copy), so it can rebuild itself.
pub const CONFIG_DIR: &str = "etc/kod";

/// Where the kod binary that built a generation is kept in it.
pub const KOD_BINARY: &str = "usr/local/bin/kod";

/// What installing a machine will do, decided before anything is touched.
pub struct MachinePlan {
    /// The configuration.
    pub config: Config,
    /// Its source files, as read.
    pub files: Vec<SourceFile>,
    /// Its plan.
    pub plan: Plan,
    /// The repositories read.
    pub repositories: Repositories,
    /// Their index.
    pub index: Index,
    /// The resolved package set: the base and every planned package.
    pub resolution: Resolution,
}

/// What the generation a new one is built from had, for settling to take
/// out what the configuration dropped (nothing for a new machine).
#[derive(Debug, Clone, Copy, Default)]
pub struct Previous<'a> {
    /// Its record's `enabled_services`.
    pub enabled_services: &'a [String],
    /// The logins its plan configured.
    pub users: &'a [String],
}

/// What an install did.
#[derive(Debug, Clone, Serialize)]
pub struct MachineReport {
    /// The generation made.
    pub generation: u64,
    /// Its root.
    pub rootfs: PathBuf,
    /// Packages installed.
    pub packages: usize,
    /// The units the configuration enabled.
    pub enabled_services: Vec<String>,
    /// What settling wrote or ran, one line each.
    pub settled: Vec<String>,
    /// Whether the generation was made (false for a `-d` run, which only
    /// prints what it would run).
    pub committed: bool,
}

impl MachinePlan {
    /// Reads the repositories of `config` and resolves the base set plus
    /// the packages its plan installs from the default repository (those
    /// of other sources come with their backends: an error names them).
    pub fn new(
        config: Config,
        files: Vec<SourceFile>,
        plan: Plan,
        report: &Report,
    ) -> Result<MachinePlan, EngineError> {
        Self::resolve(config, files, plan, Freshness::Cached, None, report)
    }

    /// [`MachinePlan::new`] with the metadata as fresh as `freshness`
    /// says, keeping `installed` packages (see [`kod_solve::solve`]).
    pub fn resolve(
        config: Config,
        files: Vec<SourceFile>,
        plan: Plan,
        freshness: Freshness,
        installed: Option<&kod_db::Installed>,
        report: &Report,
    ) -> Result<MachinePlan, EngineError> {
        let repositories = Repositories::for_config(&config, None)?;
        if let Some((key, _)) = plan
            .packages
            .iter()
            .find(|(k, set)| **k != config.default_repo && !set.install.is_empty())
        {
            return Err(EngineError::Unsupported {
                distribution: plan.packages[key].kind.clone(),
                what: format!("packages from repos.{key}"),
            });
        }
        let index = repositories.load(freshness, report)?;
        let mut machine = MachinePlan {
            config,
            files,
            plan,
            repositories,
            index,
            resolution: Resolution::default(),
        };
        machine.resolution =
            packages::resolve(&machine.index, &machine.request()?, installed, report)?;
        Ok(machine)
    }

    /// The same plan resolved again, keeping `installed` packages.
    pub fn re_resolve(
        mut self,
        installed: Option<&kod_db::Installed>,
        report: &Report,
    ) -> Result<MachinePlan, EngineError> {
        self.resolution = packages::resolve(&self.index, &self.request()?, installed, report)?;
        Ok(self)
    }

    /// The packages the plan asks for from the default repository.
    pub fn wanted(&self) -> Vec<String> {
        self.plan
            .packages
            .get(&self.config.default_repo)
            .map(|set| set.install.clone())
            .unwrap_or_default()
    }

    /// The base set plus the wanted packages.
    fn request(&self) -> Result<Request, EngineError> {
        let base = kod_solve::variant_base(&self.index, BASE_VARIANT)?;
        Ok(Request::new(base, self.wanted())?)
    }

    /// The packages, as a bootstrap lists them.
    pub fn packages(&self) -> Vec<crate::bootstrap::PlannedPackage> {
        crate::bootstrap::planned_packages(&self.resolution, &self.index)
    }

    /// The files kod itself writes into the new root, besides what
    /// settling writes (listed by a dry run).
    pub fn own_files(&self) -> Vec<String> {
        let mut files = vec![
            "/etc/fstab".to_string(),
            "/.generation".to_string(),
            format!("/{KOD_BINARY}"),
            "/etc/apt/sources.list".to_string(),
        ];
        files.extend(
            self.relative_files()
                .into_iter()
                .map(|rel| format!("/{CONFIG_DIR}/{}", rel.display())),
        );
        files
    }

    /// Installs generation 0 on the Btrfs top level mounted at `top`:
    /// nothing is left there unless the whole install succeeds (a killed
    /// one is cleaned by the next run).
    pub fn install(
        &self,
        top: &Path,
        options: &kod_install::Options,
        report: &Report,
    ) -> Result<MachineReport, EngineError> {
        let top = Top::open(top)?.with_report(report.clone());
        top.prepare()?;
        // What a stopped kod left is removed only while no other kod works.
        let _lock = top.lock("install")?;
        remove_leftovers(&top, report)?;
        if let Some(n) = top.generations()?.last() {
            return Err(EngineError::Machine {
                path: top.path().to_path_buf(),
                reason: format!(
                    "already holds generation {n}; `kod install` makes generation 0 of a new \
                     machine (use `kod rebuild` for a new generation, or a fresh file system)"
                ),
            });
        }
        new_generation(&top, |n| self.build(&top, n, options, report))
    }

    fn build(
        &self,
        top: &Top,
        n: u64,
        options: &kod_install::Options,
        report: &Report,
    ) -> Result<MachineReport, EngineError> {
        let rootfs = top.create_rootfs(n)?;
        let debs = packages::fetch(
            &crate::bootstrap::downloads(&self.resolution, &self.index),
            report,
        )?;
        let arch = self.index.native_architecture().to_string();
        let options = self.transaction_options(top, options);
        let mut t = kod_install::Transaction::bootstrap(
            &rootfs,
            &kod_install::BootstrapOptions::new(&arch),
            &options,
        )?;
        t.install(&debs)?;
        fault::point("installed");
        t.configure()?;
        fault::point("configured");
        self.finish(t, top, n, Previous::default(), report)
    }

    /// The options of a transaction that builds a generation of `top`:
    /// the shared store bound in, and Debian's kernel hooks held back
    /// when there is a kernel (they would build the initramfs twice while
    /// configuring, the kernel's postinst then initramfs-tools' trigger;
    /// kod builds it once, when the system is settled).
    pub(crate) fn transaction_options(
        &self,
        top: &Top,
        options: &kod_install::Options,
    ) -> kod_install::Options {
        let mut options = options.clone();
        options.binds = top.shared_dirs();
        if self.plan.boot.kernel_package.is_some() {
            options
                .script_env
                .push(("INITRD".to_string(), "No".to_string()));
        }
        options
    }

    /// Finishes generation `n` in the configured transaction `t`: settles
    /// the system (disabling the units and removing the accounts of
    /// `previous` that this configuration does not have), builds the initramfs, writes fstab,
    /// `/.generation`, the configuration's copy and the kod binary, then
    /// commits: the root, the record, the default pointer, in that order.
    pub(crate) fn finish(
        &self,
        t: kod_install::Transaction,
        top: &Top,
        n: u64,
        previous: Previous<'_>,
        report: &Report,
    ) -> Result<MachineReport, EngineError> {
        let rootfs = top.rootfs(n);
        if t.options().debug {
            // Settling reads the configured root (its accounts, units),
            // which a debug run only prints the commands for.
            report.verbose(|| {
                "+ (debug) settle the system, write fstab, the configuration and the record: \
                 planned against the configured root, which a debug run does not make"
                    .to_string()
            });
            t.commit()?;
            return Ok(MachineReport {
                generation: n,
                rootfs,
                packages: self.resolution.packages.len(),
                enabled_services: Vec::new(),
                settled: Vec::new(),
                committed: false,
            });
        }
        self.repositories.write_into(t.fs())?;

        let ids_path = top.path().join(ID_MAP);
        let ids = kod_system::IdMap::load(&ids_path)?;
        let input = kod_system::Input::new(&self.config, &self.plan, n, &ids)
            .after(previous.enabled_services, previous.users);
        let settlement = kod_system::plan(t.fs(), &input)?;
        kod_system::apply(t.fs(), t.runner(), &settlement.changes, report)?;
        fault::point("settled");
        if self.plan.boot.kernel_package.is_some() {
            let modules_changed = settlement
                .changes
                .iter()
                .any(|c| c.key == kod_system::boot::KEY);
            initramfs(t.fs(), t.runner(), modules_changed, report)?;
        }

        let uuid =
            kod_root::btrfs::fs_uuid(top.path()).map_err(|e| EngineError::io(top.path(), e))?;
        let fs = t.fs();
        write(
            fs,
            "etc/fstab",
            kod_gen::fstab(&uuid, n, &[]).as_bytes(),
            0o644,
        )?;
        write(fs, ".generation", format!("{n}\n").as_bytes(), 0o644)?;
        let copy = self.sanitized(&settlement.password_hashes)?;
        write_config_copy(fs, &copy)?;
        write_kod_binary(fs)?;

        let installed = locked(&t.packages());
        let settled: Vec<String> = settlement.changes.iter().map(ToString::to_string).collect();
        let packages = installed.len();
        t.commit()?;
        fault::point("committed");
        settlement.ids.save(&ids_path)?;
        let record = self.record(installed, settlement.enabled_services.clone(), copy)?;
        top.making_default(n)?;
        record.write(top, n)?;
        fault::point("recorded");
        top.made_default(n)?;
        fault::point("defaulted");
        Ok(MachineReport {
            generation: n,
            rootfs,
            packages,
            enabled_services: settlement.enabled_services,
            settled,
            committed: true,
        })
    }

    /// The record of a generation of this plan with `packages` installed.
    pub(crate) fn record(
        &self,
        packages: Vec<LockedPackage>,
        enabled_services: Vec<String>,
        config_files: Vec<(PathBuf, Vec<u8>)>,
    ) -> Result<Record, EngineError> {
        Ok(Record {
            installed_packages: InstalledPackages {
                kernel: self.plan.boot.kernel_package.clone(),
                sources: self
                    .plan
                    .packages
                    .iter()
                    .map(|(k, set)| (k.clone(), set.install.clone()))
                    .collect(),
            },
            enabled_services,
            packages,
            configuration: serde_json::to_value(&self.plan).map_err(|e| EngineError::Machine {
                path: PathBuf::from(&self.plan.source),
                reason: format!("the plan does not serialise: {e}"),
            })?,
            kod_version: env!("CARGO_PKG_VERSION").to_string(),
            config_files,
        })
    }

    /// The configuration's files' paths relative to its directory, in the
    /// order of `files`.
    fn relative_files(&self) -> Vec<PathBuf> {
        let dir = self.config.source.parent().unwrap_or(Path::new(""));
        self.files
            .iter()
            .map(|f| {
                f.path
                    .strip_prefix(dir)
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|_| PathBuf::from(f.path.file_name().unwrap_or_default()))
            })
            .collect()
    }

    /// The stored copy: each file relative to the configuration's
    /// directory, clear passwords replaced by their hashes.
    pub(crate) fn sanitized(
        &self,
        hashes: &BTreeMap<String, String>,
    ) -> Result<Vec<(PathBuf, Vec<u8>)>, EngineError> {
        let clean = kod_config::sanitized(&self.files, &self.config, hashes)?;
        Ok(self
            .relative_files()
            .into_iter()
            .zip(clean)
            .map(|(r, f)| (r, f.text.into_bytes()))
            .collect())
    }
}

/// Removes what a stopped kod left on `top` (its lock held), saying so.
pub fn remove_leftovers(top: &Top, report: &Report) -> Result<(), EngineError> {
    for gone in top.remove_leftovers()? {
        report.note(&format!(
            "removed {}, left by a kod that was stopped",
            gone.display()
        ));
    }
    Ok(())
}

/// Gives the next generation number of `top` (its lock held) to `build`;
/// when it fails (or makes nothing, in a debug run) nothing of the
/// generation stays: the next run would remove it, but it should not lie
/// there until then.
pub(crate) fn new_generation(
    top: &Top,
    build: impl FnOnce(u64) -> Result<MachineReport, EngineError>,
) -> Result<MachineReport, EngineError> {
    // A machine whose first install failed still starts at 0.
    top.forget_unused_numbers()?;
    let n = top.allocate()?;
    fault::point("allocated");
    let result = build(n);
    if !result.as_ref().is_ok_and(|r| r.committed) {
        let _ = top.remove_leftovers();
        let _ = top.forget_unused_numbers();
    }
    result
}

/// The initramfs of the root's kernels, built once with the
/// distribution's tool (its hooks were held back during configure): made
/// for each kernel that has none (a new machine's, a new kernel's), and
/// every existing one updated when the configured modules changed.
fn initramfs(
    fs: &Root,
    runner: &dyn kod_db::Runner,
    modules_changed: bool,
    report: &Report,
) -> Result<(), EngineError> {
    let mut kernels = Vec::new();
    let boot = fs.path().join("boot");
    // Names only; a /boot that is no directory (a link out) has none.
    if std::fs::symlink_metadata(&boot).is_ok_and(|m| m.is_dir()) {
        for entry in std::fs::read_dir(&boot).map_err(|e| EngineError::io(&boot, e))? {
            let name = entry.map_err(|e| EngineError::io(&boot, e))?.file_name();
            if let Some(v) = name.to_str().and_then(|n| n.strip_prefix("vmlinuz-")) {
                kernels.push(v.to_string());
            }
        }
    }
    kernels.sort();
    let has_initrd = |v: &str| fs.exists(format!("boot/initrd.img-{v}")).unwrap_or(false);
    let missing: Vec<&String> = kernels.iter().filter(|v| !has_initrd(v)).collect();
    let update = modules_changed && missing.len() < kernels.len();
    if missing.is_empty() && !update {
        return Ok(());
    }
    let _stage = report.stage(Stage::Initramfs, Work::items(kernels.len() as u64));
    let mut runs: Vec<Vec<&str>> = Vec::new();
    if update {
        runs.push(vec!["update-initramfs", "-u", "-k", "all"]);
    }
    for v in &missing {
        runs.push(vec!["update-initramfs", "-c", "-k", v.as_str()]);
    }
    for argv in runs {
        let ran = runner.run("build the initramfs", &argv, &[])?;
        if !ran.success {
            return Err(EngineError::Initramfs {
                status: ran.status,
                output: ran.tail.join("\n"),
            });
        }
    }
    Ok(())
}

/// The running kod binary in the root, unless the same build is there
/// already (a rebuild's snapshot has its generation's; a release build is
/// about 100 MB, most of what a small rebuild would write): same size and
/// same GNU build id (the linker's hash of the whole file). Read from
/// `/proc/self/exe`, which is the running binary also when its file was
/// replaced or removed since it started.
fn write_kod_binary(fs: &Root) -> Result<(), EngineError> {
    let me = Path::new("/proc/self/exe");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e| EngineError::io(&path, e)
    };
    let mine = std::fs::File::open(me).map_err(io(me))?;
    let there = match fs.open_at(
        KOD_BINARY,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NOFOLLOW,
    ) {
        Ok(fd) => Some(std::fs::File::from(fd)),
        Err(rustix::io::Errno::NOENT) => None,
        Err(e) => return Err(EngineError::io(&fs.show(KOD_BINARY), e.into())),
    };
    if let Some(there) = there {
        let size = |f: &std::fs::File| f.metadata().map(|m| m.len()).ok();
        let id = build_id(&mine);
        if id.is_some() && size(&mine) == size(&there) && id == build_id(&there) {
            return Ok(());
        }
    }
    let binary = std::fs::read(me).map_err(io(me))?;
    fs.create_dir_all("usr/local/bin", 0o755)
        .map_err(|e| EngineError::io(&fs.show("usr/local/bin"), e))?;
    write(fs, KOD_BINARY, &binary, 0o755)
}

/// The GNU build id of a 64-bit little-endian ELF file (its
/// `NT_GNU_BUILD_ID` note), read from its headers only.
fn build_id(file: &std::fs::File) -> Option<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let read = |at: u64, len: usize| -> Option<Vec<u8>> {
        let mut buf = vec![0; len];
        file.read_exact_at(&mut buf, at).ok()?;
        Some(buf)
    };
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    let u64_at = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
    let head = read(0, 64)?;
    if &head[..4] != b"\x7fELF" || head[4] != 2 || head[5] != 1 {
        return None;
    }
    let (phoff, phentsize, phnum) = (
        u64_at(&head, 0x20),
        u16_at(&head, 0x36),
        u16_at(&head, 0x38),
    );
    for i in 0..u64::from(phnum) {
        let ph = read(phoff + i * u64::from(phentsize), 56)?;
        const PT_NOTE: u32 = 4;
        if u32_at(&ph, 0) != PT_NOTE {
            continue;
        }
        let (offset, size) = (u64_at(&ph, 8), u64_at(&ph, 32));
        if size > 1 << 16 {
            continue;
        }
        let notes = read(offset, size as usize)?;
        let mut at = 0;
        while at + 12 <= notes.len() {
            let (namesz, descsz, kind) = (
                u32_at(&notes, at) as usize,
                u32_at(&notes, at + 4) as usize,
                u32_at(&notes, at + 8),
            );
            let name = at + 12;
            let desc = name + namesz.div_ceil(4) * 4;
            let end = desc + descsz.div_ceil(4) * 4;
            if end > notes.len() {
                break;
            }
            const NT_GNU_BUILD_ID: u32 = 3;
            if kind == NT_GNU_BUILD_ID && &notes[name..name + namesz] == b"GNU\0" {
                return Some(notes[desc..desc + descsz].to_vec());
            }
            at = end;
        }
    }
    None
}

/// The configuration's copy in `/etc/kod`, each file 0600 (it may hold
/// password hashes).
fn write_config_copy(fs: &Root, copy: &[(PathBuf, Vec<u8>)]) -> Result<(), EngineError> {
    for (rel, text) in copy {
        let path = Path::new(CONFIG_DIR).join(rel);
        if let Some(dir) = path.parent() {
            fs.create_dir_all(dir, 0o755)
                .map_err(|e| EngineError::io(&fs.show(dir), e))?;
        }
        write(fs, &path, text, 0o600)?;
    }
    Ok(())
}

/// The lock list of the packages a root's database has installed (not
/// what only has configuration files left).
pub(crate) fn locked(packages: &[kod_install::PackageState]) -> Vec<LockedPackage> {
    packages
        .iter()
        .filter(|p| p.state == "installed")
        .map(|p| LockedPackage {
            name: p.id.name.clone(),
            version: p.id.version.clone(),
            arch: p.id.architecture.clone(),
        })
        .collect()
}

fn write(root: &Root, path: impl AsRef<Path>, bytes: &[u8], mode: u32) -> Result<(), EngineError> {
    let path = path.as_ref();
    root.write(path, bytes, mode)
        .map_err(|e| EngineError::io(&root.show(path), e))
}

#[cfg(test)]
mod tests {
    use super::build_id;

    #[test]
    fn the_build_id_is_the_linkers_note_and_none_for_other_files() {
        let me = std::fs::File::open("/proc/self/exe").unwrap();
        let id = build_id(&me).expect("the test binary has a build id");
        assert!(id.len() >= 8, "{id:?}");
        // readelf says the same (of this binary's file: its own
        // /proc/self/exe is readelf).
        let out = std::process::Command::new("readelf")
            .arg("-n")
            .arg(std::env::current_exe().unwrap())
            .output()
            .unwrap();
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!("Build ID: {hex}")),
            "{hex}"
        );
        let text = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(text.path(), b"#!/bin/sh\necho not an ELF file\n").unwrap();
        assert_eq!(build_id(&std::fs::File::open(text.path()).unwrap()), None);
    }
}
