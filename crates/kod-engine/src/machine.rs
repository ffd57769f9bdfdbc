//! A configured machine's generation 0 on a mounted Btrfs top level
//! (`kod install --target TOP`): the base system and every planned
//! package in one transaction into `generations/0/rootfs`, the system
//! settled there (kod-system), fstab and `/.generation`, the stored copy
//! of the configuration without clear passwords, the kod binary, then the
//! commit, the record and the default pointer (kod-gen), in that order.
//! A failure leaves no generation and no default behind.
//!
//! `kod install --image/--disk` puts the same generation 0 onto disks
//! ([`MachinePlan::install_disks`]): kod-disk provisions them (through its
//! safety checks, with an allow list of exactly those devices), the Btrfs
//! root is mounted in kod's private mount namespace, and the disks' swap,
//! ESP and other partitions join the fstab.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kod_config::{Config, SourceFile};
use kod_gen::{InstalledPackages, LockedPackage, Record, Top};
use kod_plan::Plan;
use kod_repo::{Freshness, Index};
use kod_report::Report;
use kod_root::Root;
use kod_solve::{Request, Resolution};
use serde::Serialize;

use crate::boot_entries::{self, EspAt};
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
    /// The files its install-stage helpers wrote in its own root.
    pub files: &'a [PathBuf],
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
        if plan.boot.loader == kod_config::LoaderKind::Grub {
            return Err(EngineError::Refused {
                key: "boot.loader.type".into(),
                reason: "\"grub\" is not supported: kod boots every generation through its own \
                         systemd-boot entry (with boot counting and fallback); write \
                         type = \"systemd-boot\""
                    .into(),
            });
        }
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
        self.install_with(top, options, &[], report)
    }

    /// [`MachinePlan::install`] with `fstab_extra` (the disks' swap, ESP
    /// and other partitions) after kod-gen's lines in the new fstab.
    fn install_with(
        &self,
        top: &Path,
        options: &kod_install::Options,
        fstab_extra: &[String],
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
        new_generation(&top, |n| self.build(&top, n, options, fstab_extra, report))
    }

    fn build(
        &self,
        top: &Top,
        n: u64,
        options: &kod_install::Options,
        fstab_extra: &[String],
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
        self.finish_with(t, top, n, Previous::default(), fstab_extra, report)
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
    /// The fstab keeps the disks' lines of the one in the root (a
    /// snapshot's, from the generation it was made from): a machine
    /// installed onto disks keeps its swap, ESP and other partitions.
    pub(crate) fn finish(
        &self,
        t: kod_install::Transaction,
        top: &Top,
        n: u64,
        previous: Previous<'_>,
        report: &Report,
    ) -> Result<MachineReport, EngineError> {
        let old = t
            .fs()
            .read("etc/fstab")
            .map_err(|e| EngineError::io(&t.fs().show("etc/fstab"), e))?;
        let kept = disk_lines(&String::from_utf8_lossy(&old.unwrap_or_default()));
        self.finish_with(t, top, n, previous, &kept, report)
    }

    /// [`MachinePlan::finish`] with `fstab_extra` lines after kod-gen's
    /// own in the generation's fstab.
    fn finish_with(
        &self,
        t: kod_install::Transaction,
        top: &Top,
        n: u64,
        previous: Previous<'_>,
        fstab_extra: &[String],
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
            .after(previous.enabled_services, previous.users)
            .after_files(previous.files);
        let settlement = kod_system::plan(t.fs(), &input)?;
        kod_system::apply(t.fs(), t.runner(), &settlement.changes, report)?;
        fault::point("settled");
        if self.plan.boot.kernel_package.is_some() {
            crate::initramfs::build(
                t.fs(),
                t.runner(),
                self.plan.boot.initramfs,
                &t.packages(),
                report,
            )?;
        }

        let fs = t.fs();
        write(
            fs,
            "etc/fstab",
            top.fstab(n, fstab_extra)?.as_bytes(),
            0o644,
        )?;
        // fstab's mount point of the top level, there before the first boot.
        fs.create_dir_all("kod", 0o755)
            .map_err(|e| EngineError::io(&fs.show("kod"), e))?;
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

/// Where a configured disk (`devices.KEY`) is installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Medium {
    /// A new image file of `size` bytes (it must not exist), attached as a
    /// loop device for the install.
    Image {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
    },
    /// A block device (the configured one, or the one `--disk` names).
    Device(PathBuf),
}

/// Why installing onto disks failed (before, while or after building
/// generation 0).
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The configuration's disks do not lay out.
    #[error(transparent)]
    Layout(#[from] kod_disk::LayoutError),
    /// A device the safety checks refuse.
    #[error(transparent)]
    Safety(#[from] kod_disk::SafetyError),
    /// Making the image, the table or the filesystems failed.
    #[error(transparent)]
    Provision(#[from] kod_disk::ProvisionError),
    /// Building generation 0 on the mounted root failed (boxed: it is
    /// the largest by far).
    #[error(transparent)]
    Engine(Box<EngineError>),
    /// A configured disk without an image or device.
    #[error(
        "devices.{key} has no image or device to install onto: name one with `--image {key}=FILE` or `--disk {key}=/dev/X`"
    )]
    NoMedium {
        /// The `devices` key.
        key: String,
    },
    /// The image file is there already.
    #[error(
        "{}: the file exists, and kod makes a new image rather than overwrite one: remove it, or name another file",
        path.display()
    )]
    ImageExists {
        /// The file.
        path: PathBuf,
    },
    /// An image without the partitions of a kod machine.
    #[error("{}: {reason}", path.display())]
    NotAMachine {
        /// The image.
        path: PathBuf,
        /// What is missing and what to do.
        reason: String,
    },
    /// No disk holds the root.
    #[error(
        "no configured disk has the Btrfs root that holds the generations: add a partition with type = \"btrfs\" and mountpoint = \"/\" to `devices`"
    )]
    NoRoot,
    /// The firmware here enforces Secure Boot, which kod's loader cannot pass.
    #[error(
        "Secure Boot is on in this machine's firmware, and kod boots generations with \
         systemd-boot, which Debian bookworm does not ship signed: the disk would not boot. \
         Turn Secure Boot off in the firmware settings, or install onto an image (`--image`) \
         for another machine"
    )]
    SecureBoot,
    /// The caller did not confirm.
    #[error("the disks were not confirmed: nothing was written to them")]
    NotConfirmed,
    /// The process shares the host's mount namespace.
    #[error(
        "kod mounts the new system only in a private mount namespace, and this process is in the host's: run `kod install` as root, which starts itself in one"
    )]
    SharedNamespace,
    /// Mounting or unmounting the root failed.
    #[error("{what} {}: {source}", path.display())]
    Mount {
        /// What kod was doing.
        what: &'static str,
        /// The mount point.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl From<EngineError> for DiskError {
    fn from(e: EngineError) -> DiskError {
        DiskError::Engine(Box::new(e))
    }
}

/// A disk an install provisioned.
#[derive(Debug, Clone, Serialize)]
pub struct DiskReport {
    /// The `devices` key.
    pub key: String,
    /// The image file, for `--image`.
    pub image: Option<PathBuf>,
    /// The device written (for an image, the loop device it was attached
    /// as, which is gone now).
    pub device: PathBuf,
    /// The partition table's id (PTUUID).
    pub disk_id: String,
    /// The partitions with their UUIDs and mount points.
    pub partitions: Vec<kod_disk::ProvisionedPartition>,
}

/// What an install onto disks did.
#[derive(Debug, Clone, Serialize)]
pub struct DiskInstall {
    /// The disks, in `devices` order.
    pub disks: Vec<DiskReport>,
    /// The lines the disks added to the generation's fstab.
    pub fstab: Vec<String>,
    /// Generation 0.
    pub generation: MachineReport,
    /// Its boot entry and systemd-boot written on the ESP (none without
    /// an ESP or a kernel).
    pub boot: Option<crate::boot_entries::EntriesReport>,
}

/// A configured disk planned onto its medium, before anything is written:
/// a device checked and claimed, or an image described from its size.
struct PlannedDisk<'a> {
    key: &'a str,
    disk: &'a kod_config::Disk,
    medium: &'a Medium,
    /// The claimed device and its layout (none for an image, which does
    /// not exist yet).
    device: Option<(kod_disk::Target, kod_disk::Layout)>,
    description: kod_disk::Description,
}

impl MachinePlan {
    /// What installing onto `media` (one for each of the plan's `devices`)
    /// would do to each disk, creating and writing nothing: the dry run.
    /// A device is checked (and briefly claimed) as a real run would; an
    /// image is described from its size.
    pub fn describe_disks(
        &self,
        media: &BTreeMap<String, Medium>,
    ) -> Result<Vec<kod_disk::Description>, DiskError> {
        Ok(self
            .plan_disks(media)?
            .into_iter()
            .map(|d| d.description)
            .collect())
    }

    /// Each disk of the plan on its medium: devices checked and claimed
    /// (all held, so one device named for two disks is refused), with an
    /// allow list of exactly these devices; images laid out for their size
    /// and the 512-byte sectors of a loop device, not made.
    fn plan_disks<'a>(
        &'a self,
        media: &'a BTreeMap<String, Medium>,
    ) -> Result<Vec<PlannedDisk<'a>>, DiskError> {
        let chosen = chosen_media(&self.plan, media)?;
        // A device is a disk this machine may boot: refuse what its
        // firmware would refuse to start.
        if self.plan.boot.kernel_package.is_some()
            && chosen
                .iter()
                .any(|(_, _, m)| matches!(m, Medium::Device(_)))
            && boot_entries::secure_boot_on(Path::new(boot_entries::EFIVARS))
        {
            return Err(DiskError::SecureBoot);
        }
        let allow = kod_disk::AllowList::new(chosen.iter().filter_map(|(_, _, m)| match m {
            Medium::Device(p) => Some(p),
            Medium::Image { .. } => None,
        }));
        let mut out = Vec::new();
        for (key, disk, medium) in chosen {
            let (device, description) = match medium {
                Medium::Image { path, size } => {
                    let layout = kod_disk::Layout::compute(key, disk, *size, 512)?;
                    (None, kod_disk::Description::of_new_image(path, &layout))
                }
                Medium::Device(path) => {
                    let target = kod_disk::Target::open(path, &allow)?;
                    let layout = target.layout(key, disk)?;
                    let description = target.describe(&layout);
                    (Some((target, layout)), description)
                }
            };
            out.push(PlannedDisk {
                key,
                disk,
                medium,
                device,
                description,
            });
        }
        Ok(out)
    }

    /// Installs generation 0 onto `media` (one for each of the plan's
    /// `devices`): checks and claims every device, lays the disks out and
    /// asks `confirm` with what it will do; only then makes and attaches
    /// the images (so that a refusal or a Ctrl-C at the prompt leaves
    /// nothing) and claims their loop devices (the allow list holds exactly
    /// the devices and these), provisions the disks, mounts the Btrfs root
    /// at `mount_point` (a new private temporary directory by default) and
    /// installs as [`MachinePlan::install`] does, with the disks' swap, ESP
    /// and other partitions in fstab. Then, and on any failure, it
    /// unmounts and lets every loop device go; a failed run also removes
    /// the images it made (they hold nothing usable). A killed kod leaves
    /// no mount either (the namespace dies with it) and no loop device
    /// (each clears itself when its last user is gone).
    pub fn install_disks(
        &self,
        media: &BTreeMap<String, Medium>,
        mount_point: Option<&Path>,
        options: &kod_install::Options,
        confirm: impl FnOnce(&[kod_disk::Description]) -> bool,
        report: &Report,
    ) -> Result<DiskInstall, DiskError> {
        private_namespace()?;
        let planned = self.plan_disks(media)?;
        let has_root = planned.iter().any(|d| {
            d.disk.partitions.iter().any(|p| {
                p.kind == kod_config::PartitionKind::Btrfs && p.mountpoint.as_deref() == Some("/")
            })
        });
        if !has_root {
            return Err(DiskError::NoRoot);
        }
        let descriptions: Vec<_> = planned.iter().map(|d| d.description.clone()).collect();
        if !confirm(&descriptions) {
            return Err(DiskError::NotConfirmed);
        }

        // Dropped in reverse: the mount, the partitions' nodes, the disks'
        // loop devices, then (unless kept) the new images.
        let mut images = NewImages::default();
        let mut loops = Vec::new();
        for d in &planned {
            if let Medium::Image { path, size } = d.medium {
                kod_disk::create_image(path, *size)?;
                images.0.push(path.clone());
                let lo = kod_disk::attach_image(path)?;
                report.verbose(|| {
                    format!("+ attached {} as {}", path.display(), lo.path().display())
                });
                loops.push(lo);
            }
        }
        let allow = kod_disk::AllowList::new(loops.iter().map(|l| l.path()).chain(
            planned.iter().filter_map(|d| match d.medium {
                Medium::Device(p) => Some(p.as_path()),
                Medium::Image { .. } => None,
            }),
        ));
        let mut image_loops = loops.iter();
        let mut disks = Vec::new();
        for d in planned {
            let (target, layout) = match d.device {
                Some(device) => device,
                None => {
                    let lo = image_loops.next().expect("a loop device for each image");
                    let target = kod_disk::Target::open(lo.path(), &allow)?;
                    let layout = target.layout(d.key, d.disk)?;
                    (target, layout)
                }
            };
            let image = match d.medium {
                Medium::Image { path, .. } => Some(path.clone()),
                Medium::Device(_) => None,
            };
            disks.push((image, target.provision(&layout)?));
        }
        let root = disks
            .iter()
            .find_map(|(_, d)| d.root())
            .ok_or(DiskError::NoRoot)?;
        let fstab: Vec<String> = disks.iter().flat_map(|(_, d)| d.fstab_lines()).collect();

        let temporary;
        let at = match mount_point {
            Some(p) => p,
            None => {
                temporary = temporary_mount_point("kod-install-")?;
                temporary.path()
            }
        };
        let mounted = Mounted::btrfs(&root.node, at)?;
        report.verbose(|| format!("+ mounted {} at {}", root.node.display(), at.display()));
        let generation = self.install_with(at, options, &fstab, report)?;
        let esp = disks.iter().find_map(|(_, d)| d.esp());
        let boot = match esp {
            Some(esp) if generation.committed && self.plan.boot.kernel_package.is_some() => {
                let esp = EspAt::Fat {
                    file: esp.device().to_path_buf(),
                    offset: 0,
                };
                let top = Top::open(at).map_err(EngineError::from)?;
                Some(boot_entries::update(&top, &esp, None, false, report)?)
            }
            _ => None,
        };
        mounted.unmount()?;

        let out = DiskInstall {
            disks: disks
                .iter()
                .map(|(image, d)| DiskReport {
                    key: d.key.clone(),
                    image: image.clone(),
                    device: d.device.clone(),
                    disk_id: d.disk_id.clone(),
                    partitions: d.partitions.clone(),
                })
                .collect(),
            fstab,
            generation,
            boot,
        };
        drop(disks);
        drop(loops);
        images.keep();
        Ok(out)
    }
}

/// Checks `media` against the disks of `plan` before anything is read or
/// made: the disks lay out together ([`kod_disk::check_devices`]), each
/// has a medium, and no image file exists yet.
pub fn check_media(plan: &Plan, media: &BTreeMap<String, Medium>) -> Result<(), DiskError> {
    chosen_media(plan, media).map(drop)
}

/// Each of the plan's disks with its medium, in `devices` order, as
/// [`check_media`] checks them.
fn chosen_media<'a>(
    plan: &'a Plan,
    media: &'a BTreeMap<String, Medium>,
) -> Result<Vec<(&'a str, &'a kod_config::Disk, &'a Medium)>, DiskError> {
    kod_disk::check_devices(&plan.devices)?;
    let mut chosen = Vec::new();
    for (key, disk) in &plan.devices {
        let medium = media
            .get(key)
            .ok_or_else(|| DiskError::NoMedium { key: key.clone() })?;
        if let Medium::Image { path, .. } = medium
            && std::fs::symlink_metadata(path).is_ok()
        {
            return Err(DiskError::ImageExists { path: path.clone() });
        }
        chosen.push((key.as_str(), disk, medium));
    }
    Ok(chosen)
}

/// A new private directory to mount a disk's root at, removed when dropped.
pub(crate) fn temporary_mount_point(prefix: &str) -> Result<tempfile::TempDir, DiskError> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|source| DiskError::Mount {
            what: "making a temporary mount point in",
            path: std::env::temp_dir(),
            source,
        })
}

/// Refuses to mount unless this process has a mount namespace of its own,
/// not its parent's (kod's `private_mounts` starts it in a new one): a
/// mount made here must die with kod, not stay on the host. (The parent
/// is asked rather than init, whose namespace a container may not let
/// root read.)
pub(crate) fn private_namespace() -> Result<(), DiskError> {
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
    let parent = std::os::unix::process::parent_id().to_string();
    match (ns("self"), ns(&parent)) {
        (Some(mine), Some(theirs)) if mine != theirs => Ok(()),
        _ => Err(DiskError::SharedNamespace),
    }
}

/// The image files this run made: removed when dropped, unless kept.
#[derive(Default)]
struct NewImages(Vec<PathBuf>);

impl NewImages {
    /// The install succeeded: the images stay.
    fn keep(mut self) {
        self.0.clear();
    }
}

impl Drop for NewImages {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The disk's Btrfs root mounted (top level, subvolid=5) for the install;
/// unmounted when dropped too, so that a failure lets the partition's
/// loop device go.
pub(crate) struct Mounted {
    at: PathBuf,
    mounted: bool,
}

impl Mounted {
    /// Mounts the Btrfs on `node` at `at`.
    pub(crate) fn btrfs(node: &Path, at: &Path) -> Result<Mounted, DiskError> {
        rustix::mount::mount(node, at, "btrfs", rustix::mount::MountFlags::empty(), None).map_err(
            |e| DiskError::Mount {
                what: "mounting the new Btrfs root at",
                path: at.to_path_buf(),
                source: e.into(),
            },
        )?;
        Ok(Mounted {
            at: at.to_path_buf(),
            mounted: true,
        })
    }

    /// Unmounts it, saying why when that fails.
    pub(crate) fn unmount(mut self) -> Result<(), DiskError> {
        self.mounted = false;
        rustix::mount::unmount(&self.at, rustix::mount::UnmountFlags::empty()).map_err(|e| {
            DiskError::Mount {
                what: "unmounting",
                path: self.at.clone(),
                source: e.into(),
            }
        })
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // On a failure: lazily if something still holds it (the namespace
        // dies with kod anyway).
        if self.mounted
            && rustix::mount::unmount(&self.at, rustix::mount::UnmountFlags::empty()).is_err()
        {
            let _ = rustix::mount::unmount(&self.at, rustix::mount::UnmountFlags::DETACH);
        }
    }
}

/// The lines of an fstab kod wrote that are not kod-gen's own (`/`,
/// `/kod`, `/home`, the store's binds): the disks' lines that
/// `install --image/--disk` added after them.
fn disk_lines(fstab: &str) -> Vec<String> {
    let own = |at: &str| {
        ["/", "/kod", "/home"].contains(&at) || kod_gen::STORE_BINDS.iter().any(|(_, m)| *m == at)
    };
    fstab
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter(|l| l.split_whitespace().nth(1).is_some_and(|at| !own(at)))
        .map(str::to_string)
        .collect()
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
    use super::{build_id, disk_lines};

    #[test]
    fn a_generations_disk_lines_are_what_kod_gen_did_not_write() {
        let disks = vec![
            "UUID=AB12-CD34 /efi vfat umask=0077 0 2".to_string(),
            "UUID=0b9c7e9a-3c5e-4f57-9a43-1f0c4c1b1d2e none swap defaults 0 0".to_string(),
            "UUID=5e0f6a3c-8a51-4d0c-9b7e-2a1d6c4f3b20 /data ext4 defaults 0 2".to_string(),
        ];
        let u = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
        assert_eq!(disk_lines(&kod_gen::fstab(u, 4, &disks)), disks);
        assert!(disk_lines(&kod_gen::fstab(u, 4, &[])).is_empty());
        assert!(disk_lines("").is_empty());
    }

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
