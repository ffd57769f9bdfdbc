//! A target root, opened once, and every file operation beneath it.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, ResolveFlags, Stat};
use rustix::io::Errno;

use crate::atomic::AtomicFile;
use crate::paths::{dot, inside, split};

/// A target root (a new system, an environment, a staging directory),
/// opened once by descriptor.
///
/// Every path given to it is relative to the root (a leading `/` is
/// ignored) and resolved from the root's descriptor with `openat2`:
/// opened with [`Root::open`], `..`, absolute symlinks and symlinks
/// climbing out are resolved inside the root (`RESOLVE_IN_ROOT`: what a
/// process chrooted there sees); opened with [`Root::open_beneath`], a
/// path that would leave the root fails with `EXDEV` (`RESOLVE_BENEATH`).
/// Magic links (`/proc/self/...`) are never followed, and `EAGAIN` (a
/// rename racing with a `..` lookup) is retried. The last component of a
/// path is created, replaced or removed with `*at` calls that do not
/// follow it.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
    resolve: ResolveFlags,
}

fn invalid(rel: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} names no file beneath the root", rel.display()),
    )
}

impl Root {
    /// Opens the root directory `path`; paths beneath it are resolved
    /// inside it.
    pub fn open(path: &Path) -> io::Result<Root> {
        Root::open_with(path, ResolveFlags::IN_ROOT)
    }

    /// Opens the root directory `path`; a path beneath it that would
    /// leave it (through an absolute symlink, or `..` past the top) fails
    /// with `EXDEV` instead of being resolved inside.
    pub fn open_beneath(path: &Path) -> io::Result<Root> {
        Root::open_with(path, ResolveFlags::BENEATH)
    }

    fn open_with(path: &Path, resolve: ResolveFlags) -> io::Result<Root> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
            resolve: resolve | ResolveFlags::NO_MAGICLINKS,
        })
    }

    /// The root's path (as opened).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The host path of `rel` as written (symlinks not resolved), for
    /// messages.
    pub fn show(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(inside(rel.as_ref()))
    }

    /// Opens `rel`, resolved beneath the root, with `flags` (`O_CLOEXEC`
    /// is added).
    pub fn open_at(&self, rel: impl AsRef<Path>, flags: OFlags) -> Result<OwnedFd, Errno> {
        self.resolve(rel.as_ref(), flags, Mode::empty())
    }

    fn resolve(&self, rel: &Path, flags: OFlags, mode: Mode) -> Result<OwnedFd, Errno> {
        let p = dot(rel);
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(&self.fd, p, flags | OFlags::CLOEXEC, mode, self.resolve) {
                // A concurrent rename raced with a `..` lookup: retry.
                Err(Errno::AGAIN) if tries < 64 => tries += 1,
                r => return r,
            }
        }
    }

    /// Opens the directory `rel` as an `O_PATH` descriptor, for `*at`
    /// calls.
    pub fn dir(&self, rel: impl AsRef<Path>) -> io::Result<OwnedFd> {
        Ok(self.resolve(
            rel.as_ref(),
            OFlags::PATH | OFlags::DIRECTORY,
            Mode::empty(),
        )?)
    }

    /// The parent directory of `rel`, and its last component.
    fn parent<'a>(&self, rel: &'a Path) -> io::Result<(OwnedFd, &'a OsStr)> {
        let (parent, name) = split(rel).ok_or_else(|| invalid(rel))?;
        Ok((self.dir(parent)?, name))
    }

    /// Reads the file `rel` (symlinks followed inside the root); `None`
    /// when it does not exist.
    pub fn read(&self, rel: impl AsRef<Path>) -> io::Result<Option<Vec<u8>>> {
        match self.resolve(rel.as_ref(), OFlags::RDONLY, Mode::empty()) {
            Ok(fd) => {
                let mut v = Vec::new();
                File::from(fd).read_to_end(&mut v)?;
                Ok(Some(v))
            }
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `rel` exists (a final symlink counts, dangling or not).
    pub fn exists(&self, rel: impl AsRef<Path>) -> io::Result<bool> {
        Ok(self.lstat(rel)?.is_some())
    }

    /// `lstat` of `rel` (the parent resolved in the root, the last
    /// component not followed); `None` when absent.
    pub fn lstat(&self, rel: impl AsRef<Path>) -> io::Result<Option<Stat>> {
        let rel = rel.as_ref();
        let Some((parent, name)) = split(rel) else {
            if inside(rel).as_os_str().is_empty() {
                return Ok(Some(rustix::fs::fstat(&self.fd)?));
            }
            return Err(invalid(rel));
        };
        let dir = match self.resolve(parent, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()) {
            Ok(d) => d,
            Err(Errno::NOENT | Errno::NOTDIR) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// `stat` of `rel`, symlinks followed inside the root; `None` when
    /// absent or dangling.
    pub fn stat(&self, rel: impl AsRef<Path>) -> io::Result<Option<Stat>> {
        match self.resolve(rel.as_ref(), OFlags::PATH, Mode::empty()) {
            Ok(fd) => Ok(Some(rustix::fs::fstat(&fd)?)),
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The host path `rel` resolves to (symlinks followed inside the
    /// root), for handing to programs that take paths.
    pub fn host_path(&self, rel: impl AsRef<Path>) -> io::Result<PathBuf> {
        let fd = self.resolve(rel.as_ref(), OFlags::PATH, Mode::empty())?;
        let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        let p = rustix::fs::readlink(link.as_str(), Vec::new())?;
        Ok(PathBuf::from(OsStr::from_bytes(p.as_bytes())))
    }

    /// Opens the directory `rel`, creating the missing components with
    /// `mode` (under the umask) and telling `created` the path of each one
    /// made, in order; returns its `O_PATH` descriptor.
    pub fn make_dirs_with(
        &self,
        rel: impl AsRef<Path>,
        mode: u32,
        created: &mut dyn FnMut(&Path),
    ) -> Result<OwnedFd, Errno> {
        let rel = inside(rel.as_ref());
        let open = |p: &Path| self.resolve(p, OFlags::PATH | OFlags::DIRECTORY, Mode::empty());
        match open(rel) {
            Err(Errno::NOENT) => {}
            r => return r,
        }
        let mut done = PathBuf::new();
        let mut fd = open(Path::new(""))?;
        for c in rel.components() {
            done.push(c);
            fd = match open(&done) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(&fd, c.as_os_str(), Mode::from_raw_mode(mode)) {
                        Ok(()) => created(&done),
                        Err(Errno::EXIST) => {}
                        Err(e) => return Err(e),
                    }
                    open(&done)?
                }
                Err(e) => return Err(e),
            };
        }
        Ok(fd)
    }

    /// Opens the directory `rel`, creating the missing components (mode
    /// 0755 under the umask); returns its `O_PATH` descriptor.
    pub fn make_dirs(&self, rel: impl AsRef<Path>) -> io::Result<OwnedFd> {
        Ok(self.make_dirs_with(rel, 0o755, &mut |_| {})?)
    }

    /// Creates the directory `rel` and its missing parents, each with
    /// exactly `mode` (the umask does not apply; existing ones are left
    /// as they are).
    pub fn create_dir_all(&self, rel: impl AsRef<Path>, mode: u32) -> io::Result<()> {
        let mut made = Vec::new();
        self.make_dirs_with(rel, mode, &mut |p| made.push(p.to_path_buf()))?;
        for p in made {
            let (dir, name) = self.parent(&p)?;
            rustix::fs::chmodat(&dir, name, Mode::from_raw_mode(mode), AtFlags::empty())?;
        }
        Ok(())
    }

    /// Replaces the file `rel` with `data`, mode exactly `mode`: written
    /// under a temporary name beside it ([`crate::temp_name`]) and renamed
    /// over it, so a symlink there is replaced, never followed (atomic;
    /// not synced). Its directory must exist.
    pub fn write(&self, rel: impl AsRef<Path>, data: &[u8], mode: u32) -> io::Result<()> {
        let (dir, name) = self.parent(rel.as_ref())?;
        let mut f = AtomicFile::create_at(dir, name, mode)?;
        f.write_all(data)?;
        f.set_mode(mode)?;
        f.commit()
    }

    /// Creates the symlink `rel -> target` unless something exists there.
    pub fn symlink(&self, target: impl AsRef<Path>, rel: impl AsRef<Path>) -> io::Result<()> {
        let (dir, name) = self.parent(rel.as_ref())?;
        match rustix::fs::symlinkat(target.as_ref(), &dir, name) {
            Ok(()) | Err(Errno::EXIST) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates a device node (`char`, else block) with exactly `mode`,
    /// unless something exists there.
    pub fn mknod(
        &self,
        rel: impl AsRef<Path>,
        char: bool,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        let (dir, name) = self.parent(rel.as_ref())?;
        let ft = if char {
            FileType::CharacterDevice
        } else {
            FileType::BlockDevice
        };
        let mode = Mode::from_raw_mode(mode);
        match rustix::fs::mknodat(&dir, name, ft, mode, rustix::fs::makedev(major, minor)) {
            Ok(()) => Ok(rustix::fs::chmodat(&dir, name, mode, AtFlags::empty())?),
            Err(Errno::EXIST) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the file (or symlink) `rel`; absent is fine.
    pub fn remove_file(&self, rel: impl AsRef<Path>) -> io::Result<()> {
        let (dir, name) = match self.parent(rel.as_ref()) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        match rustix::fs::unlinkat(&dir, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes `rel` and everything below it, never following symlinks nor
    /// entering another file system; absent is fine.
    pub fn remove_tree(&self, rel: impl AsRef<Path>) -> io::Result<()> {
        let (dir, name) = match self.parent(rel.as_ref()) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let name = name.to_str().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "a file name is not UTF-8")
        })?;
        crate::tree::remove_at(&dir, name)
    }

    /// Renames `from` to `to` (both beneath the root, on one file
    /// system); fails if `to` exists when `no_replace`.
    pub fn rename(
        &self,
        from: impl AsRef<Path>,
        to: impl AsRef<Path>,
        no_replace: bool,
    ) -> io::Result<()> {
        let (fdir, fname) = self.parent(from.as_ref())?;
        let (tdir, tname) = self.parent(to.as_ref())?;
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

impl AsFd for Root {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
