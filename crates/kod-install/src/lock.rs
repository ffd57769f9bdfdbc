//! One lock per target root: an exclusive `flock` on `.NAME.kod-lock` next
//! to the root (so a root that does not exist yet can be locked too). The
//! file holds the holder's pid, for the message a second kod prints.
//!
//! An existing root's own dpkg frontend lock is held as well, as apt holds
//! it: apt or dpkg run inside the root at the same time would otherwise
//! change the database under kod's transaction.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
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
    take_exclusive(
        &path,
        wait,
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

/// dpkg's frontend lock file, relative to a root.
pub(crate) const DPKG_FRONTEND_LOCK: &str = "var/lib/dpkg/lock-frontend";

/// Takes the dpkg frontend lock of the existing root `root` (an `fcntl`
/// write lock, which is what apt and dpkg take), so that neither runs in
/// the root during the transaction. When another program holds it: waits
/// (saying so) if `wait`, else fails with [`Error::DpkgLocked`]. Commands
/// kod runs in the root are told with `DPKG_FRONTEND_LOCKED`.
pub(crate) fn dpkg_frontend_lock(root: &Path, wait: bool) -> Result<File, Error> {
    let path = root.join(DPKG_FRONTEND_LOCK);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o640)
        .open(&path)
        .map_err(io_error("open dpkg's frontend lock", &path))?;
    take_exclusive(
        &path,
        wait,
        |op| rustix::fs::fcntl_lock(&file, op),
        || Busy {
            waiting: format!(
                "waiting for the program using dpkg in {} (apt or dpkg; lock {})",
                root.display(),
                path.display()
            ),
            error: Error::DpkgLocked {
                root: root.to_path_buf(),
                lock: path.clone(),
            },
        },
    )?;
    Ok(file)
}

/// Who keeps a lock: the error when not waiting, what to say while waiting.
struct Busy {
    error: Error,
    waiting: String,
}

/// Takes an exclusive lock with `take` (`flock` or `fcntl`), without
/// blocking first: when another process holds it, `busy` says who, and kod
/// waits for it (saying so on stderr) if `wait`, else returns its error.
fn take_exclusive(
    path: &Path,
    wait: bool,
    take: impl Fn(FlockOperation) -> rustix::io::Result<()>,
    busy: impl FnOnce() -> Busy,
) -> Result<(), Error> {
    match take(FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(()),
        // flock says EWOULDBLOCK; fcntl EAGAIN (the same number) or EACCES.
        Err(Errno::WOULDBLOCK | Errno::ACCESS) => {
            let busy = busy();
            if !wait {
                return Err(busy.error);
            }
            eprintln!("kod: {}", busy.waiting);
            take(FlockOperation::LockExclusive).map_err(|e| io_error("lock", path)(e.into()))
        }
        Err(e) => Err(io_error("lock", path)(e.into())),
    }
}
