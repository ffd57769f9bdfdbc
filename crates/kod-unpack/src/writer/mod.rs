//! The format-independent core: writing archive entries into a root,
//! confined to it.
//!
//! Every archive format (a `.deb`'s data.tar, later a `.pkg.tar.zst` or an
//! `.rpm`'s cpio payload, a root tarball) is turned into a stream of
//! [`Entry`] values and handed to one [`Writer`] per archive. The root is
//! a [`kod_root::Root`]; the writer keeps the descriptor of the directory
//! it wrote into last, since archives list a directory's entries together.
//!
//! For a package of a batch ([`Rules::Package`]) the writer:
//!
//! - opens each entry's parent directory with `openat2(RESOLVE_BENEATH |
//!   RESOLVE_NO_MAGICLINKS)` from the root's descriptor, so relative
//!   symlinks that stay inside the root (merged-/usr `bin -> usr/bin`) are
//!   followed, and anything that would leave the root (absolute symlinks,
//!   `..` past the top) is refused; the last component is then created
//!   with `*at` calls that never follow it;
//! - writes files, symlinks, hard links and device nodes to
//!   `NAME.dpkg-new` and renames them over `NAME`, as dpkg does; never
//!   fsyncs;
//! - keeps existing directories (and symlinks to directories) untouched,
//!   as dpkg does, and sets owner, mode (including setuid/setgid) and mtime
//!   of what it creates;
//! - accepts hard links only to regular files the same package installed
//!   before;
//! - records the `.list` of the package and what it created or replaced.
//!
//! For a whole tree ([`Rules::Tree`], a root tarball: what `tar -x` run as
//! root in a chroot would make) the writer instead resolves parents inside
//! the root (`RESOLVE_IN_ROOT`: an absolute symlink the archive made leads
//! inside), replaces whatever is at an entry's path (an empty directory
//! too) by creating the entry there directly, links hard links to any path
//! inside the root, restores `SCHILY.xattr.*` attributes of files, counts
//! instead of failing what the kernel does not permit (owners outside the
//! mapped ids, device nodes) and the entry kinds it does not write, and
//! sets every directory's owner, mode and mtime last, deepest first.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

use kod_root::Root;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;

mod at;
mod entry;

use at::{Dir, fresh, node, open_dir, remove_existing, times};
use entry::{DPKG_NEW, as_path, split_parent, with_suffix};
pub(crate) use entry::{Entry, EntryKind, list_path, normalize};

use crate::claims::{Claims, Decision, Key};
use crate::error::Reason;
use crate::{Changes, Conffiles, Ownership, UnpackOptions};

/// Which rules a [`Writer`] follows (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rules {
    /// A package of a batch, as dpkg unpacks it; the root refuses paths
    /// that leave it ([`Root::open_beneath`]).
    Package,
    /// A whole tree, as `tar -x` run as root in a chroot makes it; the
    /// root resolves paths inside it ([`Root::open`]). `owners`: whether
    /// to set the archive's owners.
    Tree {
        /// Set owners from the archive (EPERM and EINVAL are counted).
        owners: bool,
    },
}

/// What a tree unpack skipped, and how many entries it wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) entries: u64,
    pub(crate) devices_skipped: u64,
    pub(crate) owners_skipped: u64,
    pub(crate) xattrs_skipped: u64,
    pub(crate) other_skipped: u64,
}

/// A directory of a tree whose owner, mode and mtime are set last.
#[derive(Debug)]
struct DirMeta {
    path: Vec<u8>,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
}

impl DirMeta {
    fn of(e: &Entry) -> DirMeta {
        DirMeta {
            path: e.path.clone(),
            mode: e.mode & 0o7777,
            uid: e.uid,
            gid: e.gid,
            mtime: e.mtime,
        }
    }
}

fn resolve_error(path: &[u8], e: Errno, op: &'static str) -> Reason {
    if e == Errno::XDEV {
        Reason::OutsideRoot {
            path: String::from_utf8_lossy(path).into_owned(),
        }
    } else {
        Reason::io(op, e)
    }
}

/// What one package wrote, kept by its writer.
#[derive(Debug, Default)]
pub(crate) struct Written {
    pub(crate) list: Vec<Vec<u8>>,
    /// Listed paths written elsewhere by a diversion, and where.
    pub(crate) diverted: Vec<(Vec<u8>, Vec<u8>)>,
    pub(crate) changes: Changes,
    pub(crate) files: u64,
    pub(crate) bytes: u64,
    /// For a tree: entries written and what was skipped.
    pub(crate) counts: Counts,
}

/// The `.dpkg-new` (or, for a tree, the entry) being written now, removed
/// if the entry fails.
struct InFlight {
    dir: Rc<Dir>,
    name: Vec<u8>,
    claim: Option<Key>,
}

/// Writes the entries of one package into the root.
pub(crate) struct Writer<'a> {
    root: &'a Root,
    rules: Rules,
    options: &'a UnpackOptions,
    /// The batch's claims (a tree has no batch).
    claims: Option<&'a Claims>,
    pkg: usize,
    cancel: &'a AtomicBool,
    cached: Option<Rc<Dir>>,
    /// Diverted paths (normalized) -> where they go, and the holder.
    diversions: HashMap<Vec<u8>, (Vec<u8>, &'a str)>,
    conffiles: HashSet<Vec<u8>>,
    /// Regular files this package installed (hard-link targets).
    regular: HashSet<Vec<u8>>,
    /// Directories created, with their mtime, set once the package is done.
    dir_times: Vec<(Vec<u8>, i64)>,
    /// A tree's directories, whose owner, mode and mtime are set last.
    dir_metas: Vec<DirMeta>,
    /// Conffiles left as `.dpkg-new` (removed again if the package fails).
    pending: Vec<(Rc<Dir>, Vec<u8>)>,
    in_flight: Option<InFlight>,
    buf: Vec<u8>,
    pub(crate) written: Written,
}

impl<'a> Writer<'a> {
    /// The writer of package `pkg` of a batch.
    pub(crate) fn new(
        root: &'a Root,
        options: &'a UnpackOptions,
        claims: &'a Claims,
        pkg: usize,
        cancel: &'a AtomicBool,
    ) -> Self {
        Writer::with_rules(root, Rules::Package, options, Some(claims), pkg, cancel)
    }

    /// The writer of a whole tree.
    pub(crate) fn tree(
        root: &'a Root,
        owners: bool,
        options: &'a UnpackOptions,
        cancel: &'a AtomicBool,
    ) -> Self {
        Writer::with_rules(root, Rules::Tree { owners }, options, None, 0, cancel)
    }

    fn with_rules(
        root: &'a Root,
        rules: Rules,
        options: &'a UnpackOptions,
        claims: Option<&'a Claims>,
        pkg: usize,
        cancel: &'a AtomicBool,
    ) -> Self {
        Writer {
            root,
            rules,
            options,
            claims,
            pkg,
            cancel,
            cached: None,
            diversions: options
                .diversions
                .iter()
                .filter_map(|d| {
                    let from = normalize(d.from.as_os_str().as_bytes()).ok()?;
                    let to = normalize(d.to.as_os_str().as_bytes()).ok()?;
                    Some((from, (to, d.holder.as_str())))
                })
                .collect(),
            conffiles: HashSet::new(),
            regular: HashSet::new(),
            dir_times: Vec::new(),
            dir_metas: Vec::new(),
            pending: Vec::new(),
            in_flight: None,
            buf: Vec::new(),
            written: Written::default(),
        }
    }

    /// The package's conffiles (absolute paths as in `conffiles`), once
    /// its control part is known.
    pub(crate) fn set_conffiles(&mut self, paths: &[PathBuf]) {
        self.conffiles = paths
            .iter()
            .filter_map(|p| normalize(p.as_os_str().as_bytes()).ok())
            .map(|p| self.on_disk(&p).unwrap_or(p))
            .collect();
    }

    /// Where this package's `path` is written when another package
    /// diverts it (none: at `path` itself).
    fn on_disk(&self, path: &[u8]) -> Option<Vec<u8>> {
        let (to, holder) = self.diversions.get(path)?;
        let package = self.claims?.package_name(self.pkg)?;
        (package != *holder).then(|| to.clone())
    }

    /// Writes one entry; `data` yields a regular file's bytes.
    pub(crate) fn write(&mut self, entry: &Entry, data: &mut dyn Read) -> Result<(), Reason> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(Reason::Cancelled);
        }
        let r = self.write_entry(entry, data);
        if r.is_err() {
            self.abandon_in_flight();
        }
        r
    }

    fn write_entry(&mut self, e: &Entry, data: &mut dyn Read) -> Result<(), Reason> {
        if e.path.is_empty() {
            // The root itself (`./`): kept as it is, like any existing dir;
            // a tree gives it the archive's owner, mode and mtime at the end.
            if matches!(self.rules, Rules::Tree { .. }) && matches!(e.kind, EntryKind::Directory) {
                self.dir_metas.push(DirMeta::of(e));
            }
            self.written.list.push(Vec::new());
            return Ok(());
        }
        let diverted = match e.kind {
            EntryKind::Directory => None,
            _ => self.on_disk(&e.path),
        };
        let listed = match diverted {
            Some(to) => {
                let moved = Entry {
                    path: to,
                    ..e.clone()
                };
                let listed = self.write_at(&moved, data)?;
                if listed {
                    self.written.diverted.push((e.path.clone(), moved.path));
                }
                listed
            }
            None => self.write_at(e, data)?,
        };
        if listed {
            // The package's own name, wherever a diversion put the file.
            self.written.list.push(e.path.clone());
            self.written.counts.entries += 1;
        }
        Ok(())
    }

    /// A tree's entry of a kind the writer does not write was left out.
    pub(crate) fn skip_entry(&mut self) {
        self.written.counts.other_skipped += 1;
    }

    /// Writes `e` at its path; whether the package keeps it in its list
    /// (it does not when another package of the batch took it over).
    fn write_at(&mut self, e: &Entry, data: &mut dyn Read) -> Result<bool, Reason> {
        let (parent, name) = split_parent(&e.path);
        let dir = self.parent(parent)?;
        let key = Key {
            dev: dir.dev,
            ino: dir.ino,
            name: name.into(),
        };
        let listed = match &e.kind {
            EntryKind::Directory => {
                if let Some(claims) = self.claims {
                    claims.claim_dir(key, self.pkg, &e.path)?;
                }
                self.directory(&dir, name, e)?;
                true
            }
            kind => {
                let symlink = matches!(kind, EntryKind::Symlink(_));
                let decision = match self.claims {
                    Some(claims) => claims.claim(key.clone(), self.pkg, &e.path, symlink)?,
                    None => Decision::Write,
                };
                match decision {
                    Decision::Skip => {
                        if let EntryKind::File(_) = kind {
                            self.regular.insert(e.path.clone());
                        }
                        false
                    }
                    Decision::Write => {
                        let tree = matches!(self.rules, Rules::Tree { .. });
                        self.in_flight = Some(InFlight {
                            dir: dir.clone(),
                            name: if tree {
                                name.to_vec()
                            } else {
                                with_suffix(name, DPKG_NEW)
                            },
                            claim: self.claims.is_some().then_some(key),
                        });
                        if tree {
                            self.tree_non_directory(&dir, name, e, data)?
                        } else if let EntryKind::Symlink(target) = kind
                            && self.keeps_existing_dir(&dir, name, &e.path, target)?
                        {
                            self.release_in_flight();
                            true
                        } else {
                            self.non_directory(&dir, name, e, data)?;
                            true
                        }
                    }
                }
            }
        };
        Ok(listed)
    }

    /// The parent directory of an entry, from a one-entry cache (archives
    /// list a directory's entries together).
    fn parent(&mut self, parent: &[u8]) -> Result<Rc<Dir>, Reason> {
        if let Some(d) = &self.cached
            && d.path == parent
        {
            return Ok(d.clone());
        }
        let fd = match open_dir(self.root, parent) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => self.make_parents(parent)?,
            Err(e) => return Err(resolve_error(parent, e, "open the parent directory")),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| Reason::io("stat the parent directory", e))?;
        let d = Rc::new(Dir {
            path: parent.to_vec(),
            fd,
            dev: st.st_dev,
            ino: st.st_ino,
        });
        self.cached = Some(d.clone());
        Ok(d)
    }

    /// Creates missing parent directories (0755 root:root), as tar does for
    /// archives that do not list them.
    fn make_parents(&mut self, path: &[u8]) -> Result<OwnedFd, Reason> {
        let created = &mut self.written.changes.created;
        self.root
            .make_dirs_with(as_path(path), 0o755, &mut |p| {
                created.push(list_path(p.as_os_str().as_bytes()));
            })
            .map_err(|e| resolve_error(path, e, "create a missing parent directory"))
    }

    /// Sets an entry's owner with `chown`, as the rules say: a package
    /// fails on EPERM unless skipping was asked for; a tree sets owners only
    /// when asked, and counts those the kernel refuses.
    fn set_owner(
        &mut self,
        (uid, gid): (u32, u32),
        chown: impl FnOnce(Option<Uid>, Option<rustix::fs::Gid>) -> Result<(), Errno>,
    ) -> Result<(), Reason> {
        if self.rules == (Rules::Tree { owners: false }) {
            return Ok(());
        }
        match chown(
            Some(Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        ) {
            Ok(()) => Ok(()),
            Err(Errno::PERM | Errno::INVAL) if matches!(self.rules, Rules::Tree { .. }) => {
                self.written.counts.owners_skipped += 1;
                Ok(())
            }
            Err(Errno::PERM) if self.options.ownership == Ownership::SkipIfNotPermitted => Ok(()),
            Err(Errno::PERM) => Err(Reason::Ownership {
                uid,
                gid,
                source: Errno::PERM.into(),
            }),
            Err(err) => Err(Reason::io("set the owner", err)),
        }
    }

    fn directory(&mut self, dir: &Rc<Dir>, name: &[u8], e: &Entry) -> Result<(), Reason> {
        if matches!(self.rules, Rules::Tree { .. }) {
            return self.tree_directory(dir, name, e);
        }
        match rustix::fs::mkdirat(&dir.fd, name, Mode::from_raw_mode(0o700)) {
            Ok(()) => {
                self.written.changes.created.push(list_path(&e.path));
                self.owner_and_mode(dir, name, e)?;
                self.dir_times.push((e.path.clone(), e.mtime));
                Ok(())
            }
            // Existing directories, or symlinks to directories inside the
            // root (merged /usr), are kept as they are, as dpkg does.
            Err(Errno::EXIST) => match open_dir(self.root, &e.path) {
                Ok(_) => Ok(()),
                Err(Errno::NOTDIR | Errno::NOENT) => Err(Reason::Replace {
                    path: String::from_utf8_lossy(&e.path).into_owned(),
                    existing: "a non-directory (or a dangling symlink)",
                    new: "directory",
                }),
                Err(err) => Err(resolve_error(&e.path, err, "open an existing directory")),
            },
            Err(err) => Err(Reason::io("create the directory", err)),
        }
    }

    /// A tree's directory: kept if one is there, else made (replacing a
    /// non-directory, a symlink too); its owner, mode and mtime come last.
    fn tree_directory(&mut self, dir: &Dir, name: &[u8], e: &Entry) -> Result<(), Reason> {
        let mkdir = || rustix::fs::mkdirat(&dir.fd, name, Mode::from_raw_mode(0o700));
        match mkdir() {
            Ok(()) => self.written.changes.created.push(list_path(&e.path)),
            Err(Errno::EXIST) => {
                let st = rustix::fs::statat(&dir.fd, name, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|err| Reason::io("inspect what is there", err))?;
                if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                    rustix::fs::unlinkat(&dir.fd, name, AtFlags::empty())
                        .map_err(|err| Reason::io("replace what is there", err))?;
                    mkdir().map_err(|err| Reason::io("create the directory", err))?;
                    self.written.changes.replaced.push(list_path(&e.path));
                }
            }
            Err(err) => return Err(Reason::io("create the directory", err)),
        }
        self.dir_metas.push(DirMeta::of(e));
        Ok(())
    }

    /// A tree's non-directory: what is at its path goes (an empty
    /// directory too) and the entry is made there directly. Whether it was
    /// written: a device node the kernel does not permit is counted
    /// instead.
    fn tree_non_directory(
        &mut self,
        dir: &Dir,
        name: &[u8],
        e: &Entry,
        data: &mut dyn Read,
    ) -> Result<bool, Reason> {
        let replaced = remove_existing(&dir.fd, name).map_err(|err| match err {
            Errno::NOTEMPTY | Errno::EXIST => Reason::Replace {
                path: String::from_utf8_lossy(&e.path).into_owned(),
                existing: "a directory that is not empty",
                new: e.kind.noun(),
            },
            err => Reason::io("replace what is there", err),
        })?;
        let times = times(e.mtime);
        match &e.kind {
            EntryKind::File(size) => self.file(dir, name, e, *size, &times, data)?,
            EntryKind::HardLink(raw) => self.hard_link(dir, name, e, &normalize(raw)?)?,
            EntryKind::Symlink(target) => self.symlink(dir, name, e, target, &times)?,
            EntryKind::CharDevice(..) | EntryKind::BlockDevice(..) | EntryKind::Fifo => {
                let (ft, dev) = node(&e.kind);
                match rustix::fs::mknodat(&dir.fd, name, ft, Mode::from_raw_mode(0o600), dev) {
                    Ok(()) => self.node_meta(dir, name, e, &times)?,
                    Err(Errno::PERM) if ft != FileType::Fifo => {
                        self.written.counts.devices_skipped += 1;
                        self.release_in_flight();
                        return Ok(false);
                    }
                    Err(err) => return Err(Reason::io("create the device node or fifo", err)),
                }
            }
            EntryKind::Directory => unreachable!("directories are written by directory()"),
        }
        let path = list_path(&e.path);
        if replaced {
            // A directory the archive listed before is gone: nothing to
            // set on it at the end.
            self.dir_metas.retain(|d| d.path != e.path);
            self.written.changes.replaced.push(path);
        } else {
            self.written.changes.created.push(path);
        }
        self.release_in_flight();
        Ok(true)
    }

    /// dpkg keeps an existing directory where the archive has a symlink,
    /// and an existing symlink that resolves to the same directory as the
    /// new one would.
    fn keeps_existing_dir(
        &self,
        dir: &Dir,
        name: &[u8],
        path: &[u8],
        target: &[u8],
    ) -> Result<bool, Reason> {
        let st = match rustix::fs::statat(&dir.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(Reason::io("stat the existing path", e)),
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => Ok(true),
            FileType::Symlink => {
                let Ok(old) = open_dir(self.root, path) else {
                    return Ok(false);
                };
                let new_rel = if let Some(abs) = target.strip_prefix(b"/") {
                    abs.to_vec()
                } else if dir.path.is_empty() {
                    target.to_vec()
                } else {
                    [&dir.path[..], b"/", target].concat()
                };
                let Ok(new) = open_dir(self.root, &new_rel) else {
                    return Ok(false);
                };
                let (Ok(a), Ok(b)) = (rustix::fs::fstat(&old), rustix::fs::fstat(&new)) else {
                    return Ok(false);
                };
                Ok(a.st_dev == b.st_dev && a.st_ino == b.st_ino)
            }
            _ => Ok(false),
        }
    }

    fn non_directory(
        &mut self,
        dir: &Rc<Dir>,
        name: &[u8],
        e: &Entry,
        data: &mut dyn Read,
    ) -> Result<(), Reason> {
        let new = with_suffix(name, DPKG_NEW);
        let times = times(e.mtime);
        let mut conffile = false;
        match &e.kind {
            EntryKind::File(size) => {
                self.file(dir, &new, e, *size, &times, data)?;
                conffile = self.options.conffiles == Conffiles::LeaveDpkgNew
                    && self.conffiles.contains(&e.path);
            }
            EntryKind::HardLink(raw) => {
                let target = normalize(raw)?;
                let target = self.on_disk(&target).unwrap_or(target);
                if !self.regular.contains(&target) {
                    return Err(Reason::HardLinkTarget {
                        target: String::from_utf8_lossy(raw).into_owned(),
                    });
                }
                self.hard_link(dir, &new, e, &target)?;
            }
            EntryKind::Symlink(target) => self.symlink(dir, &new, e, target, &times)?,
            EntryKind::CharDevice(..) | EntryKind::BlockDevice(..) | EntryKind::Fifo => {
                let (ft, dev) = node(&e.kind);
                fresh(&dir.fd, &new, "create the device node or fifo", || {
                    rustix::fs::mknodat(&dir.fd, &new[..], ft, Mode::from_raw_mode(0o600), dev)
                })?;
                self.node_meta(dir, &new, e, &times)?;
            }
            EntryKind::Directory => unreachable!("directories are written by directory()"),
        }
        if conffile {
            // Left for `dpkg --configure` to install, as `dpkg --unpack` does.
            self.written
                .changes
                .created
                .push(list_path(&with_suffix(&e.path, DPKG_NEW)));
            self.pending.push((dir.clone(), new));
        } else {
            self.place(dir, name, &new, e)?;
        }
        self.release_in_flight();
        Ok(())
    }

    /// The in-flight entry is in place (or was not needed): releases its
    /// claim.
    fn release_in_flight(&mut self) {
        if let Some(f) = self.in_flight.take() {
            self.release(f.claim.as_ref());
        }
    }

    fn release(&self, claim: Option<&Key>) {
        if let (Some(claims), Some(key)) = (self.claims, claim) {
            claims.release(key);
        }
    }

    /// Writes a regular file at `new` (created exclusively) from `data`,
    /// with the entry's owner, xattrs, mode and mtime.
    fn file(
        &mut self,
        dir: &Dir,
        new: &[u8],
        e: &Entry,
        size: u64,
        times: &Timestamps,
        data: &mut dyn Read,
    ) -> Result<(), Reason> {
        let fd = fresh(&dir.fd, new, "create the file", || {
            rustix::fs::openat(
                &dir.fd,
                new,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
        })?;
        let mut file = File::from(fd);
        let copied = self.copy(data, &mut file)?;
        if copied != size {
            return Err(Reason::Format(format!(
                "the archive ended inside the file ({copied} of {size} bytes)"
            )));
        }
        self.set_owner((e.uid, e.gid), |u, g| rustix::fs::fchown(&file, u, g))?;
        // After chown, which drops file capabilities.
        for (k, v) in &e.xattrs {
            if rustix::fs::fsetxattr(&file, OsStr::from_bytes(k), v, XattrFlags::empty()).is_err() {
                self.written.counts.xattrs_skipped += 1;
            }
        }
        rustix::fs::fchmod(&file, Mode::from_raw_mode(e.mode & 0o7777))
            .map_err(|err| Reason::io("set the mode", err))?;
        rustix::fs::futimens(&file, times).map_err(|err| Reason::io("set the mtime", err))?;
        self.regular.insert(e.path.clone());
        self.written.files += 1;
        self.written.bytes += size;
        Ok(())
    }

    /// Makes `new` a hard link to the (normalized) `target`.
    fn hard_link(&mut self, dir: &Dir, new: &[u8], e: &Entry, target: &[u8]) -> Result<(), Reason> {
        let (tparent, tname) = split_parent(target);
        let tdir = open_dir(self.root, tparent)
            .map_err(|err| resolve_error(tparent, err, "open the link target's directory"))?;
        fresh(&dir.fd, new, "create the hard link", || {
            rustix::fs::linkat(&tdir, tname, &dir.fd, new, AtFlags::empty())
        })?;
        self.regular.insert(e.path.clone());
        self.written.files += 1;
        Ok(())
    }

    /// Makes `new` a symlink to `target`, with the entry's owner and mtime.
    fn symlink(
        &mut self,
        dir: &Dir,
        new: &[u8],
        e: &Entry,
        target: &[u8],
        times: &Timestamps,
    ) -> Result<(), Reason> {
        fresh(&dir.fd, new, "create the symlink", || {
            rustix::fs::symlinkat(target, &dir.fd, new)
        })?;
        self.set_owner((e.uid, e.gid), |u, g| {
            rustix::fs::chownat(&dir.fd, new, u, g, AtFlags::SYMLINK_NOFOLLOW)
        })?;
        rustix::fs::utimensat(&dir.fd, new, times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|err| Reason::io("set the mtime", err))
    }

    /// Gives `name` in `dir` the entry's owner and mode.
    fn owner_and_mode(&mut self, dir: &Dir, name: &[u8], e: &Entry) -> Result<(), Reason> {
        self.set_owner((e.uid, e.gid), |u, g| {
            rustix::fs::chownat(&dir.fd, name, u, g, AtFlags::SYMLINK_NOFOLLOW)
        })?;
        rustix::fs::chmodat(
            &dir.fd,
            name,
            Mode::from_raw_mode(e.mode & 0o7777),
            AtFlags::empty(),
        )
        .map_err(|err| Reason::io("set the mode", err))
    }

    fn node_meta(
        &mut self,
        dir: &Dir,
        new: &[u8],
        e: &Entry,
        times: &Timestamps,
    ) -> Result<(), Reason> {
        self.owner_and_mode(dir, new, e)?;
        rustix::fs::utimensat(&dir.fd, new, times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|err| Reason::io("set the mtime", err))
    }

    /// Renames `new` over `name`, recording whether something was replaced.
    fn place(&mut self, dir: &Dir, name: &[u8], new: &[u8], e: &Entry) -> Result<(), Reason> {
        let replace = || match rustix::fs::renameat(&dir.fd, new, &dir.fd, name) {
            Ok(()) => Ok(()),
            Err(Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST) => Err(Reason::Replace {
                path: String::from_utf8_lossy(&e.path).into_owned(),
                existing: "a directory",
                new: e.kind.noun(),
            }),
            Err(err) => Err(Reason::io("rename the .dpkg-new into place", err)),
        };
        let replaced =
            match rustix::fs::renameat_with(&dir.fd, new, &dir.fd, name, RenameFlags::NOREPLACE) {
                Ok(()) => false,
                Err(Errno::EXIST) => {
                    replace()?;
                    true
                }
                // Filesystems without RENAME_NOREPLACE.
                Err(Errno::INVAL) => {
                    let existed =
                        rustix::fs::statat(&dir.fd, name, AtFlags::SYMLINK_NOFOLLOW).is_ok();
                    replace()?;
                    existed
                }
                Err(err) => return Err(Reason::io("rename the .dpkg-new into place", err)),
            };
        let path = list_path(&e.path);
        if replaced {
            self.written.changes.replaced.push(path);
        } else {
            self.written.changes.created.push(path);
        }
        Ok(())
    }

    fn copy(&mut self, data: &mut dyn Read, out: &mut File) -> Result<u64, Reason> {
        if self.buf.is_empty() {
            self.buf = vec![0; 256 * 1024];
        }
        let mut total = 0u64;
        loop {
            let n = match data.read(&mut self.buf) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    return Err(Reason::Io {
                        op: "read the archive",
                        source: err,
                    });
                }
            };
            out.write_all(&self.buf[..n])
                .map_err(|err| Reason::io("write the file", err))?;
            total += n as u64;
        }
    }

    /// Removes the `.dpkg-new` of a failed entry and releases its claim.
    fn abandon_in_flight(&mut self) {
        if let Some(f) = self.in_flight.take() {
            let _ = rustix::fs::unlinkat(&f.dir.fd, &f.name[..], AtFlags::empty());
            self.release(f.claim.as_ref());
        }
    }

    /// The package failed: removes the conffiles left as `.dpkg-new`.
    pub(crate) fn abort(&mut self) {
        self.abandon_in_flight();
        for (dir, new) in self.pending.drain(..) {
            if rustix::fs::unlinkat(&dir.fd, &new[..], AtFlags::empty()).is_ok() {
                let path = if dir.path.is_empty() {
                    new
                } else {
                    [&dir.path[..], b"/", &new[..]].concat()
                };
                let path = list_path(&path);
                self.written.changes.created.retain(|p| *p != path);
            }
        }
    }

    /// All entries are written: sets the mtimes of the directories created.
    pub(crate) fn finish(&mut self) -> Result<(), Reason> {
        self.cached = None;
        for (path, mtime) in std::mem::take(&mut self.dir_times) {
            let (parent, name) = split_parent(&path);
            let fd = open_dir(self.root, parent)
                .map_err(|e| resolve_error(parent, e, "open a directory to set its mtime"))?;
            rustix::fs::utimensat(&fd, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| Reason::io("set a directory's mtime", e))?;
        }
        Ok(())
    }

    /// A tree's entries are all written: sets the owner, mode and mtime of
    /// every directory it listed, deepest first (so a read-only one does
    /// not stop the ones below, and each keeps the archive's mtime). An
    /// error names the directory.
    pub(crate) fn finish_tree(&mut self) -> Result<(), (Vec<u8>, Reason)> {
        self.cached = None;
        let mut dirs = std::mem::take(&mut self.dir_metas);
        let depth = |p: &[u8]| p.split(|&b| b == b'/').filter(|c| !c.is_empty()).count();
        dirs.sort_by_key(|d| std::cmp::Reverse(depth(&d.path)));
        for d in dirs {
            let fail = |r: Reason| (d.path.clone(), r);
            let fd = self
                .root
                .open_at(
                    as_path(&d.path),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
                )
                .map_err(|e| fail(Reason::io("reopen the directory", e)))?;
            self.set_owner((d.uid, d.gid), |u, g| rustix::fs::fchown(&fd, u, g))
                .map_err(fail)?;
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(d.mode))
                .map_err(|e| fail(Reason::io("set the mode", e)))?;
            let _ = rustix::fs::futimens(&fd, &times(d.mtime));
        }
        Ok(())
    }
}
