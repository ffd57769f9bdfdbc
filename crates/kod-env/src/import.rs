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
//! (the environment gets /dev from the host at run time anyway).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;

use crate::error::EnvError;
use crate::rootdir::{RootDir, relative, split};

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

/// Opens a tarball, undoing gzip, xz or zstd compression (by magic).
pub fn open_tarball(path: &Path) -> Result<Box<dyn Read>, EnvError> {
    let f = File::open(path).map_err(EnvError::io("open", path))?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let head = r.fill_buf().map_err(EnvError::io("read", path))?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(liblzma::read::XzDecoder::new_multi_decoder(r))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(r).map_err(EnvError::io("read", path))?)
    } else {
        Box::new(r)
    })
}

struct Dir {
    rel: PathBuf,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
}

/// Extracts the tarball `archive` into the directory `root` (which must
/// exist, normally empty).
pub fn extract_tarball(archive: &Path, root: &Path) -> Result<Extracted, EnvError> {
    let reader = open_tarball(archive)?;
    let r = RootDir::open(root).map_err(EnvError::io("open", root))?;
    let chown = rustix::process::geteuid().is_root();
    let mut tar = tar::Archive::new(reader);
    let mut done = Extracted::default();
    let mut dirs: Vec<Dir> = Vec::new();
    let bad = |entry: &[u8], why: String| EnvError::Archive {
        archive: archive.to_path_buf(),
        entry: String::from_utf8_lossy(entry).into_owned(),
        why,
    };
    let entries = tar.entries().map_err(EnvError::io("read", archive))?;
    for entry in entries {
        let mut entry = entry.map_err(EnvError::io("read", archive))?;
        let raw_path = entry.path_bytes().into_owned();
        let Some(rel) = relative(Path::new(OsStr::from_bytes(&raw_path))) else {
            return Err(bad(&raw_path, "its path has a `..` component".into()));
        };
        let h = entry.header();
        let kind = h.entry_type();
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        let owner = (
            h.uid()
                .ok()
                .and_then(|u| u32::try_from(u).ok())
                .unwrap_or(0),
            h.gid()
                .ok()
                .and_then(|g| u32::try_from(g).ok())
                .unwrap_or(0),
        );
        let mtime = h
            .mtime()
            .ok()
            .and_then(|m| i64::try_from(m).ok())
            .unwrap_or(0);
        let device = (
            h.device_major().ok().flatten().unwrap_or(0),
            h.device_minor().ok().flatten().unwrap_or(0),
        );
        if rel.as_os_str().is_empty() {
            // The root itself: its mode and times are applied last.
            if kind.is_dir() {
                dirs.push(Dir {
                    rel,
                    mode,
                    uid: owner.0,
                    gid: owner.1,
                    mtime,
                });
            }
            continue;
        }
        let (parent, name) = split(&rel).ok_or_else(|| bad(&raw_path, "no file name".into()))?;
        let dir = r
            .make_dirs(parent)
            .map_err(|e| bad(&raw_path, format!("cannot open its directory: {e}")))?;
        let fail = |e: Errno, what: &str| bad(&raw_path, format!("cannot {what}: {e}"));
        let xattrs = xattrs(&mut entry);
        let set_owner = |target: Target<'_>, done: &mut Extracted| {
            if chown && let Err(e) = target.chown(owner) {
                if e == Errno::INVAL || e == Errno::PERM {
                    done.owners_skipped += 1;
                } else {
                    return Err(fail(e, "set the owner"));
                }
            }
            Ok(())
        };
        if kind.is_dir() {
            match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o700)) {
                Ok(()) => {}
                Err(Errno::EXIST) => {
                    let st = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| fail(e, "inspect what is there"))?;
                    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                        rustix::fs::unlinkat(&dir, name, AtFlags::empty())
                            .map_err(|e| fail(e, "replace what is there"))?;
                        rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o700))
                            .map_err(|e| fail(e, "create the directory"))?;
                    }
                }
                Err(e) => return Err(fail(e, "create the directory")),
            }
            dirs.push(Dir {
                rel,
                mode,
                uid: owner.0,
                gid: owner.1,
                mtime,
            });
            done.entries += 1;
            continue;
        }
        remove_existing(&dir, name).map_err(|e| fail(e, "replace what is there"))?;
        if kind.is_file() || kind.is_contiguous() {
            let fd = rustix::fs::openat(
                &dir,
                name,
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .map_err(|e| fail(e, "create the file"))?;
            let mut f = File::from(fd);
            io::copy(&mut entry, &mut f)
                .map_err(|e| bad(&raw_path, format!("cannot write: {e}")))?;
            set_owner(Target::Fd(&f), &mut done)?;
            for (k, v) in &xattrs {
                if rustix::fs::fsetxattr(&f, k.as_str(), v, XattrFlags::empty()).is_err() {
                    done.xattrs_skipped += 1;
                }
            }
            rustix::fs::fchmod(&f, Mode::from_raw_mode(mode))
                .map_err(|e| fail(e, "set the mode"))?;
            let _ = rustix::fs::futimens(&f, &times(mtime));
        } else if kind.is_symlink() {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| bad(&raw_path, "a symlink without a target".into()))?
                .into_owned();
            rustix::fs::symlinkat(OsStr::from_bytes(&target), &dir, name)
                .map_err(|e| fail(e, "create the symlink"))?;
            set_owner(Target::At(&dir, name), &mut done)?;
            let _ = rustix::fs::utimensat(&dir, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW);
        } else if kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| bad(&raw_path, "a hard link without a target".into()))?
                .into_owned();
            let t = relative(Path::new(OsStr::from_bytes(&target)))
                .ok_or_else(|| bad(&raw_path, "its link target has a `..` component".into()))?;
            let (tparent, tname) =
                split(&t).ok_or_else(|| bad(&raw_path, "its link target is the root".into()))?;
            let tdir = r
                .dir(tparent)
                .map_err(|e| fail(e, "find the hard link's target"))?;
            rustix::fs::linkat(&tdir, tname, &dir, name, AtFlags::empty())
                .map_err(|e| fail(e, "create the hard link"))?;
        } else if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            let (ft, dev) = if kind.is_fifo() {
                (FileType::Fifo, 0)
            } else {
                let (major, minor) = device;
                let ft = if kind.is_block_special() {
                    FileType::BlockDevice
                } else {
                    FileType::CharacterDevice
                };
                (ft, rustix::fs::makedev(major, minor))
            };
            match rustix::fs::mknodat(&dir, name, ft, Mode::from_raw_mode(mode), dev) {
                Ok(()) => {
                    set_owner(Target::At(&dir, name), &mut done)?;
                    let _ = rustix::fs::chmodat(
                        &dir,
                        name,
                        Mode::from_raw_mode(mode),
                        AtFlags::empty(),
                    );
                }
                Err(Errno::PERM) if !kind.is_fifo() => {
                    done.devices_skipped += 1;
                    continue;
                }
                Err(e) => return Err(fail(e, "create the node")),
            }
        } else {
            done.other_skipped += 1;
            continue;
        }
        done.entries += 1;
    }
    // Directories last, deepest first, so their modes (0555 ones too) and
    // times are what the archive says.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.rel.components().count()));
    for d in dirs {
        let fd = r
            .open_at(
                &d.rel,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
            )
            .map_err(|e| bad(d.rel.as_os_str().as_bytes(), format!("cannot reopen: {e}")))?;
        if chown && let Err(e) = Target::Fd(&fd).chown((d.uid, d.gid)) {
            if e == Errno::INVAL || e == Errno::PERM {
                done.owners_skipped += 1;
            } else {
                return Err(bad(
                    d.rel.as_os_str().as_bytes(),
                    format!("cannot set the owner: {e}"),
                ));
            }
        }
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(d.mode)).map_err(|e| {
            bad(
                d.rel.as_os_str().as_bytes(),
                format!("cannot set the mode: {e}"),
            )
        })?;
        let _ = rustix::fs::futimens(&fd, &times(d.mtime));
    }
    Ok(done)
}

enum Target<'a> {
    Fd(&'a dyn std::os::fd::AsFd),
    At(&'a OwnedFd, &'a OsStr),
}

impl Target<'_> {
    fn chown(&self, (uid, gid): (u32, u32)) -> Result<(), Errno> {
        let (u, g) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
        match self {
            Target::Fd(fd) => rustix::fs::fchown(fd.as_fd(), u, g),
            Target::At(dir, name) => {
                rustix::fs::chownat(dir, *name, u, g, AtFlags::SYMLINK_NOFOLLOW)
            }
        }
    }
}

fn remove_existing(dir: &OwnedFd, name: &OsStr) -> Result<(), Errno> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
        }
        Ok(_) => rustix::fs::unlinkat(dir, name, AtFlags::empty()),
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

fn times(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// The `SCHILY.xattr.*` records of a PAX header.
fn xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(Some(exts)) = entry.pax_extensions() {
        let mut seen = HashMap::new();
        for e in exts.flatten() {
            if let (Ok(k), v) = (e.key(), e.value_bytes())
                && let Some(name) = k.strip_prefix("SCHILY.xattr.")
            {
                seen.insert(name.to_string(), v.to_vec());
            }
        }
        out.extend(seen);
    }
    out
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
