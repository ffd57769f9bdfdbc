//! One lock per target root: an exclusive `flock` on `.NAME.kod-lock` next
//! to the root (so a root that does not exist yet can be locked too). The
//! file holds the holder's pid, for the message a second kod prints.
//!
//! The running system's own `/` has no parent to keep the file in: its
//! lock is `/run/kod/root.lock` (tmpfs: nothing outlives a boot). Every
//! kod that changes `/` in place, or snapshots it, takes that lock;
//! throwaway overlays on it (`kod shell`) take none, since they never
//! write it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use kod_db::lock::{Busy, take_exclusive};
use kod_report::Report;

use crate::error::{Error, io_error};

/// Where the running system's `/` is locked.
pub const RUNNING_ROOT_LOCK: &str = "/run/kod/root.lock";

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub(crate) struct Lock {
    _file: File,
    path: PathBuf,
}

impl Lock {
    /// The lock file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// The lock file of `root` (an absolute, normalised path).
pub(crate) fn lock_path(root: &Path) -> PathBuf {
    match (root.parent(), root.file_name()) {
        (Some(parent), Some(name)) => parent.join(format!(".{}.kod-lock", name.to_string_lossy())),
        _ => PathBuf::from(RUNNING_ROOT_LOCK),
    }
}

/// Takes the lock of `root`. When another process holds it: waits (saying
/// so through `report`) if `wait`, else fails with [`Error::Locked`].
pub(crate) fn lock(root: &Path, wait: bool, report: &Report) -> Result<Lock, Error> {
    let path = lock_path(root);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_error("create", dir))?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_error("open the lock file", &path))?;
    take_exclusive(
        &path,
        wait,
        report,
        |op| rustix::fs::flock(&file, op),
        || {
            let mut holder = String::new();
            let _ = (&file).read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "another process".to_string(),
                pid => format!("pid {pid}"),
            };
            Busy {
                waiting: format!(
                    "waiting for {holder}, which is working on {} (lock {})",
                    root.display(),
                    path.display()
                ),
                error: Error::Locked {
                    root: root.to_path_buf(),
                    lock: path.clone(),
                    holder,
                },
            }
        },
    )?;
    let pid = std::process::id().to_string();
    let r = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(pid.as_bytes()));
    r.map_err(io_error("write the lock file", &path))?;
    Ok(Lock { _file: file, path })
}
