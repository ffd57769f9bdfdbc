//! The command line: every subcommand, its flags and its help.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// kod: one Lua file describes a whole machine. kod installs it onto a disk
/// or an image straight from distribution repositories, rebuilds it into
/// Btrfs generations you can boot back into, opens throwaway shells with
/// extra packages, and runs programs from other distributions' environments.
#[derive(Debug, Parser)]
#[command(name = "kod", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Print every external command kod runs.
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// Print the external commands instead of running them (as KodOS does).
    #[arg(short, long, global = true)]
    pub debug: bool,

    /// Fail at once when another kod, or apt or dpkg, is working on the same
    /// root, instead of waiting for it.
    #[arg(long, global = true)]
    pub no_wait: bool,

    /// The configuration: a file, or a directory holding configuration.lua.
    /// Default: /etc/kod, then /etc/kodos.
    #[arg(short, long, global = true, value_name = "FILE|DIR")]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags of commands that change a machine.
#[derive(Debug, Args, Clone, Copy)]
pub struct DryRun {
    /// Print exactly what would happen, and touch nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Flags of commands that list or plan.
#[derive(Debug, Args, Clone, Copy)]
pub struct Json {
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// kod's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the full desired state a configuration describes: repositories,
    /// disks, boot, locale, network, users, packages per source, services,
    /// and what configuration helpers do in each stage. Changes nothing.
    Plan {
        #[command(flatten)]
        json: Json,
    },

    /// Install the configured system onto its disk (or a disk image):
    /// partition, format, build generation 0, make it bootable.
    Install {
        /// Build generation 0 on the Btrfs file system whose top level
        /// (subvolid=5) is mounted at TOP, instead of on a disk.
        #[arg(long, value_name = "TOP", conflicts_with_all = ["image", "disk", "size", "mount_point"])]
        target: Option<PathBuf>,
        /// Where the new system's Btrfs root is mounted while it is built
        /// (an existing directory; default: a new private temporary one).
        /// The mount is private to kod and gone when it ends.
        #[arg(short, long, value_name = "DIR")]
        mount_point: Option<PathBuf>,
        /// Install onto a new disk image file instead of the configured
        /// device: FILE for the configuration's one disk, KEY=FILE for its
        /// disk `devices.KEY` (repeatable). FILE must not exist.
        #[arg(long, value_name = "[KEY=]FILE")]
        image: Vec<String>,
        /// The size of each new image (K, M, G, T: binary).
        #[arg(long, default_value = "8G", requires = "image")]
        size: String,
        /// Install onto this block device instead of the configured one:
        /// DEV for the configuration's one disk, KEY=DEV for `devices.KEY`
        /// (repeatable). Everything on it is lost.
        #[arg(long, value_name = "[KEY=]DEV")]
        disk: Vec<String>,
        /// Do not ask before writing the disks (needed without a terminal).
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        dry_run: DryRun,
        #[command(flatten)]
        json: Json,
    },

    /// Bring the system in line with the configuration. With -n, build a new
    /// generation beside the running one and make it the next boot; the
    /// running system is untouched.
    Rebuild {
        /// The machine's Btrfs top level (mounted with subvolid=5) at TOP,
        /// instead of the running system's at /kod.
        #[arg(long, value_name = "TOP", conflicts_with = "image")]
        target: Option<PathBuf>,
        /// The machine on this disk image (made by `kod install --image`),
        /// offline: its root and ESP are opened from the image.
        #[arg(long, value_name = "FILE")]
        image: Option<PathBuf>,
        /// Build a new generation instead of changing the running one.
        #[arg(short = 'n', long)]
        new_generation: bool,
        /// Refresh the repositories and take every package at its newest
        /// version (apt's full-upgrade); without it, installed versions
        /// are kept.
        #[arg(short, long)]
        update: bool,
        #[command(flatten)]
        dry_run: DryRun,
        #[command(flatten)]
        json: Json,
    },

    /// Apply a user's part of the configuration: dotfiles, program
    /// configurations, user services.
    RebuildUser {
        /// The user (default: the caller).
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        dry_run: DryRun,
    },

    /// Open a shell on a throwaway overlay of the running system (or of
    /// --root DIR) with extra packages; the overlay is discarded on exit.
    /// Needs root; under sudo the command runs as root.
    Shell {
        /// A package to add (repeatable; `aur:` and `flatpak:` prefixes allowed).
        #[arg(short, long = "package", value_name = "PKG")]
        packages: Vec<String>,
        /// The root to overlay instead of the running system's `/`.
        #[arg(long, value_name = "DIR", default_value = "/", conflicts_with = "env")]
        root: PathBuf,
        /// One of your environments instead (not available yet).
        #[arg(long, value_name = "NAME")]
        env: Option<String>,
        /// Keep the overlay's upper layer (the packages and what the command
        /// changed) at DIR, which must not exist, instead of discarding it.
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
        /// Command to run instead of your shell; any bytes, as the shell
        /// passes them.
        #[arg(last = true)]
        command: Vec<std::ffi::OsString>,
    },

    /// List, compare, roll back, delete and garbage-collect a machine's
    /// generations (the running system's, on /kod, unless --target).
    Generations {
        #[command(subcommand)]
        action: Option<GenerationsAction>,
        #[command(flatten)]
        flags: GenerationsFlags,
    },

    /// Build a root filesystem of a distribution into a directory, like
    /// mmdebstrap.
    Bootstrap {
        /// DISTRO:SUITE, e.g. debian:bookworm.
        distro: String,
        /// The directory to build into (must be empty or absent).
        dir: PathBuf,
        /// Package set: essential, minbase (= required), important, standard.
        #[arg(long, default_value = "minbase")]
        variant: String,
        /// More packages, comma-separated.
        #[arg(long, value_delimiter = ',', value_name = "P,...")]
        include: Vec<String>,
        /// Mirror URL (default: configuration, KOD_DEBIAN_MIRROR, then the
        /// host's apt sources).
        #[arg(long)]
        mirror: Option<String>,
        #[command(flatten)]
        dry_run: DryRun,
        #[command(flatten)]
        json: Json,
    },

    /// Query repositories and install or remove packages in a root.
    Pkg {
        #[command(subcommand)]
        action: PkgAction,
    },

    /// Environments of other distributions: create, fill, export programs.
    Env {
        #[command(subcommand)]
        action: EnvAction,
    },

    /// Run a command in an environment as yourself: same user, home,
    /// working directory, environment and terminal.
    Run {
        /// The environment.
        name: String,
        /// Also bind-mount this host path (repeatable).
        #[arg(long, value_name = "PATH")]
        volume: Vec<PathBuf>,
        /// The command and its arguments (default: your shell); any bytes,
        /// as the shell passes them.
        #[arg(last = true)]
        command: Vec<std::ffi::OsString>,
    },

    /// Whole-OS snapshots (btrfs, or rsync where btrfs is absent).
    Snapshot {
        #[command(subcommand)]
        action: SnapshotAction,
    },

    /// Switch to another installed OS or snapshot, with kexec when possible.
    SwitchOs {
        /// The OS or snapshot to switch to.
        target: String,
        /// Reboot through the firmware instead of kexec.
        #[arg(long)]
        no_kexec: bool,
        #[command(flatten)]
        dry_run: DryRun,
    },

    /// Show the running OS: generation, booted entry, snapshots, environments.
    OsStatus {
        #[command(flatten)]
        json: Json,
    },

    /// Boot an installed image (or one of its generations) in qemu under
    /// UEFI firmware (OVMF). Without --check the console is on the
    /// terminal (Ctrl-A X quits); with it, kod waits for the guest's boot
    /// report and says whether the boot went well (exit status 0), failed
    /// (1) or did not report in time (3).
    Vm {
        /// The disk image.
        image: PathBuf,
        /// Boot this generation once, its kernel directly (no systemd-boot,
        /// no boot counting), instead of the default entry; the next boot
        /// is the default again.
        #[arg(long)]
        generation: Option<u32>,
        /// Wait for the guest's report, print it, and power the guest off.
        #[arg(long)]
        check: bool,
        /// Run this shell command in the guest as root after the boot and
        /// report its output and status (repeatable; implies --check).
        #[arg(long = "run", value_name = "CMD")]
        run: Vec<String>,
        /// Seconds to wait for the report.
        #[arg(long, value_name = "S", default_value_t = 600)]
        timeout: u64,
        /// Print the result as JSON (implies --check).
        #[command(flatten)]
        json: Json,
    },
}

/// Flags of every `kod generations` action (given before or after it).
#[derive(Debug, Args, Clone)]
pub struct GenerationsFlags {
    /// The machine's Btrfs top level (mounted with subvolid=5) at TOP,
    /// instead of the running system's at /kod.
    #[arg(long, value_name = "TOP", global = true, conflicts_with = "image")]
    pub target: Option<PathBuf>,
    /// The machine on this disk image (made by `kod install --image`),
    /// offline: its root and ESP are opened from the image.
    #[arg(long, value_name = "FILE", global = true)]
    pub image: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `kod generations` actions.
#[derive(Debug, Subcommand)]
pub enum GenerationsAction {
    /// List the committed generations with their marks: booted, current,
    /// default, last good (the default action).
    List,
    /// Show what changed from generation A to generation B: packages,
    /// services, users, configuration files.
    Diff {
        /// The older generation.
        a: u64,
        /// The newer generation.
        b: u64,
    },
    /// Make generation N the default (the next boot's); without N, the
    /// previous default. The running system is not changed.
    Rollback {
        /// A committed generation (default: the previous default).
        generation: Option<u64>,
        #[command(flatten)]
        dry_run: DryRun,
    },
    /// Delete generations by number (never the booted, current or
    /// default one).
    Delete {
        /// Generation numbers.
        #[arg(required = true, value_name = "N")]
        generations: Vec<u64>,
        #[command(flatten)]
        dry_run: DryRun,
    },
    /// Delete all but the newest K committed generations, keeping the
    /// booted, current, default and last good ones too.
    Gc {
        /// How many of the newest generations to keep.
        #[arg(long, value_name = "K", default_value_t = 5)]
        keep: usize,
        #[command(flatten)]
        dry_run: DryRun,
    },
}

/// `kod pkg` actions.
#[derive(Debug, Subcommand)]
pub enum PkgAction {
    /// Refresh repository metadata.
    Update {
        /// DISTRO:SUITE instead of the configuration's repositories.
        #[arg(long)]
        distro: Option<String>,
    },
    /// Search package names and descriptions.
    Search {
        /// A substring or regular expression.
        pattern: String,
        /// DISTRO:SUITE instead of the configuration's repositories.
        #[arg(long)]
        distro: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Show a package's metadata.
    Show {
        /// Package name.
        name: String,
        /// DISTRO:SUITE instead of the configuration's repositories.
        #[arg(long)]
        distro: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Install packages (P or P=VERSION) into a root.
    Install {
        /// The root directory.
        #[arg(long)]
        root: PathBuf,
        /// Packages.
        #[arg(required = true)]
        packages: Vec<String>,
        #[command(flatten)]
        dry_run: DryRun,
        #[command(flatten)]
        json: Json,
    },
    /// Remove packages from a root, listing what goes with them.
    Remove {
        /// The root directory.
        #[arg(long)]
        root: PathBuf,
        /// Packages.
        #[arg(required = true)]
        packages: Vec<String>,
        /// Also remove the installed packages that depend on them (without
        /// this, a removal that would break them is refused).
        #[arg(long)]
        with_dependents: bool,
        /// Remove configuration files too.
        #[arg(long)]
        purge: bool,
        #[command(flatten)]
        dry_run: DryRun,
        #[command(flatten)]
        json: Json,
    },
}

/// `kod env` actions.
#[derive(Debug, Subcommand)]
pub enum EnvAction {
    /// Create an environment from a distribution's repositories.
    Create {
        /// Its name.
        name: String,
        /// DISTRO:RELEASE, e.g. debian:sid.
        #[arg(long)]
        distro: String,
        /// Packages to install, comma-separated.
        #[arg(long, value_delimiter = ',', value_name = "P,...")]
        packages: Vec<String>,
        #[command(flatten)]
        dry_run: DryRun,
    },
    /// Adopt an existing root directory or root tarball as an environment.
    Import {
        /// Its name.
        name: String,
        /// A directory or a tarball.
        source: PathBuf,
        /// A label for its distribution, e.g. alpine:3.20.
        #[arg(long)]
        distro: String,
    },
    /// Install packages into an environment.
    Install {
        /// The environment.
        name: String,
        /// Packages.
        #[arg(required = true)]
        packages: Vec<String>,
        #[command(flatten)]
        dry_run: DryRun,
    },
    /// Remove packages from an environment.
    Remove {
        /// The environment.
        name: String,
        /// Packages.
        #[arg(required = true)]
        packages: Vec<String>,
        #[command(flatten)]
        dry_run: DryRun,
    },
    /// List environments.
    List {
        #[command(flatten)]
        json: Json,
    },
    /// Show environments' distro, size, packages, exports, view and conflicts.
    Status {
        /// One environment (default: all).
        name: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Delete an environment and its exports.
    Delete {
        /// The environment.
        name: String,
        #[command(flatten)]
        dry_run: DryRun,
    },
    /// Remove cached packages no environment uses.
    Cleanup {
        #[command(flatten)]
        dry_run: DryRun,
        #[command(flatten)]
        json: Json,
    },
    /// Export programs (or, with --app, a desktop application) to the host.
    Export {
        /// The environment.
        name: String,
        /// Programs to export.
        bins: Vec<String>,
        /// A desktop application id to export.
        #[arg(long, value_name = "DESKTOP_ID")]
        app: Vec<String>,
    },
    /// Remove exported programs or applications.
    Unexport {
        /// The environment.
        name: String,
        /// Programs to unexport.
        bins: Vec<String>,
        /// Desktop application ids to unexport.
        #[arg(long, value_name = "DESKTOP_ID")]
        app: Vec<String>,
    },
    /// Choose how exports appear: `unified` (one bin directory) or
    /// `isolated` (one per environment).
    View {
        /// unified or isolated.
        mode: String,
        /// Environments in the order that settles a conflict in the unified
        /// view (the first wins; the others follow by name); kept for later.
        #[arg(long, value_delimiter = ',', value_name = "ENV,...")]
        priority: Option<Vec<String>>,
    },
    /// In the isolated view, point the stable path at this environment.
    Switch {
        /// The environment.
        name: String,
    },
    /// Create, update and export the configuration's environments.
    Sync {
        /// Also delete environments the configuration no longer declares.
        #[arg(long)]
        prune: bool,
        #[command(flatten)]
        dry_run: DryRun,
    },
}

/// `kod snapshot` actions.
#[derive(Debug, Subcommand)]
pub enum SnapshotAction {
    /// Snapshot the running OS.
    Create {
        /// A name for it.
        name: String,
        #[command(flatten)]
        dry_run: DryRun,
    },
    /// List snapshots.
    List {
        #[command(flatten)]
        json: Json,
    },
    /// Delete a snapshot.
    Delete {
        /// Its name.
        name: String,
        #[command(flatten)]
        dry_run: DryRun,
    },
}

impl Command {
    /// Whether the command prints JSON (`--json` given): its stages are
    /// then not drawn, only messages reach stderr.
    pub fn json(&self) -> bool {
        match self {
            Command::Generations { flags, .. } => flags.json,
            Command::Plan { json }
            | Command::Bootstrap { json, .. }
            | Command::Install { json, .. }
            | Command::Rebuild { json, .. }
            | Command::OsStatus { json }
            | Command::Vm { json, .. } => json.json,
            Command::Pkg { action } => match action {
                PkgAction::Update { .. } => false,
                PkgAction::Search { json, .. }
                | PkgAction::Show { json, .. }
                | PkgAction::Install { json, .. }
                | PkgAction::Remove { json, .. } => json.json,
            },
            Command::Env {
                action:
                    EnvAction::List { json }
                    | EnvAction::Status { json, .. }
                    | EnvAction::Cleanup { json, .. },
            } => json.json,
            Command::Snapshot {
                action: SnapshotAction::List { json },
            } => json.json,
            _ => false,
        }
    }

    /// The subcommand's name as typed, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Plan { .. } => "plan",
            Command::Install { .. } => "install",
            Command::Rebuild { .. } => "rebuild",
            Command::RebuildUser { .. } => "rebuild-user",
            Command::Shell { .. } => "shell",
            Command::Generations { .. } => "generations",
            Command::Bootstrap { .. } => "bootstrap",
            Command::Pkg { .. } => "pkg",
            Command::Env { .. } => "env",
            Command::Run { .. } => "run",
            Command::Snapshot { .. } => "snapshot",
            Command::SwitchOs { .. } => "switch-os",
            Command::OsStatus { .. } => "os-status",
            Command::Vm { .. } => "vm",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(args: &[&str]) -> bool {
        Cli::parse_from(std::iter::once("kod").chain(args.iter().copied()))
            .command
            .json()
    }

    #[test]
    fn json_is_seen_at_every_depth() {
        assert!(json(&["plan", "--json"]));
        assert!(json(&["bootstrap", "debian:bookworm", "d", "--json"]));
        assert!(json(&["pkg", "search", "x", "--json"]));
        assert!(json(&["env", "status", "--json"]));
        assert!(json(&["snapshot", "list", "--json"]));
        assert!(json(&["generations", "--json"]));
        assert!(json(&["generations", "diff", "0", "1", "--json"]));
        assert!(json(&["generations", "--json", "gc", "--keep", "1"]));
        assert!(!json(&["generations", "rollback", "--target", "/t"]));
        assert!(!json(&["plan"]));
        assert!(!json(&["pkg", "install", "--root", "/r", "hello"]));
        assert!(!json(&["env", "create", "e", "--distro", "debian:sid"]));
    }

    fn vm(args: &[&str]) -> Command {
        Cli::parse_from(["kod", "vm"].into_iter().chain(args.iter().copied())).command
    }

    #[test]
    fn vm_flags() {
        let Command::Vm {
            image,
            generation,
            check,
            run,
            timeout,
            json: flags,
        } = vm(&["a.img"])
        else {
            panic!("not vm");
        };
        assert_eq!(image, PathBuf::from("a.img"));
        assert_eq!(
            (generation, check, timeout, flags.json),
            (None, false, 600, false)
        );
        assert!(run.is_empty());
        let Command::Vm {
            generation,
            run,
            timeout,
            ..
        } = vm(&[
            "a.img",
            "--generation",
            "2",
            "--run",
            "echo a b",
            "--run",
            "true",
            "--timeout",
            "90",
        ])
        else {
            panic!("not vm");
        };
        assert_eq!((generation, timeout), (Some(2), 90));
        assert_eq!(run, ["echo a b", "true"]);
        assert!(json(&["vm", "a.img", "--json"]));
        assert!(Cli::try_parse_from(["kod", "vm"]).is_err());
        assert!(Cli::try_parse_from(["kod", "vm", "a.img", "--timeout", "soon"]).is_err());
    }
}
