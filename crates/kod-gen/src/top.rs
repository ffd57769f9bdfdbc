//! A machine's Btrfs top level: the layout, generation numbers, the
//! default pointer, deleting generations and removing leftovers.

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

/// The layout's directories below the top level, with their modes, in
/// creation order (`store/home` is a subvolume, made apart).
const STORE_DIRS: [(&str, u32); 7] = [
    ("store/root", 0o700),
    ("store/var", 0o755),
    ("store/var/log", 0o755),
    ("store/var/tmp", 0o1777),
    ("store/var/cache", 0o755),
    ("store/var/kod", 0o755),
    ("generations", 0o755),
];

/// The Btrfs top level (subvolid 5) of a machine, mounted at a path.
#[derive(Debug, Clone)]
pub struct Top {
    path: PathBuf,
    report: Report,
}

/// A generation number from a directory name: canonical decimal only
/// (`7`, not `07`), so two names never mean one number.
pub(crate) fn number(name: &str) -> Option<u64> {
    let n: u64 = name.parse().ok()?;
    (n.to_string() == name).then_some(n)
}

impl Top {
    /// Opens the top level mounted at `path`: it must be on Btrfs, the
    /// root directory of a subvolume, and that subvolume the top level
    /// (id 5).
    pub fn open(path: impl AsRef<Path>) -> Result<Top> {
        let given = path.as_ref();
        let path = fs::canonicalize(given).map_err(io("open", given))?;
        let st = rustix::fs::statfs(&path).map_err(|e| io("open", &path)(e.into()))?;
        // `f_type`'s integer type differs between architectures.
        #[allow(clippy::unnecessary_cast)]
        if st.f_type as i64 != BTRFS_MAGIC {
            return Err(Error::NotBtrfs { path });
        }
        let meta = fs::metadata(&path).map_err(io("open", &path))?;
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
        Ok(Top {
            path,
            report: Report::quiet(),
        })
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

    /// `generations/N/rootfs`: the root subvolume of generation `n`.
    pub fn rootfs(&self, n: u64) -> PathBuf {
        self.generation_dir(n).join("rootfs")
    }

    /// Creates what is missing of the KodOS layout: `generations/`, the
    /// `store/home` subvolume, `store/root` (0700), `store/var/{log,tmp
    /// (1777),cache,kod}`. What is there is kept as it is (modes too);
    /// something of the wrong kind is an error. Synced.
    pub fn prepare(&self) -> Result<()> {
        let store = self.path.join("store");
        self.ensure_dir(&store, 0o755)?;
        let home = store.join("home");
        match fs::symlink_metadata(&home) {
            Ok(_) if btrfs::is_subvolume(&home) => {}
            Ok(_) => {
                return Err(Error::Layout {
                    path: home,
                    problem: "is not a Btrfs subvolume (kod mounts it as /home)",
                });
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.report
                    .verbose(|| format!("creating the subvolume {}", home.display()));
                btrfs::create(&home).map_err(io("create the subvolume", &home))?;
            }
            Err(e) => return Err(io("open", home)(e)),
        }
        for (rel, mode) in STORE_DIRS {
            self.ensure_dir(&self.path.join(rel), mode)?;
        }
        for d in [&store.join("var"), &store, &self.path] {
            sync_dir(d)?;
        }
        Ok(())
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

    /// Creates generation `n`'s root as a new, empty subvolume (`n` from
    /// [`allocate`](Top::allocate), not committed).
    pub fn create_rootfs(&self, n: u64) -> Result<PathBuf> {
        self.building(n)?;
        let root = self.rootfs(n);
        self.report
            .verbose(|| format!("creating the subvolume {}", root.display()));
        btrfs::create(&root).map_err(io("create the subvolume", &root))?;
        Ok(root)
    }

    /// Creates generation `n`'s root as a writable snapshot of generation
    /// `from`'s (`n` not committed).
    pub fn snapshot_rootfs(&self, from: u64, n: u64) -> Result<PathBuf> {
        self.building(n)?;
        let source = self.rootfs(from);
        let root = self.rootfs(n);
        self.report
            .verbose(|| format!("snapshotting {} to {}", source.display(), root.display()));
        btrfs::snapshot(&source, &root).map_err(io("snapshot the subvolume", &source))?;
        Ok(root)
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

    /// Deletes generation `n` (its root subvolume, nested subvolumes
    /// included, and its record). The default is refused; the booted and
    /// current generations are the caller's to protect. Killed midway,
    /// what is left is a leftover ([`remove_leftovers`](Top::remove_leftovers)).
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
        if let Err(e) = delete_subvolume_tree(&root) {
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

    /// Removes the [`leftovers`](Top::leftovers) (root subvolumes
    /// deleted, the rest removed) and the temporaries of dead kod
    /// processes in `generations/`; returns what it removed. A leftover
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
            delete_subvolume_tree(&self.rootfs(n))?;
            // A root a killed transaction made under a temporary name.
            let mut others = Vec::new();
            nested_subvolumes(&dir, &mut others)?;
            for sub in &others {
                btrfs::delete(sub).map_err(io("delete the subvolume", sub))?;
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
    fn open_refuses_what_is_not_btrfs() {
        let e = Top::open("/proc").unwrap_err();
        assert!(matches!(e, Error::NotBtrfs { .. }), "{e}");
        assert!(e.to_string().contains("subvolid=5"), "{e}");
        let e = Top::open("/nonexistent-kod-top").unwrap_err();
        assert!(e.to_string().contains("/nonexistent-kod-top"), "{e}");
    }
}
