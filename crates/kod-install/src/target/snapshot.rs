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
        clone(from, &staging, report)?;
        Ok(Snapshot {
            to: to.to_path_buf(),
            staging,
        })
    }
}

/// Makes `to` (absent) a copy-on-write copy of the root `from`: a Btrfs
/// snapshot when `from` is a subvolume on `to`'s file system, else a copy
/// with reflinked files where the file system can, else plain copies;
/// never hard links. A copy that fails part way is removed.
pub(crate) fn clone(from: &Path, to: &Path, report: &Report) -> Result<(), Error> {
    // Subvolumes have st_dev numbers of their own: whether `from` is on
    // `to`'s file system only the kernel says, by making the snapshot.
    let snapshotted = btrfs::is_subvolume(from)
        && match btrfs::snapshot(from, to) {
            Ok(()) => true,
            Err(e) => {
                report.verbose(|| {
                    format!(
                        "  no Btrfs snapshot of {} at {} ({e}): copying",
                        from.display(),
                        to.display()
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
                to.display()
            )
        });
        return Ok(());
    }
    report.verbose(|| {
        format!(
            "+ cp -a --reflink=auto --one-file-system {} {}",
            from.display(),
            to.display()
        )
    });
    if let Err(e) = tree::copy_tree(from, to) {
        remove_work(to, report);
        return Err(io_error(format!("copy {} to", from.display()), to)(e));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    use kod_testkit::loopfs::{Kind, LoopFs, shares_extents};
    use kod_testkit::tree::{Options, assert_same, snapshot};
    use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};

    use super::*;

    /// 2001-09-09T01:46:40.123456789Z: a time no test run writes by itself.
    fn old_times() -> Timestamps {
        let t = Timespec {
            tv_sec: 1_000_000_000,
            tv_nsec: 123_456_789,
        };
        Timestamps {
            last_access: t,
            last_modification: t,
        }
    }

    fn own(path: &Path, uid: u32, gid: u32, mode: Option<u32>) {
        rustix::fs::chownat(
            CWD,
            path,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .expect("chown");
        if let Some(m) = mode {
            fs::set_permissions(path, fs::Permissions::from_mode(m)).expect("chmod");
        }
        rustix::fs::utimensat(CWD, path, &old_times(), AtFlags::SYMLINK_NOFOLLOW)
            .expect("utimensat");
    }

    /// A root with every kind of entry a Debian root has, with owners,
    /// modes, times and attributes no default would give.
    fn source(at: &Path) {
        fs::create_dir_all(at.join("usr/lib")).expect("mkdir");
        // Big enough to have extents of its own (not inline in the inode).
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        fs::write(at.join("usr/lib/libbig.so"), &data).expect("write");
        own(&at.join("usr/lib/libbig.so"), 0, 0, Some(0o644));
        fs::hard_link(at.join("usr/lib/libbig.so"), at.join("usr/lib/libbig.so.1")).expect("ln");
        fs::write(at.join("usr/lib/setuid"), b"#!/bin/sh\n").expect("write");
        own(&at.join("usr/lib/setuid"), 0, 0, Some(0o4755));
        fs::write(at.join("usr/lib/empty"), b"").expect("write");
        own(&at.join("usr/lib/empty"), 1234, 2345, Some(0o640));
        for (name, value) in [("user.kod", &b"kept"[..]), ("trusted.kod", b"also")] {
            rustix::fs::setxattr(at.join("usr/lib/empty"), name, value, XattrFlags::empty())
                .expect("setxattr");
        }
        symlink("libbig.so", at.join("usr/lib/link")).expect("symlink");
        own(&at.join("usr/lib/link"), 1234, 2345, None);
        fs::create_dir(at.join("dev")).expect("mkdir");
        rustix::fs::mknodat(
            CWD,
            at.join("dev/null"),
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .expect("mknod");
        own(&at.join("dev/null"), 0, 0, Some(0o666));
        rustix::fs::mknodat(
            CWD,
            at.join("dev/fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
        own(&at.join("dev/fifo"), 1234, 2345, Some(0o620));
        fs::create_dir(at.join("tmp")).expect("mkdir");
        // Directories last: making their entries moved their times.
        for (dir, mode) in [
            ("tmp", 0o1777),
            ("dev", 0o755),
            ("usr/lib", 0o750),
            ("usr", 0o755),
        ] {
            own(&at.join(dir), 0, 1234, Some(mode));
        }
        own(at, 0, 0, Some(0o755));
    }

    /// The inodes of `root`'s entries.
    fn inodes(root: &Path) -> HashSet<(u64, u64)> {
        snapshot(root, Options::default())
            .keys()
            .map(|rel| {
                let m = fs::symlink_metadata(root.join(rel)).expect("lstat");
                (m.dev(), m.ino())
            })
            .collect()
    }

    /// On XFS (reflinks) and ext4 (none), a snapshot of a directory is a
    /// copy alike in everything (owners, modes, times to the nanosecond,
    /// attributes, devices, fifos, symlinks, hard links among its own
    /// files), sharing no inode with its source; on XFS its files share
    /// their data extents with the source's, on ext4 they do not.
    #[test]
    fn root_a_snapshot_off_btrfs_is_a_faithful_copy_reflinked_where_possible() {
        if !kod_testkit::tier(kod_testkit::Tier::Root) {
            return;
        }
        for kind in [Kind::Xfs, Kind::Ext4] {
            let fs = LoopFs::new(kind, 512 << 20);
            let from = fs.path().join("from");
            fs::create_dir(&from).expect("mkdir");
            source(&from);
            let all = Options {
                file_mtimes: true,
                dir_mtimes: true,
                one_file_system: true,
            };
            let before = snapshot(&from, all);
            let to = fs.path().join("to");
            let s = Box::new(Snapshot::prepare(&from, &to, &Report::quiet()).expect("prepare"));
            assert!(!to.exists(), "{kind:?}: the copy appears only at commit");
            s.commit(&Report::quiet()).expect("commit");

            let copy = snapshot(&to, all);
            assert_same(&before, &copy, ("source", "copy"), &format!("{kind:?}"));
            assert_same(
                &before,
                &snapshot(&from, all),
                ("before", "after"),
                "the source",
            );
            let (a, b) = (
                fs::metadata(&from).expect("from"),
                fs::metadata(&to).expect("to"),
            );
            assert_eq!(
                (a.mode(), a.uid(), a.gid(), a.mtime(), a.mtime_nsec()),
                (b.mode(), b.uid(), b.gid(), b.mtime(), b.mtime_nsec()),
                "{kind:?}: the root directory itself"
            );
            let big = fs::metadata(to.join("usr/lib/libbig.so")).expect("big");
            assert_eq!(
                (big.mtime(), big.mtime_nsec()),
                (1_000_000_000, 123_456_789),
                "{kind:?}"
            );
            let mut value = [0u8; 8];
            for (name, want) in [("user.kod", &b"kept"[..]), ("trusted.kod", b"also")] {
                let n = rustix::fs::getxattr(to.join("usr/lib/empty"), name, &mut value)
                    .unwrap_or_else(|e| panic!("{kind:?}: {name} not copied: {e}"));
                assert_eq!(&value[..n], want, "{kind:?}: {name}");
            }
            // Never a hard link into the source: no inode is in both.
            let shared: Vec<_> = inodes(&from).intersection(&inodes(&to)).copied().collect();
            assert!(shared.is_empty(), "{kind:?}: inodes in both: {shared:?}");
            assert_eq!(big.nlink(), 2, "{kind:?}: the copy's own hard link");
            let reflinked = shares_extents(&to.join("usr/lib/libbig.so"));
            assert_eq!(reflinked, kind == Kind::Xfs, "{kind:?}: shared extents");
        }
    }
}
