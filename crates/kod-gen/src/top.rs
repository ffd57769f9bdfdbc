//! A machine's top level: the layout, generation numbers, the default
//! pointer, deleting generations and removing leftovers; on Btrfs, or on
//! the directory backend elsewhere ([`Backend`]).

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kod_report::Report;
use kod_root::btrfs;
use rustix::fs::{CWD, RenameFlags};
use rustix::io::Errno;

use crate::durable::{replace, sync_dir, write_synced};
use crate::error::{Error, Result, io};
use crate::pointer::Pointer;

/// The highest generation number kod ever gave, relative to the top level.
pub const HIGHEST: &str = "generations/.highest";
/// The default pointer, relative to the top level.
pub const POINTER: &str = "generations/default";
/// The completion marker in `generations/N/`: written last; the
/// generation is committed exactly when it is there.
pub const RECORD_COMPLETE: &str = "record-complete";
/// The marker in `generations/N/` of a generation kod is making (or
/// deleting): without [`RECORD_COMPLETE`] beside it, what a killed kod
/// left.
pub const BUILDING: &str = ".kod-building";

/// The marker in `generations/N/` of a generation whose record is being
/// written and which is to become the default: written before the record,
/// removed once the pointer names it. A generation with this marker and a
/// complete record that is not the default is what a kod killed between
/// the two left: a leftover (removed), so a stopped rebuild leaves the
/// generations as they were.
pub const MAKING_DEFAULT: &str = ".kod-making-default";

/// `BTRFS_SUPER_MAGIC`.
const BTRFS_MAGIC: i64 = 0x9123_683e;
/// The id of the top-level subvolume.
const TOP_LEVEL_ID: u64 = 5;
/// The inode of a subvolume's root directory.
const SUBVOLUME_ROOT_INO: u64 = 256;
/// The kernel's own file systems (`linux/magic.h`): they show the
/// kernel's state and store no files, so no machine can live there.
const VIRTUAL_FILE_SYSTEMS: [(i64, &str); 12] = [
    (0x9fa0, "proc"),
    (0x6265_6572, "sysfs"),
    (0x1cd1, "devpts"),
    (0x0027_e0eb, "cgroup"),
    (0x6367_7270, "cgroup2"),
    (0x6462_6720, "debugfs"),
    (0x7472_6163, "tracefs"),
    (0x7363_6673, "securityfs"),
    (0xcafe_4a11, "bpf"),
    (0x6165_676c, "pstore"),
    (0xde5e_81e4, "efivarfs"),
    (0x6265_6570, "configfs"),
];

/// The layout's directories below the top level, with their modes, in
/// creation order (`store/home` is made apart: a subvolume on Btrfs).
const STORE_DIRS: [(&str, u32); 7] = [
    ("store/root", 0o700),
    ("store/var", 0o755),
    ("store/var/log", 0o755),
    ("store/var/tmp", 0o1777),
    ("store/var/cache", 0o755),
    ("store/var/kod", 0o755),
    ("generations", 0o755),
];

/// What kod says of a machine on the [`Backend::Directory`]: its
/// generations are roots kod can rebuild, list, diff, roll back and
/// delete, but no boot entry can start one.
pub const DOES_NOT_BOOT: &str = "generations on the directory backend do not boot: boot \
     entries need rootflags=subvol, which only Btrfs has; use a Btrfs top level for a \
     bootable machine";

/// How a machine keeps its generations' roots, decided by [`Top::open`]
/// from the file system the top level is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The top level (subvolid 5) of a Btrfs file system: each root is a
    /// subvolume (the next one a Btrfs snapshot of the default's), and a
    /// boot entry starts one with `rootflags=subvol=generations/N/rootfs`.
    Btrfs,
    /// A directory on another file system (XFS, ext4, tmpfs, ...): each
    /// root is a plain directory, the next one a copy of the default's
    /// (reflinked where the file system can, never hard-linked: an
    /// in-place write, as dpkg does to its status file, would change the
    /// older generation too). The kernel cannot mount a directory as `/`
    /// the way it mounts a subvolume, so these generations do not boot
    /// ([`DOES_NOT_BOOT`]); they serve as containers, chroots and tests.
    Directory,
}

/// A machine's top level, mounted at a path: where its `generations/` and
/// `store/` are.
#[derive(Debug, Clone)]
pub struct Top {
    path: PathBuf,
    backend: Backend,
    report: Report,
    boots: Option<BootMarks>,
}

/// What the machine's boot entries say of its generations' boots (read
/// from the ESP, where systemd's boot counting renames them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootMarks {
    /// Generations whose entry is blessed: they reached
    /// `boot-complete.target`.
    pub blessed: Vec<u64>,
    /// Generations whose entry used up its tries without being blessed.
    pub bad: Vec<u64>,
}

/// A generation number from a directory name: canonical decimal only
/// (`7`, not `07`), so two names never mean one number.
pub(crate) fn number(name: &str) -> Option<u64> {
    let n: u64 = name.parse().ok()?;
    (n.to_string() == name).then_some(n)
}

impl Top {
    /// Opens the top level at `path`, choosing its [`Backend`]:
    ///
    /// - on Btrfs it must be the file system's top level (the root
    ///   directory of subvolume 5): anything else there is refused
    ///   ([`Error::NotTopLevel`]), since a subvolume or a directory inside
    ///   one cannot hold the subvolumes of bootable generations;
    /// - on any other file system it is the directory backend, if it is a
    ///   directory, not the running system's `/` (a machine's layout would
    ///   spill into the host), and not on one of the kernel's virtual file
    ///   systems (proc, sysfs, ...), which store nothing
    ///   ([`Error::Unfit`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Top> {
        let given = path.as_ref();
        let path = fs::canonicalize(given).map_err(io("open", given))?;
        let st = rustix::fs::statfs(&path).map_err(|e| io("open", &path)(e.into()))?;
        // `f_type`'s integer type differs between architectures.
        #[allow(clippy::unnecessary_cast)]
        let fs_type = st.f_type as i64;
        let meta = fs::metadata(&path).map_err(io("open", &path))?;
        let backend = if fs_type == BTRFS_MAGIC {
            let id = btrfs::subvolume_id(&path).map_err(io("look up the subvolume of", &path))?;
            if meta.ino() != SUBVOLUME_ROOT_INO {
                return Err(Error::NotTopLevel {
                    path,
                    reason: format!("it is a directory inside subvolume {id}"),
                });
            }
            if id != TOP_LEVEL_ID {
                return Err(Error::NotTopLevel {
                    path,
                    reason: format!("it is subvolume {id}, not the top level, 5"),
                });
            }
            Backend::Btrfs
        } else {
            let unfit = |reason: String| Error::Unfit {
                path: path.clone(),
                reason,
            };
            if !meta.is_dir() {
                return Err(unfit("it is not a directory".into()));
            }
            if path.parent().is_none() {
                return Err(unfit(
                    "it is the running system's root directory, where a machine's \
                     generations/ and store/ would mix with the host's files"
                        .into(),
                ));
            }
            if let Some((_, name)) = VIRTUAL_FILE_SYSTEMS.iter().find(|(m, _)| *m == fs_type) {
                return Err(unfit(format!(
                    "it is on {name}, a file system the kernel makes up, which stores no files"
                )));
            }
            Backend::Directory
        };
        Ok(Top {
            path,
            backend,
            report: Report::quiet(),
            boots: None,
        })
    }

    /// How this machine keeps its generations' roots.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether its generations can boot: only on Btrfs, whose subvolumes
    /// a boot entry mounts as `/` (the directory backend's do not:
    /// [`DOES_NOT_BOOT`] is what to tell people).
    pub fn boots(&self) -> bool {
        self.backend == Backend::Btrfs
    }

    /// The same top level, with what its boot entries say of its boots:
    /// the last good generation is then the newest blessed one, and bad
    /// ones are marked.
    pub fn with_boot_marks(mut self, marks: BootMarks) -> Top {
        self.boots = Some(marks);
        self
    }

    /// What the boot entries say, when they were read.
    pub fn boot_marks(&self) -> Option<&BootMarks> {
        self.boots.as_ref()
    }

    /// The same top level, reporting `-v` lines to `report`.
    pub fn with_report(mut self, report: Report) -> Top {
        self.report = report;
        self
    }

    /// Where the top level is mounted (canonical).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn report(&self) -> &Report {
        &self.report
    }

    /// The directories every generation shares, as (the directory on the
    /// top level, where a root sees it): `store/home` at `/home` and the
    /// store binds ([`crate::STORE_BINDS`]). A transaction on a
    /// generation binds them in, so what its scripts and kod write there
    /// lands where the booted system sees it.
    pub fn shared_dirs(&self) -> Vec<(PathBuf, PathBuf)> {
        std::iter::once(("store/home", "/home"))
            .chain(crate::STORE_BINDS)
            .map(|(store, at)| (self.path.join(store), PathBuf::from(at)))
            .collect()
    }

    /// `generations/`.
    pub fn generations_dir(&self) -> PathBuf {
        self.path.join("generations")
    }

    /// `generations/N/`: the record of generation `n`, and its root.
    pub fn generation_dir(&self, n: u64) -> PathBuf {
        self.generations_dir().join(n.to_string())
    }

    /// `generations/N/rootfs`: the root of generation `n` (a subvolume on
    /// Btrfs, a directory on the directory backend).
    pub fn rootfs(&self, n: u64) -> PathBuf {
        self.generation_dir(n).join("rootfs")
    }

    /// Creates what is missing of the KodOS layout: `generations/`,
    /// `store/home` (a subvolume on Btrfs, so that snapshots of the top
    /// level leave people's files out; a directory on the directory
    /// backend), `store/root` (0700), `store/var/{log,tmp (1777),cache,kod}`.
    /// What is there is kept as it is (modes too); something of the wrong
    /// kind is an error. Synced.
    pub fn prepare(&self) -> Result<()> {
        let store = self.path.join("store");
        self.ensure_dir(&store, 0o755)?;
        let home = store.join("home");
        if self.backend == Backend::Directory {
            self.ensure_dir(&home, 0o755)?;
        } else {
            self.ensure_home_subvolume(&home)?;
        }
        for (rel, mode) in STORE_DIRS {
            self.ensure_dir(&self.path.join(rel), mode)?;
        }
        for d in [&store.join("var"), &store, &self.path] {
            sync_dir(d)?;
        }
        Ok(())
    }

    fn ensure_home_subvolume(&self, home: &Path) -> Result<()> {
        match fs::symlink_metadata(home) {
            Ok(_) if btrfs::is_subvolume(home) => Ok(()),
            Ok(_) => Err(Error::Layout {
                path: home.to_owned(),
                problem: "is not a Btrfs subvolume (kod mounts it as /home)",
            }),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.report
                    .verbose(|| format!("creating the subvolume {}", home.display()));
                btrfs::create(home).map_err(io("create the subvolume", home))
            }
            Err(e) => Err(io("open", home)(e)),
        }
    }

    fn ensure_dir(&self, path: &Path, mode: u32) -> Result<()> {
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(Error::Layout {
                path: path.to_owned(),
                problem: "is not a directory",
            }),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.report
                    .verbose(|| format!("creating {} (mode {mode:o})", path.display()));
                fs::create_dir(path).map_err(io("create", path))?;
                fs::set_permissions(path, fs::Permissions::from_mode(mode))
                    .map_err(io("set the mode of", path))
            }
            Err(e) => Err(io("open", path)(e)),
        }
    }

    /// The numbered directories in `generations/`, sorted.
    fn numbered(&self) -> Result<Vec<u64>> {
        let dir = self.generations_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("read the directory", dir)(e)),
        };
        let mut out = Vec::new();
        for e in entries {
            let e = e.map_err(io("read the directory", &dir))?;
            if let Some(n) = e.file_name().to_str().and_then(number)
                && e.file_type().is_ok_and(|t| t.is_dir())
            {
                out.push(n);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Whether generation `n` is committed (its record complete).
    pub fn is_committed(&self, n: u64) -> bool {
        self.generation_dir(n).join(RECORD_COMPLETE).is_file()
    }

    /// The committed generations, sorted.
    pub fn generations(&self) -> Result<Vec<u64>> {
        Ok(self
            .numbered()?
            .into_iter()
            .filter(|&n| self.is_committed(n))
            .collect())
    }

    /// The highest generation number ever given on this top level: the
    /// larger of [`HIGHEST`] and the numbered directories; `None` when
    /// none ever was.
    pub fn highest(&self) -> Result<Option<u64>> {
        let path = self.path.join(HIGHEST);
        let recorded = match fs::read_to_string(&path) {
            Ok(s) => Some(number(s.trim()).ok_or_else(|| Error::Malformed {
                path: path.clone(),
                problem: format!("expected a generation number, found {:?}", s.trim()),
            })?),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(io("read", path)(e)),
        };
        Ok(recorded.max(self.numbered()?.last().copied()))
    }

    /// A new generation: the highest number ever given plus one (0 on a
    /// new machine), recorded in [`HIGHEST`] before its directory
    /// `generations/N/` appears (holding only [`BUILDING`]: it is not
    /// committed until its [`Record`](crate::Record) is written). Two kod
    /// processes never get one number.
    pub fn allocate(&self) -> Result<u64> {
        let gens = self.generations_dir();
        loop {
            let n = match self.highest()? {
                None => 0,
                Some(h) => h.checked_add(1).ok_or_else(|| Error::Malformed {
                    path: self.path.join(HIGHEST),
                    problem: "no generation number is left after it".into(),
                })?,
            };
            replace(&self.path.join(HIGHEST), format!("{n}\n").as_bytes())?;
            // The directory appears whole, with its marker, or not at all.
            let name = n.to_string();
            let temp = gens.join(kod_root::temp_name(name.as_ref()));
            fs::create_dir(&temp).map_err(io("create", &temp))?;
            let staged = write_synced(&temp.join(BUILDING), b"")
                .and_then(|()| sync_dir(&temp))
                .and_then(|()| {
                    match rustix::fs::renameat_with(
                        CWD,
                        &temp,
                        CWD,
                        gens.join(&name),
                        RenameFlags::NOREPLACE,
                    ) {
                        Ok(()) => Ok(true),
                        Err(Errno::EXIST) => Ok(false),
                        Err(e) => Err(io("create", gens.join(&name))(e.into())),
                    }
                });
            match staged {
                Ok(true) => {
                    sync_dir(&gens)?;
                    self.report
                        .verbose(|| format!("generation {n}: {}", gens.join(&name).display()));
                    return Ok(n);
                }
                // Another kod took the number: the next one.
                Ok(false) => kod_root::tree::remove_tree(&temp).map_err(io("remove", &temp))?,
                Err(e) => {
                    let _ = kod_root::tree::remove_tree(&temp);
                    return Err(e);
                }
            }
        }
    }

    /// Forgets the numbers given so far when no generation was ever
    /// committed and none is being built (a first install that failed), so
    /// that a machine's first generation is 0 again: an uncommitted number
    /// named nothing (no record, no boot entry, no default). Says whether
    /// there was something to forget.
    pub fn forget_unused_numbers(&self) -> Result<bool> {
        if !self.numbered()?.is_empty() || self.pointer()?.is_some() {
            return Ok(false);
        }
        let path = self.path.join(HIGHEST);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io("remove", path)(e)),
        }
    }

    /// Checks that `n` exists and is not committed (its root may change).
    fn building(&self, n: u64) -> Result<()> {
        let dir = self.generation_dir(n);
        if !dir.is_dir() {
            return Err(Error::NoGeneration {
                generation: n,
                path: dir,
            });
        }
        if self.is_committed(n) {
            return Err(Error::Committed {
                generation: n,
                marker: dir.join(RECORD_COMPLETE),
            });
        }
        Ok(())
    }

    /// Creates generation `n`'s root, empty (`n` from
    /// [`allocate`](Top::allocate), not committed): a new subvolume on
    /// Btrfs, a directory (0755, as `/` is) on the directory backend. The
    /// next generation's root is not made here but by the transaction that
    /// fills it (`kod_install::Transaction::snapshot`: a Btrfs snapshot,
    /// else a reflink or plain copy), the one place that copies a root.
    pub fn create_rootfs(&self, n: u64) -> Result<PathBuf> {
        self.building(n)?;
        let root = self.rootfs(n);
        match self.backend {
            Backend::Btrfs => {
                self.report
                    .verbose(|| format!("creating the subvolume {}", root.display()));
                btrfs::create(&root).map_err(io("create the subvolume", &root))?;
            }
            Backend::Directory => {
                self.report
                    .verbose(|| format!("creating {} (mode 755)", root.display()));
                fs::create_dir(&root).map_err(io("create", &root))?;
                fs::set_permissions(&root, fs::Permissions::from_mode(0o755))
                    .map_err(io("set the mode of", &root))?;
            }
        }
        Ok(root)
    }

    /// The `/etc/fstab` text of generation `n`, `extra` lines (swap, the
    /// ESP: they come from the disk) last: on Btrfs [`crate::fstab`] with
    /// the file system's UUID; on the directory backend only comments that
    /// say why there is nothing to mount (the generation does not boot,
    /// so no line mounts its `/`; and the top level need not be a file
    /// system of its own, so no line can mount it at `/kod` for the store
    /// binds, which kod's transactions make themselves).
    pub fn fstab(&self, n: u64, extra: &[String]) -> Result<String> {
        match self.backend {
            Backend::Btrfs => {
                let uuid = btrfs::fs_uuid(&self.path)
                    .map_err(io("read the Btrfs file system UUID of", &self.path))?;
                Ok(crate::fstab(&uuid, n, extra))
            }
            Backend::Directory => Ok(crate::fstab::directory_fstab(n, extra)),
        }
    }

    /// The default pointer, if there is one.
    pub fn pointer(&self) -> Result<Option<Pointer>> {
        let path = self.path.join(POINTER);
        match fs::read_to_string(&path) {
            Ok(s) => Pointer::parse(&s)
                .map(Some)
                .map_err(|problem| Error::Malformed { path, problem }),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", path)(e)),
        }
    }

    /// The default generation (the next boot's), if one was set.
    pub fn default(&self) -> Result<Option<u64>> {
        Ok(self.pointer()?.map(|p| p.default))
    }

    /// The newest previous default that is still committed.
    pub fn previous_default(&self) -> Result<Option<u64>> {
        Ok(self
            .pointer()?
            .and_then(|p| p.previous_where(|n| self.is_committed(n))))
    }

    fn write_pointer(&self, p: &Pointer) -> Result<()> {
        replace(&self.path.join(POINTER), p.render().as_bytes())
    }

    /// The first half of committing new generation `n` as the default:
    /// marks it [`MAKING_DEFAULT`] (synced) before its record is written.
    /// [`Top::made_default`] is the second half.
    pub fn making_default(&self, n: u64) -> Result<()> {
        let dir = self.generation_dir(n);
        if !dir.is_dir() {
            return Err(Error::NoGeneration {
                generation: n,
                path: dir,
            });
        }
        write_synced(&dir.join(MAKING_DEFAULT), b"")?;
        sync_dir(&dir)
    }

    /// The second half: makes committed generation `n` the default
    /// ([`Top::set_default`]), then drops its [`MAKING_DEFAULT`] marker.
    pub fn made_default(&self, n: u64) -> Result<()> {
        self.set_default(n)?;
        self.drop_making_default(n)
    }

    fn drop_making_default(&self, n: u64) -> Result<()> {
        let dir = self.generation_dir(n);
        match fs::remove_file(dir.join(MAKING_DEFAULT)) {
            Ok(()) => sync_dir(&dir),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove", dir.join(MAKING_DEFAULT))(e)),
        }
    }

    /// Makes committed generation `n` the default; the old default joins
    /// the pointer's history. The pointer is replaced atomically and
    /// synced. An uncommitted generation is refused.
    pub fn set_default(&self, n: u64) -> Result<()> {
        let dir = self.generation_dir(n);
        if !dir.is_dir() {
            return Err(Error::NoGeneration {
                generation: n,
                path: dir,
            });
        }
        if !self.is_committed(n) {
            return Err(Error::Incomplete {
                generation: n,
                marker: dir.join(RECORD_COMPLETE),
            });
        }
        let p = match self.pointer()? {
            Some(p) => p.moved_to(n),
            None => Pointer::new(n),
        };
        self.report.verbose(|| {
            format!(
                "default generation {n} ({})",
                self.path.join(POINTER).display()
            )
        });
        self.write_pointer(&p)
    }

    /// Moves the default back to the newest previous default that is
    /// still committed, and returns it; the default it leaves drops out
    /// of the history, so a second call goes further back.
    pub fn roll_back_default(&self) -> Result<u64> {
        let p = self
            .pointer()?
            .and_then(|p| p.rolled_back(|n| self.is_committed(n)))
            .ok_or(Error::NoPrevious)?;
        self.report
            .verbose(|| format!("default generation {} (rollback)", p.default));
        self.write_pointer(&p)?;
        Ok(p.default)
    }

    /// Deletes generation `n`: its root (on Btrfs the subvolume with
    /// those nested in it) and its record. The default is refused; the
    /// booted and current generations are the caller's to protect. Killed
    /// midway, what is left is a leftover
    /// ([`remove_leftovers`](Top::remove_leftovers)).
    pub fn delete(&self, n: u64) -> Result<()> {
        let dir = self.generation_dir(n);
        if !dir.is_dir() {
            return Err(Error::NoGeneration {
                generation: n,
                path: dir,
            });
        }
        if self.default()? == Some(n) {
            return Err(Error::IsDefault { generation: n });
        }
        self.report
            .verbose(|| format!("deleting generation {n} ({})", dir.display()));
        mounts_below(&dir)?;
        // Uncommitted first: killed from here on, it is a leftover.
        let marker = dir.join(RECORD_COMPLETE);
        let committed = marker.exists();
        write_synced(&dir.join(BUILDING), b"")?;
        match fs::remove_file(&marker) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove", marker)(e)),
        }
        sync_dir(&dir)?;
        let root = self.rootfs(n);
        if let Err(e) = self.remove_root(&root) {
            // The root is still there (mounted elsewhere, say): so is the
            // generation, committed again as it was.
            if committed && root.exists() {
                replace(&marker, crate::record::MARKER_TEXT.as_bytes())?;
                let _ = fs::remove_file(dir.join(BUILDING));
                sync_dir(&dir)?;
            }
            return Err(e);
        }
        remove_generation_dir(&dir)?;
        sync_dir(&self.generations_dir())
    }

    /// Removes the root of a generation (absent is fine): on Btrfs the
    /// subvolume and those nested in it; on the directory backend the
    /// tree, which holds no subvolumes.
    fn remove_root(&self, root: &Path) -> Result<()> {
        match self.backend {
            Backend::Btrfs => delete_subvolume_tree(root),
            Backend::Directory => match fs::symlink_metadata(root) {
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                _ => kod_root::tree::remove_tree(root).map_err(io("remove", root)),
            },
        }
    }

    /// The generations a killed kod left: a directory holding
    /// [`BUILDING`] without [`RECORD_COMPLETE`], or [`MAKING_DEFAULT`]
    /// (the pointer was not moved to it), never the default's target.
    /// Sorted. (A numbered directory with neither marker, such as a KodOS
    /// generation, is not kod's: neither listed nor touched.)
    pub fn leftovers(&self) -> Result<Vec<u64>> {
        let default = self.default()?;
        Ok(self
            .numbered()?
            .into_iter()
            .filter(|&n| {
                let d = self.generation_dir(n);
                let building = d.join(BUILDING).exists() && !d.join(RECORD_COMPLETE).exists();
                Some(n) != default && (building || d.join(MAKING_DEFAULT).exists())
            })
            .collect())
    }

    /// Removes the [`leftovers`](Top::leftovers) (on Btrfs their
    /// subvolumes deleted, the rest removed) and the temporaries of dead
    /// kod processes in `generations/`; returns what it removed. A leftover
    /// with a file system mounted inside is an error that says to
    /// unmount it.
    pub fn remove_leftovers(&self) -> Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        // Killed after the pointer moved: the generation is whole; only
        // its marker is left to drop.
        if let Some(n) = self.default()?
            && self.generation_dir(n).join(MAKING_DEFAULT).exists()
        {
            self.drop_making_default(n)?;
        }
        for n in self.leftovers()? {
            let dir = self.generation_dir(n);
            self.report.verbose(|| {
                format!(
                    "removing {}: an incomplete generation (of a kod that failed or was killed)",
                    dir.display()
                )
            });
            mounts_below(&dir)?;
            self.remove_root(&self.rootfs(n))?;
            if self.backend == Backend::Btrfs {
                // A root a killed transaction made under a temporary name.
                let mut others = Vec::new();
                nested_subvolumes(&dir, &mut others)?;
                for sub in &others {
                    btrfs::delete(sub).map_err(io("delete the subvolume", sub))?;
                }
            }
            remove_generation_dir(&dir)?;
            removed.push(dir);
        }
        let gens = self.generations_dir();
        let temps = kod_root::remove_stale_temporaries(&gens)
            .map_err(io("remove the temporaries of dead processes in", &gens))?;
        for t in &temps {
            self.report
                .verbose(|| format!("removed {}: a killed kod's temporary", t.display()));
        }
        removed.extend(temps);
        if !removed.is_empty() {
            sync_dir(&gens)?;
        }
        Ok(removed)
    }
}

/// Removes a generation's directory once its root is gone.
fn remove_generation_dir(dir: &Path) -> Result<()> {
    kod_root::tree::remove_tree(dir).map_err(io("remove", dir))
}

/// Fails when a file system is mounted at or below `dir`.
fn mounts_below(dir: &Path) -> Result<()> {
    let mounts =
        kod_root::tree::mounts_at_or_below(dir).map_err(io("read", "/proc/self/mountinfo"))?;
    match mounts.first() {
        Some(at) => Err(Error::Mounted {
            path: dir.to_owned(),
            mount: at.display().to_string(),
        }),
        None => Ok(()),
    }
}

/// Deletes the subvolume `path` with the subvolumes nested in it
/// (systemd makes `/var/lib/machines` one); absent is fine; a plain
/// directory there is removed as a tree.
fn delete_subvolume_tree(path: &Path) -> Result<()> {
    if fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    if !btrfs::is_subvolume(path) {
        return kod_root::tree::remove_tree(path).map_err(io("remove", path));
    }
    match btrfs::delete(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(Errno::NOTEMPTY.raw_os_error()) => {}
        Err(e) => return Err(io("delete the subvolume", path)(e)),
    }
    let mut nested = Vec::new();
    nested_subvolumes(path, &mut nested)?;
    for sub in &nested {
        btrfs::delete(sub).map_err(io("delete the subvolume", sub))?;
    }
    btrfs::delete(path).map_err(io("delete the subvolume", path))
}

/// The subvolumes below `dir`, the deepest first.
fn nested_subvolumes(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in fs::read_dir(dir).map_err(io("read the directory", dir))? {
        let e = e.map_err(io("read the directory", dir))?;
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let p = e.path();
        nested_subvolumes(&p, out)?;
        if btrfs::is_subvolume(&p) {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_numbers_name_generations() {
        assert_eq!(number("0"), Some(0));
        assert_eq!(number("12"), Some(12));
        for not in ["07", "+1", "-1", "", "default", ".highest", "1 "] {
            assert_eq!(number(not), None, "{not:?}");
        }
    }

    #[test]
    fn open_refuses_what_cannot_hold_a_machine() {
        let e = Top::open("/proc").unwrap_err();
        assert!(matches!(e, Error::Unfit { .. }), "{e}");
        assert!(e.to_string().contains("it is on proc"), "{e}");
        assert!(e.to_string().contains("subvolid=5"), "{e}");
        let e = Top::open("/nonexistent-kod-top").unwrap_err();
        assert!(e.to_string().contains("/nonexistent-kod-top"), "{e}");
        let file = tempfile::NamedTempFile::new_in("/dev/shm").unwrap();
        let e = Top::open(file.path()).unwrap_err();
        assert!(e.to_string().contains("it is not a directory"), "{e}");
        // The running system's `/`, unless it is a Btrfs top level (the
        // Btrfs backend; elsewhere on Btrfs the error is NotTopLevel).
        #[allow(clippy::unnecessary_cast)]
        let root_on_btrfs = rustix::fs::statfs("/").unwrap().f_type as i64 == BTRFS_MAGIC;
        if !root_on_btrfs {
            let e = Top::open("/").unwrap_err();
            assert!(e.to_string().contains("running system's root"), "{e}");
        }
    }

    #[test]
    fn a_directory_off_btrfs_is_the_directory_backend() {
        // /dev/shm is a tmpfs: never Btrfs, whatever the host's disks are.
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        let top = Top::open(dir.path()).unwrap();
        assert_eq!(top.backend(), Backend::Directory);
        assert!(!top.boots());
        assert_eq!(top.path(), fs::canonicalize(dir.path()).unwrap());
        // Below it too: any directory, not only a file system's root.
        fs::create_dir(dir.path().join("machine")).unwrap();
        let inner = Top::open(dir.path().join("machine")).unwrap();
        assert_eq!(inner.backend(), Backend::Directory);
    }
}
