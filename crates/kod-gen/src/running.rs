//! Which generations of a top level the running system is: the booted
//! one and the current one.
//!
//! A generation's root holds its number in `/.generation`, and a kod
//! machine mounts its top level at `/kod`. So the running system (its
//! root at `/`, or another root for tests) is on a top level exactly when
//! its `/kod` is that top level (same file system, its top directory),
//! and then:
//!
//! - the **current** generation is the one `/` is now: `/.generation`;
//! - the **booted** generation is the one the system started from: the
//!   kernel command line's `rootflags=subvol=generations/N/rootfs` when
//!   the root is `/` and the line names one, else `/.generation` too.
//!
//! With a top level that is not the running system's (a machine's disk
//! mounted elsewhere), there is neither.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result, io};
use crate::top::Top;

/// The running system's generations on a top level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Running {
    /// The generation the running system started from.
    pub booted: Option<u64>,
    /// The generation `/` is now.
    pub current: Option<u64>,
}

impl Running {
    /// No running system on the top level (a machine's disk mounted for
    /// maintenance, a test).
    pub fn none() -> Running {
        Running::default()
    }

    /// The running system rooted at `root` (`/` on a live machine), if
    /// its `root/kod` is `top`: the booted and current generations read
    /// from it; [`Running::none`] when `root/kod` is another file system
    /// or not there. A `root/.generation` that does not hold a number is
    /// an error (kod cannot tell what not to delete).
    pub fn detect(top: &Top, root: &Path) -> Result<Running> {
        let kod = root.join("kod");
        let (Ok(mine), Ok(theirs)) = (fs::metadata(top.path()), fs::metadata(&kod)) else {
            return Ok(Running::none());
        };
        if (mine.dev(), mine.ino()) != (theirs.dev(), theirs.ino()) {
            return Ok(Running::none());
        }
        let path = root.join(".generation");
        let current = match fs::read_to_string(&path) {
            Ok(s) => Some(s.trim().parse::<u64>().map_err(|_| Error::Malformed {
                path: path.clone(),
                problem: format!("expected a generation number, found {:?}", s.trim()),
            })?),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(io("read", path)(e)),
        };
        let booted = if root == Path::new("/") {
            fs::read_to_string("/proc/cmdline")
                .ok()
                .and_then(|l| booted_from_cmdline(&l))
                .or(current)
        } else {
            current
        };
        Ok(Running { booted, current })
    }

    /// Whether `n` is the booted or the current generation.
    pub fn is_running(&self, n: u64) -> bool {
        self.booted == Some(n) || self.current == Some(n)
    }
}

/// The generation a kernel command line booted:
/// `rootflags=…subvol=generations/N/rootfs…` (a leading `/` allowed).
pub(crate) fn booted_from_cmdline(line: &str) -> Option<u64> {
    line.split_whitespace()
        .filter_map(|w| w.strip_prefix("rootflags="))
        .flat_map(|flags| flags.split(','))
        .filter_map(|o| o.strip_prefix("subvol="))
        .filter_map(|s| {
            s.trim_start_matches('/')
                .strip_prefix("generations/")?
                .strip_suffix("/rootfs")
        })
        .filter_map(crate::top::number)
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_booted_generation_is_read_from_the_kernel_command_line() {
        let line =
            "BOOT_IMAGE=/vmlinuz root=UUID=x rw rootflags=subvol=generations/7/rootfs quiet\n";
        assert_eq!(booted_from_cmdline(line), Some(7));
        assert_eq!(
            booted_from_cmdline("rootflags=compress=zstd,subvol=/generations/12/rootfs"),
            Some(12)
        );
        for not in [
            "root=/dev/sda1 rw",
            "rootflags=subvol=@",
            "rootflags=subvol=generations/07/rootfs",
            "rootflags=subvol=generations/x/rootfs",
            "subvol=generations/3/rootfs",
        ] {
            assert_eq!(booted_from_cmdline(not), None, "{not}");
        }
    }

    #[test]
    fn running_means_booted_or_current() {
        assert_eq!(Running::none(), Running::default());
        assert!(!Running::none().is_running(3));
        let r = Running {
            booted: Some(2),
            current: Some(3),
        };
        assert!(r.is_running(2) && r.is_running(3) && !r.is_running(4));
    }
}
