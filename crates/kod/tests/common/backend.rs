//! Helpers of the directory backend's tests (`directory_backend.rs`): what
//! two generations' roots share on disk (inodes, data extents), and a
//! running system on a machine.

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use super::run_ok;

/// Every entry below `root` that is not a directory, by inode: (device,
/// inode) to its paths (relative). `find -xdev`, so a file system mounted
/// inside is left out.
fn by_inode(root: &Path) -> HashMap<(u64, u64), Vec<PathBuf>> {
    let listed = run_ok(Process::new("find").arg(root).args([
        "-xdev",
        "!",
        "-type",
        "d",
        "-printf",
        "%D %i %P\\0",
    ]));
    let mut out: HashMap<(u64, u64), Vec<PathBuf>> = HashMap::new();
    for entry in listed.split('\0').filter(|e| !e.is_empty()) {
        let mut f = entry.splitn(3, ' ');
        let mut num = || f.next().unwrap().parse::<u64>().unwrap();
        let key = (num(), num());
        out.entry(key)
            .or_default()
            .push(PathBuf::from(f.next().unwrap()));
    }
    out
}

/// The paths of `b` whose inode is also one of `a`'s: a hard link between
/// two roots, through which a write in one would change the other. Both
/// roots' files with several links are looked at, whatever their names.
pub fn inodes_in_both(a: &Path, b: &Path) -> Vec<PathBuf> {
    let (a, b) = (by_inode(a), by_inode(b));
    let mut both: Vec<PathBuf> = b
        .iter()
        .filter(|(k, _)| a.contains_key(k))
        .flat_map(|(_, paths)| paths.clone())
        .collect();
    both.sort();
    both
}

/// The regular, non-empty files below `under` (relative to the roots)
/// that are in both roots with the same content: (how many, how many of
/// them share a data extent, per `filefrag -v`).
pub fn shared_extents(a: &Path, b: &Path, under: &str) -> (usize, usize) {
    let (mut same, mut shared) = (0, 0);
    let listed = run_ok(
        Process::new("find")
            .arg(b.join(under))
            .args(["-xdev", "-type", "f", "-size", "+0", "-printf", "%P\\0"]),
    );
    for rel in listed.split('\0').filter(|e| !e.is_empty()) {
        let (pa, pb) = (a.join(under).join(rel), b.join(under).join(rel));
        let Ok(ma) = std::fs::symlink_metadata(&pa) else {
            continue;
        };
        if !ma.is_file() || std::fs::read(&pa).unwrap() != std::fs::read(&pb).unwrap() {
            continue;
        }
        same += 1;
        if kod_testkit::loopfs::shares_extents(&pb) {
            shared += 1;
        }
    }
    (same, shared)
}

/// Every non-directory below `root/under` with its kind, mode, owner,
/// mtime (to the nanosecond), size, link target and content hash, one a
/// line, keyed by path.
pub fn files(root: &Path, under: &str) -> BTreeSet<String> {
    let dir = root.join(under);
    let meta = run_ok(Process::new("find").arg(&dir).args([
        "-xdev",
        "!",
        "-type",
        "d",
        "-printf",
        "%P %y %m %U:%G %T@ %s %l\n",
    ]));
    let hashes = run_ok(Process::new("sh").arg("-c").arg(format!(
        "cd '{}' && find . -xdev -type f -print0 | xargs -0 -r sha256sum",
        dir.display()
    )));
    meta.lines()
        .chain(hashes.lines())
        .map(str::to_owned)
        .collect()
}

/// Whether `path` is on the file system mounted at `mount`, and not a
/// mount point (a subvolume, say) of its own.
pub fn on_file_system_of(path: &Path, mount: &Path) -> bool {
    std::fs::metadata(path).unwrap().dev() == std::fs::metadata(mount).unwrap().dev()
}

/// A running system's root: `.generation` says `n`, and the machine's top
/// level is bind-mounted at `kod/`, as a machine's `/` has it (unmounted
/// when dropped).
pub struct RunningRoot {
    dir: tempfile::TempDir,
}

impl RunningRoot {
    /// The running system of `top`, as generation `n`.
    pub fn new(top: &Path, n: u64) -> RunningRoot {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        std::fs::write(dir.path().join(".generation"), format!("{n}\n")).unwrap();
        let kod = dir.path().join("kod");
        std::fs::create_dir(&kod).unwrap();
        run_ok(Process::new("mount").arg("--bind").arg(top).arg(&kod));
        RunningRoot { dir }
    }

    /// Its root directory (for `KOD_RUNNING_ROOT`).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for RunningRoot {
    fn drop(&mut self) {
        let kod = self.dir.path().join("kod");
        if !Process::new("umount")
            .arg(&kod)
            .status()
            .is_ok_and(|s| s.success())
        {
            let _ = Process::new("umount").arg("-l").arg(&kod).status();
        }
    }
}
