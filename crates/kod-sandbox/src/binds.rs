//! Bind mounts into a root: what to bind, and where its target is inside
//! the root (resolved there, never leaving it through a symlink).

use std::ffi::OsStr;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags, StatVfsMountFlags};
use rustix::io::Errno;
use rustix::mount::MountFlags;

use crate::error::SandboxError;

/// A host path bind-mounted (recursively) into the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// The host path.
    pub source: PathBuf,
    /// Where it appears, as an absolute path inside the root.
    pub target: PathBuf,
    /// A required bind fails the sandbox when it cannot be made; an
    /// optional one is skipped with a note.
    pub required: bool,
}

impl Bind {
    /// A host path at the same place inside the root; required.
    pub fn same(path: impl Into<PathBuf>) -> Bind {
        let p = path.into();
        Bind {
            source: p.clone(),
            target: p,
            required: true,
        }
    }

    /// The same bind, skipped with a note when it cannot be made.
    pub fn optional(mut self) -> Bind {
        self.required = false;
        self
    }
}

/// The flags of the mount holding `path` that a bind remount must keep
/// (inside a user namespace the kernel refuses to clear locked ones).
pub(crate) fn mount_flags_of(path: &Path) -> Result<MountFlags, SandboxError> {
    let st = rustix::fs::statvfs(path).map_err(|e| SandboxError::Root {
        root: path.to_path_buf(),
        source: e.into(),
    })?;
    let mut f = MountFlags::empty();
    for (vfs, m) in [
        (StatVfsMountFlags::RDONLY, MountFlags::RDONLY),
        (StatVfsMountFlags::NOSUID, MountFlags::NOSUID),
        (StatVfsMountFlags::NODEV, MountFlags::NODEV),
        (StatVfsMountFlags::NOEXEC, MountFlags::NOEXEC),
    ] {
        if st.f_flag.contains(vfs) {
            f |= m;
        }
    }
    Ok(f)
}

/// `path` (absolute, inside a root) as a relative path without `..`.
pub(crate) fn relative(path: &Path) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                return Err("the target has a `..` component".into());
            }
        }
    }
    Ok(out)
}

/// The host path of `bind.target` inside `root`, following symlinks as the
/// root sees them (never out of it); a missing last component is created
/// (a directory, or an empty file when the source is a file).
pub(crate) fn resolve_target(root: &Path, bind: &Bind) -> Result<PathBuf, String> {
    let rel = relative(&bind.target)?;
    let root_fd = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("cannot open the root: {e}"))?;
    let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let open = |p: &Path| {
        rustix::fs::openat2(
            &root_fd,
            p,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            how,
        )
    };
    let fd = match open(&rel) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => {
            let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
                return Err("the target is the root itself".into());
            };
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            let dir = rustix::fs::openat2(
                &root_fd,
                parent,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                how,
            )
            .map_err(|e| {
                format!(
                    "its parent {} does not exist in the environment ({e})",
                    Path::new("/").join(parent).display()
                )
            })?;
            let made = if bind.source.is_dir() {
                rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o755))
            } else {
                rustix::fs::openat(
                    &dir,
                    name,
                    OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o644),
                )
                .map(drop)
            };
            made.map_err(|e| {
                format!(
                    "it does not exist in the environment and cannot be created as you ({e}); \
                     create {} in the environment as its owner",
                    bind.target.display()
                )
            })?;
            open(&rel).map_err(|e| format!("cannot open it after creating it: {e}"))?
        }
        Err(e) => return Err(format!("cannot resolve it in the environment: {e}")),
    };
    let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let host = rustix::fs::readlink(link.as_str(), Vec::new())
        .map_err(|e| format!("cannot read back its path: {e}"))?;
    let host = PathBuf::from(OsStr::from_bytes(host.as_bytes()));
    if !host.starts_with(root) {
        return Err(format!(
            "it resolves to {}, outside the root",
            host.display()
        ));
    }
    let is_dir = rustix::fs::fstat(&fd)
        .map(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
        })
        .unwrap_or(false);
    if is_dir != bind.source.is_dir() {
        return Err(format!(
            "{} is a {} but the target is {}",
            bind.source.display(),
            if bind.source.is_dir() {
                "directory"
            } else {
                "file"
            },
            if is_dir {
                "a directory"
            } else {
                "not a directory"
            }
        ));
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_never_climb() {
        assert_eq!(
            relative(Path::new("/dev/pts")).unwrap(),
            Path::new("dev/pts")
        );
        assert!(relative(Path::new("/a/../../etc")).is_err());
    }

    #[test]
    fn targets_resolve_through_symlinks_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("usr/run")).unwrap();
        // An absolute symlink resolves inside the root, not on the host.
        std::os::unix::fs::symlink("/usr/run", root.join("run")).unwrap();
        let src = tempfile::tempdir().unwrap();
        let b = Bind {
            source: src.path().to_path_buf(),
            target: "/run".into(),
            required: true,
        };
        assert_eq!(resolve_target(&root, &b).unwrap(), root.join("usr/run"));
        // A symlink climbing out stays in the root as well.
        std::fs::create_dir(root.join("tmp")).unwrap();
        std::os::unix::fs::symlink("../../../../tmp", root.join("up")).unwrap();
        let b = Bind {
            target: "/up".into(),
            ..b
        };
        assert_eq!(resolve_target(&root, &b).unwrap(), root.join("tmp"));
        // A missing mount point is created.
        let b = Bind {
            target: "/work".into(),
            ..b
        };
        assert_eq!(resolve_target(&root, &b).unwrap(), root.join("work"));
        assert!(root.join("work").is_dir());
        // A file source needs a file target.
        let file = src.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let b = Bind {
            source: file,
            target: "/work".into(),
            required: true,
        };
        assert!(resolve_target(&root, &b).unwrap_err().contains("is a file"));
    }
}
