//! Reading and writing inside an environment's root without ever leaving
//! it: every path is resolved from the root's descriptor with
//! `openat2(RESOLVE_IN_ROOT)`, so `..` and absolute symlinks stay inside the
//! root as they would for a process chrooted there; the last component is
//! then created or replaced with `*at` calls that do not follow it.

use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// An open root directory.
#[derive(Debug)]
pub(crate) struct RootDir {
    fd: OwnedFd,
}

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// `path` as a relative path without `.`, empty or `..` components (a
/// leading `/` is dropped): `None` when it has a `..`.
pub(crate) fn relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// The parent (possibly empty) and last component of a relative path.
pub(crate) fn split(rel: &Path) -> Option<(&Path, &OsStr)> {
    Some((rel.parent().unwrap_or(Path::new("")), rel.file_name()?))
}

fn dot(p: &Path) -> &Path {
    if p.as_os_str().is_empty() {
        Path::new(".")
    } else {
        p
    }
}

impl RootDir {
    /// Opens `path` as a root.
    pub(crate) fn open(path: &Path) -> io::Result<RootDir> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(RootDir { fd })
    }

    /// Opens `rel` (resolved in the root) with `flags`.
    pub(crate) fn open_at(&self, rel: &Path, flags: OFlags) -> Result<OwnedFd, Errno> {
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(
                &self.fd,
                dot(rel),
                flags | OFlags::CLOEXEC,
                Mode::empty(),
                IN_ROOT,
            ) {
                // A concurrent rename raced with a `..` lookup: retry.
                Err(Errno::AGAIN) if tries < 64 => tries += 1,
                r => return r,
            }
        }
    }

    /// Opens directory `rel` as an `O_PATH` descriptor for `*at` calls.
    pub(crate) fn dir(&self, rel: &Path) -> Result<OwnedFd, Errno> {
        self.open_at(rel, OFlags::PATH | OFlags::DIRECTORY)
    }

    /// Opens directory `rel`, creating missing components (mode 0755).
    pub(crate) fn make_dirs(&self, rel: &Path) -> Result<OwnedFd, Errno> {
        match self.dir(rel) {
            Err(Errno::NOENT) => {}
            r => return r,
        }
        let mut done = PathBuf::new();
        let mut fd = self.dir(Path::new(""))?;
        for c in rel.components() {
            done.push(c);
            fd = match self.dir(&done) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(&fd, c.as_os_str(), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e),
                    }
                    self.dir(&done)?
                }
                Err(e) => return Err(e),
            };
        }
        Ok(fd)
    }

    /// Whether `rel` exists (following symlinks inside the root).
    pub(crate) fn exists(&self, rel: &Path) -> bool {
        self.open_at(rel, OFlags::PATH).is_ok()
    }

    /// The file type and mode of `rel`, following symlinks inside the root.
    pub(crate) fn stat(&self, rel: &Path) -> Option<rustix::fs::Stat> {
        let fd = self.open_at(rel, OFlags::PATH).ok()?;
        rustix::fs::fstat(&fd).ok()
    }

    /// The whole content of file `rel`.
    pub(crate) fn read(&self, rel: &Path) -> io::Result<Vec<u8>> {
        let fd = self.open_at(rel, OFlags::RDONLY)?;
        let mut out = Vec::new();
        io::Read::read_to_end(&mut std::fs::File::from(fd), &mut out)?;
        Ok(out)
    }

    /// Replaces file `rel` with `data` (mode `mode`): written beside it and
    /// renamed over it, so a symlink there is replaced, never followed.
    pub(crate) fn write(&self, rel: &Path, data: &[u8], mode: u32) -> io::Result<()> {
        let (parent, name) = split(rel).ok_or_else(|| io::Error::from(Errno::INVAL))?;
        let dir = self.make_dirs(parent)?;
        let mut tmp = name.as_bytes().to_vec();
        tmp.extend_from_slice(b".kod-new");
        let tmp = OsStr::from_bytes(&tmp);
        match rustix::fs::unlinkat(&dir, tmp, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        let fd = rustix::fs::openat(
            &dir,
            tmp,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )?;
        let mut f = std::fs::File::from(fd);
        let written = io::Write::write_all(&mut f, data)
            .and_then(|()| rustix::fs::fchmod(&f, Mode::from_raw_mode(mode)).map_err(Into::into));
        drop(f);
        if let Err(e) = written
            .and_then(|()| rustix::fs::renameat(&dir, tmp, &dir, name).map_err(io::Error::from))
        {
            let _ = rustix::fs::unlinkat(&dir, tmp, AtFlags::empty());
            return Err(e);
        }
        Ok(())
    }

    /// The host path `rel` resolves to (symlinks followed inside the root).
    pub(crate) fn host_path(&self, rel: &Path) -> io::Result<PathBuf> {
        let fd = self.open_at(rel, OFlags::PATH)?;
        let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        let p = rustix::fs::readlink(link.as_str(), Vec::new())?;
        Ok(PathBuf::from(OsStr::from_bytes(p.as_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_drop_roots_and_refuse_dotdot() {
        assert_eq!(
            relative(Path::new("/etc/passwd")).unwrap(),
            Path::new("etc/passwd")
        );
        assert_eq!(relative(Path::new("./a/./b/")).unwrap(), Path::new("a/b"));
        assert_eq!(relative(Path::new("/")).unwrap(), Path::new(""));
        assert!(relative(Path::new("a/../b")).is_none());
    }

    #[test]
    fn writes_replace_symlinks_instead_of_following_them() {
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("victim");
        std::fs::write(&target, "keep").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::os::unix::fs::symlink(&target, root.path().join("etc/resolv.conf")).unwrap();
        // A symlinked directory climbing out resolves inside the root.
        std::os::unix::fs::symlink("../../../..", root.path().join("up")).unwrap();
        let r = RootDir::open(root.path()).unwrap();
        r.write(Path::new("etc/resolv.conf"), b"nameserver 1.1.1.1\n", 0o644)
            .unwrap();
        r.write(Path::new("up/etc/hostname"), b"x\n", 0o644)
            .unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert_eq!(
            std::fs::read_to_string(root.path().join("etc/resolv.conf")).unwrap(),
            "nameserver 1.1.1.1\n"
        );
        assert_eq!(
            std::fs::read_to_string(root.path().join("etc/hostname")).unwrap(),
            "x\n"
        );
        assert!(
            r.host_path(Path::new("up/etc"))
                .unwrap()
                .starts_with(std::fs::canonicalize(root.path()).unwrap())
        );
        // make_dirs creates missing components.
        r.make_dirs(Path::new("var/lib/x")).unwrap();
        assert!(root.path().join("var/lib/x").is_dir());
        assert!(r.exists(Path::new("var/lib")));
        assert!(!r.exists(Path::new("nope")));
    }
}
