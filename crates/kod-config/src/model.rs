//! The typed configuration: every key kod knows, validated.
//!
//! Maps are `BTreeMap`s so everything derived from a `Config` comes out
//! sorted and deterministic. Types serialize for `kod plan --json`; the one
//! secret (a user's password) never does.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// A whole machine, as one configuration file describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The configuration file that was evaluated.
    pub source: PathBuf,
    /// The distribution the system is built from: `base_distribution`, or
    /// the default repository's type when absent.
    pub base_distribution: Distribution,
    /// Package sources by key.
    pub repos: BTreeMap<String, Repo>,
    /// The key of the repository that receives unprefixed package names.
    pub default_repo: String,
    /// Disks by key.
    pub devices: BTreeMap<String, Disk>,
    /// Kernel and boot loader.
    pub boot: Boot,
    /// Hardware support by name (`bluetooth`, `pipewire`, ...).
    pub hardware: BTreeMap<String, Hardware>,
    /// Locale, keymap, timezone.
    pub locale: Locale,
    /// Host name and addresses.
    pub network: Network,
    /// Accounts by login name.
    pub users: BTreeMap<String, User>,
    /// Display manager and desktop environments.
    pub desktop: Desktop,
    /// Font packages.
    pub fonts: Fonts,
    /// System packages, as written (`name`, `aur:name`, `flatpak:id`).
    pub packages: Vec<String>,
    /// System services by name.
    pub services: BTreeMap<String, Service>,
    /// Environments of other distributions by name (`kod env`).
    pub environments: BTreeMap<String, Environment>,
}

impl Config {
    /// The repository key and package name a reference means: `aur:x` is
    /// `x` from the repository keyed `aur`; an unprefixed name (or one
    /// qualified with an architecture, `libc6:i386`) comes from the default
    /// repository.
    pub fn package_source<'a>(&'a self, reference: &'a str) -> (&'a str, &'a str) {
        match reference.split_once(':') {
            Some((prefix, name)) if self.repos.contains_key(prefix) => (prefix, name),
            _ => (self.default_repo.as_str(), reference),
        }
    }
}

/// A Linux distribution kod can build a system or an environment from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// Debian (apt repositories, dpkg).
    Debian,
    /// Arch Linux (pacman).
    Arch,
    /// Fedora (rpm-md, rpm).
    Fedora,
    /// CentOS Stream / AlmaLinux (rpm-md, rpm).
    Centos,
    /// openSUSE (rpm-md, rpm).
    Opensuse,
    /// Alpine Linux (apk).
    Alpine,
}

impl Distribution {
    /// Every distribution, for error messages.
    pub const ALL: [Distribution; 6] = [
        Distribution::Debian,
        Distribution::Arch,
        Distribution::Fedora,
        Distribution::Centos,
        Distribution::Opensuse,
        Distribution::Alpine,
    ];

    /// The name used in configurations (`debian`, `arch`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Debian => "debian",
            Distribution::Arch => "arch",
            Distribution::Fedora => "fedora",
            Distribution::Centos => "centos",
            Distribution::Opensuse => "opensuse",
            Distribution::Alpine => "alpine",
        }
    }

    /// Parses a configuration name; `deb` is KodOS's spelling of `debian`.
    pub fn parse(s: &str) -> Option<Distribution> {
        match s {
            "deb" => Some(Distribution::Debian),
            _ => Distribution::ALL.into_iter().find(|d| d.name() == s),
        }
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A package source.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Repo {
    /// A distribution's own repositories.
    Distribution(DistributionRepo),
    /// The Arch User Repository, built by a helper inside the target.
    Aur(AurRepo),
    /// A Flatpak remote, through `flatpak` inside the target.
    Flatpak(FlatpakRepo),
}

impl Repo {
    /// The distribution this repository serves, if it is a distribution's.
    pub fn distribution(&self) -> Option<Distribution> {
        match self {
            Repo::Distribution(d) => Some(d.distribution),
            _ => None,
        }
    }

    /// A short name of the repository's kind (`debian`, `aur`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Repo::Distribution(d) => d.distribution.name(),
            Repo::Aur(_) => "aur",
            Repo::Flatpak(_) => "flatpak",
        }
    }
}

/// A distribution repository (Debian suite, Arch repositories, rpm-md, apk).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DistributionRepo {
    /// Which distribution.
    pub distribution: Distribution,
    /// Mirror base URLs, tried in order. Empty means: from the environment
    /// (`KOD_DEBIAN_MIRROR`, ...) or the host's own sources, when used.
    pub mirrors: Vec<String>,
    /// Suite or release (`bookworm`, `40`, `tumbleweed`, `v3.20`).
    pub release: Option<String>,
    /// Components or repositories (`main`; `core`, `extra`).
    pub components: Vec<String>,
    /// Keyring that signs the repository, instead of the default one.
    pub signed_by: Option<PathBuf>,
    /// Explicitly trust this repository without a valid signature.
    pub trusted: bool,
}

/// The Arch User Repository.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AurRepo {
    /// The helper program (`yay`, `paru`).
    pub helper: String,
    /// Where the helper's PKGBUILD comes from.
    pub helper_url: Option<String>,
    /// How the helper is built.
    pub build_cmd: Option<String>,
}

/// A Flatpak remote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlatpakRepo {
    /// The remote's name (`flathub`).
    pub remote: String,
    /// Its `.flatpakrepo` URL, when not already known to flatpak.
    pub url: Option<String>,
}

/// A disk and the partitions to create on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Disk {
    /// The block device (`/dev/vda`).
    pub device: String,
    /// Partition table type.
    pub table: PartitionTable,
    /// Whether the system boots through UEFI from this disk.
    pub efi: bool,
    /// Whether the existing partition table is wiped.
    pub wipe: bool,
    /// Partitions in order.
    pub partitions: Vec<Partition>,
}

/// A partition table type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitionTable {
    /// GUID partition table.
    Gpt,
    /// MS-DOS partition table.
    Msdos,
}

/// One partition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Partition {
    /// Partition label.
    pub name: String,
    /// Size.
    pub size: Size,
    /// What the partition holds.
    pub kind: PartitionKind,
    /// Where it is mounted in the installed system.
    pub mountpoint: Option<String>,
    /// Whether to create a filesystem on it.
    pub format: bool,
    /// A swap partition used to resume from hibernation.
    pub resume_device: bool,
}

/// A partition size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Size {
    /// An exact size in bytes.
    Bytes(u64),
    /// A percentage of the disk's remaining space.
    Percent(u8),
}

/// What a partition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionKind {
    /// EFI system partition (FAT).
    Esp,
    /// Swap space.
    LinuxSwap,
    /// Btrfs: the root with kod's generations.
    Btrfs,
    /// ext4.
    Ext4,
    /// XFS.
    Xfs,
    /// FAT32 data partition.
    Vfat,
}

impl PartitionKind {
    /// The names a configuration uses.
    pub const NAMES: [&'static str; 6] = ["esp", "linux-swap", "btrfs", "ext4", "xfs", "vfat"];

    /// Parses a configuration name.
    pub fn parse(s: &str) -> Option<PartitionKind> {
        Some(match s {
            "esp" => PartitionKind::Esp,
            "linux-swap" | "swap" => PartitionKind::LinuxSwap,
            "btrfs" => PartitionKind::Btrfs,
            "ext4" => PartitionKind::Ext4,
            "xfs" => PartitionKind::Xfs,
            "vfat" | "fat32" => PartitionKind::Vfat,
            _ => return None,
        })
    }
}

/// Kernel and boot loader.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Boot {
    /// The kernel.
    pub kernel: Kernel,
    /// The boot loader.
    pub loader: Loader,
}

/// The kernel.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Kernel {
    /// The kernel package; the distribution's default when absent.
    pub package: Option<String>,
    /// `package = false`: no kernel (a container, or a machine tests build
    /// in seconds).
    pub none: bool,
    /// Modules the initramfs must carry.
    pub modules: Vec<String>,
    /// Options added to the kernel command line of every entry
    /// (`console=ttyS0`, `resume=...`).
    pub options: Vec<String>,
    /// The tool that builds the initramfs; the distribution's default
    /// when absent.
    pub initramfs: Option<InitramfsTool>,
}

/// A tool that builds an initramfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitramfsTool {
    /// Debian's initramfs-tools (`update-initramfs`).
    InitramfsTools,
    /// dracut.
    Dracut,
}

impl InitramfsTool {
    /// Its package (Debian's name), which is also its configuration name.
    pub fn package(self) -> &'static str {
        match self {
            InitramfsTool::InitramfsTools => "initramfs-tools",
            InitramfsTool::Dracut => "dracut",
        }
    }
}

/// The boot loader.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Loader {
    /// Which loader.
    pub kind: LoaderKind,
    /// Menu timeout in seconds.
    pub timeout: Option<u32>,
    /// Extra boot entries, each a package that provides one (`memtest86+`).
    pub include: Vec<String>,
    /// Boots a new generation's entry gets before it counts as bad
    /// (systemd's boot counting); 0 turns counting off.
    pub tries: u32,
    /// Boot entries kept on the ESP, at least the booted, default and last
    /// good generations' even when they alone exceed it.
    pub max_entries: u32,
}

impl Default for Loader {
    fn default() -> Self {
        Loader {
            kind: LoaderKind::SystemdBoot,
            timeout: None,
            include: Vec::new(),
            tries: 3,
            max_entries: 10,
        }
    }
}

/// A boot loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoaderKind {
    /// systemd-boot (the only one kod installs today).
    SystemdBoot,
    /// GRUB.
    Grub,
}

/// Hardware support: a package, extra packages and perhaps a service.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Hardware {
    /// Whether it is installed at all.
    pub enable: bool,
    /// The package; the entry's name when absent.
    pub package: Option<String>,
    /// More packages.
    pub extra_packages: Vec<String>,
    /// A systemd service to enable with it.
    pub service_name: Option<String>,
}

/// Locale settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Locale {
    /// The default locale, as a locale.gen line (`en_CA.UTF-8 UTF-8`).
    pub default: Option<String>,
    /// More locales to generate.
    pub extra_generate: Vec<String>,
    /// Extra `LC_*` variables for locale.conf.
    pub extra_settings: BTreeMap<String, String>,
    /// Console keymap.
    pub keymap: Option<String>,
    /// IANA time zone.
    pub timezone: Option<String>,
}

/// Network settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Network {
    /// Host name.
    pub hostname: Option<String>,
    /// IPv4: absent means DHCP.
    pub ipv4: Option<IpConfig>,
    /// IPv6: absent means automatic configuration.
    pub ipv6: Option<IpConfig>,
}

/// How one IP family is configured.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum IpConfig {
    /// Turned off.
    Disabled,
    /// DHCP (IPv4) or router advertisements (IPv6).
    Automatic,
    /// A fixed address.
    Static {
        /// Address with prefix length (`192.168.1.10/24`).
        address: String,
        /// Default gateway.
        gateway: Option<String>,
        /// Name servers.
        dns: Vec<String>,
    },
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    /// Full name (the GECOS field; KodOS's `name`).
    pub full_name: Option<String>,
    /// The password setting. Serializes as its kind only.
    pub password: Password,
    /// Login shell.
    pub shell: Option<String>,
    /// Supplementary groups.
    pub extra_groups: Vec<String>,
    /// Public keys for ~/.ssh/authorized_keys.
    pub ssh_authorized: Vec<String>,
    /// The dotfile manager and what it deploys.
    pub dotfile_manager: Option<Action>,
    /// Programs by name.
    pub programs: BTreeMap<String, Program>,
    /// Dotfile directories deployed apart from any program.
    pub deploy_configs: Vec<String>,
    /// User services by name.
    pub services: BTreeMap<String, UserService>,
}

/// How a user's password is set. The secret itself never leaves kod-config
/// except to the step that sets it.
#[derive(Clone, PartialEq)]
pub enum Password {
    /// Not mentioned: the account is locked until a password is set.
    Unset,
    /// `no_password = true`: an empty password.
    NoPassword,
    /// A plain-text password in the configuration.
    Plain(String),
    /// A crypt(3) hash.
    Hashed(String),
}

impl Password {
    /// The kind, for plans and logs: `unset`, `none`, `plain`, `hashed`.
    pub fn kind(&self) -> &'static str {
        match self {
            Password::Unset => "unset",
            Password::NoPassword => "none",
            Password::Plain(_) => "plain",
            Password::Hashed(_) => "hashed",
        }
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Password({})", self.kind())
    }
}

impl Serialize for Password {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.kind())
    }
}

/// A program a user wants.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Program {
    /// Whether it is installed and configured.
    pub enable: bool,
    /// The package; the program's name when absent.
    pub package: Option<String>,
    /// Whether the dotfile manager deploys its configuration.
    pub deploy_config: bool,
    /// More packages.
    pub extra_packages: Vec<String>,
    /// A configuration helper for it.
    pub config: Option<Action>,
}

/// A systemd user service a user wants.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UserService {
    /// Whether it is installed and enabled.
    pub enable: bool,
    /// The package; the service's name when absent.
    pub package: Option<String>,
    /// More packages.
    pub extra_packages: Vec<String>,
    /// A configuration helper for it.
    pub config: Option<Action>,
}

/// Display manager and desktop environments.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Desktop {
    /// The display manager for all desktops; overrides each desktop's own.
    pub display_manager: Option<String>,
    /// Desktop environments by name (`gnome`, `plasma`, ...).
    pub desktop_manager: BTreeMap<String, DesktopEnvironment>,
}

/// One desktop environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DesktopEnvironment {
    /// Whether it is installed.
    pub enable: bool,
    /// Its package (or group); its name when absent.
    pub package: Option<String>,
    /// Its own display manager, used when `desktop.display_manager` is not set.
    pub display_manager: Option<String>,
    /// More packages.
    pub extra_packages: Vec<String>,
    /// Packages it would bring that are not wanted (and are removed).
    pub exclude_packages: Vec<String>,
}

/// Fonts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Fonts {
    /// Whether ~/.local/share/fonts is set up for users.
    pub font_dir: bool,
    /// Font packages.
    pub packages: Vec<String>,
}

/// A system service.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Service {
    /// `Some(true)`: installed and enabled. `Some(false)`: neither, and its
    /// helpers do nothing (KodOS enables it anyway). `None`: not said; the
    /// entry only groups helpers (`services.systemd_mount.services`), which run.
    pub enable: Option<bool>,
    /// The systemd unit, when it differs from the entry's name.
    pub service_name: Option<String>,
    /// The package; the entry's name when absent.
    pub package: Option<String>,
    /// More packages.
    pub extra_packages: Vec<String>,
    /// Settings for the service's configuration file.
    pub settings: BTreeMap<String, Setting>,
    /// Configuration helpers (e.g. `configs.mount`) by name.
    pub services: BTreeMap<String, Action>,
}

/// A setting value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Setting {
    /// true or false.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// Text.
    Text(String),
    /// A list of values.
    List(Vec<Setting>),
}

/// An environment of another distribution (`kod env`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Environment {
    /// `DISTRO:RELEASE`, e.g. `debian:sid`.
    pub distro: String,
    /// Packages installed into it.
    pub packages: Vec<String>,
    /// Programs exported to the host.
    pub exports: Vec<String>,
    /// Host paths bind-mounted into it.
    pub volumes: Vec<String>,
}

/// When an action's effects are carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// `kod install`.
    Install,
    /// `kod rebuild`.
    Rebuild,
    /// `kod rebuild-user`.
    RebuildUser,
}

impl Stage {
    /// Every stage.
    pub const ALL: [Stage; 3] = [Stage::Install, Stage::Rebuild, Stage::RebuildUser];

    /// The configuration name (`install`, `rebuild`, `rebuild-user`).
    pub fn name(self) -> &'static str {
        match self {
            Stage::Install => "install",
            Stage::Rebuild => "rebuild",
            Stage::RebuildUser => "rebuild-user",
        }
    }
}

/// A configuration helper's result: what it does, and when.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Action {
    /// The helper's name (`git`, `stow`, `mount`, ...).
    pub helper: String,
    /// The stages it runs in.
    pub stages: Vec<Stage>,
    /// Packages the helper needs in the target (`stow` needs stow and git).
    pub packages: Vec<String>,
    /// What it does, in order.
    pub effects: Vec<Effect>,
}

/// One thing an action does to the target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Effect {
    /// Write a file.
    WriteFile {
        /// Absolute path in the target.
        path: String,
        /// Its content.
        content: String,
        /// Permission bits.
        mode: u32,
        /// Owner: a user name, or root.
        owner: String,
    },
    /// Copy a file from the configuration's directory.
    CopyFile {
        /// Absolute path on the machine running kod.
        source: PathBuf,
        /// Absolute path in the target.
        target: String,
        /// Owner: a user name, or root.
        owner: String,
    },
    /// Clone a git repository, or pull it when already cloned.
    GitCheckout {
        /// Repository URL.
        url: String,
        /// Absolute directory in the target.
        dir: String,
        /// Owner: a user name, or root.
        owner: String,
    },
    /// Run a program.
    Run {
        /// Program and arguments; a shell command is `["sh", "-c", CMD]`.
        argv: Vec<String>,
        /// The user it runs as.
        user: String,
    },
    /// Enable a systemd unit.
    EnableUnit {
        /// Unit name (`mnt-data.automount`).
        unit: String,
        /// A user for a user unit; `None` for a system unit.
        user: Option<String>,
    },
}
