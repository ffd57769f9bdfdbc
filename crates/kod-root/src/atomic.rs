//! One atomic-write scheme, and the modes of kod's files on the host.
//!
//! A file is written under a temporary name beside its target and renamed
//! over it: a reader sees the old content or the new, never a part, and a
//! symlink at the target is replaced, not followed. The temporary name is
//! `.NAME.kod-tmp-PID-TID-N` (process, thread, a per-process counter), so
//! two kod processes, or two threads of one, writing the same target never
//! share a temporary, and a later run can tell a killed writer's leftover
//! (its process is gone) from a live one's ([`remove_stale_temporaries`]).
//! Nothing is fsynced: kod syncs once per transaction.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use rustix::process::Pid;

/// What marks a kod temporary; the process id follows it.
const MARK: &[u8] = b".kod-tmp-";

/// The longest part of the target's name kept in a temporary name, so
/// that the whole stays under NAME_MAX (255 bytes).
const NAME_KEPT: usize = 200;

/// The mode of kod's own files on the host (caches, stores, records):
/// readable by everyone, writable by the owner; the umask may take more.
const FILE_MODE: u32 = 0o644;

/// The mode of kod's own directories on the host.
const DIR_MODE: u32 = 0o755;

/// A temporary name for writing `name` beside it: `.NAME.kod-tmp-PID-TID-N`,
/// unique per process, thread and call, and recognisable by
/// [`remove_stale_temporaries`].
pub fn temp_name(name: &OsStr) -> OsString {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len().min(NAME_KEPT) + 48);
    out.push(b'.');
    out.extend_from_slice(&bytes[..bytes.len().min(NAME_KEPT)]);
    out.extend_from_slice(MARK);
    out.extend_from_slice(
        format!(
            "{}-{}-{n}",
            std::process::id(),
            rustix::thread::gettid().as_raw_nonzero()
        )
        .as_bytes(),
    );
    OsString::from_vec(out)
}

/// The process that made the kod temporary `name`, if it is one: a name
/// starting with `.` with `.kod-tmp-PID` (or `.kod-tmp-PID-TID-N`) at its
/// end. (kod-install's staging directories, `.DIR.kod-tmp-PID`, are such
/// names too.)
fn temp_owner(name: &[u8]) -> Option<Pid> {
    if !name.starts_with(b".") {
        return None;
    }
    let at = name.windows(MARK.len()).rposition(|w| w == MARK)?;
    let tail = &name[at + MARK.len()..];
    let mut parts = tail.split(|&b| b == b'-');
    let pid = parts.next()?;
    let rest: Vec<&[u8]> = parts.collect();
    let digits = |p: &[u8]| !p.is_empty() && p.iter().all(u8::is_ascii_digit);
    if !digits(pid) || !(rest.is_empty() || rest.len() == 2 && rest.iter().all(|p| digits(p))) {
        return None;
    }
    Pid::from_raw(std::str::from_utf8(pid).ok()?.parse().ok()?)
}

/// Whether process `pid` exists (one of another user counts: it exists).
fn alive(pid: Pid) -> bool {
    !matches!(rustix::process::test_kill_process(pid), Err(Errno::SRCH))
}

/// Creates (or truncates) `path` as one of kod's files on the host: mode
/// 0644 (less if the umask says so), so other users can never write into
/// a cache or store that root installs from.
pub fn create_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)
}

/// Creates `dir` and its missing parents as kod's directories on the host:
/// mode 0755 (less if the umask says so); see [`create_file`].
pub fn make_dirs(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

/// A file being written under a temporary name beside its target; it
/// replaces the target on [`commit`](AtomicFile::commit) and is removed
/// if dropped before.
#[derive(Debug)]
pub struct AtomicFile {
    dir: OwnedFd,
    name: OsString,
    temp: OsString,
    file: Option<File>,
}

impl AtomicFile {
    /// Starts writing `path` (its directory must exist), with the mode of
    /// kod's files on the host ([`create_file`]).
    pub fn create(path: &Path) -> io::Result<AtomicFile> {
        let name = path.file_name().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "a file path needs a file name")
        })?;
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let dir = rustix::fs::open(
            parent,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        AtomicFile::create_at(dir, name, FILE_MODE)
    }

    /// Starts writing `name` in the directory `dir`, created with `mode`
    /// (under the umask).
    pub(crate) fn create_at(dir: OwnedFd, name: &OsStr, mode: u32) -> io::Result<AtomicFile> {
        let temp = temp_name(name);
        let fd = rustix::fs::openat(
            &dir,
            temp.as_os_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )?;
        Ok(AtomicFile {
            dir,
            name: name.to_owned(),
            temp,
            file: Some(File::from(fd)),
        })
    }

    fn file(&self) -> io::Result<&File> {
        self.file
            .as_ref()
            .ok_or_else(|| io::Error::other("the file was already committed"))
    }

    /// Sets the new file's mode exactly (the umask does not apply).
    pub fn set_mode(&self, mode: u32) -> io::Result<()> {
        Ok(rustix::fs::fchmod(self.file()?, Mode::from_raw_mode(mode))?)
    }

    /// Puts the new file in place of the target (atomic; not synced).
    pub fn commit(mut self) -> io::Result<()> {
        drop(self.file.take());
        let r = rustix::fs::renameat(&self.dir, self.temp.as_os_str(), &self.dir, &self.name);
        if r.is_err() {
            let _ = rustix::fs::unlinkat(&self.dir, self.temp.as_os_str(), AtFlags::empty());
        }
        self.temp.clear();
        Ok(r?)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut f = self.file()?;
        f.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.temp.is_empty() {
            let _ = rustix::fs::unlinkat(&self.dir, self.temp.as_os_str(), AtFlags::empty());
        }
    }
}

/// Replaces `path` with `data` atomically, with the mode of kod's files on
/// the host ([`create_file`]); its directory must exist.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(data)?;
    f.commit()
}

/// Removes from `dir` the kod temporaries (files, and directories with
/// everything in them) whose process is gone, and keeps those of running
/// processes; returns what it removed. Nothing is removed through a
/// mount: a mount point below a temporary directory is left, with the
/// directories above it, and the error says so (after the other
/// temporaries were removed). A missing `dir` has nothing to remove.
///
/// Process ids are those of kod's pid namespace (kod makes none of its
/// own); a reused pid keeps a leftover until that process ends too.
pub fn remove_stale_temporaries(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut removed = Vec::new();
    let mut failed = None;
    for e in entries {
        let name = e?.file_name();
        match temp_owner(name.as_bytes()) {
            Some(pid) if !alive(pid) => {}
            _ => continue,
        }
        // kod names its temporaries after UTF-8 names.
        let Some(text) = name.to_str() else { continue };
        match crate::tree::remove_at(&fd, text) {
            Ok(()) => removed.push(dir.join(&name)),
            // Another kod removed it first.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                let e = io::Error::new(
                    e.kind(),
                    format!("cannot remove {}: {e}", dir.join(&name).display()),
                );
                failed.get_or_insert(e);
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(removed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_unique_and_name_their_process() {
        let a = temp_name(OsStr::new("env.json"));
        let b = temp_name(OsStr::new("env.json"));
        assert_ne!(a, b);
        let s = a.to_str().unwrap();
        assert!(s.starts_with(".env.json.kod-tmp-"), "{s}");
        assert_eq!(
            temp_owner(a.as_bytes()).map(Pid::as_raw_nonzero),
            Pid::from_raw(std::process::id() as i32).map(Pid::as_raw_nonzero)
        );
        // Long names are cut so the temporary stays a valid name.
        let long = "x".repeat(255);
        assert!(temp_name(OsStr::new(&long)).len() < 256);
        // kod-install's staging directories are recognised too.
        assert_eq!(
            temp_owner(b".root.kod-tmp-42").map(|p| p.as_raw_nonzero().get()),
            Some(42)
        );
        assert_eq!(
            temp_owner(b".kod-tmp-42").map(|p| p.as_raw_nonzero().get()),
            Some(42)
        );
        for not in [
            &b"env.json.kod-tmp-42"[..],
            b".env.json.new",
            b".a.kod-tmp-",
            b".a.kod-tmp-42-1",
            b".a.kod-tmp-x-1-2",
            b".a.kod-tmp-0",
        ] {
            assert_eq!(temp_owner(not), None, "{}", String::from_utf8_lossy(not));
        }
    }

    #[test]
    fn a_dropped_atomic_file_leaves_nothing_and_the_target_untouched() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, "old").unwrap();
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"new").unwrap();
        drop(f);
        assert_eq!(fs::read_to_string(&p).unwrap(), "old");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"new").unwrap();
        f.set_mode(0o755).unwrap();
        f.commit().unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "new");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o755
        );
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
