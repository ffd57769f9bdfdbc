//! Merged /usr: the aliasing symlinks (`bin -> usr/bin`, ...) set up in an
//! empty root before unpacking, so that packages shipping `/bin/x` land in
//! `/usr/bin/x`.

use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// The top-level directories that merged /usr turns into symlinks into
/// `/usr` for `arch` (a Debian architecture name), as a bookworm or trixie
/// root built by mmdebstrap ends up with them: `bin`, `sbin`, `lib`, and
/// `lib64` where the architecture's dynamic loader lives there (amd64,
/// ppc64el, loong64). debootstrap also creates `lib32`, `libx32` (and
/// `libo32`) symlinks on some architectures; pass those yourself to
/// [`setup_merged_usr`] if a multilib package needs them.
pub fn merged_usr_dirs(arch: &str) -> Vec<&'static str> {
    let mut dirs = vec!["bin", "sbin", "lib"];
    if matches!(arch, "amd64" | "ppc64el" | "loong64") {
        dirs.push("lib64");
    }
    dirs
}

/// Creates, in `root`, for each name in `dirs`, the directory `usr/NAME`
/// (mode 0755, owned by the caller) and the symlink `NAME -> usr/NAME`,
/// the way debootstrap's `setup_merged_usr` and mmdebstrap's merged-usr
/// hook do. Idempotent: an existing identical symlink and existing
/// directories are kept. Fails if `NAME` exists as anything but that
/// symlink. Returns the paths it created (relative to `root`, `/`-rooted).
pub fn setup_merged_usr(root: &Path, dirs: &[&str]) -> io::Result<Vec<PathBuf>> {
    let root_fd = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut created = Vec::new();
    let mkdir = |rel: &str, created: &mut Vec<PathBuf>| -> io::Result<()> {
        match rustix::fs::mkdirat(&root_fd, rel, Mode::from_raw_mode(0o755)) {
            Ok(()) => {
                rustix::fs::chmodat(&root_fd, rel, Mode::from_raw_mode(0o755), AtFlags::empty())?;
                created.push(PathBuf::from("/").join(rel));
                Ok(())
            }
            Err(Errno::EXIST) => {
                // Must be a directory inside the root (following nothing
                // that leaves it).
                rustix::fs::openat2(
                    &root_fd,
                    rel,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                    ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
                )?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    };
    mkdir("usr", &mut created)?;
    for dir in dirs {
        if dir.is_empty() || dir.contains('/') || *dir == "." || *dir == ".." {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{dir}` is not a top-level directory name"),
            ));
        }
        mkdir(&format!("usr/{dir}"), &mut created)?;
        let target = format!("usr/{dir}");
        match rustix::fs::symlinkat(target.as_str(), &root_fd, *dir) {
            Ok(()) => created.push(PathBuf::from("/").join(dir)),
            Err(Errno::EXIST) => {
                let st = rustix::fs::statat(&root_fd, *dir, AtFlags::SYMLINK_NOFOLLOW)?;
                let same = FileType::from_raw_mode(st.st_mode) == FileType::Symlink
                    && rustix::fs::readlinkat(&root_fd, *dir, Vec::new())?.as_bytes()
                        == target.as_bytes();
                if !same {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!(
                            "{}/{dir} already exists and is not a symlink to {target}; \
                             merged /usr must be set up in an empty root",
                            root.display()
                        ),
                    ));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(created)
}
