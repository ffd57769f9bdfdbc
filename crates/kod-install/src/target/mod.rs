//! Where a transaction does its work and how that work becomes the target:
//! one [`Strategy`] per kind of target, each a small implementation, so
//! that the transaction core is written once.
//!
//! - [`new_root::NewRoot`]: a new root built beside its final place and
//!   renamed into it (`kod bootstrap`).
//! - [`overlay::OnRoot`]: an overlay on an existing root, its upper layer
//!   moved onto the root on success (`kod pkg install`).
//! - [`snapshot::Snapshot`]: a copy-on-write snapshot of an existing root
//!   (a Btrfs subvolume snapshot, else a reflink copy, else a plain copy;
//!   never hard links) that becomes a new root (generations).
//! - [`ephemeral::Ephemeral`]: an overlay on a root that is never merged
//!   into it; its upper layer can be kept for reuse (`kod shell`).

pub(crate) mod ephemeral;
pub(crate) mod new_root;
pub(crate) mod overlay;
pub(crate) mod snapshot;

use std::fs;
use std::path::{Path, PathBuf};

use kod_report::Report;

use crate::chroot::Chroot;
use crate::error::{Error, io_error};

/// What committing did.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Committed {
    /// Entries moved onto an existing root.
    pub(crate) moved: u64,
    /// Entries deleted from an existing root.
    pub(crate) removed: u64,
}

/// A kind of target, as the transaction core drives it.
pub(crate) trait Strategy: std::fmt::Debug + Send {
    /// The transaction's view of the target, as kod reaches it.
    fn view(&self) -> &Path;

    /// How commands reach the view (`shown`: the target as messages name
    /// it).
    fn chroot(&self, shown: &Path, debug: bool, report: &Report) -> Result<Chroot, Error>;

    /// Whether the view started empty: a new root, without a database.
    fn fresh(&self) -> bool;

    /// Makes the work the target, with one sync of its file system before
    /// the commit point.
    fn commit(self: Box<Self>, report: &Report) -> Result<Committed, Error>;

    /// Throws the work away; the target is as it was.
    fn discard(self: Box<Self>, report: &Report);
}

/// Commands chrooted into the directory `dir`, reached from kod's own
/// mount namespace (a new root's staging directory, a snapshot).
pub(crate) fn chroot_in(
    dir: &Path,
    shown: &Path,
    debug: bool,
    report: &Report,
) -> Result<Chroot, Error> {
    let userns = kod_sandbox::in_user_namespace();
    Ok(Chroot::new(shown, dir, None, userns, debug, report)?)
}

/// The absolute, symlink-free path of `root` (whose parent must exist);
/// `/` stays `/`.
pub(crate) fn normalize(root: &Path) -> Result<PathBuf, Error> {
    let abs = std::path::absolute(root).map_err(io_error("resolve", root))?;
    let (Some(parent), Some(name)) = (abs.parent(), abs.file_name()) else {
        return Ok(PathBuf::from("/"));
    };
    let parent =
        fs::canonicalize(parent).map_err(io_error("find the parent directory of", &abs))?;
    Ok(parent.join(name))
}

/// `PARENT/.NAME.kod-WHAT-PID`: where work for `root` is done beside it
/// (on its file system), named so that a later run finds it.
pub(crate) fn sibling(root: &Path, what: &str) -> PathBuf {
    let name = root
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let parent = root.parent().unwrap_or(Path::new("/"));
    parent.join(format!(".{name}.kod-{what}-{}", std::process::id()))
}

/// Refuses the running system's `/` for a strategy that cannot work on it.
pub(crate) fn not_running_root(root: &Path, instead: &str) -> Result<(), Error> {
    if root.parent().is_none() {
        return Err(Error::Target {
            root: root.to_path_buf(),
            reason: format!("the running system's / cannot be changed this way; {instead}"),
        });
    }
    Ok(())
}

/// One `syncfs` of the file system holding `path`.
pub(crate) fn sync(path: &Path) -> Result<(), Error> {
    let f = fs::File::open(path).map_err(io_error("open", path))?;
    rustix::fs::syncfs(&f).map_err(|e| io_error("sync the file system of", path)(e.into()))
}

/// Removes a transaction's directory, saying so when it cannot.
pub(crate) fn remove_work(dir: &Path, report: &Report) {
    if !dir.as_os_str().is_empty()
        && let Err(e) = kod_root::tree::remove_tree(dir)
    {
        report.warning(&format!(
            "cannot remove {} ({e}); the next kod run on this root removes it",
            dir.display()
        ));
    }
}

/// Mount points strictly below `root` in kod's mount namespace.
pub(crate) fn mounts_below(root: &Path) -> Vec<PathBuf> {
    kod_root::tree::mounts_at_or_below(root)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p != root)
        .collect()
}

/// The marker that says a move onto the root has begun: a later run
/// finishes it instead of throwing it away.
pub(crate) const COMMIT_MARKER: &str = ".kod-commit";
