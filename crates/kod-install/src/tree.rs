//! Moving a tree of changes onto a root: an overlayfs upper directory
//! (whiteouts delete, opaque directories replace, other directories merge)
//! or a staging directory. Entries are renamed (copied, with owners, modes
//! and times, when the two are on different filesystems) one by one and
//! removed from the source as they land, so that a move interrupted by a
//! crash is finished by running it again.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

use kod_root::tree::{kind, lstat_at, names, open_dir, open_dir_at, remove_at};

use crate::overlay::Marks;

/// What [`apply`] did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Applied {
    /// Entries renamed or copied into the destination.
    pub(crate) moved: u64,
    /// Entries deleted from the destination (whiteouts).
    pub(crate) removed: u64,
}

struct Ctx {
    dst_root: OwnedFd,
    /// Hard-linked files copied across filesystems: (dev, ino) -> path
    /// relative to the destination root.
    links: HashMap<(u64, u64), PathBuf>,
    overlay: Option<Marks>,
    done: Applied,
    /// Set when copying a tree (not moving changes onto a root).
    copy: Option<Copying>,
}

/// How [`copy_tree`] copies.
struct Copying {
    /// The source's file system: directories on others are mount points,
    /// copied empty.
    device: u64,
    /// Whether reflinks may still work (the first refusal turns them off).
    reflinks: bool,
}

/// Moves everything in `from` onto `to`. With `overlay`, `from` is an
/// overlayfs upper directory whose marks are kept as it says: character
/// devices 0:0 are whiteouts (the path is deleted from `to`), directories
/// marked opaque replace what `to` has, other directories are merged, and
/// overlayfs's attributes are dropped. `from` is left empty.
pub(crate) fn apply(from: &Path, to: &Path, overlay: Option<Marks>) -> io::Result<Applied> {
    let src = open_dir(from)?;
    let dst = open_dir(to)?;
    let mut ctx = Ctx {
        dst_root: open_dir(to)?,
        links: HashMap::new(),
        overlay,
        done: Applied::default(),
        copy: None,
    };
    apply_dir(&src, &dst, Path::new(""), &mut ctx)?;
    Ok(ctx.done)
}

fn is_opaque(dir: &OwnedFd, name: &str, marks: Marks) -> io::Result<bool> {
    let sub = open_dir_at(dir, name)?;
    let mut buf = [0u8; 4];
    match rustix::fs::fgetxattr(&sub, marks.opaque(), &mut buf) {
        Ok(n) => Ok(&buf[..n] == b"y"),
        Err(Errno::NODATA | Errno::NOTSUP) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Removes overlayfs's own attributes (`trusted.overlay.origin` of a
/// copied-up file, `impure`, `opaque`, ..., or their `user.overlay.*`
/// forms) from `dir/name`, which now lives in the root.
fn strip_overlay_xattrs(dir: &OwnedFd, name: &str, marks: Marks) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let path = format!("/proc/self/fd/{}/{name}", dir.as_raw_fd());
    let mut buf = vec![0u8; 1024];
    let n = match rustix::fs::llistxattr(path.as_str(), &mut buf) {
        Ok(n) => n,
        Err(Errno::NOTSUP | Errno::RANGE) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for x in buf[..n].split(|b| *b == 0) {
        if x.starts_with(marks.prefix()) {
            let x = std::ffi::CString::new(x).map_err(io::Error::other)?;
            match rustix::fs::lremovexattr(path.as_str(), x.as_c_str()) {
                Ok(()) | Err(Errno::NODATA) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

fn apply_dir(src: &OwnedFd, dst: &OwnedFd, rel: &Path, ctx: &mut Ctx) -> io::Result<()> {
    for name in names(src)? {
        let Some(st) = lstat_at(src, &name)? else {
            continue;
        };
        let target = lstat_at(dst, &name)?;
        let whiteout =
            ctx.overlay.is_some() && kind(&st) == FileType::CharacterDevice && st.st_rdev == 0;
        if whiteout {
            if target.is_some() {
                remove_at(dst, &name)?;
                ctx.done.removed += 1;
            }
            rustix::fs::unlinkat(src, name.as_str(), AtFlags::empty())?;
            continue;
        }
        let target_is_dir = target
            .as_ref()
            .is_some_and(|t| kind(t) == FileType::Directory);
        if kind(&st) == FileType::Directory {
            let opaque = match ctx.overlay {
                Some(marks) => is_opaque(src, &name, marks)?,
                None => false,
            };
            if target_is_dir && !opaque {
                let s = open_dir_at(src, &name)?;
                let d = open_dir_at(dst, &name)?;
                apply_dir(&s, &d, &rel.join(&name), ctx)?;
                set_meta(dst, &name, &st)?;
                if let Some(marks) = ctx.overlay {
                    strip_overlay_xattrs(dst, &name, marks)?;
                }
                rustix::fs::unlinkat(src, name.as_str(), AtFlags::REMOVEDIR)?;
                continue;
            }
            if target.is_some() {
                remove_at(dst, &name)?;
            }
            move_entry(src, dst, &name, &st, rel, ctx)?;
        } else {
            if target_is_dir {
                remove_at(dst, &name)?;
            }
            move_entry(src, dst, &name, &st, rel, ctx)?;
        }
        if let Some(marks) = ctx.overlay {
            strip_overlay_xattrs(dst, &name, marks)?;
        }
    }
    Ok(())
}

/// Copies the tree `from` to the new directory `to` (absent), keeping
/// owners, modes, times, extended attributes (file capabilities), hard
/// links and special files; regular files are reflinked (shared blocks)
/// where the file system can, else copied; never hard-linked to the
/// source. Stays on `from`'s file system (mount points below it become
/// empty directories) and leaves out sockets, which mean nothing in a
/// copy. `from` is not changed.
pub(crate) fn copy_tree(from: &Path, to: &Path) -> io::Result<Applied> {
    let st = rustix::fs::stat(from)?;
    rustix::fs::mkdir(to, Mode::from_raw_mode(0o700))?;
    let src = open_dir(from)?;
    let dst = open_dir(to)?;
    let mut ctx = Ctx {
        dst_root: open_dir(to)?,
        links: HashMap::new(),
        overlay: None,
        done: Applied::default(),
        copy: Some(Copying {
            device: st.st_dev,
            reflinks: true,
        }),
    };
    for n in names(&src)? {
        let Some(cst) = lstat_at(&src, &n)? else {
            continue;
        };
        copy_entry(&src, &dst, &n, &cst, Path::new(""), &mut ctx)?;
    }
    let parent = open_dir(to.parent().unwrap_or(Path::new("/")))?;
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    set_meta(&parent, &name, &st)?;
    copy_xattrs(&src, ".", &dst, ".")?;
    Ok(ctx.done)
}

/// Makes the directory `onto` hold exactly what `from` holds, changing
/// only what differs: `from` is a changed copy-on-write snapshot of `onto`
/// on the same file system (an in-place rebuild brings the running root
/// to the generation built beside it). Files are replaced atomically one
/// by one (a temporary beside them, renamed over: running programs keep
/// the inode they have open), reflinked where the file system can;
/// directories are merged; what `from` lacks is removed. Directories of
/// other file systems (mount points, nested subvolumes) on either side
/// are left alone. Run again after an interruption, it finishes the job.
pub(crate) fn sync_tree(from: &Path, onto: &Path) -> io::Result<Applied> {
    let src = open_dir(from)?;
    let dst = open_dir(onto)?;
    let device = rustix::fs::fstat(&src)?.st_dev;
    let mut ctx = Ctx {
        dst_root: open_dir(onto)?,
        links: HashMap::new(),
        overlay: None,
        done: Applied::default(),
        copy: Some(Copying {
            device,
            reflinks: true,
        }),
    };
    let onto_device = rustix::fs::fstat(&dst)?.st_dev;
    sync_dir(&src, &dst, Path::new(""), onto_device, &mut ctx)?;
    let st = rustix::fs::fstat(&src)?;
    set_meta(&dst, ".", &st)?;
    Ok(ctx.done)
}

fn sync_dir(
    src: &OwnedFd,
    dst: &OwnedFd,
    rel: &Path,
    onto_device: u64,
    ctx: &mut Ctx,
) -> io::Result<()> {
    let device = ctx.copy.as_ref().map_or(0, |c| c.device);
    let wanted = names(src)?;
    for name in &wanted {
        let Some(st) = lstat_at(src, name)? else {
            continue;
        };
        let target = lstat_at(dst, name)?;
        let foreign =
            |t: &rustix::fs::Stat| kind(t) == FileType::Directory && t.st_dev != onto_device;
        if target.as_ref().is_some_and(foreign)
            || (kind(&st) == FileType::Directory && st.st_dev != device)
        {
            continue;
        }
        match target {
            Some(t) if kind(&st) == FileType::Directory && kind(&t) == FileType::Directory => {
                let s = open_dir_at(src, name)?;
                let d = open_dir_at(dst, name)?;
                sync_dir(&s, &d, &rel.join(name), onto_device, ctx)?;
                if !same_meta(&st, &t) {
                    set_meta(dst, name, &st)?;
                    copy_xattrs(&s, ".", &d, ".")?;
                }
            }
            Some(t) if unchanged(src, dst, name, &st, &t)? => {}
            target => {
                // A directory is replaced whole; anything else is renamed
                // over by the copy.
                if target.is_some_and(|t| kind(&t) == FileType::Directory)
                    || kind(&st) == FileType::Directory
                {
                    remove_at(dst, name)?;
                }
                copy_entry(src, dst, name, &st, rel, ctx)?;
            }
        }
    }
    let wanted: std::collections::HashSet<String> = wanted.into_iter().collect();
    for name in names(dst)? {
        if wanted.contains(&name) {
            continue;
        }
        let Some(t) = lstat_at(dst, &name)? else {
            continue;
        };
        if kind(&t) == FileType::Directory && t.st_dev != onto_device {
            continue;
        }
        remove_at(dst, &name)?;
        ctx.done.removed += 1;
    }
    Ok(())
}

/// Whether owner, mode and modification time agree.
fn same_meta(a: &rustix::fs::Stat, b: &rustix::fs::Stat) -> bool {
    (a.st_mode, a.st_uid, a.st_gid, a.st_mtime, a.st_mtime_nsec)
        == (b.st_mode, b.st_uid, b.st_gid, b.st_mtime, b.st_mtime_nsec)
}

/// Whether `src/name` and `dst/name` (not directories) are the same
/// entry: the same kind, owner, mode, size and times, and either one
/// inode untouched on both sides since the snapshot (a snapshot keeps
/// inode numbers and change times; any write or attribute change moves
/// the change time) or equal contents.
fn unchanged(
    src: &OwnedFd,
    dst: &OwnedFd,
    name: &str,
    s: &rustix::fs::Stat,
    t: &rustix::fs::Stat,
) -> io::Result<bool> {
    if !same_meta(s, t) || s.st_size != t.st_size || s.st_rdev != t.st_rdev {
        return Ok(false);
    }
    if (s.st_ino, s.st_ctime, s.st_ctime_nsec) == (t.st_ino, t.st_ctime, t.st_ctime_nsec) {
        return Ok(true);
    }
    match kind(s) {
        FileType::Symlink => Ok(rustix::fs::readlinkat(src, name, Vec::new())?
            == rustix::fs::readlinkat(dst, name, Vec::new())?),
        FileType::RegularFile => same_contents(src, dst, name),
        _ => Ok(true),
    }
}

fn same_contents(src: &OwnedFd, dst: &OwnedFd, name: &str) -> io::Result<bool> {
    use std::io::Read;
    let open = |dir: &OwnedFd| -> io::Result<File> {
        Ok(File::from(rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?))
    };
    let (mut a, mut b) = (open(src)?, open(dst)?);
    let (mut x, mut y) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = a.read(&mut x)?;
        if n == 0 {
            return Ok(b.read(&mut y[..1])? == 0);
        }
        b.read_exact(&mut y[..n])?;
        if x[..n] != y[..n] {
            return Ok(false);
        }
    }
}

fn move_entry(
    src: &OwnedFd,
    dst: &OwnedFd,
    name: &str,
    st: &rustix::fs::Stat,
    rel: &Path,
    ctx: &mut Ctx,
) -> io::Result<()> {
    match rustix::fs::renameat(src, name, dst, name) {
        Ok(()) => {
            ctx.done.moved += 1;
            Ok(())
        }
        Err(Errno::XDEV) => {
            copy_entry(src, dst, name, st, rel, ctx)?;
            remove_at(src, name)
        }
        Err(e) => Err(e.into()),
    }
}

fn times(st: &rustix::fs::Stat) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec as _,
        },
    }
}

/// Gives `dir/name` the owner, mode and times of `st`.
fn set_meta(dir: &OwnedFd, name: &str, st: &rustix::fs::Stat) -> io::Result<()> {
    let symlink = kind(st) == FileType::Symlink;
    rustix::fs::chownat(
        dir,
        name,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    if !symlink {
        rustix::fs::chmodat(
            dir,
            name,
            Mode::from_raw_mode(st.st_mode & 0o7777),
            AtFlags::empty(),
        )?;
    }
    rustix::fs::utimensat(dir, name, &times(st), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// Copies `src/name` to `dst/name` (another filesystem), keeping owners,
/// modes, times and hard links; replaces what is there atomically for
/// non-directories.
fn copy_entry(
    src: &OwnedFd,
    dst: &OwnedFd,
    name: &str,
    st: &rustix::fs::Stat,
    rel: &Path,
    ctx: &mut Ctx,
) -> io::Result<()> {
    // kod's one temporary-name scheme: unique per process, thread and
    // call, and removed by a later run if this one is killed.
    let tmp = kod_root::temp_name(std::ffi::OsStr::new(name))
        .to_string_lossy()
        .into_owned();
    match kind(st) {
        FileType::Directory => {
            match rustix::fs::mkdirat(dst, name, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            let s = open_dir_at(src, name)?;
            let d = open_dir_at(dst, name)?;
            let mount_point = ctx.copy.as_ref().is_some_and(|c| c.device != st.st_dev);
            if !mount_point {
                for n in names(&s)? {
                    let Some(cst) = lstat_at(&s, &n)? else {
                        continue;
                    };
                    copy_entry(&s, &d, &n, &cst, &rel.join(name), ctx)?;
                }
            }
            set_meta(dst, name, st)?;
            copy_xattrs(&s, ".", &d, ".")?;
            ctx.done.moved += 1;
            return Ok(());
        }
        FileType::RegularFile => {
            let key = (st.st_dev, st.st_ino);
            if st.st_nlink > 1
                && let Some(first) = ctx.links.get(&key)
            {
                rustix::fs::linkat(
                    &ctx.dst_root,
                    first.as_path(),
                    dst,
                    tmp.as_str(),
                    AtFlags::empty(),
                )?;
            } else {
                let from = rustix::fs::openat(
                    src,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let to = rustix::fs::openat(
                    dst,
                    tmp.as_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )?;
                let reflinked = match &mut ctx.copy {
                    Some(c) if c.reflinks => {
                        let done = reflink(&from, &to);
                        c.reflinks = done;
                        done
                    }
                    _ => false,
                };
                if !reflinked {
                    io::copy(&mut File::from(from), &mut File::from(to))?;
                }
                set_meta(dst, &tmp, st)?;
                copy_xattrs(src, name, dst, &tmp)?;
                if st.st_nlink > 1 {
                    ctx.links.insert(key, rel.join(name));
                }
            }
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(src, name, Vec::new())?;
            rustix::fs::symlinkat(target.as_c_str(), dst, tmp.as_str())?;
            set_meta(dst, &tmp, st)?;
            copy_xattrs(src, name, dst, &tmp)?;
        }
        FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
            rustix::fs::mknodat(
                dst,
                tmp.as_str(),
                kind(st),
                Mode::from_raw_mode(0o600),
                st.st_rdev,
            )?;
            set_meta(dst, &tmp, st)?;
        }
        FileType::Socket if ctx.copy.is_some() => return Ok(()),
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "cannot copy {} (a socket or unknown file type)",
                    rel.join(name).display()
                ),
            ));
        }
    }
    rustix::fs::renameat(dst, tmp.as_str(), dst, name)?;
    ctx.done.moved += 1;
    Ok(())
}

/// `FICLONE` (`_IOW(0x94, 9, int)`): `to` shares `from`'s blocks.
const FICLONE: libc::c_ulong = 0x4004_9409;

/// Makes `to` a reflink copy of `from`; false where the file system cannot
/// (then nothing was written).
fn reflink(from: &OwnedFd, to: &OwnedFd) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: both are open file descriptors; FICLONE takes the source fd
    // as its argument and writes nothing to user memory.
    unsafe { libc::ioctl(to.as_raw_fd(), FICLONE as _, from.as_raw_fd()) == 0 }
}

/// Copies the extended attributes of `src/name` to `dst/to` (after the
/// owner is set: a chown clears `security.capability`). Attributes the
/// target file system refuses are left out only when it supports none.
fn copy_xattrs(src: &OwnedFd, name: &str, dst: &OwnedFd, to: &str) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let from = format!("/proc/self/fd/{}/{name}", src.as_raw_fd());
    let into = format!("/proc/self/fd/{}/{to}", dst.as_raw_fd());
    let mut list = vec![0u8; 4096];
    let n = match rustix::fs::llistxattr(from.as_str(), &mut list) {
        Ok(n) => n,
        Err(Errno::NOTSUP) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    // overlayfs's own marks never belong in a root or a copy of one.
    let ours = |x: &[u8]| x.starts_with(b"trusted.overlay.") || x.starts_with(b"user.overlay.");
    for x in list[..n]
        .split(|b| *b == 0)
        .filter(|x| !x.is_empty() && !ours(x))
    {
        let x = std::ffi::CString::new(x).map_err(io::Error::other)?;
        let mut value = vec![0u8; 65536];
        let len = match rustix::fs::lgetxattr(from.as_str(), x.as_c_str(), &mut value) {
            Ok(len) => len,
            Err(Errno::NODATA) => continue,
            Err(e) => return Err(e.into()),
        };
        match rustix::fs::lsetxattr(
            into.as_str(),
            x.as_c_str(),
            &value[..len],
            rustix::fs::XattrFlags::empty(),
        ) {
            Ok(()) | Err(Errno::NOTSUP) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    fn write(p: &Path, s: &str) {
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, s).expect("write");
    }

    /// An overlayfs whiteout (a 0:0 character device) at `p`.
    fn whiteout(p: &Path) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            p,
            FileType::CharacterDevice,
            Mode::empty(),
            0,
        )
        .expect("whiteout");
    }

    /// Staging on tmpfs, root on the disk: every entry is copied (owner,
    /// mode, symlinks, hard links kept), directories merged, the staging
    /// directory emptied.
    #[test]
    fn apply_across_file_systems_copies_and_merges() {
        let src = tempfile::tempdir_in("/dev/shm").expect("a tmpfs at /dev/shm");
        let dst = tempfile::tempdir().expect("dst");
        let (s, d) = (src.path(), dst.path());
        assert_ne!(
            std::fs::metadata(s).expect("s").dev(),
            std::fs::metadata(d).expect("d").dev(),
            "the test needs two file systems"
        );
        write(&s.join("etc/new.conf"), "new");
        write(&s.join("etc/replaced"), "after");
        std::fs::set_permissions(
            s.join("etc/new.conf"),
            std::fs::Permissions::from_mode(0o640),
        )
        .expect("chmod");
        write(&s.join("usr/bin/tool"), "tool");
        std::fs::hard_link(s.join("usr/bin/tool"), s.join("usr/bin/tool2")).expect("link");
        symlink("tool", s.join("usr/bin/alias")).expect("symlink");
        write(&d.join("etc/replaced"), "before");
        write(&d.join("etc/kept"), "kept");
        let applied = apply(s, d, None).expect("apply");
        assert!(applied.moved >= 5, "{applied:?}");
        assert_eq!(
            std::fs::read_to_string(d.join("etc/replaced")).expect("r"),
            "after"
        );
        assert_eq!(
            std::fs::read_to_string(d.join("etc/kept")).expect("k"),
            "kept"
        );
        assert_eq!(
            std::fs::metadata(d.join("etc/new.conf")).expect("n").mode() & 0o777,
            0o640
        );
        assert_eq!(
            std::fs::read_link(d.join("usr/bin/alias")).expect("l"),
            Path::new("tool")
        );
        let (a, b) = (
            std::fs::metadata(d.join("usr/bin/tool")).expect("a"),
            std::fs::metadata(d.join("usr/bin/tool2")).expect("b"),
        );
        assert_eq!((a.ino(), a.nlink()), (b.ino(), 2), "hard link kept");
        assert_eq!(
            std::fs::read_dir(s).expect("src").count(),
            0,
            "staging not emptied"
        );
    }

    /// An overlay upper layer: whiteouts delete, opaque directories
    /// replace, other directories merge; with either kind of marks, and the
    /// other kind is an ordinary attribute. Whiteouts need CAP_MKNOD.
    #[test]
    fn root_apply_overlay_upper_layer() {
        if !kod_testkit::tier(kod_testkit::Tier::Root) {
            return;
        }
        for (marks, other) in [(Marks::Trusted, Marks::User), (Marks::User, Marks::Trusted)] {
            let tmp = tempfile::tempdir().expect("tmp");
            let (up, root) = (tmp.path().join("upper"), tmp.path().join("root"));
            write(&root.join("a/gone"), "x");
            write(&root.join("a/stays"), "x");
            write(&root.join("b/old"), "x");
            write(&root.join("c/f"), "x");
            write(&root.join("d/old"), "x");
            std::fs::create_dir_all(up.join("a")).expect("mkdir");
            whiteout(&up.join("a/gone"));
            write(&up.join("b/new"), "n");
            write(&up.join("d/new"), "n");
            write(&up.join("e/new"), "n");
            for (dir, m) in [("b", marks), ("d", other), ("e", other)] {
                rustix::fs::setxattr(
                    up.join(dir).as_path(),
                    m.opaque(),
                    b"y",
                    rustix::fs::XattrFlags::empty(),
                )
                .expect("opaque");
            }
            whiteout(&up.join("c"));
            let applied = apply(&up, &root, Some(marks)).expect("apply");
            assert_eq!(applied.removed, 2, "{marks:?}");
            assert!(!root.join("a/gone").exists() && root.join("a/stays").exists());
            assert!(!root.join("b/old").exists() && root.join("b/new").exists());
            assert!(!root.join("c").exists());
            assert!(
                root.join("d/old").exists() && root.join("d/new").exists(),
                "{other:?} marks are not {marks:?} ones: d is merged"
            );
            let mut buf = [0u8; 8];
            assert!(
                rustix::fs::getxattr(root.join("b").as_path(), marks.opaque(), &mut buf).is_err(),
                "opaque mark left"
            );
            assert!(
                rustix::fs::getxattr(root.join("e").as_path(), other.opaque(), &mut buf).is_ok(),
                "an attribute that is not the overlay's is kept on what moves"
            );
            assert_eq!(std::fs::read_dir(&up).expect("upper").count(), 0);
        }
    }
}
