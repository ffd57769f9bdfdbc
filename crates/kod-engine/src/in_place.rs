//! In-place rebuilds (`kod rebuild` without `-n`, KodOS's mode): the
//! changes reach the current root itself — the running system's `/` when
//! kod runs on the machine — and the state before them stays bootable
//! under the old number.
//!
//! With N the current generation and M the new one, in order:
//!
//! 1. M is built beside N exactly as `rebuild -n` builds it, committed and
//!    made the default. A failure up to here changes nothing, as for `-n`.
//! 2. N's root is cloned aside (`generations/N/.kod-kept`, a snapshot):
//!    the state before the changes.
//! 3. N's root is brought to M's, file by file ([`kod_install::sync_root`]:
//!    atomic replaces, running programs keep the files they have open).
//!    From here the running system has the new packages and settings.
//! 4. The roots swap names (`renameat2` with `RENAME_EXCHANGE`, each swap
//!    atomic): the clone becomes `generations/N/rootfs` (N and its record
//!    exactly as they were), the changed root becomes
//!    `generations/M/rootfs` (so the running system is generation M:
//!    current M, booted N, until the next boot), and the root M was built
//!    in is deleted.
//!
//! A marker in `generations/M` (`.kod-in-place`: N and the phase reached)
//! lets the next kod that takes the machine lock finish a stopped one:
//! forward when the changed root is the running system's (it has the
//! changes already), otherwise back to what `rebuild -n` leaves (N's
//! root as it was, M the built root): either way both numbers boot with
//! their records.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use kod_gen::Top;
use kod_report::Report;
use rustix::fs::{CWD, RenameFlags};

use crate::{EngineError, fault};

/// The marker in `generations/M` of an in-place rebuild from N to M.
const MARKER: &str = ".kod-in-place";
/// Where N's root is kept while the roots swap, in `generations/N`.
const KEPT: &str = ".kod-kept";

/// How far an in-place rebuild got, as its marker records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The clone of N's root is being made.
    Cloning,
    /// The clone is whole; N's root is being brought to M's.
    Kept,
    /// N's root holds M's state; the roots swap names.
    Synced,
}

impl Phase {
    const ALL: [(Phase, &'static str); 3] = [
        (Phase::Cloning, "cloning"),
        (Phase::Kept, "kept"),
        (Phase::Synced, "synced"),
    ];

    fn name(self) -> &'static str {
        Phase::ALL
            .iter()
            .find(|(p, _)| *p == self)
            .map_or("", |(_, n)| n)
    }

    fn parse(s: &str) -> Option<Phase> {
        Phase::ALL.iter().find(|(_, n)| *n == s).map(|(p, _)| *p)
    }
}

/// One in-place rebuild of `top` from generation `from` to `to`; `live`
/// is the identity ([`root_id`]) of the root being changed, wherever its
/// name is by now (the swaps move it).
struct InPlace<'a> {
    top: &'a Top,
    from: u64,
    to: u64,
    live: u64,
    report: &'a Report,
}

/// Makes generation `to` (built and made the default by `rebuild -n`'s
/// steps, from `from`) the current root in place, as the module says.
pub(crate) fn apply(top: &Top, from: u64, to: u64, report: &Report) -> Result<(), EngineError> {
    let live = top.rootfs(from);
    let run = InPlace {
        top,
        from,
        to,
        live: root_id(&live)?,
        report,
    };
    run.mark(Phase::Cloning)?;
    let kept = run.kept();
    report.verbose(|| {
        format!(
            "keeping generation {from}'s root as it is now: {}",
            kept.display()
        )
    });
    kod_install::clone_root(&live, &kept, report)?;
    run.mark(Phase::Kept)?;
    fault::point("kept");
    run.sync()?;
    run.swap()
}

/// Finishes or undoes the in-place rebuilds a stopped kod left on `top`
/// (its lock held), as the module says; `running_root` is the running
/// system's `/`.
pub fn recover(top: &Top, running_root: &Path, report: &Report) -> Result<(), EngineError> {
    for to in top.generations()? {
        let marker = top.generation_dir(to).join(MARKER);
        let Ok(text) = fs::read_to_string(&marker) else {
            continue;
        };
        let malformed = || EngineError::Machine {
            path: marker.clone(),
            reason: format!(
                "is not a marker kod wrote ({:?}); remove it once generations/{to} is checked",
                text.trim()
            ),
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        let [from, phase, live] = words[..] else {
            return Err(malformed());
        };
        let (Ok(from), Some(phase), Ok(live)) = (from.parse(), Phase::parse(phase), live.parse())
        else {
            return Err(malformed());
        };
        let run = InPlace {
            top,
            from,
            to,
            live,
            report,
        };
        let running = root_id(running_root).is_ok_and(|id| id == live);
        let undo = phase == Phase::Cloning || (phase == Phase::Kept && !running);
        if undo {
            run.back(phase)?;
        } else {
            if phase == Phase::Kept {
                run.sync()?;
            }
            run.swap()?;
        }
        report.note(&if undo {
            format!(
                "undid the in-place rebuild of generation {from} into {to} a stopped kod left: \
                 {from} as it was, {to} as built beside it"
            )
        } else {
            format!(
                "finished the in-place rebuild of generation {from} into {to} a stopped kod left"
            )
        });
    }
    Ok(())
}

/// What names a root across renames: its subvolume id on Btrfs, its
/// inode number elsewhere.
fn root_id(path: &Path) -> Result<u64, EngineError> {
    if kod_root::btrfs::is_subvolume(path) {
        kod_root::btrfs::subvolume_id(path).map_err(|e| EngineError::io(path, e))
    } else {
        fs::metadata(path)
            .map(|m| m.ino())
            .map_err(|e| EngineError::io(path, e))
    }
}

impl InPlace<'_> {
    fn kept(&self) -> PathBuf {
        self.top.generation_dir(self.from).join(KEPT)
    }

    fn marker(&self) -> PathBuf {
        self.top.generation_dir(self.to).join(MARKER)
    }

    fn is_live(&self, path: &Path) -> bool {
        root_id(path).is_ok_and(|id| id == self.live)
    }

    fn mark(&self, phase: Phase) -> Result<(), EngineError> {
        let path = self.marker();
        let text = format!("{} {} {}\n", self.from, phase.name(), self.live);
        kod_root::write_atomic(&path, text.as_bytes()).map_err(|e| EngineError::io(&path, e))?;
        sync_dir(&self.top.generation_dir(self.to))
    }

    /// Brings the live root (still at N's name) to the built one's state.
    fn sync(&self) -> Result<(), EngineError> {
        let (live, built) = (self.top.rootfs(self.from), self.top.rootfs(self.to));
        self.report.verbose(|| {
            format!(
                "bringing generation {}'s root to generation {}'s",
                self.from, self.to
            )
        });
        let synced = kod_install::sync_root(&built, &live)?;
        self.report.verbose(|| {
            format!(
                "  {} entries written, {} removed",
                synced.written, synced.removed
            )
        });
        self.mark(Phase::Synced)?;
        fault::point("synced");
        Ok(())
    }

    /// Swaps the names so that N's is the clone and M's the live root,
    /// then deletes the built root. Each swap is done only where the
    /// live root is not yet at its place, so running this again after an
    /// interruption finishes the job.
    fn swap(&self) -> Result<(), EngineError> {
        let (at_n, at_m, kept) = (
            self.top.rootfs(self.from),
            self.top.rootfs(self.to),
            self.kept(),
        );
        if self.is_live(&at_n) {
            exchange(&at_n, &kept)?;
            fault::point("swapped");
        }
        if !self.is_live(&at_m) && self.is_live(&kept) {
            exchange(&at_m, &kept)?;
        }
        self.finish()
    }

    /// Back to what `rebuild -n` leaves: N's root as it was (once the
    /// clone is whole it takes the place of a live root changed part
    /// way), M the built root.
    fn back(&self, phase: Phase) -> Result<(), EngineError> {
        let (at_n, kept) = (self.top.rootfs(self.from), self.kept());
        if phase == Phase::Kept && self.is_live(&at_n) {
            exchange(&at_n, &kept)?;
        }
        self.finish()
    }

    /// Deletes what is at the clone's place and the marker.
    fn finish(&self) -> Result<(), EngineError> {
        let kept = self.kept();
        if fs::symlink_metadata(&kept).is_ok() {
            delete_root(&kept)?;
        }
        sync_dir(&self.top.generation_dir(self.from))?;
        let marker = self.marker();
        fs::remove_file(&marker).map_err(|e| EngineError::io(&marker, e))?;
        sync_dir(&self.top.generation_dir(self.to))
    }
}

/// Swaps the names of two directories atomically.
fn exchange(a: &Path, b: &Path) -> Result<(), EngineError> {
    rustix::fs::renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE)
        .map_err(|e| EngineError::io(a, e.into()))?;
    for dir in [a.parent(), b.parent()].into_iter().flatten() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Deletes a root: a subvolume, or a directory tree.
fn delete_root(path: &Path) -> Result<(), EngineError> {
    let deleted = if kod_root::btrfs::is_subvolume(path) {
        kod_root::btrfs::delete(path)
    } else {
        kod_root::tree::remove_tree(path)
    };
    deleted.map_err(|e| EngineError::io(path, e))
}

fn sync_dir(dir: &Path) -> Result<(), EngineError> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| EngineError::io(dir, e))
}
