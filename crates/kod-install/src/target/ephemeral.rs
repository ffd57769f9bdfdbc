//! An overlay on a root that is never merged into it (`kod shell`): the
//! lower root is only read, however the transaction ends. Its upper layer
//! lives in a transaction directory under a work directory the caller
//! names (a tmpfs such as `/run` for a shell on `/`: overlayfs refuses an
//! upper layer inside its lower one); on success it is either kept, at a
//! path the caller gives, to serve later as a read-only layer, or thrown
//! away with everything else.

use std::fs;
use std::path::{Path, PathBuf};

use kod_report::Report;

use super::overlay::Layers;
use super::{Committed, Strategy, remove_work};
use crate::chroot::Chroot;
use crate::error::{Error, io_error};

/// An overlay whose changes never reach its lower root.
#[derive(Debug)]
pub(crate) struct Ephemeral {
    layers: Layers,
    keep: Option<PathBuf>,
}

/// The prefix of the transaction directories of ephemeral overlays in a
/// work directory; the rest is the pid and a number.
pub(crate) const EPHEMERAL_PREFIX: &str = ".kod-ephemeral-";

impl Ephemeral {
    /// Mounts an overlay on `lower` with its upper layer in a new
    /// directory of `work_dir`; `keep`: where the upper layer goes at
    /// commit (absent; on `work_dir`'s file system).
    pub(crate) fn prepare(
        lower: &Path,
        work_dir: &Path,
        keep: Option<&Path>,
        report: &Report,
    ) -> Result<Ephemeral, Error> {
        if let Some(k) = keep
            && fs::symlink_metadata(k).is_ok()
        {
            return Err(Error::Target {
                root: k.to_path_buf(),
                reason: "exists already; give a path for the kept layer that does not exist".into(),
            });
        }
        fs::create_dir_all(work_dir).map_err(io_error("create", work_dir))?;
        let txn = work_dir.join(format!(
            "{EPHEMERAL_PREFIX}{}-{}",
            std::process::id(),
            crate::leftovers::unique()
        ));
        let layers = Layers::mount(lower, txn, report)?;
        Ok(Ephemeral {
            layers,
            keep: keep.map(Path::to_path_buf),
        })
    }
}

impl Ephemeral {
    /// The transaction directory (upper and work directories).
    pub(crate) fn work(&self) -> &Path {
        &self.layers.txn
    }
}

impl Strategy for Ephemeral {
    fn view(&self) -> &Path {
        self.layers.view()
    }

    fn chroot(&self, shown: &Path, debug: bool, report: &Report) -> Result<Chroot, Error> {
        self.layers.chroot(shown, debug, report)
    }

    fn fresh(&self) -> bool {
        false
    }

    /// Unmounts the overlay; keeps the upper layer where asked, else
    /// throws it away. The lower root is untouched either way.
    fn commit(self: Box<Self>, report: &Report) -> Result<Committed, Error> {
        let Ephemeral { mut layers, keep } = *self;
        layers.unmount();
        if let Some(keep) = &keep {
            let upper = layers.upper();
            report
                .verbose(|| format!("+ keep the layer {} as {}", upper.display(), keep.display()));
            if let Err(e) = fs::rename(&upper, keep) {
                remove_work(&layers.txn, report);
                return Err(io_error(
                    format!("keep the layer {} as", upper.display()),
                    keep,
                )(e));
            }
        }
        remove_work(&layers.txn, report);
        Ok(Committed::default())
    }

    fn discard(self: Box<Self>, report: &Report) {
        self.layers.discard(report);
    }
}
