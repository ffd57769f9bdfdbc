//! One lock per target root: an exclusive `flock` on `.NAME.kod-lock` next
//! to the root (so a root that does not exist yet can be locked too). The
//! file holds the holder's pid, for the message a second kod prints.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;
use rustix::io::Errno;

use crate::error::{Error, io_error};

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

/// The lock file of `root` (an absolute, normalised path with a parent).
pub(crate) fn lock_path(root: &Path) -> Option<PathBuf> {
    let parent = root.parent()?;
    let name = root.file_name()?;
    Some(parent.join(format!(".{}.kod-lock", name.to_string_lossy())))
}

/// Takes the lock of `root`. When another process holds it: waits (saying
/// so on stderr) if `wait`, else fails with [`Error::Locked`].
pub(crate) fn lock(root: &Path, wait: bool) -> Result<Lock, Error> {
    let path = lock_path(root).ok_or_else(|| Error::Target {
        root: root.to_path_buf(),
        reason: "kod-install does not run transactions on the running system's /; \
                 give the root of another system"
            .into(),
    })?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_error("open the lock file", &path))?;
    match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(Errno::WOULDBLOCK) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "another process".to_string(),
                pid => format!("pid {pid}"),
            };
            if !wait {
                return Err(Error::Locked {
                    root: root.to_path_buf(),
                    lock: path,
                    holder,
                });
            }
            eprintln!(
                "kod: waiting for {holder}, which is working on {} (lock {})",
                root.display(),
                path.display()
            );
            rustix::fs::flock(&file, FlockOperation::LockExclusive)
                .map_err(|e| io_error("lock", &path)(e.into()))?;
        }
        Err(e) => return Err(io_error("lock", &path)(e.into())),
    }
    let pid = std::process::id().to_string();
    let r = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(pid.as_bytes()));
    r.map_err(io_error("write the lock file", &path))?;
    Ok(Lock { _file: file, path })
}
