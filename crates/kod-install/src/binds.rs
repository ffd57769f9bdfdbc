//! Directories bound into a target while kod works on it
//! ([`crate::Options::binds`]): a machine's shared store, so that what is
//! written under `/home`, `/var/log`, ... lands where the booted system
//! sees it.

use std::path::{Path, PathBuf};

use kod_report::Report;
use kod_root::Root;

use crate::error::{Error, io_error};

/// Bind mounts on a root, unmounted (last first) by [`Bound::unmount`] or
/// when dropped.
#[derive(Debug, Default)]
pub struct Bound {
    points: Vec<PathBuf>,
}

impl Bound {
    /// Mounts each (directory outside, path in the root) of `binds` on its
    /// path in `root`, making the mount point when missing. A `debug` run
    /// only shows them.
    pub fn mount(
        root: &Root,
        binds: &[(PathBuf, PathBuf)],
        report: &Report,
        debug: bool,
    ) -> Result<Bound, Error> {
        let mut bound = Bound::default();
        for (from, at) in binds {
            let rel = at.strip_prefix("/").unwrap_or(at);
            let point = root.path().join(rel);
            report.verbose(|| format!("+ mount --bind {} {}", from.display(), point.display()));
            if debug {
                continue;
            }
            root.create_dir_all(rel, 0o755)
                .and_then(|()| rustix::mount::mount_bind(from, &point).map_err(Into::into))
                .map_err(io_error("bind-mount into the target", &point))?;
            bound.points.push(point);
        }
        Ok(bound)
    }

    /// Unmounts them, last first.
    pub fn unmount(&mut self) -> Result<(), Error> {
        while let Some(point) = self.points.pop() {
            unmount(&point)?;
        }
        Ok(())
    }
}

fn unmount(point: &Path) -> Result<(), Error> {
    rustix::mount::unmount(point, rustix::mount::UnmountFlags::DETACH)
        .map_err(|e| io_error("unmount", point)(e.into()))
}

impl Drop for Bound {
    fn drop(&mut self) {
        let _ = self.unmount();
    }
}
