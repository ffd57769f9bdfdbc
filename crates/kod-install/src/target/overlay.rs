//! An existing root changed through an overlay (the root as lower layer,
//! `PARENT/.NAME.kod-txn-PID/upper` as upper layer) mounted in a private
//! mount namespace held by a helper process ([`Holder`]). The root is not
//! written before commit; a failure just deletes the directory, and
//! maintainer scripts' side effects go with it. At commit the helper exits
//! (the overlay vanishes with its namespace), a `syncfs`, a marker, then
//! the upper layer is moved onto the root ([`tree::apply`]).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kod_report::Report;

use super::{COMMIT_MARKER, Committed, Strategy, remove_work, sibling, sync};
use crate::chroot::Chroot;
use crate::error::{Error, io_error};
use crate::overlay::{Holder, Marks, USER_MARKS_FILE};
use crate::tree;

/// A transaction directory: the overlay's `upper`, `work` and `merged`
/// directories, and the helper holding its mount.
#[derive(Debug)]
pub(crate) struct Layers {
    /// The transaction directory.
    pub(crate) txn: PathBuf,
    pub(crate) holder: Option<Holder>,
    pub(crate) marks: Marks,
}

impl Layers {
    /// Creates `txn` (private to root) with the overlay's directories, a
    /// note of its marks when they are `user.overlay.*` (for a later run
    /// completing an interrupted commit), and mounts `lower` + upper.
    pub(crate) fn mount(lower: &Path, txn: PathBuf, report: &Report) -> Result<Layers, Error> {
        let marks = Marks::for_namespace(kod_sandbox::in_user_namespace());
        let prepared = (|| {
            for d in ["", "upper", "work", "merged"] {
                let p = txn.join(d);
                fs::create_dir(&p).map_err(io_error("create", &p))?;
            }
            fs::set_permissions(&txn, fs::Permissions::from_mode(0o700))
                .map_err(io_error("chmod", &txn))?;
            if marks == Marks::User {
                let note = txn.join(USER_MARKS_FILE);
                fs::write(&note, b"").map_err(io_error("write", &note))?;
            }
            Holder::start(
                lower,
                &txn.join("upper"),
                &txn.join("work"),
                &txn.join("merged"),
                marks,
                report,
            )
        })();
        match prepared {
            Ok(holder) => Ok(Layers {
                txn,
                holder: Some(holder),
                marks,
            }),
            Err(e) => {
                remove_work(&txn, report);
                Err(e)
            }
        }
    }

    fn holder(&self) -> &Holder {
        self.holder
            .as_ref()
            .expect("the overlay is mounted until commit or discard")
    }

    /// The overlay as kod reaches it.
    pub(crate) fn view(&self) -> &Path {
        self.holder().view()
    }

    /// Commands chroot into the overlay inside the helper's namespace.
    pub(crate) fn chroot(
        &self,
        shown: &Path,
        debug: bool,
        report: &Report,
    ) -> Result<Chroot, Error> {
        let h = self.holder();
        let userns = kod_sandbox::in_user_namespace();
        Ok(Chroot::new(
            shown,
            h.merged(),
            Some(h.namespace()?),
            userns,
            debug,
            report,
        )?)
    }

    /// Unmounts the overlay (its namespace ends with the helper).
    pub(crate) fn unmount(&mut self) {
        if let Some(h) = self.holder.take() {
            h.stop();
        }
    }

    /// Unmounts the overlay and deletes the transaction directory.
    pub(crate) fn discard(mut self, report: &Report) {
        self.unmount();
        remove_work(&self.txn, report);
    }

    /// The upper layer: the transaction's changes.
    pub(crate) fn upper(&self) -> PathBuf {
        self.txn.join("upper")
    }
}

/// An existing root changed through an overlay, committed onto it.
#[derive(Debug)]
pub(crate) struct OnRoot {
    root: PathBuf,
    layers: Layers,
}

impl OnRoot {
    /// Mounts the overlay on the existing root `root` (lock held).
    pub(crate) fn prepare(root: &Path, report: &Report) -> Result<OnRoot, Error> {
        super::not_running_root(
            root,
            "its file systems mounted below it would be hidden from an overlay; rebuild it \
             into a new generation instead",
        )?;
        let below = super::mounts_below(root);
        if !below.is_empty() {
            return Err(Error::Target {
                root: root.to_path_buf(),
                reason: format!(
                    "file systems are mounted below it ({}); unmount them first: a transaction \
                     works on the root's own file system only",
                    below
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        let layers = Layers::mount(root, sibling(root, "txn"), report)?;
        Ok(OnRoot {
            root: root.to_path_buf(),
            layers,
        })
    }
}

impl Strategy for OnRoot {
    fn view(&self) -> &Path {
        self.layers.view()
    }

    fn chroot(&self, shown: &Path, debug: bool, report: &Report) -> Result<Chroot, Error> {
        self.layers.chroot(shown, debug, report)
    }

    fn fresh(&self) -> bool {
        false
    }

    fn commit(self: Box<Self>, report: &Report) -> Result<Committed, Error> {
        let OnRoot { root, mut layers } = *self;
        layers.unmount();
        let upper = layers.upper();
        let txn = layers.txn.clone();
        sync(&upper)?;
        fs::write(txn.join(COMMIT_MARKER), b"")
            .map_err(io_error("write the commit marker in", &txn))?;
        report.verbose(|| {
            format!(
                "+ move the changes in {} onto {}",
                upper.display(),
                root.display()
            )
        });
        let applied =
            tree::apply(&upper, &root, Some(layers.marks)).map_err(|e| Error::Commit {
                root: root.clone(),
                pending: txn.clone(),
                source: Box::new(io_error("move the transaction's changes onto", &root)(e)),
            })?;
        let same_fs =
            fs::metadata(&upper).map(|m| m.dev()).ok() == fs::metadata(&root).map(|m| m.dev()).ok();
        if !same_fs {
            sync(&root)?;
        }
        kod_root::tree::remove_tree(&txn).map_err(io_error("remove", &txn))?;
        Ok(Committed {
            moved: applied.moved,
            removed: applied.removed,
        })
    }

    fn discard(self: Box<Self>, report: &Report) {
        self.layers.discard(report);
    }
}
