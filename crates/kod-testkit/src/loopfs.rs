//! XFS and ext4 file systems in loop-mounted image files, for root-tier
//! tests of what kod does off Btrfs (the directory backend, reflink and
//! plain copies), beside [`crate::btrfs`].
//!
//! [`LoopFs::new`] makes a sparse image in a unique directory under
//! `/var/tmp` (not `/tmp`, which may be a small tmpfs), formats it with
//! the file system's own `mkfs` and mounts it with `mount -o loop` (the
//! loop device clears itself when its mount goes). Dropping the fixture,
//! also while a test panics, unmounts it (lazily when a plain unmount
//! fails) and removes the image. [`shares_extents`] tells a reflinked
//! file from a copied one.

use crate::run_ok as run;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A file system kind [`LoopFs`] can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// XFS (`mkfs.xfs`, reflinks on: files can share extents).
    Xfs,
    /// ext4 (`mkfs.ext4`: no reflinks, so copies are plain copies).
    Ext4,
}

impl Kind {
    /// The name `mount` and `/proc/mounts` give it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Xfs => "xfs",
            Kind::Ext4 => "ext4",
        }
    }

    fn mkfs(self, image: &Path) -> Command {
        let mut cmd = match self {
            Kind::Xfs => {
                let mut c = Command::new("mkfs.xfs");
                // Reflinks are the default since xfsprogs 5.1; asked for
                // so that an older default cannot turn the test vacuous.
                c.args(["-q", "-m", "reflink=1"]);
                c
            }
            Kind::Ext4 => {
                let mut c = Command::new("mkfs.ext4");
                c.args(["-q", "-F"]);
                c
            }
        };
        cmd.arg(image);
        cmd
    }
}

/// A mounted XFS or ext4 image; its root directory is at
/// [`path`](LoopFs::path).
#[derive(Debug)]
pub struct LoopFs {
    kind: Kind,
    /// Holds the image and the mount point; removed after the unmount.
    _dir: tempfile::TempDir,
    mnt: PathBuf,
}

impl LoopFs {
    /// A file system of `kind` and `bytes` (sparse; XFS wants at least
    /// 300 MiB), mounted.
    pub fn new(kind: Kind, bytes: u64) -> LoopFs {
        let dir = tempfile::Builder::new()
            .prefix(&format!("kod-{}-", kind.name()))
            .tempdir_in("/var/tmp")
            .expect("a directory under /var/tmp");
        let image = dir.path().join(format!("{}.img", kind.name()));
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(bytes))
            .expect("the image file");
        run(&mut kind.mkfs(&image));
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).expect("the mount point");
        run(Command::new("mount")
            .args(["-t", kind.name(), "-o", "loop"])
            .arg(&image)
            .arg(&mnt));
        LoopFs {
            kind,
            _dir: dir,
            mnt,
        }
    }

    /// Its kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.mnt
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let plain = Command::new("umount").arg(&self.mnt).status();
        if !plain.is_ok_and(|s| s.success()) {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }
}

/// Whether the regular file `path` shares a data extent with another file
/// (a reflink copy, or the file it was copied from): `filefrag -v`'s
/// `shared` flag (FIEMAP_EXTENT_SHARED). An empty file has no extents, so
/// never shares one.
pub fn shares_extents(path: &Path) -> bool {
    run(Command::new("filefrag").arg("-v").arg(path))
        .lines()
        .any(|l| {
            l.split_whitespace()
                .last()
                .is_some_and(|f| f.split(',').any(|x| x == "shared"))
        })
}
