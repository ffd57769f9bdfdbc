//! A new root that starts as a copy-on-write snapshot of an existing one
//! (generations: N+1 from N). The snapshot is made beside the new root's
//! place (`PARENT/.NAME.kod-tmp-PID`): a Btrfs subvolume snapshot when the
//! source is a subvolume on the same file system, else a copy whose files
//! are reflinked where the file system can, else plain copies — never hard
//! links, which would let the new root write into the old one. The work
//! happens in the snapshot directly; at commit it is synced and renamed
//! into place. The source is only read.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use kod_report::Report;
use kod_root::btrfs;

use super::{Committed, Strategy, remove_work, sibling, sync};
use crate::chroot::Chroot;
use crate::error::{Error, io_error};
use crate::tree;

/// A snapshot being changed into a new root.
#[derive(Debug)]
pub(crate) struct Snapshot {
    to: PathBuf,
    staging: PathBuf,
}

impl Snapshot {
    /// Snapshots `from` (an existing root) beside `to` (absent, or an
    /// empty directory); the locks are held and leftovers cleaned.
    pub(crate) fn prepare(from: &Path, to: &Path, report: &Report) -> Result<Snapshot, Error> {
        super::not_running_root(to, "give the directory of the new root")?;
        match fs::symlink_metadata(to) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("stat", to)(e)),
            Ok(m)
                if m.is_dir()
                    && fs::read_dir(to)
                        .map_err(io_error("read", to))?
                        .next()
                        .is_none() => {}
            Ok(_) => {
                return Err(Error::Target {
                    root: to.to_path_buf(),
                    reason: "exists and is not an empty directory; a snapshot becomes a new \
                             root, so give a path that does not exist yet"
                        .into(),
                });
            }
        }
        if !from.join(".").is_dir() {
            return Err(Error::Target {
                root: from.to_path_buf(),
                reason: "is not a directory; give the root to snapshot".into(),
            });
        }
        let staging = sibling(to, "tmp");
        // Subvolumes have st_dev numbers of their own: whether `from` is on
        // `to`'s file system only the kernel says, by making the snapshot.
        let snapshotted = btrfs::is_subvolume(from)
            && match btrfs::snapshot(from, &staging) {
                Ok(()) => true,
                Err(e) => {
                    report.verbose(|| {
                        format!(
                            "  no Btrfs snapshot of {} at {} ({e}): copying",
                            from.display(),
                            staging.display()
                        )
                    });
                    false
                }
            };
        if snapshotted {
            report.verbose(|| {
                format!(
                    "+ btrfs subvolume snapshot {} {}",
                    from.display(),
                    staging.display()
                )
            });
        } else {
            report.verbose(|| {
                format!(
                    "+ cp -a --reflink=auto --one-file-system {} {}",
                    from.display(),
                    staging.display()
                )
            });
            if let Err(e) = tree::copy_tree(from, &staging) {
                remove_work(&staging, report);
                return Err(io_error(format!("copy {} to", from.display()), &staging)(e));
            }
        }
        Ok(Snapshot {
            to: to.to_path_buf(),
            staging,
        })
    }
}

impl Strategy for Snapshot {
    fn view(&self) -> &Path {
        &self.staging
    }

    fn chroot(&self, shown: &Path, debug: bool, report: &Report) -> Result<Chroot, Error> {
        super::chroot_in(&self.staging, shown, debug, report)
    }

    fn fresh(&self) -> bool {
        false
    }

    fn commit(self: Box<Self>, report: &Report) -> Result<Committed, Error> {
        sync(&self.staging)?;
        report.verbose(|| format!("+ rename {} {}", self.staging.display(), self.to.display()));
        if let Err(e) = fs::rename(&self.staging, &self.to) {
            let r = io_error(format!("rename {} to", self.staging.display()), &self.to)(e);
            self.discard(report);
            return Err(r);
        }
        Ok(Committed::default())
    }

    fn discard(self: Box<Self>, report: &Report) {
        discard_snapshot(&self.staging, report);
    }
}

/// Deletes a snapshot (a subvolume, or a copied tree).
pub(crate) fn discard_snapshot(dir: &Path, report: &Report) {
    if btrfs::is_subvolume(dir) && btrfs::delete(dir).is_ok() {
        return;
    }
    remove_work(dir, report);
}
