//! Unpacking a whole tree from a plain tar stream (a root tarball) through
//! the writer's tree rules: what `tar -x` run as root in a chroot makes,
//! confined to the root.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use kod_root::Root;

use crate::deb::{Fields, tar_entry};
use crate::error::Reason;
use crate::writer::{Counts, Writer};
use crate::{Conffiles, UnpackOptions};

/// How [`unpack_tar`] unpacks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TarOptions {
    /// Set every entry's owner from the archive (as root, or as root of a
    /// user namespace). Owners the kernel refuses (`EPERM`, or `EINVAL`
    /// for ids outside the namespace's map) are counted in
    /// [`TarUnpacked::owners_skipped`]. When false, everything belongs to
    /// the unpacking user.
    pub owners: bool,
}

/// What [`unpack_tar`] wrote, and what it left out.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TarUnpacked {
    /// Entries written (the root's own entry, `./`, not counted).
    pub entries: u64,
    /// Device nodes the kernel did not permit (not root).
    pub devices_skipped: u64,
    /// Entries whose owner could not be set (outside the mapped ids).
    pub owners_skipped: u64,
    /// Extended attributes that could not be set.
    pub xattrs_skipped: u64,
    /// Entries of kinds not unpacked (sparse files, global headers, ...).
    pub other_skipped: u64,
}

impl From<Counts> for TarUnpacked {
    fn from(c: Counts) -> TarUnpacked {
        TarUnpacked {
            entries: c.entries,
            devices_skipped: c.devices_skipped,
            owners_skipped: c.owners_skipped,
            xattrs_skipped: c.xattrs_skipped,
            other_skipped: c.other_skipped,
        }
    }
}

/// A tar stream could not be unpacked: which entry (as the archive names
/// it), and why.
#[derive(Debug, thiserror::Error)]
#[error("{}{reason}", .path.as_deref().map(|p| format!("entry `{p}`: ")).unwrap_or_default())]
pub struct TarError {
    /// The entry, when the error is about one.
    pub path: Option<String>,
    /// What went wrong.
    #[source]
    pub reason: Reason,
}

fn at(path: &[u8], reason: Reason) -> TarError {
    TarError {
        path: Some(String::from_utf8_lossy(path).into_owned()),
        reason,
    }
}

fn read_error(e: std::io::Error) -> TarError {
    TarError {
        path: None,
        reason: Reason::io("read the archive", e),
    }
}

/// Unpacks the plain tar stream `tar` (decompress it first, e.g. with
/// [`kod_root::decompress`]) into the existing directory `root`, confined
/// to it:
///
/// - entries with a `..` component are refused ([`Reason::DotDot`]);
///   every parent is resolved inside the root (`RESOLVE_IN_ROOT`), so a
///   symlink the archive made earlier (`lib -> /usr/lib`, or one to an
///   absolute path) leads where it would for a process chrooted there,
///   never out; the entry itself is made with `*at` calls that do not
///   follow it, replacing what is there (an empty directory too; an
///   existing directory is kept for a directory entry);
/// - hard links may name any path inside the root, resolved the same way;
/// - modes (setuid included), mtimes, owners ([`TarOptions::owners`]) and
///   `SCHILY.xattr.*` attributes of files (file capabilities, set after
///   the owner) are restored; directories get theirs last, deepest first,
///   the root's own too when the archive has `./`;
/// - device nodes the kernel does not permit, and entry kinds other than
///   files, directories, symlinks, hard links, device nodes and fifos, are
///   counted, not errors.
///
/// Nothing is fsynced. On error, the entry being written is removed;
/// what was written before stays.
pub fn unpack_tar(
    tar: impl Read,
    root: &Path,
    options: &TarOptions,
) -> Result<TarUnpacked, TarError> {
    let root = Root::open(root).map_err(|e| TarError {
        path: None,
        reason: Reason::io("open the target root", e),
    })?;
    let unpack = UnpackOptions {
        conffiles: Conffiles::Install,
        ..UnpackOptions::default()
    };
    let cancel = AtomicBool::new(false);
    let mut writer = Writer::tree(&root, options.owners, &unpack, &cancel);
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().map_err(read_error)? {
        let mut entry = entry.map_err(read_error)?;
        let raw = entry.path_bytes().into_owned();
        let mut e = match tar_entry(&entry, Fields::Lenient) {
            Ok(e) => e,
            Err(Reason::EntryType(_)) => {
                writer.skip_entry();
                continue;
            }
            Err(r) => return Err(at(&raw, r)),
        };
        e.xattrs = xattrs(&mut entry);
        writer.write(&e, &mut entry).map_err(|r| at(&raw, r))?;
    }
    writer.finish_tree().map_err(|(p, r)| at(&p, r))?;
    Ok(std::mem::take(&mut writer.written.counts).into())
}

/// The `SCHILY.xattr.*` records of an entry's PAX header (the last one of
/// a name wins).
fn xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let Ok(Some(exts)) = entry.pax_extensions() else {
        return Vec::new();
    };
    let mut seen = HashMap::new();
    for e in exts.flatten() {
        if let Some(name) = e.key_bytes().strip_prefix(b"SCHILY.xattr.") {
            seen.insert(name.to_vec(), e.value_bytes().to_vec());
        }
    }
    seen.into_iter().collect()
}
