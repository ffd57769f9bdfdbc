//! dpkg's frontend lock: an existing root's `var/lib/dpkg/lock-frontend`,
//! an `fcntl` write lock as apt and dpkg take it, held for a whole
//! transaction so that neither runs in the root meanwhile.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use kod_report::Report;

use crate::lock::{Busy, take_exclusive};
use crate::{Error, io_error};

/// dpkg's frontend lock file, relative to a root.
pub(crate) const DPKG_FRONTEND_LOCK: &str = "var/lib/dpkg/lock-frontend";

/// Takes the dpkg frontend lock of the existing root `root`. When another
/// program holds it: waits (saying so) if `wait`, else fails with
/// [`Error::DpkgLocked`]. Commands kod runs in the root are told with
/// `DPKG_FRONTEND_LOCKED`.
pub(crate) fn frontend_lock(root: &Path, wait: bool, report: &Report) -> Result<File, Error> {
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
        report,
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
