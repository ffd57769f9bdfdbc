//! File operations inside a target root, confined to it: every path is
//! resolved with `openat2(RESOLVE_IN_ROOT)` from the root's descriptor, so
//! a package that ships `/var/lib/dpkg` as a symlink to `/etc` of the host
//! makes kod write into the target's `/etc`, never the host's (the same
//! view a program chrooted into the target has).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, ResolveFlags};
use rustix::io::Errno;

/// A target root, opened once.
#[derive(Debug)]
pub(crate) struct RootFs {
    fd: OwnedFd,
    path: PathBuf,
}

fn split(rel: &str) -> (&str, &str) {
    let rel = rel.trim_start_matches('/');
    match rel.rfind('/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => ("", rel),
    }
}

/// The suffix of files being written, renamed into place when complete.
pub(crate) const NEW_SUFFIX: &str = ".kod-new";

impl RootFs {
    /// Opens the root directory `path`.
    pub(crate) fn open(path: &Path) -> io::Result<RootFs> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(RootFs {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The root's path (as opened).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The host path of `rel`, for messages.
    pub(crate) fn show(&self, rel: &str) -> PathBuf {
        self.path.join(rel.trim_start_matches('/'))
    }

    fn resolve(&self, rel: &str, flags: OFlags, mode: Mode) -> Result<OwnedFd, Errno> {
        let rel = rel.trim_start_matches('/');
        let p = if rel.is_empty() { "." } else { rel };
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(
                &self.fd,
                p,
                flags | OFlags::CLOEXEC,
                mode,
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            ) {
                Err(Errno::AGAIN) if tries < 64 => tries += 1,
                r => return r,
            }
        }
    }

    /// Opens the directory `rel`.
    pub(crate) fn dir(&self, rel: &str) -> io::Result<OwnedFd> {
        Ok(self.resolve(rel, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?)
    }

    /// Reads the file `rel`; `None` when it does not exist.
    pub(crate) fn read(&self, rel: &str) -> io::Result<Option<Vec<u8>>> {
        match self.resolve(rel, OFlags::RDONLY, Mode::empty()) {
            Ok(fd) => {
                let mut v = Vec::new();
                File::from(fd).read_to_end(&mut v)?;
                Ok(Some(v))
            }
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `rel` exists (without following a final symlink).
    pub(crate) fn exists(&self, rel: &str) -> io::Result<bool> {
        Ok(self.lstat(rel)?.is_some())
    }

    /// `lstat` of `rel` (the parent resolved in the root); `None` if absent.
    pub(crate) fn lstat(&self, rel: &str) -> io::Result<Option<rustix::fs::Stat>> {
        let (parent, name) = split(rel);
        if name.is_empty() {
            return Ok(Some(rustix::fs::fstat(&self.fd)?));
        }
        let dir = match self.dir(parent) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(Errno::NOTDIR.raw_os_error()) => return Ok(None),
            Err(e) => return Err(e),
        };
        match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// `stat` of `rel`, following symlinks inside the root; `None` if
    /// absent or dangling.
    pub(crate) fn stat(&self, rel: &str) -> io::Result<Option<rustix::fs::Stat>> {
        match self.resolve(rel, OFlags::PATH, Mode::empty()) {
            Ok(fd) => Ok(Some(rustix::fs::fstat(&fd)?)),
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates directory `rel` and its missing parents with `mode`.
    pub(crate) fn create_dir_all(&self, rel: &str, mode: u32) -> io::Result<()> {
        let rel = rel.trim_matches('/');
        if rel.is_empty() {
            return Ok(());
        }
        let mut end = 0;
        for comp in rel.split('/') {
            let prefix_end = end + comp.len();
            let (parent, name) = split(&rel[..prefix_end]);
            let dir = self.dir(parent)?;
            match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(mode)) {
                Ok(()) => {
                    rustix::fs::chmodat(&dir, name, Mode::from_raw_mode(mode), AtFlags::empty())?;
                }
                Err(Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            end = prefix_end + 1;
        }
        Ok(())
    }

    /// Writes `data` to `rel` with `mode`: a new file renamed over the old
    /// one (atomic; not synced).
    pub(crate) fn write(&self, rel: &str, data: &[u8], mode: u32) -> io::Result<()> {
        let (parent, name) = split(rel);
        let dir = self.dir(parent)?;
        let tmp = format!("{name}{NEW_SUFFIX}");
        match rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        let fd = rustix::fs::openat(
            &dir,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )?;
        let mut f = File::from(fd);
        let r = f
            .write_all(data)
            .and_then(|()| Ok(rustix::fs::fchmod(&f, Mode::from_raw_mode(mode))?));
        drop(f);
        if let Err(e) = r.and_then(|()| Ok(rustix::fs::renameat(&dir, tmp.as_str(), &dir, name)?)) {
            let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
            return Err(e);
        }
        Ok(())
    }

    /// Creates the symlink `rel -> target` unless something exists there.
    pub(crate) fn symlink(&self, target: &str, rel: &str) -> io::Result<()> {
        let (parent, name) = split(rel);
        let dir = self.dir(parent)?;
        match rustix::fs::symlinkat(target, &dir, name) {
            Ok(()) | Err(Errno::EXIST) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates a device node (`char` or block) or fails if one exists.
    pub(crate) fn mknod(
        &self,
        rel: &str,
        char: bool,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        let (parent, name) = split(rel);
        let dir = self.dir(parent)?;
        let ft = if char {
            rustix::fs::FileType::CharacterDevice
        } else {
            rustix::fs::FileType::BlockDevice
        };
        match rustix::fs::mknodat(
            &dir,
            name,
            ft,
            Mode::from_raw_mode(mode),
            rustix::fs::makedev(major, minor),
        ) {
            Ok(()) => Ok(rustix::fs::chmodat(
                &dir,
                name,
                Mode::from_raw_mode(mode),
                AtFlags::empty(),
            )?),
            Err(Errno::EXIST) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the file (or symlink) `rel`; absent is fine.
    pub(crate) fn remove_file(&self, rel: &str) -> io::Result<()> {
        let (parent, name) = split(rel);
        let dir = match self.dir(parent) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        match rustix::fs::unlinkat(&dir, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Renames `from` to `to` (both in the same directory tree of the
    /// root); fails if `to` exists when `no_replace`.
    pub(crate) fn rename(&self, from: &str, to: &str, no_replace: bool) -> io::Result<()> {
        let (fp, fname) = split(from);
        let (tp, tname) = split(to);
        let fdir = self.dir(fp)?;
        let tdir = self.dir(tp)?;
        let flags = if no_replace {
            RenameFlags::NOREPLACE
        } else {
            RenameFlags::empty()
        };
        Ok(rustix::fs::renameat_with(
            &fdir, fname, &tdir, tname, flags,
        )?)
    }
}
