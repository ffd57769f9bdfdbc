//! What every new root gets before its database and packages: `/tmp`
//! (1777), `/dev/pts`, `/dev/shm`, and mmdebstrap's device nodes and links
//! in `/dev`. Where device nodes cannot be made (root of a user namespace:
//! mknod is not permitted there), `/dev` gets only the links and
//! directories, as a directory made by mmdebstrap's unshare mode ends up:
//! commands in the root see the host's `/dev` anyway (see the chroot).

use std::io;

use kod_report::Report;
use kod_root::Root;

use crate::error::{Error, io_error};

/// mmdebstrap's device nodes and links in `/dev` of a new root:
/// (name, mode, kind, major, minor, link target).
const DEVICES: &[(&str, u32, char, u32, u32, &str)] = &[
    ("console", 0o666, 'c', 5, 1, ""),
    ("fd", 0o777, 'l', 0, 0, "/proc/self/fd"),
    ("full", 0o666, 'c', 1, 7, ""),
    ("null", 0o666, 'c', 1, 3, ""),
    ("ptmx", 0o666, 'c', 5, 2, ""),
    ("random", 0o666, 'c', 1, 8, ""),
    ("stderr", 0o777, 'l', 0, 0, "/proc/self/fd/2"),
    ("stdin", 0o777, 'l', 0, 0, "/proc/self/fd/0"),
    ("stdout", 0o777, 'l', 0, 0, "/proc/self/fd/1"),
    ("tty", 0o666, 'c', 5, 0, ""),
    ("urandom", 0o666, 'c', 1, 9, ""),
    ("zero", 0o666, 'c', 1, 5, ""),
];

/// Sets up the skeleton in the view of a new root.
pub(crate) fn new_root(fs: &Root, report: &Report) -> Result<(), Error> {
    for d in ["dev/pts", "dev/shm"] {
        fs.create_dir_all(d, 0o755)
            .map_err(io_error("create", fs.show(d)))?;
    }
    // create_dir_all sets the mode, sticky bit included.
    fs.create_dir_all("tmp", 0o1777)
        .map_err(io_error("create", fs.show("tmp")))?;
    let mut nodes = true;
    for (name, mode, kind, major, minor, link) in DEVICES {
        let rel = format!("dev/{name}");
        let r = if *kind == 'l' {
            fs.symlink(link, &rel)
        } else if nodes {
            match fs.mknod(&rel, true, *mode, *major, *minor) {
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    nodes = false;
                    report.verbose(|| {
                        format!(
                            "+ no device nodes in {} (mknod is not permitted here: {e}); \
                             commands in the root get the host's /dev",
                            fs.show("dev").display()
                        )
                    });
                    Ok(())
                }
                r => r,
            }
        } else {
            Ok(())
        };
        r.map_err(io_error("create the device node", fs.show(&rel)))?;
    }
    Ok(())
}
