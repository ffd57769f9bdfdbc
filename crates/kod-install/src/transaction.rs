//! The transaction core, written once for every package database and
//! every kind of target: one lock per root; all work done where the target
//! does not see it (a [`Strategy`]: a new root beside its place, an
//! overlay, a snapshot, a throwaway overlay); the database's steps called
//! in order; the target changed only at commit; a failure, a dropped
//! transaction or a killed kod leaves it as it was.

use std::fs::File;
use std::path::{Path, PathBuf};

use kod_db::dpkg::{BootstrapOptions, Dpkg};
use kod_db::{InstallReport, PackageDb, PackageState, RemovalPlan, Root, Runner, Step};
use kod_report::{Stage, Work};

use crate::Options;
use crate::binds::Bound;
use crate::chroot::{Chroot, kill_processes_in};
use crate::error::{Error, io_error};
use crate::leftovers::{self, Record};
use crate::lock::{Lock, lock};
use crate::skeleton;
use crate::target::ephemeral::Ephemeral;
use crate::target::new_root::NewRoot;
use crate::target::overlay::OnRoot;
use crate::target::snapshot::Snapshot;
use crate::target::{Strategy, normalize};

/// What [`Transaction::commit`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitReport {
    /// The root.
    pub root: PathBuf,
    /// False when nothing was changed: a debug run (commands printed, not
    /// run).
    pub committed: bool,
    /// Entries moved onto an existing root.
    pub moved: u64,
    /// Entries deleted from an existing root.
    pub removed: u64,
    /// Processes a maintainer script left running in the root, killed.
    pub killed: Vec<String>,
}

/// A transaction on one target, with the target's package database `D`.
/// Dropping it without [`commit`](Transaction::commit) rolls it back.
#[derive(Debug)]
pub struct Transaction<D: PackageDb = Dpkg> {
    root: PathBuf,
    options: Options,
    locks: Vec<Lock>,
    /// The database tools' own lock (dpkg's frontend lock), if held.
    _tool_lock: Option<File>,
    /// `None` once committed or discarded.
    target: Option<Box<dyn Strategy>>,
    fs: Root,
    chroot: Chroot,
    db: D,
    configure: bool,
    /// [`Options::binds`], mounted.
    bound: Bound,
    _record: Option<Record>,
}

/// The locks and record a transaction holds while it prepares.
struct Held {
    locks: Vec<Lock>,
    tool_lock: Option<File>,
    record: Option<Record>,
}

/// Cleans what killed transactions recorded in the journal, takes the
/// locks of `roots` (the first is the target) and cleans their leftovers.
fn hold(roots: &[&Path], options: &Options) -> Result<Held, Error> {
    if let Some(j) = &options.journal {
        leftovers::clean_journal(j, &options.report);
    }
    let mut locks = Vec::new();
    for r in roots {
        locks.push(lock(r, !options.no_wait, &options.report)?);
    }
    Ok(Held {
        locks,
        tool_lock: None,
        record: None,
    })
}

fn record(
    options: &Options,
    root: Option<&Path>,
    work: Option<&Path>,
) -> Result<Option<Record>, Error> {
    options
        .journal
        .as_deref()
        .map(|j| Record::write(j, root, work))
        .transpose()
}

/// The database of an existing root, or an error saying it has none.
fn open_db<D: PackageDb>(fs: &Root, root: &Path) -> Result<D, Error> {
    D::open(fs)?.ok_or_else(|| Error::Target {
        root: root.to_path_buf(),
        reason: format!(
            "not a {} root (no {}); bootstrap a new root there instead",
            D::FAMILY,
            D::MARK
        ),
    })
}

/// What a database step of a transaction works on.
fn step<'a>(fs: &'a Root, chroot: &'a Chroot, options: &'a Options) -> Step<'a> {
    Step {
        fs,
        runner: chroot,
        report: &options.report,
        debug: options.debug,
        data_cache: options.data_cache.as_deref(),
    }
}

impl<D: PackageDb> Transaction<D> {
    /// Begins a transaction that creates the new root `root` (absent, or
    /// an empty directory): takes its lock, removes what an interrupted kod
    /// left, and prepares a staging directory with a new root's skeleton
    /// (`/dev`, `/tmp`) and an empty database made from `setup`. The root
    /// appears only at commit.
    pub fn create(root: &Path, setup: &D::Setup, options: &Options) -> Result<Self, Error> {
        let root = normalize(root)?;
        let mut held = hold(&[&root], options)?;
        leftovers::clean_root(&root, &options.report)?;
        held.record = record(options, Some(&root), None)?;
        let target = Box::new(NewRoot::prepare(&root)?);
        Self::start(root, target, held, options, |fs| {
            skeleton::new_root(fs, &options.report)?;
            Ok(D::create(fs, setup, &options.report)?)
        })
    }

    /// Begins a transaction on the existing root `root`, which has a
    /// database of this kind: takes its lock and the database tools' lock
    /// (waiting unless `options.no_wait`), finishes or removes what an
    /// interrupted kod left, and mounts the overlay the transaction works
    /// in. The root is changed at commit only.
    pub fn open(root: &Path, options: &Options) -> Result<Self, Error> {
        let root = normalize(root)?;
        let mut held = hold(&[&root], options)?;
        let real = Root::open(&root).map_err(io_error("open", &root))?;
        open_db::<D>(&real, &root)?;
        // Before finishing an interrupted commit, which changes the root too.
        held.tool_lock = D::lock_tools(&root, !options.no_wait, &options.report)?;
        leftovers::clean_root(&root, &options.report)?;
        held.record = record(options, Some(&root), None)?;
        let target = Box::new(OnRoot::prepare(&root, &options.report)?);
        Self::start(root.clone(), target, held, options, |fs| open_db(fs, &root))
    }

    /// Begins a transaction that makes the new root `to` (absent, or an
    /// empty directory) from a copy-on-write snapshot of the existing root
    /// `from`: a Btrfs subvolume snapshot when `from` is a subvolume on
    /// `to`'s file system, else a copy with reflinked files where the file
    /// system has them; `from` is only read (its locks are held meanwhile).
    /// The transaction works in the snapshot; `to` appears only at commit.
    pub fn snapshot(from: &Path, to: &Path, options: &Options) -> Result<Self, Error> {
        let from = normalize(from)?;
        let to = normalize(to)?;
        if from == to || to.starts_with(&from) {
            return Err(Error::Target {
                root: to,
                reason: format!(
                    "is {} or inside it; a snapshot needs a place of its own",
                    from.display()
                ),
            });
        }
        let mut held = hold(&[&to, &from], options)?;
        held.tool_lock = D::lock_tools(&from, !options.no_wait, &options.report)?;
        leftovers::clean_root(&to, &options.report)?;
        held.record = record(options, Some(&to), None)?;
        let target = Box::new(Snapshot::prepare(&from, &to, &options.report)?);
        Self::start(to, target, held, options, |fs| open_db(fs, &from))
    }

    /// Begins a throwaway transaction on `lower` (any root with a database
    /// of this kind, the running system's `/` included): an overlay whose
    /// upper layer is made in `work_dir` and never merged into `lower`.
    /// Committing keeps the upper layer at `keep` when given (for reuse as
    /// a read-only layer), else throws it away; `lower` is never written
    /// and not locked (many may share it).
    pub fn ephemeral(
        lower: &Path,
        work_dir: &Path,
        keep: Option<&Path>,
        options: &Options,
    ) -> Result<Self, Error> {
        let lower = normalize(lower)?;
        let mut held = hold(&[], options)?;
        let target = Ephemeral::prepare(&lower, work_dir, keep, &options.report)?;
        held.record = record(options, None, Some(target.work()))?;
        Self::start(lower.clone(), Box::new(target), held, options, |fs| {
            open_db(fs, &lower)
        })
    }

    /// Opens the view of a prepared target and its database; on failure
    /// the target is discarded.
    fn start(
        root: PathBuf,
        target: Box<dyn Strategy>,
        held: Held,
        options: &Options,
        db: impl FnOnce(&Root) -> Result<D, Error>,
    ) -> Result<Self, Error> {
        let prepared = Root::open(target.view())
            .map_err(io_error("open", target.view()))
            .and_then(|fs| {
                let chroot = target
                    .chroot(&root, options.debug, &options.report)?
                    .with_env(&options.script_env);
                // Bound before the database is made: a new root's skeleton
                // directories under them belong to the shared ones.
                let bound = Bound::mount(&fs, &options.binds, &options.report, options.debug)?;
                let db = db(&fs)?;
                Ok((fs, chroot, db, bound))
            });
        let (fs, chroot, db, bound) = match prepared {
            Ok(p) => p,
            Err(e) => {
                target.discard(&options.report);
                return Err(e);
            }
        };
        Ok(Transaction {
            root,
            options: options.clone(),
            locks: held.locks,
            _tool_lock: held.tool_lock,
            target: Some(target),
            fs,
            chroot,
            db,
            configure: false,
            bound,
            _record: held.record,
        })
    }

    /// How the transaction runs.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The target root (for an ephemeral transaction, its lower root).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the transaction's view of the root is reached now (a staging
    /// directory, a snapshot, or the overlay): read it, never write it.
    pub fn view(&self) -> &Path {
        self.fs.path()
    }

    /// The view, confined: where kod's own writes into the target go.
    pub fn fs(&self) -> &Root {
        &self.fs
    }

    /// The lock file held on the target (none for an ephemeral one).
    pub fn lock_path(&self) -> Option<&Path> {
        self.locks.first().map(Lock::path)
    }

    /// The packages of the target's database as the transaction sees them
    /// now.
    pub fn packages(&self) -> Vec<PackageState> {
        self.db.packages()
    }

    /// Installs the package archives `archives`: new packages are unpacked
    /// in parallel and registered in the database (what must run before
    /// unpacking run as the database's own tool would run it); packages the
    /// database already knows in another version go through its own tool.
    /// Configuration happens once, at [`commit`](Transaction::commit).
    pub fn install<P: AsRef<Path> + Sync>(
        &mut self,
        archives: &[P],
    ) -> Result<InstallReport, Error> {
        let paths: Vec<PathBuf> = archives.iter().map(|a| a.as_ref().to_path_buf()).collect();
        let archives = self.db.read_archives(&paths)?;
        let sorted = self.db.sort(&archives)?;
        let mut report = sorted.report;
        let fresh = self.fresh();
        let step = step(&self.fs, &self.chroot, &self.options);
        if !sorted.by_tool.is_empty() {
            let known: Vec<&D::Archive> = sorted.by_tool.iter().map(|&i| &archives[i]).collect();
            self.db.install_with_tool(&step, &known)?;
            self.configure = true;
        }
        if sorted.new.is_empty() {
            return Ok(report);
        }
        let new: Vec<&D::Archive> = sorted.new.iter().map(|&i| &archives[i]).collect();
        if !fresh {
            // The root works: what runs before unpacking runs first.
            self.db.before_unpack(&step, &new, false)?;
        }
        (report.files, report.bytes) = self.db.unpack(&step, &new, fresh)?;
        if fresh {
            // Nothing could run before the files were there.
            self.db.before_unpack(&step, &new, true)?;
        }
        self.configure = true;
        Ok(report)
    }

    fn fresh(&self) -> bool {
        self.target.as_ref().is_some_and(|t| t.fresh())
    }

    /// Records that `names` were installed automatically, as dependencies
    /// (`auto`), or on purpose, for the database's tools (apt's
    /// `extended_states`), so that their autoremoval knows what it may
    /// take out.
    pub fn mark_auto_installed(&mut self, names: &[&str], auto: bool) -> Result<(), Error> {
        Ok(self.db.mark_auto_installed(&self.fs, names, auto)?)
    }

    /// Plans removing `names`: see [`RemovalPlan`]. Fails when they are not
    /// installed, are Essential or Protected, or (unless `with_dependents`)
    /// when installed packages depend on them.
    pub fn plan_removal(
        &self,
        names: &[&str],
        with_dependents: bool,
        purge: bool,
    ) -> Result<RemovalPlan, Error> {
        Ok(self
            .db
            .plan_removal(self.fs.path(), names, with_dependents, purge)?)
    }

    /// Removes (or purges) what `plan` lists, with the database's own tool.
    pub fn remove(&mut self, plan: &RemovalPlan) -> Result<(), Error> {
        let step = step(&self.fs, &self.chroot, &self.options);
        Ok(self.db.remove(&step, plan)?)
    }

    /// Configures what was installed so far now (the database's configure
    /// step), so that the caller can work in a configured root before the
    /// commit (settling a system: accounts, locales, units); the commit
    /// then configures only what is installed after.
    pub fn configure(&mut self) -> Result<(), Error> {
        if self.configure {
            let step = step(&self.fs, &self.chroot, &self.options);
            self.db.configure(&step)?;
            self.configure = false;
        }
        Ok(())
    }

    /// Runs commands in the transaction's view as its database's scripts
    /// run (chrooted, with the same environment and `-v`/`-d` behaviour).
    pub fn runner(&self) -> &dyn Runner {
        &self.chroot
    }

    /// Configures what was installed (once), then makes the result the
    /// target as its strategy does: a new root or a snapshot is renamed
    /// into place, an overlay's changes are moved onto its root, a
    /// throwaway overlay is unmounted (its layer kept if asked). One
    /// `syncfs` before the commit point. On failure the target is as
    /// before.
    pub fn commit(mut self) -> Result<CommitReport, Error> {
        let report = self.options.report.clone();
        self.configure()?;
        let killed = kill_processes_in(self.fs.path());
        for k in &killed {
            report.warning(&format!(
                "a maintainer script left {k} running in {}; killed it",
                self.root.display()
            ));
        }
        let mut done = CommitReport {
            root: self.root.clone(),
            committed: false,
            moved: 0,
            removed: 0,
            killed,
        };
        if self.options.debug {
            report.verbose(|| {
                format!(
                    "+ (debug) not committing: {} stays as it was",
                    self.root.display()
                )
            });
            return Ok(done);
        }
        let Some(target) = self.target.take() else {
            return Ok(done);
        };
        self.bound.unmount()?;
        let started = std::time::Instant::now();
        let committed = {
            let stage = report.stage(Stage::Commit, Work::items(1));
            let committed = target.commit(&report)?;
            stage.advance(Work::items(1), "");
            committed
        };
        report.verbose(|| {
            format!(
                "  committed to {} in {:.3} s",
                self.root.display(),
                started.elapsed().as_secs_f64()
            )
        });
        done.moved = committed.moved;
        done.removed = committed.removed;
        done.committed = true;
        Ok(done)
    }

    /// Rolls the transaction back explicitly (dropping it does the same).
    pub fn abort(mut self) {
        self.rollback();
    }

    fn rollback(&mut self) {
        let Some(target) = self.target.take() else {
            return;
        };
        kill_processes_in(self.fs.path());
        if let Err(e) = self.bound.unmount() {
            self.options.report.warning(&e.to_string());
        }
        self.options
            .report
            .verbose(|| format!("+ roll back: {} stays as it was", self.root.display()));
        target.discard(&self.options.report);
    }
}

impl Transaction<Dpkg> {
    /// [`Transaction::create`] of a new Debian root.
    pub fn bootstrap(root: &Path, b: &BootstrapOptions, options: &Options) -> Result<Self, Error> {
        Self::create(root, b, options)
    }

    /// [`Transaction::open`] of an existing Debian root (it has
    /// `/var/lib/dpkg/status`).
    pub fn begin(root: &Path, options: &Options) -> Result<Self, Error> {
        Self::open(root, options)
    }
}

impl<D: PackageDb> Drop for Transaction<D> {
    fn drop(&mut self) {
        self.rollback();
    }
}
