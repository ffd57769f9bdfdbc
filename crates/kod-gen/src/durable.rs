//! Writes that survive a crash: the rest of kod syncs once per
//! transaction (kod-root's atomic writes are never fsynced), but the
//! commit of a generation is the point of that sync, so its files are
//! fsynced one by one, in order, with their directories.
//!
//! [`replace`] is kod-root's atomic scheme (its temporary names, so
//! `kod_root::remove_stale_temporaries` finds what a killed kod left)
//! with the two fsyncs it leaves out: the temporary before the rename,
//! the directory after.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::error::{Result, io};

/// fsyncs the directory `dir` (its entries: renames, new names).
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io("sync the directory", dir))
}

/// Writes `data` to the new file `path` (truncating one there) and fsyncs
/// it; the caller syncs the directory.
pub(crate) fn write_synced(path: &Path, data: &[u8]) -> Result<()> {
    let mut f = kod_root::create_file(path).map_err(io("create", path))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(io("write", path))
}

/// Replaces `path` with `data`: a temporary beside it, fsynced, renamed
/// over it, the directory fsynced. A reader sees the old file or the new
/// one; after a crash, one of the two is there.
pub(crate) fn replace(path: &Path, data: &[u8]) -> Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io("write", path)(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no file name",
        )));
    };
    let temp = dir.join(kod_root::temp_name(name));
    let written = write_synced(&temp, data)
        .and_then(|()| std::fs::rename(&temp, path).map_err(io("rename a temporary over", path)));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written?;
    sync_dir(dir)
}
