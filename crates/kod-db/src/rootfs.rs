//! File operations inside a target root, confined to it: every path is
//! resolved with `openat2(RESOLVE_IN_ROOT)` from the root's descriptor, so
//! a package that ships `/var/lib/dpkg` as a symlink to `/etc` of the host
//! makes kod write into the target's `/etc`, never the host's (the same
//! view a program chrooted into the target has).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, ResolveFlags};
use rustix::io::Errno;

/// A target root, opened once.
#[derive(Debug)]
pub struct RootFs {
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
pub const NEW_SUFFIX: &str = ".kod-new";

impl RootFs {
    /// Opens the root directory `path`.
    pub fn open(path: &Path) -> io::Result<RootFs> {
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
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The host path of `rel`, for messages.
    pub fn show(&self, rel: &str) -> PathBuf {
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
    pub fn dir(&self, rel: &str) -> io::Result<OwnedFd> {
        Ok(self.resolve(rel, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?)
    }

    /// Reads the file `rel`; `None` when it does not exist.
    pub fn read(&self, rel: &str) -> io::Result<Option<Vec<u8>>> {
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
    pub fn exists(&self, rel: &str) -> io::Result<bool> {
        Ok(self.lstat(rel)?.is_some())
    }

    /// `lstat` of `rel` (the parent resolved in the root); `None` if absent.
    pub fn lstat(&self, rel: &str) -> io::Result<Option<rustix::fs::Stat>> {
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
    pub fn stat(&self, rel: &str) -> io::Result<Option<rustix::fs::Stat>> {
        match self.resolve(rel, OFlags::PATH, Mode::empty()) {
            Ok(fd) => Ok(Some(rustix::fs::fstat(&fd)?)),
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates directory `rel` and its missing parents with `mode`.
    pub fn create_dir_all(&self, rel: &str, mode: u32) -> io::Result<()> {
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
    pub fn write(&self, rel: &str, data: &[u8], mode: u32) -> io::Result<()> {
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
    pub fn symlink(&self, target: &str, rel: &str) -> io::Result<()> {
        let (parent, name) = split(rel);
        let dir = self.dir(parent)?;
        match rustix::fs::symlinkat(target, &dir, name) {
            Ok(()) | Err(Errno::EXIST) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates a device node (`char` or block) or fails if one exists.
    pub fn mknod(
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
    pub fn remove_file(&self, rel: &str) -> io::Result<()> {
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
    pub fn rename(&self, from: &str, to: &str, no_replace: bool) -> io::Result<()> {
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

    /// Removes `rel` and everything below it, never following symlinks;
    /// absent is fine.
    pub fn remove_tree(&self, rel: &str) -> io::Result<()> {
        let (parent, name) = split(rel);
        let dir = match self.dir(parent) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        remove_at(&dir, name)
    }
}

/// Opens directory `name` of `dir` without following a symlink there.
pub fn open_dir_at(dir: &OwnedFd, name: &str) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens the directory `path`.
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// The names in `dir` (sorted, without `.` and `..`); non-UTF-8 names
/// are an error.
pub fn names(dir: &OwnedFd) -> io::Result<Vec<String>> {
    let d = rustix::fs::Dir::read_from(dir)?;
    let mut out = Vec::new();
    for e in d {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        out.push(
            String::from_utf8(n.to_vec()).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidData, "a file name is not UTF-8")
            })?,
        );
    }
    out.sort();
    Ok(out)
}

/// `lstat` of `name` in `dir`; `None` when absent.
pub fn lstat_at(dir: &OwnedFd, name: &str) -> io::Result<Option<rustix::fs::Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The file type of a stat.
pub fn kind(st: &rustix::fs::Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// Removes `name` in `dir`, a directory tree or anything else, never
/// following symlinks. Absent is fine.
pub fn remove_at(dir: &OwnedFd, name: &str) -> io::Result<()> {
    let Some(st) = lstat_at(dir, name)? else {
        return Ok(());
    };
    if kind(&st) == FileType::Directory {
        let sub = open_dir_at(dir, name)?;
        for n in names(&sub)? {
            remove_at(&sub, &n)?;
        }
        match rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    } else {
        match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Removes the tree at `path` without following symlinks. Absent is fine.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to remove /",
        ));
    };
    let dir = open_dir(parent)?;
    remove_at(&dir, &name.to_string_lossy())
}
