//! Transactions: one lock per root; all work done where the root does not
//! see it (a staging directory for a new root, an overlay for an existing
//! one); the root changed only at commit; a failure, a dropped
//! transaction or a killed kod leaves the root as it was.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kod_unpack::{Conffiles, DebMeta, Ownership, UnpackOptions, merged_usr_dirs, setup_merged_usr};
use rayon::prelude::*;

use crate::Options;
use crate::chroot::{Chroot, NoServices, Ran, kill_processes_in};
use crate::db::{self, ADMIN, Status};
use crate::error::{Error, Output, io_error};
use crate::lock::{DPKG_FRONTEND_LOCK, Lock, dpkg_frontend_lock, lock};
use crate::overlay::{Holder, Marks, USER_MARKS_FILE};
use crate::register::{self, Ident, ident};
use crate::removal::{self, RemovalPlan};
use crate::rootfs::RootFs;
use crate::tree;

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

/// A package of the target's dpkg database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageState {
    /// Name, version, architecture.
    pub id: PackageId,
    /// dpkg's state: `installed`, `unpacked`, `half-configured`,
    /// `config-files`, ...
    pub state: String,
}

/// What [`Transaction::install`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallReport {
    /// New packages unpacked and registered by kod.
    pub unpacked: Vec<PackageId>,
    /// Packages dpkg already knew (another version, or conffiles left
    /// behind), handed to the target's own `dpkg --unpack`.
    pub upgraded: Vec<PackageId>,
    /// Packages already installed at that version: left alone.
    pub unchanged: Vec<PackageId>,
    /// Regular files written by kod.
    pub files: u64,
    /// Bytes of file content written by kod.
    pub bytes: u64,
}

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

/// How a new root is set up.
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

#[derive(Debug)]
enum Mode {
    /// A new root built in `staging`: next to the root (renamed into place
    /// at commit), or inside it when the root is an empty mount point
    /// (moved into place entry by entry, with a commit marker).
    Fresh { staging: PathBuf, inside: bool },
    /// An existing root changed through an overlay whose upper layer is
    /// `txn/upper`, with overlayfs's marks kept as `marks` says.
    Overlay {
        txn: PathBuf,
        holder: Option<Holder>,
        marks: Marks,
    },
}

/// The marker that says a move onto the root has begun: a later run
/// finishes it instead of throwing it away.
const COMMIT_MARKER: &str = ".kod-commit";

/// A transaction on one target root. Dropping it without
/// [`commit`](Transaction::commit) rolls it back.
#[derive(Debug)]
pub struct Transaction {
    root: PathBuf,
    options: Options,
    lock: Lock,
    /// The existing root's dpkg frontend lock (none for a new root).
    _dpkg_lock: Option<File>,
    mode: Mode,
    fs: RootFs,
    chroot: Chroot,
    status: Status,
    arch: Vec<String>,
    configure: bool,
    done: bool,
}

/// The absolute, symlink-free path of `root` (whose parent must exist).
fn normalize(root: &Path) -> Result<PathBuf, Error> {
    let abs = std::path::absolute(root).map_err(io_error("resolve", root))?;
    let (Some(parent), Some(name)) = (abs.parent(), abs.file_name()) else {
        return Err(Error::Target {
            root: abs.clone(),
            reason: "kod-install does not run transactions on the running system's /; give \
                     the root of another system"
                .into(),
        });
    };
    let parent =
        fs::canonicalize(parent).map_err(io_error("find the parent directory of", &abs))?;
    Ok(parent.join(name))
}

fn sibling(root: &Path, what: &str) -> PathBuf {
    let name = root
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let parent = root.parent().unwrap_or(Path::new("/"));
    parent.join(format!(".{name}.kod-{what}-{}", std::process::id()))
}

fn marked(dir: &Path) -> bool {
    dir.join(COMMIT_MARKER).exists()
}

/// Finishes or throws away what an interrupted kod left for `root` (the
/// lock is held): staging and overlay directories without a commit marker
/// are removed; with one, their move onto the root is completed.
fn clean_leftovers(root: &Path) -> Result<(), Error> {
    let name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent = root.parent().unwrap_or(Path::new("/"));
    let tmp_prefix = format!(".{name}.kod-tmp-");
    let txn_prefix = format!(".{name}.kod-txn-");
    let mut found: Vec<(PathBuf, bool)> = Vec::new();
    for e in fs::read_dir(parent).map_err(io_error("read", parent))? {
        let e = e.map_err(io_error("read", parent))?;
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&tmp_prefix) {
            found.push((e.path(), false));
        } else if n.starts_with(&txn_prefix) {
            found.push((e.path(), true));
        }
    }
    if root.is_dir() {
        for e in fs::read_dir(root).map_err(io_error("read", root))? {
            let e = e.map_err(io_error("read", root))?;
            if e.file_name().to_string_lossy().starts_with(".kod-tmp-") {
                found.push((e.path(), false));
            }
        }
    }
    for (dir, overlay) in found {
        let inside = dir.parent() == Some(root);
        if marked(&dir) && (overlay || inside) {
            let (from, marks) = if overlay {
                (dir.join("upper"), Some(Marks::of(&dir)))
            } else {
                (dir.clone(), None)
            };
            eprintln!(
                "kod: completing the interrupted commit of {} into {}",
                dir.display(),
                root.display()
            );
            tree::apply(&from, root, marks).map_err(io_error("complete the commit of", &dir))?;
        } else {
            eprintln!(
                "kod: removing {}, left by an interrupted transaction on {}",
                dir.display(),
                root.display()
            );
        }
        tree::remove_tree(&dir).map_err(io_error("remove", &dir))?;
    }
    Ok(())
}

/// Mount points strictly below `root` in kod's mount namespace.
fn mounts_below(root: &Path) -> Vec<PathBuf> {
    let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|p| p != root && p.starts_with(root))
        .collect()
}

fn unescape_mountinfo(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
}

/// mmdebstrap's device nodes and links in `/dev` of a new root:
/// (name, mode, kind, major, minor, link target).
const DEVICES: &[(&str, u32, char, u32, u32, &str)] = &[
    ("console", 0o666, 'c', 5, 1, ""),
    ("fd", 0o777, 'l', 0, 0, "/proc/self/fd"),
    ("full", 0o666, 'c', 1, 7, ""),
    ("null", 0o666, 'c', 1, 3, ""),
    ("ptmx", 0o666, 'c', 5, 2, ""),
    ("random", 0o666, 'c', 1, 8, ""),
    ("stderr", 0o777, 'l', 0, 0, "/proc/self/fd/2"),
    ("stdin", 0o777, 'l', 0, 0, "/proc/self/fd/0"),
    ("stdout", 0o777, 'l', 0, 0, "/proc/self/fd/1"),
    ("tty", 0o666, 'c', 5, 0, ""),
    ("urandom", 0o666, 'c', 1, 9, ""),
    ("zero", 0o666, 'c', 1, 5, ""),
];

/// What mmdebstrap's setup puts into an empty root before extracting.
/// Where device nodes cannot be made (root of a user namespace: mknod is
/// not permitted there), `/dev` gets only the links and directories, as a
/// directory made by mmdebstrap's unshare mode ends up: commands in the
/// root see the host's `/dev` anyway (see [`Chroot`]).
fn skeleton(fs: &RootFs, b: &BootstrapOptions, options: &Options) -> Result<(), Error> {
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
        "dev/pts",
        "dev/shm",
        "tmp",
    ] {
        fs.create_dir_all(d, 0o755)
            .map_err(io_error("create", fs.show(d)))?;
    }
    fs.create_dir_all("tmp", 0o1777)
        .map_err(io_error("chmod", fs.show("tmp")))?;
    let tmp = fs.show("tmp");
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777))
        .map_err(io_error("chmod", &tmp))?;
    let mut arch = format!("{}\n", b.architecture);
    for a in &b.foreign_architectures {
        arch.push_str(a);
        arch.push('\n');
    }
    for (rel, data) in [
        (db::STATUS, String::new()),
        ("var/lib/dpkg/arch", arch),
        (
            "etc/fstab",
            "# UNCONFIGURED FSTAB FOR BASE SYSTEM\n".to_string(),
        ),
    ] {
        fs.write(rel, data.as_bytes(), 0o644)
            .map_err(io_error("write", fs.show(rel)))?;
    }
    // As dpkg would leave it; kod's later transactions lock it (lock.rs).
    fs.write(DPKG_FRONTEND_LOCK, b"", 0o640)
        .map_err(io_error("write", fs.show(DPKG_FRONTEND_LOCK)))?;
    let mut nodes = true;
    for (name, mode, kind, major, minor, link) in DEVICES {
        let rel = format!("dev/{name}");
        let r = if *kind == 'l' {
            fs.symlink(link, &rel)
        } else if nodes {
            match fs.mknod(&rel, true, *mode, *major, *minor) {
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    nodes = false;
                    if options.verbose || options.debug {
                        eprintln!(
                            "+ no device nodes in {} (mknod is not permitted here: {e}); \
                             commands in the root get the host's /dev",
                            fs.show("dev").display()
                        );
                    }
                    Ok(())
                }
                r => r,
            }
        } else {
            Ok(())
        };
        r.map_err(io_error("create the device node", fs.show(&rel)))?;
    }
    if b.merged_usr {
        setup_merged_usr(fs.path(), &merged_usr_dirs(&b.architecture))
            .map_err(io_error("set up merged /usr in", fs.path()))?;
    }
    Ok(())
}

/// dpkg's error lines: `dpkg: error processing package X (--configure):`
/// followed by the reason.
fn dpkg_failures(lines: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if let Some(rest) = l.strip_prefix("dpkg: error processing package ") {
            let pkg = rest.split_whitespace().next().unwrap_or(rest);
            let why = lines.get(i + 1).map(|s| s.trim()).unwrap_or_default();
            out.push(format!("{pkg}: {why}"));
        } else if let Some(rest) = l.strip_prefix("dpkg: error processing archive ") {
            let why = lines.get(i + 1).map(|s| s.trim()).unwrap_or_default();
            out.push(format!("{rest} {why}"));
        }
    }
    out
}

fn failed(step: String, chroot: &Chroot, argv: &[&str], env: &[(&str, &str)], ran: Ran) -> Error {
    Error::Command {
        step,
        command: chroot.show(argv, env),
        status: ran.status,
        packages: dpkg_failures(&ran.lines),
        output: Output(ran.tail),
    }
}

impl Transaction {
    /// Begins a transaction on the existing root `root` (a Debian system:
    /// it has `/var/lib/dpkg/status`): takes its lock (waiting unless
    /// `options.no_wait`), finishes or removes what an interrupted kod left,
    /// and mounts the overlay the transaction works in.
    pub fn begin(root: &Path, options: &Options) -> Result<Transaction, Error> {
        let root = normalize(root)?;
        let lock = lock(&root, !options.no_wait)?;
        if !root.join(db::STATUS).is_file() {
            return Err(Error::Target {
                root: root.clone(),
                reason: format!(
                    "not a Debian root (no {}); bootstrap a new root there instead",
                    db::STATUS
                ),
            });
        }
        // Before finishing an interrupted commit, which changes the root too.
        let dpkg_lock = dpkg_frontend_lock(&root, !options.no_wait)?;
        clean_leftovers(&root)?;
        let below = mounts_below(&root);
        if !below.is_empty() {
            return Err(Error::Target {
                root: root.clone(),
                reason: format!(
                    "file systems are mounted below it ({}); unmount them first: a transaction \
                     works on the root's own file system only",
                    below
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        let txn = sibling(&root, "txn");
        let userns = kod_sandbox::in_user_namespace();
        let marks = Marks::for_namespace(userns);
        let started = prepare_txn_dir(&txn, marks).and_then(|()| {
            Holder::start(
                &root,
                &txn.join("upper"),
                &txn.join("work"),
                &txn.join("merged"),
                marks,
                options,
            )
        });
        let holder = match started {
            Ok(h) => h,
            Err(e) => {
                let _ = tree::remove_tree(&txn);
                return Err(e);
            }
        };
        let fs = RootFs::open(holder.view()).map_err(io_error("open", holder.view()));
        let chroot = holder
            .namespace()
            .and_then(|ns| Chroot::new(&root, holder.merged(), Some(ns), userns));
        let mode = Mode::Overlay {
            txn: txn.clone(),
            holder: Some(holder),
            marks,
        };
        let (fs, chroot) = match (fs, chroot) {
            (Ok(f), Ok(c)) => (f, c),
            (Err(e), _) | (_, Err(e)) => {
                discard(mode);
                return Err(e);
            }
        };
        let mut t = Transaction {
            root,
            options: options.clone(),
            lock,
            _dpkg_lock: Some(dpkg_lock),
            mode,
            fs,
            chroot,
            status: Status::default(),
            arch: Vec::new(),
            configure: false,
            done: false,
        };
        t.status = Status::load(&t.fs)?.unwrap_or_default();
        t.arch = t.read_arch();
        Ok(t)
    }

    /// Begins a transaction that creates the new root `root` (absent, or
    /// an empty directory): takes its lock, removes what an interrupted kod
    /// left, and prepares a staging directory with mmdebstrap's skeleton
    /// (`/var/lib/dpkg` with an empty status and the architectures,
    /// `/dev` nodes, `/tmp`, apt's directories, `/etc/fstab`, merged-/usr
    /// symlinks). The root appears only at commit.
    pub fn bootstrap(
        root: &Path,
        b: &BootstrapOptions,
        options: &Options,
    ) -> Result<Transaction, Error> {
        let root = normalize(root)?;
        let lock = lock(&root, !options.no_wait)?;
        clean_leftovers(&root)?;
        let inside = match fs::symlink_metadata(&root) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(io_error("stat", &root)(e)),
            Ok(m) if !m.is_dir() => {
                return Err(Error::Target {
                    root: root.clone(),
                    reason: "exists and is not a directory; remove it or choose another path"
                        .into(),
                });
            }
            Ok(m) => {
                let mut entries = fs::read_dir(&root).map_err(io_error("read", &root))?;
                if entries.next().is_some() {
                    return Err(Error::Target {
                        root: root.clone(),
                        reason: "exists and is not empty; a new root needs an empty or missing \
                                 directory (remove it, or install into it as an existing root)"
                            .into(),
                    });
                }
                let parent = root.parent().unwrap_or(Path::new("/"));
                let pm = fs::metadata(parent).map_err(io_error("stat", parent))?;
                // An empty mount point: build inside it, on its file system.
                m.dev() != pm.dev()
            }
        };
        let staging = if inside {
            root.join(format!(".kod-tmp-{}", std::process::id()))
        } else {
            sibling(&root, "tmp")
        };
        fs::create_dir(&staging).map_err(io_error("create", &staging))?;
        fs::set_permissions(&staging, fs::Permissions::from_mode(0o755))
            .map_err(io_error("chmod", &staging))?;
        let mode = Mode::Fresh {
            staging: staging.clone(),
            inside,
        };
        let userns = kod_sandbox::in_user_namespace();
        let prepared = RootFs::open(&staging)
            .map_err(io_error("open", &staging))
            .and_then(|fs| skeleton(&fs, b, options).map(|()| fs))
            .and_then(|fs| Chroot::new(&root, &staging, None, userns).map(|c| (fs, c)));
        let (fs, chroot) = match prepared {
            Ok(p) => p,
            Err(e) => {
                discard(mode);
                return Err(e);
            }
        };
        let mut arch = vec![b.architecture.clone()];
        arch.extend(b.foreign_architectures.iter().cloned());
        Ok(Transaction {
            root,
            options: options.clone(),
            lock,
            _dpkg_lock: None,
            mode,
            fs,
            chroot,
            status: Status::default(),
            arch,
            configure: false,
            done: false,
        })
    }

    /// The target root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the transaction's view of the root is reached now (a staging
    /// directory or the overlay): read it, never write it.
    pub fn view(&self) -> &Path {
        self.fs.path()
    }

    /// The lock file held.
    pub fn lock_path(&self) -> &Path {
        self.lock.path()
    }

    /// The packages of the target's dpkg database as the transaction sees
    /// them now.
    pub fn packages(&self) -> Vec<PackageState> {
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

    /// The architectures dpkg accepts in the root: `var/lib/dpkg/arch`,
    /// else dpkg's own.
    fn read_arch(&self) -> Vec<String> {
        let rel = format!("{ADMIN}/arch");
        let listed: Vec<String> = self
            .fs
            .read(&rel)
            .ok()
            .flatten()
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .split_whitespace()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if !listed.is_empty() {
            return listed;
        }
        self.status
            .entries
            .iter()
            .find(|e| e.name == "dpkg" && e.is_installed())
            .map(|e| vec![e.arch.clone()])
            .unwrap_or_default()
    }

    fn script_env(&self, id: &Ident, script: &str) -> Vec<(String, String)> {
        vec![
            ("DPKG_MAINTSCRIPT_PACKAGE".into(), id.name.clone()),
            ("DPKG_MAINTSCRIPT_PACKAGE_REFCOUNT".into(), "1".into()),
            ("DPKG_MAINTSCRIPT_ARCH".into(), id.arch.clone()),
            ("DPKG_MAINTSCRIPT_NAME".into(), script.into()),
            ("DPKG_MAINTSCRIPT_DEBUG".into(), "0".into()),
            (
                "DPKG_RUNNING_VERSION".into(),
                db::dpkg_version(&self.status),
            ),
            ("DPKG_ADMINDIR".into(), "/var/lib/dpkg".into()),
            ("DPKG_ROOT".into(), String::new()),
        ]
    }

    /// Runs `preinst install` of each package that has one, in order, as
    /// dpkg does before unpacking a package that was not installed: from
    /// `/var/lib/dpkg/tmp.ci/`, where the package's control members are
    /// (debconf finds the package's name and templates there).
    fn run_preinsts(&self, ids: &[(&Ident, &DebMeta)]) -> Result<(), Error> {
        let with: Vec<&(&Ident, &DebMeta)> = ids
            .iter()
            .filter(|(_, m)| m.member("preinst").is_some())
            .collect();
        if with.is_empty() {
            return Ok(());
        }
        let _guard = NoServices::install(&self.fs, &self.options)?;
        let started = std::time::Instant::now();
        let count = with.len();
        let tmp_ci = format!("{ADMIN}/tmp.ci");
        for (id, meta) in with {
            let gone = |e| io_error("empty", self.fs.show(&tmp_ci))(e);
            let dir = self
                .fs
                .dir(ADMIN)
                .map_err(io_error("open", self.fs.show(ADMIN)))?;
            tree::remove_at(&dir, "tmp.ci").map_err(gone)?;
            self.fs
                .create_dir_all(&tmp_ci, 0o755)
                .map_err(io_error("create", self.fs.show(&tmp_ci)))?;
            for m in meta.members.iter().filter(|m| !m.name.contains('/')) {
                let rel = format!("{tmp_ci}/{}", m.name);
                self.fs
                    .write(&rel, &m.data, m.mode & 0o7777)
                    .map_err(io_error("write", self.fs.show(&rel)))?;
            }
            let script = format!("/{tmp_ci}/preinst");
            let argv = [script.as_str(), "install"];
            let env = self.script_env(id, "preinst");
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let ran = self.chroot.run(
                &format!("preinst of {}", id.name),
                &argv,
                &env,
                &self.options,
            )?;
            tree::remove_at(&dir, "tmp.ci").map_err(gone)?;
            if !ran.success {
                return Err(failed(
                    format!("the preinst of {} ({})", id.name, id.version),
                    &self.chroot,
                    &argv,
                    &env,
                    ran,
                ));
            }
        }
        if self.options.verbose {
            eprintln!(
                "  ran {count} preinsts in {:.3} s",
                started.elapsed().as_secs_f64()
            );
        }
        Ok(())
    }

    /// Installs the packages in `debs` (`.deb` files): new packages are
    /// unpacked in parallel and registered in the dpkg database as
    /// unpacked (their `preinst install` run as dpkg would); packages dpkg
    /// already knows in another version go through the target's own
    /// `dpkg --unpack`. Configuration happens once, at
    /// [`commit`](Transaction::commit).
    pub fn install<P: AsRef<Path> + Sync>(&mut self, debs: &[P]) -> Result<InstallReport, Error> {
        let metas: Vec<(PathBuf, DebMeta)> = debs
            .par_iter()
            .map(|d| {
                let d = d.as_ref();
                kod_unpack::read_meta(d).map(|m| (d.to_path_buf(), m))
            })
            .collect::<Result<_, _>>()?;
        let mut report = InstallReport::default();
        let mut new: Vec<(usize, Ident)> = Vec::new();
        let mut upgrades: Vec<(usize, Ident)> = Vec::new();
        for (i, (archive, meta)) in metas.iter().enumerate() {
            let id = ident(meta, archive)?;
            if id.arch != "all" && !self.arch.contains(&id.arch) {
                return Err(Error::Package {
                    package: id.name,
                    archive: archive.clone(),
                    reason: format!(
                        "architecture {} is not one the root accepts ({}); add it with dpkg \
                         --add-architecture in the root first",
                        id.arch,
                        self.arch.join(", ")
                    ),
                });
            }
            let dup = new
                .iter()
                .chain(&upgrades)
                .any(|(_, o)| o.name == id.name && (o.arch == id.arch || !o.same || !id.same));
            if dup {
                return Err(Error::Package {
                    package: id.name,
                    archive: archive.clone(),
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
                    report.unchanged.push(pid);
                }
                Some(e) if e.is_present() => {
                    report.upgraded.push(pid);
                    upgrades.push((i, id));
                }
                _ => {
                    report.unpacked.push(pid);
                    new.push((i, id));
                }
            }
        }
        let fresh = matches!(self.mode, Mode::Fresh { .. });
        if !upgrades.is_empty() {
            self.unpack_with_dpkg(&metas, &upgrades)?;
        }
        if new.is_empty() {
            return Ok(report);
        }
        let pairs: Vec<(&Ident, &DebMeta)> = new.iter().map(|(i, id)| (id, &metas[*i].1)).collect();
        if !fresh {
            // The root works: run preinsts before unpacking, as dpkg does.
            self.run_preinsts(&pairs)?;
        }
        let files: Vec<&Path> = new.iter().map(|(i, _)| metas[*i].0.as_path()).collect();
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
            data_cache: self.options.data_cache.clone(),
            // Read after the preinsts of an existing root, which may have
            // added some (a new root has none yet).
            diversions: db::diversions(&self.fs)?,
        };
        if self.options.verbose || self.options.debug {
            eprintln!(
                "+ unpack {} packages into {}",
                files.len(),
                self.fs.path().display()
            );
        }
        let started = std::time::Instant::now();
        let unpacked = kod_unpack::unpack_all(&files, self.fs.path(), &unpack_options)?;
        if self.options.verbose {
            eprintln!(
                "  unpacked {} packages ({} files; {} from kept data) in {:.3} s",
                unpacked.len(),
                unpacked.iter().map(|u| u.files).sum::<u64>(),
                unpacked.iter().filter(|u| u.from_kept_data).count(),
                started.elapsed().as_secs_f64()
            );
        }
        report.files = unpacked.iter().map(|u| u.files).sum();
        report.bytes = unpacked.iter().map(|u| u.bytes).sum();
        if !fresh {
            register::check_files(&self.fs, &self.status, &unpacked)?;
        }
        let interests = db::file_interests(&self.fs)?;
        let started = std::time::Instant::now();
        register::register(&self.fs, &mut self.status, &unpacked, &interests, fresh)?;
        if self.options.verbose {
            eprintln!(
                "  registered them in {} in {:.3} s",
                self.fs.show(ADMIN).display(),
                started.elapsed().as_secs_f64()
            );
        }
        if fresh {
            // Nothing could run before the files were there: run the
            // preinsts now, base-passwd's first (it creates /etc/passwd
            // and /etc/group, which the others need).
            let mut order = pairs.clone();
            order.sort_by_key(|(id, _)| id.name != "base-passwd");
            self.run_preinsts(&order)?;
        }
        self.configure = true;
        Ok(report)
    }

    /// Packages dpkg already knows: copied into the root and unpacked by
    /// the root's dpkg, which handles the old version's scripts, files and
    /// conffiles.
    fn unpack_with_dpkg(
        &mut self,
        metas: &[(PathBuf, DebMeta)],
        which: &[(usize, Ident)],
    ) -> Result<(), Error> {
        let dir = "var/cache/kod-install";
        self.fs
            .create_dir_all(dir, 0o755)
            .map_err(io_error("create", self.fs.show(dir)))?;
        let mut inside = Vec::new();
        for (i, id) in which {
            let rel = format!("{dir}/{}_{}.deb", id.name, id.arch);
            let data = fs::read(&metas[*i].0).map_err(io_error("read", &metas[*i].0))?;
            self.fs
                .write(&rel, &data, 0o644)
                .map_err(io_error("write", self.fs.show(&rel)))?;
            inside.push(format!("/{rel}"));
        }
        let mut argv = vec![
            "/usr/bin/dpkg",
            "--unpack",
            "--force-confdef",
            "--force-confold",
        ];
        argv.extend(inside.iter().map(String::as_str));
        let ran = {
            let _guard = NoServices::install(&self.fs, &self.options)?;
            self.chroot
                .run("unpacking upgrades", &argv, &[], &self.options)?
        };
        for p in &inside {
            self.fs
                .remove_file(p)
                .map_err(io_error("remove", self.fs.show(p)))?;
        }
        let _ = self.fs.remove_file(dir);
        let _ = rustix::fs::unlinkat(
            self.fs
                .dir("var/cache")
                .map_err(io_error("open", self.fs.show("var/cache")))?,
            "kod-install",
            rustix::fs::AtFlags::REMOVEDIR,
        );
        if !ran.success {
            return Err(failed(
                "unpacking packages dpkg already knows".into(),
                &self.chroot,
                &argv,
                &[],
                ran,
            ));
        }
        self.status = Status::load(&self.fs)?.unwrap_or_default();
        self.configure = true;
        Ok(())
    }

    /// Records in apt's `/var/lib/apt/extended_states` that `names` were
    /// installed automatically, as dependencies (`auto`), or on purpose:
    /// what `apt-get install` records, so that `apt autoremove` in the
    /// root knows what it may take out.
    pub fn mark_auto_installed(&mut self, names: &[&str], auto: bool) -> Result<(), Error> {
        const STATES: &str = "var/lib/apt/extended_states";
        let old = self
            .fs
            .read(STATES)
            .map_err(io_error("read", self.fs.show(STATES)))?
            .unwrap_or_default();
        let old = String::from_utf8_lossy(&old);
        let mut stanzas: Vec<String> = crate::control::parse_stanzas(&old)
            .map_err(|e| Error::Target {
                root: self.root.clone(),
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
        self.fs
            .create_dir_all("var/lib/apt", 0o755)
            .map_err(io_error("create", self.fs.show("var/lib/apt")))?;
        self.fs
            .write(STATES, text.as_bytes(), 0o644)
            .map_err(io_error("write", self.fs.show(STATES)))
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
        removal::plan(&self.root, &self.status, names, with_dependents, purge)
    }

    /// Removes (or purges) what `plan` lists, with the root's own dpkg.
    pub fn remove(&mut self, plan: &RemovalPlan) -> Result<(), Error> {
        let names: Vec<&str> = plan.packages().collect();
        if names.is_empty() {
            return Ok(());
        }
        let action = if plan.purge { "--purge" } else { "--remove" };
        let mut argv = vec!["/usr/bin/dpkg", action];
        argv.extend(&names);
        let ran = {
            let _guard = NoServices::install(&self.fs, &self.options)?;
            self.chroot.run("removing", &argv, &[], &self.options)?
        };
        if !ran.success {
            return Err(failed(
                format!("removing {}", names.join(", ")),
                &self.chroot,
                &argv,
                &[],
                ran,
            ));
        }
        self.status = Status::load(&self.fs)?.unwrap_or_default();
        Ok(())
    }

    /// Configures what was installed (`dpkg --configure -a`, once, in the
    /// chroot), then makes the result the root: a new root is renamed
    /// into place; an existing one receives the overlay's changes. One
    /// `syncfs` before the commit point. On failure the root is as before.
    pub fn commit(mut self) -> Result<CommitReport, Error> {
        if self.configure {
            let argv = [
                "/usr/bin/dpkg",
                "--configure",
                "-a",
                "--force-confdef",
                "--force-confold",
            ];
            let started = std::time::Instant::now();
            let ran = {
                let _guard = NoServices::install(&self.fs, &self.options)?;
                self.chroot.run("configuring", &argv, &[], &self.options)?
            };
            if self.options.verbose {
                eprintln!("  configured in {:.3} s", started.elapsed().as_secs_f64());
            }
            if !ran.success {
                return Err(failed(
                    "configuring the packages".into(),
                    &self.chroot,
                    &argv,
                    &[],
                    ran,
                ));
            }
        }
        let killed = kill_processes_in(self.fs.path());
        for k in &killed {
            eprintln!(
                "kod: warning: a maintainer script left {k} running in {}; killed it",
                self.root.display()
            );
        }
        let mut report = CommitReport {
            root: self.root.clone(),
            committed: false,
            moved: 0,
            removed: 0,
            killed,
        };
        if self.options.debug {
            eprintln!(
                "+ (debug) not committing: {} stays as it was",
                self.root.display()
            );
            return Ok(report);
        }
        self.done = true;
        let mode = std::mem::replace(
            &mut self.mode,
            Mode::Fresh {
                staging: PathBuf::new(),
                inside: false,
            },
        );
        let verbose = self.options.verbose;
        let started = std::time::Instant::now();
        let synced = |what: &Path| {
            if verbose {
                eprintln!(
                    "  synced the file system of {} in {:.3} s",
                    what.display(),
                    started.elapsed().as_secs_f64()
                );
            }
        };
        match mode {
            Mode::Fresh { staging, inside } => {
                sync(&staging)?;
                synced(&staging);
                if inside {
                    fs::write(staging.join(COMMIT_MARKER), b"")
                        .map_err(io_error("write the commit marker in", &staging))?;
                    let applied = tree::apply(&staging, &self.root, None);
                    let applied = applied.map_err(|e| Error::Commit {
                        root: self.root.clone(),
                        pending: staging.clone(),
                        source: Box::new(io_error("move the new root into", &self.root)(e)),
                    })?;
                    report.moved = applied.moved;
                    tree::remove_tree(&staging).map_err(io_error("remove", &staging))?;
                } else {
                    if verbose {
                        eprintln!("+ rename {} {}", staging.display(), self.root.display());
                    }
                    if let Err(e) = fs::rename(&staging, &self.root) {
                        let _ = tree::remove_tree(&staging);
                        return Err(io_error(
                            format!("rename {} to", staging.display()),
                            &self.root,
                        )(e));
                    }
                }
            }
            Mode::Overlay { txn, holder, marks } => {
                if let Some(h) = holder {
                    h.stop();
                }
                let upper = txn.join("upper");
                sync(&upper)?;
                synced(&upper);
                fs::write(txn.join(COMMIT_MARKER), b"")
                    .map_err(io_error("write the commit marker in", &txn))?;
                if verbose {
                    eprintln!(
                        "+ move the changes in {} onto {}",
                        upper.display(),
                        self.root.display()
                    );
                }
                let applied =
                    tree::apply(&upper, &self.root, Some(marks)).map_err(|e| Error::Commit {
                        root: self.root.clone(),
                        pending: txn.clone(),
                        source: Box::new(io_error(
                            "move the transaction's changes onto",
                            &self.root,
                        )(e)),
                    })?;
                report.moved = applied.moved;
                report.removed = applied.removed;
                let same_fs = fs::metadata(&upper).map(|m| m.dev()).ok()
                    == fs::metadata(&self.root).map(|m| m.dev()).ok();
                if !same_fs {
                    sync(&self.root)?;
                }
                tree::remove_tree(&txn).map_err(io_error("remove", &txn))?;
            }
        }
        report.committed = true;
        Ok(report)
    }

    /// Rolls the transaction back explicitly (dropping it does the same).
    pub fn abort(mut self) {
        self.rollback();
    }

    fn rollback(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        kill_processes_in(self.fs.path());
        let mode = std::mem::replace(
            &mut self.mode,
            Mode::Fresh {
                staging: PathBuf::new(),
                inside: false,
            },
        );
        if self.options.verbose {
            eprintln!("+ roll back: {} stays as it was", self.root.display());
        }
        discard(mode);
    }
}

/// Creates the transaction directory `txn` (private to root) with the
/// overlay's `upper`, `work` and `merged` directories, and a note of its
/// marks when they are `user.overlay.*` (for a later run completing an
/// interrupted commit).
fn prepare_txn_dir(txn: &Path, marks: Marks) -> Result<(), Error> {
    for d in ["", "upper", "work", "merged"] {
        let p = txn.join(d);
        fs::create_dir(&p).map_err(io_error("create", &p))?;
    }
    fs::set_permissions(txn, fs::Permissions::from_mode(0o700)).map_err(io_error("chmod", txn))?;
    if marks == Marks::User {
        let note = txn.join(USER_MARKS_FILE);
        fs::write(&note, b"").map_err(io_error("write", &note))?;
    }
    Ok(())
}

/// Throws a transaction's work away.
fn discard(mode: Mode) {
    let dir = match mode {
        Mode::Fresh { staging, .. } => staging,
        Mode::Overlay { txn, holder, .. } => {
            if let Some(h) = holder {
                h.stop();
            }
            txn
        }
    };
    if !dir.as_os_str().is_empty()
        && let Err(e) = tree::remove_tree(&dir)
    {
        eprintln!(
            "kod: warning: cannot remove {} ({e}); the next kod run on this root removes it",
            dir.display()
        );
    }
}

/// One `syncfs` of the file system holding `path`.
fn sync(path: &Path) -> Result<(), Error> {
    let f = fs::File::open(path).map_err(io_error("open", path))?;
    rustix::fs::syncfs(&f).map_err(|e| io_error("sync the file system of", path)(e.into()))
}

impl Drop for Transaction {
    fn drop(&mut self) {
        self.rollback();
    }
}
