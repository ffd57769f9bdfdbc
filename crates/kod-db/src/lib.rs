//! kod-db: the package databases of target roots.
//!
//! Its one job: know what a root has installed and carry out the steps of
//! a transaction that belong to the root's own package database — what
//! runs before unpacking, unpacking and registering packages, the
//! database's own tool for what only it can do, configuring (scripts,
//! triggers or hooks), removing — behind one trait, [`PackageDb`], so that
//! the transaction core (kod-install) is written once for every format.
//! [`dpkg`] is the first implementation, and the one reader of dpkg's
//! status file; the solver reads installed packages through it as the
//! neutral [`Installed`].
//!
//! How pacman's and rpm's databases map onto the trait is written in this
//! crate's README.
#![deny(missing_docs)]

pub mod dpkg;
mod error;
mod installed;
pub mod lock;

use std::path::{Path, PathBuf};

pub use error::{Broken, Error, Output, io_error};
pub use installed::{Installed, InstalledPackage};
pub use kod_report::Report;
pub use kod_root::Root;

/// A package by name, version and architecture.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PackageId {
    /// The package name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its architecture (`all` for architecture-independent packages).
    pub architecture: String,
}

/// A package of a database, with the database's state word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageState {
    /// Name, version, architecture.
    pub id: PackageId,
    /// The database's state: dpkg's `installed`, `unpacked`,
    /// `half-configured`, `config-files`, ...
    pub state: String,
}

/// What installing a set of archives did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallReport {
    /// New packages unpacked and registered by kod.
    pub unpacked: Vec<PackageId>,
    /// Packages the database already knew (another version, or
    /// configuration left behind), handed to the database's own tool.
    pub upgraded: Vec<PackageId>,
    /// Packages already installed at that version: left alone.
    pub unchanged: Vec<PackageId>,
    /// Regular files written by kod.
    pub files: u64,
    /// Bytes of file content written by kod.
    pub bytes: u64,
}

/// What a removal would do, to show before doing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovalPlan {
    /// The packages asked for.
    pub requested: Vec<String>,
    /// Installed packages that depend on them and are removed too (empty
    /// unless the plan was made with dependents).
    pub dependents: Vec<String>,
    /// Purge (configuration too) rather than remove.
    pub purge: bool,
}

impl RemovalPlan {
    /// Every package the removal takes out, requested first.
    pub fn packages(&self) -> impl Iterator<Item = &str> {
        self.requested
            .iter()
            .chain(&self.dependents)
            .map(String::as_str)
    }
}

/// A command's result: how it ended and its output.
#[derive(Debug, Clone, Default)]
pub struct Ran {
    /// Whether it exited with status 0.
    pub success: bool,
    /// How it ended, for messages (`exited with status 1`).
    pub status: String,
    /// Its last lines of output (for errors).
    pub tail: Vec<String>,
    /// Every line of output.
    pub lines: Vec<String>,
}

/// Runs programs inside the transaction's view of the target (a chroot
/// with `/proc`, `/sys` and `/dev`); the transaction core provides it.
pub trait Runner {
    /// Runs `argv` (an absolute path inside the root, and its arguments)
    /// with `env` added to the base environment; `step` names what is
    /// being done, for messages. In a debug run the command is shown and
    /// not run (it then "succeeds").
    fn run(&self, step: &str, argv: &[&str], env: &[(&str, &str)]) -> Result<Ran, Error> {
        self.run_watching(step, argv, env, &|_| {})
    }

    /// [`Runner::run`], handing each line of output to `on_line` as it
    /// comes (for progress).
    fn run_watching(
        &self,
        step: &str,
        argv: &[&str],
        env: &[(&str, &str)],
        on_line: &dyn Fn(&str),
    ) -> Result<Ran, Error>;

    /// The command as a person would type it.
    fn show(&self, argv: &[&str], env: &[(&str, &str)]) -> String;
}

/// What a database step works on.
pub struct Step<'a> {
    /// The transaction's view of the target, confined to it.
    pub fs: &'a Root,
    /// Runs commands in that view.
    pub runner: &'a dyn Runner,
    /// Where the step reports.
    pub report: &'a Report,
    /// Show what would be done instead of changing anything that lasts
    /// (commands are shown, not run).
    pub debug: bool,
    /// Where decompressed data parts of packages unpacked more than once
    /// are kept ([`kod_unpack::UnpackOptions::data_cache`]).
    pub data_cache: Option<&'a Path>,
}

/// Archives sorted by what installing them takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sorted {
    /// Indices of new packages: unpacked and registered by kod.
    pub new: Vec<usize>,
    /// Indices of packages the database knows in another version (or by
    /// what they left behind): installed by the database's own tool,
    /// which runs the old version's scripts.
    pub by_tool: Vec<usize>,
    /// What the installation will report (files and bytes still 0).
    pub report: InstallReport,
}

/// A package database of one root, as a transaction uses it. The
/// transaction core calls the steps in this order for an installation:
/// [`sort`](PackageDb::sort), then on an existing root
/// [`before_unpack`](PackageDb::before_unpack) of the new packages,
/// [`install_with_tool`](PackageDb::install_with_tool) of the others,
/// [`unpack`](PackageDb::unpack), and on a new root `before_unpack` after
/// the files are there (nothing can run before); at commit
/// [`configure`](PackageDb::configure) once.
pub trait PackageDb: Sized + Send {
    /// An archive's metadata, read before anything is installed.
    type Archive: Send + Sync;
    /// What a new root's database is made from (architectures, ...).
    type Setup;

    /// The database's name (`dpkg`), for messages.
    const NAME: &'static str;
    /// The family of systems whose roots have it (`Debian`), for messages.
    const FAMILY: &'static str;
    /// The file (relative to a root) whose presence says a root has it.
    const MARK: &'static str;

    /// Creates an empty database (and what its tools need) in the view of
    /// a new root.
    fn create(fs: &Root, setup: &Self::Setup, report: &Report) -> Result<Self, Error>;

    /// Opens the database of an existing root; `None` when the root has
    /// no database of this kind.
    fn open(fs: &Root) -> Result<Option<Self>, Error>;

    /// Takes the lock the database's own tools take, so that they do not
    /// run in the root during the transaction (`root` is the real root,
    /// not the view); `wait` says whether to wait for a holder. Held until
    /// the returned value is dropped.
    fn lock_tools(root: &Path, wait: bool, report: &Report)
    -> Result<Option<std::fs::File>, Error>;

    /// The packages the database records now.
    fn packages(&self) -> Vec<PackageState>;

    /// The packages that own `path` (absolute, as the root sees it).
    fn owners(&self, fs: &Root, path: &str) -> Result<Vec<String>, Error>;

    /// Reads the metadata of `archives`.
    fn read_archives(&self, archives: &[PathBuf]) -> Result<Vec<Self::Archive>, Error>;

    /// Decides what installing `archives` takes; refuses archives the
    /// root cannot take (architecture, the same package twice).
    fn sort(&self, archives: &[Self::Archive]) -> Result<Sorted, Error>;

    /// Runs what must run before `new` packages are unpacked (dpkg's
    /// `preinst install`); `fresh`: a new root, where it runs after.
    fn before_unpack(
        &mut self,
        step: &Step<'_>,
        new: &[&Self::Archive],
        fresh: bool,
    ) -> Result<(), Error>;

    /// Installs `archives` with the database's own tool.
    fn install_with_tool(
        &mut self,
        step: &Step<'_>,
        archives: &[&Self::Archive],
    ) -> Result<(), Error>;

    /// Unpacks `new` packages in parallel, checks them against what
    /// installed packages own, and registers them; returns the files and
    /// bytes written.
    fn unpack(
        &mut self,
        step: &Step<'_>,
        new: &[&Self::Archive],
        fresh: bool,
    ) -> Result<(u64, u64), Error>;

    /// Records that `names` were installed as dependencies (`auto`) or on
    /// purpose, for the database's tools' autoremoval.
    fn mark_auto_installed(&mut self, fs: &Root, names: &[&str], auto: bool) -> Result<(), Error>;

    /// Configures what is pending (scripts, triggers or hooks), once per
    /// transaction.
    fn configure(&mut self, step: &Step<'_>) -> Result<(), Error>;

    /// Plans removing `names` (with the packages that depend on them when
    /// `with_dependents`, else refusing to break them).
    fn plan_removal(
        &self,
        root: &Path,
        names: &[&str],
        with_dependents: bool,
        purge: bool,
    ) -> Result<RemovalPlan, Error>;

    /// Removes what `plan` lists.
    fn remove(&mut self, step: &Step<'_>, plan: &RemovalPlan) -> Result<(), Error>;
}
