//! A Btrfs file system in a loop-mounted image file, for root-tier tests.
//!
//! [`Btrfs::new`] makes a sparse image in a unique directory under
//! `/var/tmp` (not `/tmp`, which may be a small tmpfs), formats it with
//! `mkfs.btrfs` and mounts its top level with `mount -o loop` (the loop
//! device clears itself when the last mount of it goes). Dropping the
//! fixture, also while a test panics, unmounts every mount it made (a
//! lazy unmount when a plain one fails) and removes the image.

use crate::run_ok as run;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// A mounted Btrfs image; its top level (subvolid 5) is at [`path`](Btrfs::path).
#[derive(Debug)]
pub struct Btrfs {
    dir: tempfile::TempDir,
    image: PathBuf,
    mnt: PathBuf,
    /// Further mounts of the image (subvolumes), unmounted first.
    extra: Mutex<Vec<PathBuf>>,
}

fn unmount(at: &Path) {
    let plain = Command::new("umount").arg(at).status();
    if !plain.is_ok_and(|s| s.success()) {
        let _ = Command::new("umount").arg("-l").arg(at).status();
    }
}

impl Btrfs {
    /// A 1 GiB (sparse) Btrfs, mounted.
    pub fn new() -> Btrfs {
        Btrfs::with_size(1 << 30)
    }

    /// A Btrfs of `bytes` (sparse), mounted.
    pub fn with_size(bytes: u64) -> Btrfs {
        let dir = tempfile::Builder::new()
            .prefix("kod-btrfs-")
            .tempdir_in("/var/tmp")
            .expect("a directory under /var/tmp");
        let image = dir.path().join("btrfs.img");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(bytes))
            .expect("the image file");
        run(Command::new("mkfs.btrfs").arg("-q").arg(&image));
        let mnt = dir.path().join("top");
        std::fs::create_dir(&mnt).expect("the mount point");
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mnt));
        Btrfs {
            dir,
            image,
            mnt,
            extra: Mutex::new(Vec::new()),
        }
    }

    /// Where the top level is mounted.
    pub fn path(&self) -> &Path {
        &self.mnt
    }

    /// The image file.
    pub fn image(&self) -> &Path {
        &self.image
    }

    /// The loop device the image is attached to (`/dev/loopN`).
    pub fn device(&self) -> PathBuf {
        let out = run(Command::new("losetup")
            .args(["-n", "-O", "NAME", "-j"])
            .arg(&self.image));
        let dev = out.lines().next().unwrap_or("").trim();
        assert!(
            !dev.is_empty(),
            "no loop device for {}",
            self.image.display()
        );
        PathBuf::from(dev)
    }

    /// A new subvolume `name` (relative to the top level), by `btrfs
    /// subvolume create`.
    pub fn subvolume(&self, name: &str) -> PathBuf {
        let p = self.mnt.join(name);
        run(Command::new("btrfs")
            .args(["-q", "subvolume", "create"])
            .arg(&p));
        p
    }

    /// Mounts the subvolume `subvol` (a path from the top level) of the
    /// image at a new directory, unmounted when the fixture is dropped.
    pub fn mount_subvolume(&self, subvol: &str) -> PathBuf {
        let mut extra = self.extra.lock().unwrap_or_else(|e| e.into_inner());
        let at = self.dir.path().join(format!("subvol-{}", extra.len()));
        std::fs::create_dir(&at).expect("a mount point");
        run(Command::new("mount")
            .arg("-o")
            .arg(format!("subvol={subvol}"))
            .arg(self.device())
            .arg(&at));
        extra.push(at.clone());
        at
    }

    /// `btrfs subvolume list` of the top level: one path a line, sorted.
    pub fn subvolumes(&self) -> Vec<String> {
        let out = run(Command::new("btrfs")
            .args(["subvolume", "list"])
            .arg(&self.mnt));
        let mut paths: Vec<String> = out
            .lines()
            .filter_map(|l| l.split(" path ").nth(1).map(str::to_owned))
            .collect();
        paths.sort();
        paths
    }
}

impl Default for Btrfs {
    fn default() -> Btrfs {
        Btrfs::new()
    }
}

impl Drop for Btrfs {
    fn drop(&mut self) {
        let extra = std::mem::take(self.extra.get_mut().unwrap_or_else(|e| e.into_inner()));
        for at in extra.iter().rev() {
            unmount(at);
        }
        unmount(&self.mnt);
    }
}
