//! A new root built beside its final place: in `PARENT/.NAME.kod-tmp-PID`
//! (the same file system), renamed onto the root at commit (an empty
//! directory is replaced). When the root is an empty mount point, the
//! staging directory is inside it and its entries are moved in at commit,
//! after a marker.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kod_report::Report;

use super::{COMMIT_MARKER, Committed, Strategy, remove_work, sibling, sync};
use crate::chroot::Chroot;
use crate::error::{Error, io_error};
use crate::tree;

/// A new root being built.
#[derive(Debug)]
pub(crate) struct NewRoot {
    root: PathBuf,
    staging: PathBuf,
    /// The staging directory is inside the root (an empty mount point).
    inside: bool,
}

impl NewRoot {
    /// Prepares the staging directory of the new root `root` (absent, or
    /// an empty directory); the lock is held and leftovers are cleaned.
    pub(crate) fn prepare(root: &Path) -> Result<NewRoot, Error> {
        super::not_running_root(root, "give the directory of a new root")?;
        let inside = match fs::symlink_metadata(root) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(io_error("stat", root)(e)),
            Ok(m) if !m.is_dir() => {
                return Err(Error::Target {
                    root: root.to_path_buf(),
                    reason: "exists and is not a directory; remove it or choose another path"
                        .into(),
                });
            }
            Ok(m) => {
                let mut entries = fs::read_dir(root).map_err(io_error("read", root))?;
                if entries.next().is_some() {
                    return Err(Error::Target {
                        root: root.to_path_buf(),
                        reason: "exists and is not empty; a new root needs an empty or missing \
                                 directory (remove it, or install into it as an existing root)"
                            .into(),
                    });
                }
                let parent = root.parent().unwrap_or(Path::new("/"));
                let pm = fs::metadata(parent).map_err(io_error("stat", parent))?;
                // An empty mount point: build inside it, on its file system.
                m.dev() != pm.dev()
            }
        };
        let staging = if inside {
            root.join(format!(".kod-tmp-{}", std::process::id()))
        } else {
            sibling(root, "tmp")
        };
        fs::create_dir(&staging).map_err(io_error("create", &staging))?;
        fs::set_permissions(&staging, fs::Permissions::from_mode(0o755))
            .map_err(io_error("chmod", &staging))?;
        Ok(NewRoot {
            root: root.to_path_buf(),
            staging,
            inside,
        })
    }
}

impl Strategy for NewRoot {
    fn view(&self) -> &Path {
        &self.staging
    }

    fn chroot(&self, shown: &Path, debug: bool, report: &Report) -> Result<Chroot, Error> {
        super::chroot_in(&self.staging, shown, debug, report)
    }

    fn fresh(&self) -> bool {
        true
    }

    fn commit(self: Box<Self>, report: &Report) -> Result<Committed, Error> {
        let NewRoot {
            root,
            staging,
            inside,
        } = *self;
        sync(&staging)?;
        if inside {
            fs::write(staging.join(COMMIT_MARKER), b"")
                .map_err(io_error("write the commit marker in", &staging))?;
            let applied = tree::apply(&staging, &root, None).map_err(|e| Error::Commit {
                root: root.clone(),
                pending: staging.clone(),
                source: Box::new(io_error("move the new root into", &root)(e)),
            })?;
            kod_root::tree::remove_tree(&staging).map_err(io_error("remove", &staging))?;
            return Ok(Committed {
                moved: applied.moved,
                removed: 0,
            });
        }
        report.verbose(|| format!("+ rename {} {}", staging.display(), root.display()));
        if let Err(e) = fs::rename(&staging, &root) {
            remove_work(&staging, report);
            return Err(io_error(format!("rename {} to", staging.display()), &root)(
                e,
            ));
        }
        Ok(Committed::default())
    }

    fn discard(self: Box<Self>, report: &Report) {
        remove_work(&self.staging, report);
    }
}
