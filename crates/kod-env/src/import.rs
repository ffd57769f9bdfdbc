//! `kod env import`: adopt a root directory in place, or extract a root
//! tarball (.tar, .tar.gz, .tar.xz, .tar.zst, recognised by content) into a
//! new environment, confined to it.
//!
//! Extraction rules: entry paths with a `..` component are refused; every
//! parent is resolved inside the new root (`RESOLVE_IN_ROOT`), so a symlink
//! the archive made earlier (`lib -> /usr/lib`) leads where it would for a
//! process chrooted there, never out; the entry itself is created with
//! `*at` calls that do not follow it; hard links may only name paths inside
//! the root. Owners, modes (setuid included), mtimes and file capabilities
//! (`SCHILY.xattr.*`) are restored when running as root (or as root of the
//! caller's user namespace); device nodes only where the kernel allows
//! (the environment gets /dev from the host at run time anyway). The
//! writing is kod-unpack's ([`kod_unpack::unpack_tar`]), what it left out
//! is counted in [`Extracted`].

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use kod_unpack::{TarOptions, TarUnpacked, unpack_tar};

use crate::error::EnvError;

/// What an extraction did, beyond writing files.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// Entries written.
    pub entries: u64,
    /// Device nodes the kernel refused (not root).
    pub devices_skipped: u64,
    /// Entries whose owner could not be set (outside the mapped ids).
    pub owners_skipped: u64,
    /// Extended attributes that could not be set.
    pub xattrs_skipped: u64,
    /// Entries of kinds kod does not extract (sparse files, ...).
    pub other_skipped: u64,
}

impl Extracted {
    /// Human notes about what was skipped.
    pub fn notes(&self) -> Vec<String> {
        let mut n = Vec::new();
        if self.devices_skipped > 0 {
            n.push(format!(
                "{} device nodes were not created (not permitted; /dev comes from the host when \
                 the environment runs)",
                self.devices_skipped
            ));
        }
        if self.owners_skipped > 0 {
            n.push(format!(
                "{} entries keep your ownership (their owners are outside the ids you may use)",
                self.owners_skipped
            ));
        }
        if self.xattrs_skipped > 0 {
            n.push(format!(
                "{} extended attributes (file capabilities) could not be set",
                self.xattrs_skipped
            ));
        }
        if self.other_skipped > 0 {
            n.push(format!(
                "{} entries of unsupported kinds were skipped",
                self.other_skipped
            ));
        }
        n
    }
}

impl From<TarUnpacked> for Extracted {
    fn from(t: TarUnpacked) -> Extracted {
        Extracted {
            entries: t.entries,
            devices_skipped: t.devices_skipped,
            owners_skipped: t.owners_skipped,
            xattrs_skipped: t.xattrs_skipped,
            other_skipped: t.other_skipped,
        }
    }
}

/// Opens a tarball, undoing gzip, xz or zstd compression (recognised by
/// its first bytes, [`kod_root::decompress`]).
pub fn open_tarball(path: &Path) -> Result<Box<dyn Read>, EnvError> {
    let f = File::open(path).map_err(EnvError::io("open", path))?;
    let r = kod_root::decompress(BufReader::with_capacity(1 << 20, f))
        .map_err(EnvError::io("read", path))?;
    Ok(Box::new(r))
}

/// Extracts the tarball `archive` into the directory `root` (which must
/// exist, normally empty), through kod-unpack's writer
/// ([`kod_unpack::unpack_tar`]: the rules of this module's documentation);
/// owners are set when running as root (of the host or of a user
/// namespace).
pub fn extract_tarball(archive: &Path, root: &Path) -> Result<Extracted, EnvError> {
    let reader = open_tarball(archive)?;
    let options = TarOptions {
        owners: rustix::process::geteuid().is_root(),
    };
    unpack_tar(reader, root, &options)
        .map(Extracted::from)
        .map_err(|e| match e.path {
            Some(entry) => EnvError::Archive {
                archive: archive.to_path_buf(),
                entry,
                why: e.reason.to_string(),
            },
            None => EnvError::Io {
                op: "extract",
                path: archive.to_path_buf(),
                source: std::io::Error::other(e.reason.to_string()),
            },
        })
}

/// Where the import reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An existing root directory, adopted in place.
    Dir(PathBuf),
    /// A root tarball, extracted.
    Tarball(PathBuf),
}

impl Source {
    /// A directory or a file.
    pub fn of(path: &Path) -> Result<Source, EnvError> {
        let meta = std::fs::metadata(path).map_err(EnvError::io("read", path))?;
        let abs = std::fs::canonicalize(path).map_err(EnvError::io("resolve", path))?;
        Ok(if meta.is_dir() {
            Source::Dir(abs)
        } else {
            Source::Tarball(abs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(path: &str, kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_mtime(1_600_000_000);
        // Bypass the tar crate's own `..` check to build hostile archives.
        let name = &mut h.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        h
    }

    fn archive(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data, link) in entries {
            let mut h = header(path, *kind, data.len() as u64, 0o755);
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
                h.set_cksum();
            }
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn extraction_stays_in_the_root_through_symlinks() {
        let outside = tempfile::tempdir().unwrap();
        let t = tempfile::tempdir().unwrap();
        let tarball = t.path().join("root.tar");
        // The root has its own copy of the outside directory's path, so an
        // absolute symlink to it resolves there, inside the root.
        let mut own: Vec<String> = Vec::new();
        let mut prefix = String::from(".");
        for c in outside.path().strip_prefix("/").unwrap().components() {
            prefix = format!("{prefix}/{}", c.as_os_str().to_str().unwrap());
            own.push(format!("{prefix}/"));
        }
        let mut entries: Vec<(&str, tar::EntryType, &[u8], Option<&str>)> = own
            .iter()
            .map(|d| (d.as_str(), tar::EntryType::Directory, &b""[..], None))
            .collect();
        entries.extend([
            ("./usr/", tar::EntryType::Directory, &b""[..], None),
            ("./usr/bin/", tar::EntryType::Directory, b"", None),
            ("./bin", tar::EntryType::Symlink, b"", Some("usr/bin")),
            ("./bin/tool", tar::EntryType::Regular, b"#!/bin/sh\n", None),
            (
                "./escape",
                tar::EntryType::Symlink,
                b"",
                Some(outside.path().to_str().unwrap()),
            ),
            ("./escape/pwned", tar::EntryType::Regular, b"x", None),
            ("./link", tar::EntryType::Link, b"", Some("usr/bin/tool")),
        ]);
        std::fs::write(&tarball, archive(&entries)).unwrap();
        let root = t.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let done = extract_tarball(&tarball, &root).unwrap();
        assert_eq!(done.entries, 7 + own.len() as u64);
        assert_eq!(
            std::fs::read_to_string(root.join("usr/bin/tool")).unwrap(),
            "#!/bin/sh\n"
        );
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        let inner = root
            .join(outside.path().strip_prefix("/").unwrap())
            .join("pwned");
        assert_eq!(std::fs::read_to_string(inner).unwrap(), "x");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(root.join("link")).unwrap().ino(),
            std::fs::metadata(root.join("usr/bin/tool")).unwrap().ino()
        );
    }

    #[test]
    fn dotdot_entries_are_refused() {
        let t = tempfile::tempdir().unwrap();
        for bad in ["../evil", "./a/../../evil"] {
            let tarball = t.path().join("bad.tar");
            std::fs::write(
                &tarball,
                archive(&[(bad, tar::EntryType::Regular, b"x", None)]),
            )
            .unwrap();
            let root = tempfile::tempdir_in(t.path()).unwrap();
            let e = extract_tarball(&tarball, root.path()).unwrap_err();
            assert!(e.to_string().contains("`..`"), "{e}");
        }
        assert!(!t.path().join("evil").exists());
        let tarball = t.path().join("badlink.tar");
        std::fs::write(
            &tarball,
            archive(&[("./l", tar::EntryType::Link, b"", Some("../../etc/passwd"))]),
        )
        .unwrap();
        let root = tempfile::tempdir_in(t.path()).unwrap();
        assert!(extract_tarball(&tarball, root.path()).is_err());
    }

    #[test]
    fn compressed_tarballs_are_recognised_by_content() {
        use std::io::Write;
        let t = tempfile::tempdir().unwrap();
        let plain = archive(&[
            ("./etc/", tar::EntryType::Directory, b"", None),
            (
                "./etc/os-release",
                tar::EntryType::Regular,
                b"ID=test\n",
                None,
            ),
        ]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&plain).unwrap();
        let zst = zstd::stream::encode_all(&plain[..], 1).unwrap();
        for (name, bytes) in [
            ("a.tar", plain.clone()),
            ("a.tgz", gz.finish().unwrap()),
            ("a.tar.xz", xz.finish().unwrap()),
            ("a.tar.zst", zst),
        ] {
            let p = t.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            let root = tempfile::tempdir_in(t.path()).unwrap();
            extract_tarball(&p, root.path()).unwrap();
            assert_eq!(
                std::fs::read_to_string(root.path().join("etc/os-release")).unwrap(),
                "ID=test\n",
                "{name}"
            );
        }
    }
}
