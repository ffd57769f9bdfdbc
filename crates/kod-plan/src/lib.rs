//! From a [`Config`] to a [`Plan`]: the full desired state of a machine,
//! sorted and deterministic, and nothing secret in it.
//!
//! The plan gathers the package set per source from every place a
//! configuration mentions packages (with the reasons), the services to
//! enable, the users, and the files, units and commands configuration
//! helpers produce in each stage. Later stages (transactions, generations)
//! work from a plan, and `kod plan` prints one.
#![deny(missing_docs)]

use std::collections::{BTreeMap, BTreeSet};

use kod_config::{
    Action, Config, Disk, Distribution, Effect, Environment, InitramfsTool, IpConfig, KeyPath,
    LoaderKind, Locale, PartitionKind, Repo, Stage,
};
use serde::Serialize;

/// The desired state of a machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The configuration file it comes from.
    pub source: String,
    /// The distribution the system is built from.
    pub base_distribution: Distribution,
    /// Package sources by key.
    pub repos: BTreeMap<String, RepoPlan>,
    /// Disks and their partitions.
    pub devices: BTreeMap<String, Disk>,
    /// Kernel and boot loader.
    pub boot: BootPlan,
    /// Locale, keymap, timezone.
    pub locale: Locale,
    /// Host name and addresses.
    pub network: NetworkPlan,
    /// Accounts by login name.
    pub users: BTreeMap<String, UserPlan>,
    /// Packages per source key.
    pub packages: BTreeMap<String, PackageSet>,
    /// systemd units to enable.
    pub services: ServicesPlan,
    /// What configuration helpers do, per stage.
    pub stages: BTreeMap<Stage, Vec<Step>>,
    /// Environments of other distributions.
    pub environments: BTreeMap<String, Environment>,
}

/// A package source in the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RepoPlan {
    /// Whether unprefixed packages come from here.
    pub default: bool,
    /// The source itself.
    #[serde(flatten)]
    pub repo: Repo,
}

/// Kernel and boot loader, with defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BootPlan {
    /// The kernel package; `None` for a machine without a kernel.
    pub kernel_package: Option<String>,
    /// Modules for the initramfs.
    pub kernel_modules: Vec<String>,
    /// The tool that builds the initramfs (the configured one, else the
    /// distribution's default).
    pub initramfs: InitramfsTool,
    /// The loader.
    pub loader: LoaderKind,
    /// Menu timeout in seconds.
    pub timeout: Option<u32>,
    /// Extra boot entries (packages that provide them).
    pub extra_entries: Vec<String>,
    /// Options added to every entry's kernel command line.
    pub kernel_options: Vec<String>,
    /// Boots a new entry gets before it counts as bad; 0: no counting.
    pub tries: u32,
    /// Boot entries kept on the ESP (never fewer than the protected ones).
    pub max_entries: u32,
}

/// Network settings, with defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkPlan {
    /// Host name (`kod` when not configured).
    pub hostname: String,
    /// IPv4.
    pub ipv4: IpConfig,
    /// IPv6.
    pub ipv6: IpConfig,
}

/// An account, without its secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserPlan {
    /// Full name.
    pub full_name: Option<String>,
    /// `unset`, `none`, `plain` or `hashed`: which kind of password is set.
    pub password: &'static str,
    /// Home directory.
    pub home: String,
    /// Login shell.
    pub shell: Option<String>,
    /// Supplementary groups, sorted.
    pub groups: Vec<String>,
    /// Public keys allowed to log in over ssh.
    pub ssh_authorized: Vec<String>,
    /// systemd user units to enable.
    pub services: Vec<String>,
}

/// The packages of one source.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PackageSet {
    /// The source's kind (`debian`, `arch`, `aur`, `flatpak`, ...).
    pub kind: String,
    /// Packages to install, sorted.
    pub install: Vec<String>,
    /// Packages to remove (excluded from a desktop, wanted nowhere else).
    pub remove: Vec<String>,
    /// For each package to install, the configuration keys that want it.
    pub reasons: BTreeMap<String, Vec<String>>,
}

/// Units to enable.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServicesPlan {
    /// System units, sorted, each with the keys that ask for it.
    pub system: BTreeMap<String, Vec<String>>,
    /// User units per user.
    pub user: BTreeMap<String, Vec<String>>,
}

/// One thing a configuration helper does in a stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// The configuration key of the helper (`users.demo.programs.git.config`).
    pub origin: String,
    /// The helper (`git`, `stow`, `mount`, ...).
    pub helper: String,
    /// What it does.
    #[serde(flatten)]
    pub effect: Effect,
}

/// A configuration that evaluates but cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Two enabled desktops bring different display managers.
    #[error(
        "desktops {} bring different display managers ({}); only one can run: set \
         desktop.display_manager to the one you want",
        desktops.join(", "),
        managers.join(", ")
    )]
    ConflictingDisplayManagers {
        /// The desktops.
        desktops: Vec<String>,
        /// Their display managers.
        managers: Vec<String>,
    },
}

/// Builds the plan of `config`.
pub fn plan(config: &Config) -> Result<Plan, PlanError> {
    let mut packages = Packages::new(config);
    let mut services = ServicesPlan::default();
    let mut stages: BTreeMap<Stage, Vec<Step>> = BTreeMap::new();

    let boot = boot(config, &mut packages);

    for p in &config.packages {
        packages.want(p, "packages");
    }
    for p in &config.fonts.packages {
        packages.want(p, "fonts.packages");
    }
    for (name, hw) in config.hardware.iter().filter(|(_, h)| h.enable) {
        let key = KeyPath::root().key("hardware").key(name).to_string();
        packages.want(hw.package.as_deref().unwrap_or(name), &key);
        for p in &hw.extra_packages {
            packages.want(p, &format!("{key}.extra_packages"));
        }
        if let Some(unit) = &hw.service_name {
            add(&mut services.system, unit, &key);
        }
    }
    desktop(config, &mut packages, &mut services)?;
    for (name, svc) in &config.services {
        let key = KeyPath::root().key("services").key(name);
        if svc.enable == Some(true) {
            packages.want(svc.package.as_deref().unwrap_or(name), &key.to_string());
            for p in &svc.extra_packages {
                packages.want(p, &key.key("extra_packages").to_string());
            }
            add(
                &mut services.system,
                svc.service_name.as_deref().unwrap_or(name),
                &key.to_string(),
            );
        }
        if svc.enable != Some(false) {
            for (helper_name, action) in &svc.services {
                let origin = key.key("services").key(helper_name).to_string();
                apply(action, &origin, &mut packages, &mut stages);
            }
        }
    }
    for (login, user) in &config.users {
        let key = KeyPath::root().key("users").key(login);
        if let Some(action) = &user.dotfile_manager {
            let origin = key.key("dotfile_manager").to_string();
            apply(action, &origin, &mut packages, &mut stages);
        }
        for (name, program) in user.programs.iter().filter(|(_, p)| p.enable) {
            let pkey = key.key("programs").key(name);
            packages.want(
                program.package.as_deref().unwrap_or(name),
                &pkey.to_string(),
            );
            for p in &program.extra_packages {
                packages.want(p, &pkey.key("extra_packages").to_string());
            }
            if let Some(action) = &program.config {
                let origin = pkey.key("config").to_string();
                apply(action, &origin, &mut packages, &mut stages);
            }
        }
        for (name, svc) in user.services.iter().filter(|(_, s)| s.enable) {
            let skey = key.key("services").key(name);
            packages.want(svc.package.as_deref().unwrap_or(name), &skey.to_string());
            for p in &svc.extra_packages {
                packages.want(p, &skey.key("extra_packages").to_string());
            }
            services
                .user
                .entry(login.clone())
                .or_default()
                .push(name.clone());
            if let Some(action) = &svc.config {
                let origin = skey.key("config").to_string();
                apply(action, &origin, &mut packages, &mut stages);
            }
        }
    }
    repo_support(config, &mut packages);
    settings_support(config, &boot, &mut packages);

    let users = config
        .users
        .iter()
        .map(|(login, u)| {
            let mut groups = u.extra_groups.clone();
            groups.sort();
            groups.dedup();
            let plan = UserPlan {
                full_name: u.full_name.clone(),
                password: u.password.kind(),
                home: if login == "root" {
                    "/root".to_string()
                } else {
                    format!("/home/{login}")
                },
                shell: u.shell.clone(),
                groups,
                ssh_authorized: u.ssh_authorized.clone(),
                services: services.user.get(login).cloned().unwrap_or_default(),
            };
            (login.clone(), plan)
        })
        .collect();

    Ok(Plan {
        source: config.source.display().to_string(),
        base_distribution: config.base_distribution,
        repos: config
            .repos
            .iter()
            .map(|(k, r)| {
                let plan = RepoPlan {
                    default: *k == config.default_repo,
                    repo: r.clone(),
                };
                (k.clone(), plan)
            })
            .collect(),
        devices: devices(config),
        boot,
        locale: config.locale.clone(),
        network: NetworkPlan {
            hostname: config
                .network
                .hostname
                .clone()
                .unwrap_or_else(|| "kod".to_string()),
            ipv4: config.network.ipv4.clone().unwrap_or(IpConfig::Automatic),
            ipv6: config.network.ipv6.clone().unwrap_or(IpConfig::Automatic),
        },
        users,
        packages: packages.finish(),
        services,
        stages,
        environments: config.environments.clone(),
    })
}

/// The configured disks, with every ESP mounted at `/efi` whatever the
/// configuration says (`disk.disk_definition` says `/boot`): each
/// generation keeps its own `/boot`, and only kod writes to the ESP, so
/// that removing a kernel in one generation cannot delete the kernel
/// another boots.
fn devices(config: &Config) -> BTreeMap<String, Disk> {
    let mut devices = config.devices.clone();
    for p in devices.values_mut().flat_map(|d| d.partitions.iter_mut()) {
        if p.kind == PartitionKind::Esp {
            p.mountpoint = Some(ESP_MOUNTPOINT.to_string());
        }
    }
    devices
}

/// Where the EFI system partition is mounted in every installed system.
pub const ESP_MOUNTPOINT: &str = "/efi";

/// The kernel package a distribution installs when none is configured.
pub fn default_kernel(d: Distribution) -> &'static str {
    match d {
        Distribution::Debian => match std::env::consts::ARCH {
            "aarch64" => "linux-image-arm64",
            "x86" => "linux-image-686",
            _ => "linux-image-amd64",
        },
        Distribution::Arch => "linux",
        Distribution::Fedora | Distribution::Centos => "kernel",
        Distribution::Opensuse => "kernel-default",
        Distribution::Alpine => "linux-lts",
    }
}

fn boot(config: &Config, packages: &mut Packages) -> BootPlan {
    let b = &config.boot;
    let kernel = (!b.kernel.none).then(|| {
        b.kernel
            .package
            .clone()
            .unwrap_or_else(|| default_kernel(config.base_distribution).to_string())
    });
    if let Some(kernel) = &kernel {
        packages.want(kernel, "boot.kernel.package");
    }
    for p in &b.loader.include {
        packages.want(p, "boot.loader.include");
    }
    BootPlan {
        kernel_package: kernel,
        kernel_modules: b.kernel.modules.clone(),
        // Dracut where asked for; initramfs-tools is Debian's own (the
        // other families' defaults come with their backends).
        initramfs: b.kernel.initramfs.unwrap_or(InitramfsTool::InitramfsTools),
        loader: b.loader.kind,
        timeout: b.loader.timeout,
        extra_entries: b.loader.include.clone(),
        kernel_options: b.kernel.options.clone(),
        tries: b.loader.tries,
        max_entries: b.loader.max_entries,
    }
}

fn desktop(
    config: &Config,
    packages: &mut Packages,
    services: &mut ServicesPlan,
) -> Result<(), PlanError> {
    let enabled: Vec<(&String, &kod_config::DesktopEnvironment)> = config
        .desktop
        .desktop_manager
        .iter()
        .filter(|(_, d)| d.enable)
        .collect();
    for (name, de) in &enabled {
        let key = KeyPath::root()
            .key("desktop")
            .key("desktop_manager")
            .key(name)
            .to_string();
        let excluded: BTreeSet<&str> = de.exclude_packages.iter().map(String::as_str).collect();
        let own = de.package.as_deref().unwrap_or(name);
        let wanted = std::iter::once((own, key.clone())).chain(
            de.extra_packages
                .iter()
                .map(|p| (p.as_str(), format!("{key}.extra_packages"))),
        );
        for (p, why) in wanted {
            if !excluded.contains(p) {
                packages.want(p, &why);
            }
        }
        for p in &de.exclude_packages {
            packages.exclude(p);
        }
    }
    // One display manager: the general one, else the desktops' own.
    let dm = match &config.desktop.display_manager {
        Some(dm) => Some((dm.clone(), "desktop.display_manager".to_string())),
        None => {
            let own: Vec<(&String, &String)> = enabled
                .iter()
                .filter_map(|(name, de)| de.display_manager.as_ref().map(|dm| (*name, dm)))
                .collect();
            let distinct: BTreeSet<&String> = own.iter().map(|(_, dm)| *dm).collect();
            if distinct.len() > 1 {
                return Err(PlanError::ConflictingDisplayManagers {
                    desktops: own.iter().map(|(n, _)| n.to_string()).collect(),
                    managers: distinct.into_iter().cloned().collect(),
                });
            }
            own.first().map(|(name, dm)| {
                (
                    dm.to_string(),
                    format!("desktop.desktop_manager.{name}.display_manager"),
                )
            })
        }
    };
    if let Some((dm, key)) = dm {
        packages.want(&dm, &key);
        let (_, unit) = config.package_source(&dm);
        add(&mut services.system, unit, &key);
    }
    Ok(())
}

/// Packages a source needs in the target before it can be used.
fn repo_support(config: &Config, packages: &mut Packages) {
    for (key, repo) in &config.repos {
        let needs: &[&str] = match repo {
            Repo::Flatpak(_) => &["flatpak"],
            Repo::Aur(_) if config.base_distribution == Distribution::Arch => {
                &["git", "base-devel"]
            }
            _ => &[],
        };
        for p in needs {
            packages.want(p, &format!("repos.{key}"));
        }
    }
}

/// Packages the target needs for kod to carry out a setting, each wanted
/// with that setting as its reason (Debian's names; other families' come
/// with their backends).
fn settings_support(config: &Config, boot: &BootPlan, packages: &mut Packages) {
    if config.base_distribution != Distribution::Debian {
        return;
    }
    let locale = &config.locale;
    let mut needs: Vec<(&str, &str)> = Vec::new();
    if locale.default.is_some() || !locale.extra_generate.is_empty() {
        needs.push(("locales", "locale.locale"));
    }
    if locale.keymap.is_some() {
        needs.push(("console-setup", "locale.keymap"));
    }
    if locale.timezone.is_some() {
        needs.push(("tzdata", "locale.timezone"));
    }
    // Network settings are written for systemd-networkd, and units are
    // enabled with the target's systemctl.
    needs.push(("systemd", "network"));
    if boot.kernel_package.is_some() {
        // A machine that boots: networkd hands the DNS servers it is given
        // (by DHCP, or `dns`) to systemd-resolved only; without it the
        // machine resolves no names. (One without a kernel lives in a
        // container, which has its host's resolv.conf.)
        needs.push(("systemd-resolved", "network"));
    }
    if boot.kernel_package.is_some() {
        let why = if config.boot.kernel.initramfs.is_some() {
            "boot.kernel.initramfs"
        } else {
            "boot.kernel"
        };
        needs.push((boot.initramfs.package(), why));
        // The tools compress with zstd (their default) only when it is
        // there, gzip otherwise: several times slower to build.
        needs.push(("zstd", "boot.kernel"));
        if boot.loader == LoaderKind::SystemdBoot {
            needs.push(("systemd-boot", "boot.loader"));
            if boot.tries > 0 {
                // systemd's no-failures check asks the system bus: without
                // dbus no boot is ever blessed (minbase has none).
                needs.push(("dbus", "boot.loader.tries"));
            }
        }
    }
    for (package, why) in needs {
        packages.want(package, why);
    }
}

/// Records a helper's packages and effects.
fn apply(
    action: &Action,
    origin: &str,
    packages: &mut Packages,
    stages: &mut BTreeMap<Stage, Vec<Step>>,
) {
    for p in &action.packages {
        packages.want(p, origin);
    }
    for stage in &action.stages {
        let steps = stages.entry(*stage).or_default();
        steps.extend(action.effects.iter().map(|e| Step {
            origin: origin.to_string(),
            helper: action.helper.clone(),
            effect: e.clone(),
        }));
    }
}

fn add(map: &mut BTreeMap<String, Vec<String>>, item: &str, why: &str) {
    let reasons = map.entry(item.to_string()).or_default();
    if !reasons.iter().any(|r| r == why) {
        reasons.push(why.to_string());
    }
}

/// The package sets being gathered.
struct Packages<'c> {
    config: &'c Config,
    wanted: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    excluded: BTreeMap<String, BTreeSet<String>>,
}

impl<'c> Packages<'c> {
    fn new(config: &'c Config) -> Self {
        Packages {
            config,
            wanted: BTreeMap::new(),
            excluded: BTreeMap::new(),
        }
    }

    fn want(&mut self, reference: &str, why: &str) {
        let (source, name) = self.config.package_source(reference);
        add(
            self.wanted.entry(source.to_string()).or_default(),
            name,
            why,
        );
    }

    fn exclude(&mut self, reference: &str) {
        let (source, name) = self.config.package_source(reference);
        self.excluded
            .entry(source.to_string())
            .or_default()
            .insert(name.to_string());
    }

    fn finish(self) -> BTreeMap<String, PackageSet> {
        let sources: BTreeSet<&String> = self.wanted.keys().chain(self.excluded.keys()).collect();
        sources
            .into_iter()
            .map(|source| {
                let wanted = self.wanted.get(source).cloned().unwrap_or_default();
                let remove = self
                    .excluded
                    .get(source)
                    .map(|ex| {
                        ex.iter()
                            .filter(|p| !wanted.contains_key(*p))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                let set = PackageSet {
                    kind: self
                        .config
                        .repos
                        .get(source)
                        .map(|r| r.kind().to_string())
                        .unwrap_or_default(),
                    install: wanted.keys().cloned().collect(),
                    remove,
                    reasons: wanted,
                };
                (source.clone(), set)
            })
            .collect()
    }
}
