//! kod-unpack: confined, parallel extraction of package archives into a
//! target root.
//!
//! Its one job: take package files (`.deb` today; the entry-writing core in
//! `writer` is format-independent so `.pkg.tar.zst` and `.rpm` readers can
//! reuse it) and write their contents into a root directory, never outside
//! it, many packages at once, returning what the package database needs
//! (control members, the `.list`, conffiles, md5sums) and what was changed
//! (for rollback).
//!
//! - [`unpack_all`] unpacks a batch in parallel (rayon); [`unpack_deb`] one
//!   package; [`read_meta`] only reads a package's control part.
//! - Confinement: every path is resolved from the root's descriptor with
//!   `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`; `..` entries,
//!   writes through symlinks that leave the root, and hard links to
//!   anything but a file the same package installed before are refused.
//! - Files are written as `PATH.dpkg-new` and renamed over `PATH` (atomic
//!   in a live root); nothing is fsynced: the caller syncs once at commit.
//! - Two packages of one batch shipping one path: see [`unpack_all`].
//! - [`setup_merged_usr`] creates the merged-/usr symlinks in an empty root.
//! - [`unpack_tar`] unpacks a whole tree (a root tarball) through the same
//!   writer, with the rules of `tar -x` run as root in a chroot, confined
//!   to the root.
#![deny(missing_docs)]

mod claims;
mod deb;
mod error;
mod kept;
mod tree;
mod usrmerge;
mod writer;

use std::cmp::Reverse;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

pub use deb::{Control, ControlMember, DebMeta};
pub use error::{Failure, Reason, UnpackError};
pub use tree::{TarError, TarOptions, TarUnpacked, unpack_tar};
pub use usrmerge::{merged_usr_dirs, setup_merged_usr};

use claims::{Claims, PkgFacts, parse_relations};
use deb::{Data, located, read_deb};
use kod_root::Root;
use writer::{Writer, list_path};

/// What to do when setting an entry's owner is not permitted (EPERM, e.g.
/// when not running as root).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ownership {
    /// Set the archive's numeric uid/gid; EPERM is an error.
    #[default]
    Archive,
    /// Set the archive's uid/gid where permitted; where not (EPERM), keep
    /// the unpacking user's. Only for roots that are not booted as systems
    /// (tests, rootless environments whose user namespace maps ids later).
    SkipIfNotPermitted,
}

/// Where conffiles (the paths in a package's `conffiles`) end up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Conffiles {
    /// Left as `PATH.dpkg-new`, as `dpkg --unpack` leaves them, for
    /// `dpkg --configure` to install (it compares them with what is on disk
    /// and records their hashes).
    #[default]
    LeaveDpkgNew,
    /// Renamed into place like any other file (as `dpkg-deb -x` does).
    Install,
}

/// How to unpack.
#[derive(Debug, Clone, Default)]
pub struct UnpackOptions {
    /// Owner handling.
    pub ownership: Ownership,
    /// Conffile handling.
    pub conffiles: Conffiles,
    /// A directory where the decompressed data part of a package unpacked
    /// more than once is kept and read from then on (see `kept.rs`); files
    /// there are named by the SHA256 of the `.deb`.
    pub data_cache: Option<PathBuf>,
    /// The diversions in force in the root (`dpkg-divert`).
    pub diversions: Vec<Diversion>,
    /// Where each unpacked package is reported, as it finishes: one item
    /// of the unpack stage, the archive's size in bytes.
    pub report: kod_report::Report,
}

/// A diversion (`dpkg-divert`): a package other than `holder` that ships
/// `from` gets it written to `to`, as dpkg does; its file list keeps
/// `from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diversion {
    /// The diverted path (absolute, as in file lists).
    pub from: PathBuf,
    /// Where other packages' `from` goes.
    pub to: PathBuf,
    /// The package that declared the diversion (`:` for a local one).
    pub holder: String,
}

/// What one package changed in the root, for rollback. Paths are
/// `/`-rooted, relative to the root, as written (through any directory
/// symlink such as merged /usr's `bin -> usr/bin`): resolve them confined
/// to the root when undoing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Paths that did not exist before and were created, in creation order
    /// (undo in reverse order). Conffiles left as `.dpkg-new` appear under
    /// that name.
    pub created: Vec<PathBuf>,
    /// Paths that existed and were replaced (their old content is gone:
    /// unpack into a fresh root or a snapshot to be able to restore them).
    pub replaced: Vec<PathBuf>,
}

/// One unpacked package.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// The archive it came from.
    pub archive: PathBuf,
    /// Its control part.
    pub meta: DebMeta,
    /// What dpkg's `info/PACKAGE.list` holds (and `dpkg -L` prints): every
    /// directory and file of the archive in archive order, `/.` first,
    /// without paths that another package of the batch took over.
    pub list: Vec<PathBuf>,
    /// Paths of `list` that a diversion made the writer put elsewhere,
    /// each with where it is (`/`-rooted like `list`).
    pub diverted: Vec<(PathBuf, PathBuf)>,
    /// Regular files (and hard links) written.
    pub files: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
    /// What changed in the root.
    pub changes: Changes,
    /// Whether the data part was read from the data cache instead of
    /// being decompressed.
    pub from_kept_data: bool,
}

impl Unpacked {
    /// The package name.
    pub fn package(&self) -> &str {
        self.meta.control.package()
    }

    /// Where the listed `path` is in the root: where a diversion put it,
    /// else `path` itself.
    pub fn on_disk<'a>(&'a self, path: &'a Path) -> &'a Path {
        self.diverted
            .iter()
            .find(|(listed, _)| listed == path)
            .map_or(path, |(_, to)| to.as_path())
    }

    /// The contents of `info/PACKAGE.list`: one path a line.
    pub fn list_file(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &self.list {
            out.extend_from_slice(p.as_os_str().as_bytes());
            out.push(b'\n');
        }
        out
    }
}

fn file_name(deb: &Path) -> String {
    deb.file_name().map_or_else(
        || deb.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Reads only the control part of a `.deb`.
pub fn read_meta(deb: &Path) -> Result<DebMeta, UnpackError> {
    read_deb(deb, Data::Skip).map_err(|l| UnpackError {
        failures: vec![Failure {
            package: file_name(deb),
            archive: deb.to_path_buf(),
            member: l.member,
            path: l.path,
            reason: l.reason,
        }],
        changes: Vec::new(),
    })
}

/// How one package of a batch ended: unpacked, or failed (`None` when it
/// only stopped because another package failed) with what it changed.
type Outcome = Result<Unpacked, Box<(Option<Failure>, Changes)>>;

/// Unpacks one `.deb` into `root`; see [`unpack_all`].
pub fn unpack_deb(
    deb: &Path,
    root: &Path,
    options: &UnpackOptions,
) -> Result<Unpacked, UnpackError> {
    let mut v = unpack_all(&[deb], root, options)?;
    v.pop().ok_or_else(|| UnpackError {
        failures: Vec::new(),
        changes: Vec::new(),
    })
}

fn facts(meta: &DebMeta) -> Result<PkgFacts, Reason> {
    let c = &meta.control;
    let version = c
        .get("Version")
        .map(|v| {
            v.parse()
                .map_err(|e| Reason::Format(format!("bad Version {v:?}: {e:?}")))
        })
        .transpose()?;
    let replaces = parse_relations(c.get("Replaces").unwrap_or_default())
        .map_err(|e| Reason::Format(format!("bad Replaces field: {e}")))?;
    Ok(PkgFacts {
        name: c.package().to_string(),
        version,
        multi_arch_same: c.get("Multi-Arch") == Some("same"),
        replaces,
    })
}

/// Unpacks every `.deb` of `debs` into `root`, packages in parallel, and
/// returns one [`Unpacked`] per package, in the order given.
///
/// Two packages of the batch shipping the same path: directories are
/// shared; a directory against a symlink follows dpkg's filesystem rules
/// (a directory entry follows a symlink to a directory, a symlink entry
/// keeps an existing directory), which gives one outcome when the symlink
/// exists before the batch (merged /usr set up with [`setup_merged_usr`]);
/// a directory against another non-directory is an error naming both;
/// for two non-directories, the later package in `debs` wins if its
/// control declares `Replaces` on the earlier one (what `dpkg --unpack` in
/// that order would do), else the earlier wins if it declares `Replaces` on
/// the later; else two instances of one `Multi-Arch: same` package share
/// it; else it is an error naming both packages and the path. The outcome
/// does not depend on thread timing. The loser neither writes the path nor
/// lists it.
///
/// On failure every package still running stops early; nothing is left as
/// `.dpkg-new` by a failed or stopped package, and [`UnpackError::changes`]
/// says what each package had written.
pub fn unpack_all<P: AsRef<Path> + Sync>(
    debs: &[P],
    root: &Path,
    options: &UnpackOptions,
) -> Result<Vec<Unpacked>, UnpackError> {
    let root_handle = Root::open_beneath(root).map_err(|e| UnpackError {
        failures: vec![Failure {
            package: "(none)".into(),
            archive: root.to_path_buf(),
            member: None,
            path: None,
            reason: Reason::io("open the target root", e),
        }],
        changes: Vec::new(),
    })?;
    if let Some(dir) = &options.data_cache {
        kept::clean(dir);
    }
    let claims = Claims::new(debs.len());
    let cancel = AtomicBool::new(false);
    // Biggest first, so that the last package to finish is a small one.
    let mut order: Vec<usize> = (0..debs.len()).collect();
    order.sort_by_key(|&i| {
        Reverse(
            std::fs::metadata(debs[i].as_ref())
                .map(|m| m.len())
                .unwrap_or(0),
        )
    });
    let mut results: Vec<(usize, Outcome)> = order
        .par_iter()
        .map(|&i| {
            let r = unpack_one(debs[i].as_ref(), i, &root_handle, options, &claims, &cancel);
            match &r {
                Ok(u) => {
                    let size = std::fs::metadata(&u.archive).map_or(0, |m| m.len());
                    options.report.reporter().stage_advanced(
                        kod_report::Stage::Unpack,
                        kod_report::Work::new(1, size),
                        u.package(),
                    );
                }
                Err(_) => cancel.store(true, Ordering::Relaxed),
            }
            (i, r)
        })
        .collect();
    results.sort_by_key(|(i, _)| *i);

    if results.iter().any(|(_, r)| r.is_err()) {
        let mut failures = Vec::new();
        let mut changes = Vec::new();
        for (_, r) in results {
            match r {
                Ok(u) => changes.push(u.changes),
                Err(boxed) => {
                    let (f, c) = *boxed;
                    failures.extend(f);
                    changes.push(c);
                }
            }
        }
        return Err(UnpackError { failures, changes });
    }
    let mut unpacked: Vec<Unpacked> = results.into_iter().filter_map(|(_, r)| r.ok()).collect();
    for (pkg, path) in claims.take_lost() {
        let lost = list_path(&path);
        let list = &mut unpacked[pkg].list;
        if let Some(pos) = list.iter().position(|p| *p == lost) {
            list.remove(pos);
        }
    }
    Ok(unpacked)
}

fn unpack_one(
    deb: &Path,
    index: usize,
    root: &Root,
    options: &UnpackOptions,
    claims: &Claims,
    cancel: &AtomicBool,
) -> Outcome {
    let kept = options
        .data_cache
        .as_deref()
        .map_or(kept::Plan::Decompress, |dir| kept::plan(dir, deb));
    let from_kept_data = matches!(kept, kept::Plan::Read(_));
    let mut writer = Writer::new(root, options, claims, index, cancel);
    let before = |meta: &DebMeta| -> Result<(), Reason> {
        claims.set_facts(index, facts(meta)?);
        Ok(())
    };
    let result = read_deb(
        deb,
        Data::Write {
            writer: &mut writer,
            before: &before,
            kept: &kept,
        },
    )
    .and_then(|meta| {
        writer
            .finish()
            .map(|()| meta)
            .map_err(|r| located(None, None, r))
    });
    match result {
        Ok(meta) => {
            let written = std::mem::take(&mut writer.written);
            Ok(Unpacked {
                archive: deb.to_path_buf(),
                meta,
                list: written.list.iter().map(|p| list_path(p)).collect(),
                diverted: written
                    .diverted
                    .iter()
                    .map(|(from, to)| (list_path(from), list_path(to)))
                    .collect(),
                files: written.files,
                bytes: written.bytes,
                changes: written.changes,
                from_kept_data,
            })
        }
        Err(located) => {
            let deb::Located {
                member,
                path,
                reason,
            } = *located;
            writer.abort();
            let changes = std::mem::take(&mut writer.written.changes);
            let failure = (!matches!(reason, Reason::Cancelled)).then(|| Failure {
                package: claims.package_name(index).unwrap_or_else(|| file_name(deb)),
                archive: deb.to_path_buf(),
                member,
                path,
                reason,
            });
            Err(Box::new((failure, changes)))
        }
    }
}
