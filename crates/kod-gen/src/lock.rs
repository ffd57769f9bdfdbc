//! The machine lock: one exclusive `flock` over a top level, taken by
//! every kod that changes its generations (rebuild, rollback, delete, gc,
//! and later `vm --image`).
//!
//! The lock file is [`LOCK`] (`generations/.lock`), made when missing and
//! never removed. Its lock is the `flock` on it; its content only names
//! the holder, for the message a second kod prints: the holder writes
//! `PID WHAT` into it once it holds the lock, and empties it when it lets
//! go. A kod that dies releases the lock with its last descriptor, so a
//! lock is never stale; its words may be (they are only words).

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kod_report::Report;
use rustix::fs::FlockOperation;
use rustix::io::Errno;

use crate::error::{Error, Result, io};
use crate::top::Top;

/// The machine lock's file, relative to the top level.
pub const LOCK: &str = "generations/.lock";

/// The machine lock, held: released when dropped (or when the process
/// dies).
#[derive(Debug)]
pub struct MachineLock {
    file: File,
    path: PathBuf,
}

/// Who holds a machine lock, as its file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The holder's process id, when the file names one.
    pub pid: Option<u32>,
    /// What it is doing (`rebuild`, `rollback`, …); empty when unknown.
    pub what: String,
}

impl Holder {
    /// Parses the lock file's content (`PID WHAT`).
    fn parse(text: &str) -> Holder {
        let text = text.trim();
        let (pid, what) = text.split_once(' ').unwrap_or((text, ""));
        match pid.parse() {
            Ok(pid) => Holder {
                pid: Some(pid),
                what: what.trim().to_owned(),
            },
            Err(_) => Holder {
                pid: None,
                what: String::new(),
            },
        }
    }
}

impl std::fmt::Display for Holder {
    /// `kod pid 12 (rebuild)`, or `another kod` when the file names none.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.pid, self.what.as_str()) {
            (Some(pid), "") => write!(f, "kod pid {pid}"),
            (Some(pid), what) => write!(f, "kod pid {pid} ({what})"),
            (None, _) => f.write_str("another kod (it has not named itself yet)"),
        }
    }
}

impl MachineLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for MachineLock {
    fn drop(&mut self) {
        // The words go first; the lock goes with the descriptor.
        let _ = self.file.set_len(0);
    }
}

/// Takes the lock on the file `path` for `what`: at once when it is free;
/// when another process holds it, waits (saying once, through `report`,
/// whom for) if `wait`, else fails with [`Error::Locked`].
pub(crate) fn take(path: &Path, what: &str, wait: bool, report: &Report) -> Result<MachineLock> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .map_err(io("open the lock file", path))?;
    match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(Errno::WOULDBLOCK) => {
            let mut text = String::new();
            let _ = (&file).read_to_string(&mut text);
            let holder = Holder::parse(&text);
            if !wait {
                return Err(Error::Locked {
                    path: path.to_owned(),
                    holder: holder.to_string(),
                });
            }
            report.note(&format!("waiting for {}: held by {holder}", path.display()));
            rustix::fs::flock(&file, FlockOperation::LockExclusive)
                .map_err(|e| io("lock", path)(e.into()))?;
        }
        Err(e) => return Err(io("lock", path)(e.into())),
    }
    let words = format!("{} {}\n", std::process::id(), what.trim());
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(words.as_bytes()))
        .map_err(io("write the lock file", path))?;
    report.verbose(|| format!("locked {} ({what})", path.display()));
    Ok(MachineLock {
        file,
        path: path.to_owned(),
    })
}

impl Top {
    /// The machine lock's file ([`LOCK`]).
    pub fn lock_path(&self) -> PathBuf {
        self.path().join(LOCK)
    }

    /// Takes the machine lock for `what` (`rebuild`, `rollback`,
    /// `delete`, `gc`, …), making `generations/` and the lock file when
    /// missing. When another kod holds it, says once on the report
    /// `waiting for PATH: held by kod pid N (WHAT)` and blocks until it is
    /// released.
    pub fn lock(&self, what: &str) -> Result<MachineLock> {
        self.lock_with(what, true)
    }

    /// Takes the machine lock for `what` without waiting: when another
    /// kod holds it, [`Error::Locked`] names the holder.
    pub fn try_lock(&self, what: &str) -> Result<MachineLock> {
        self.lock_with(what, false)
    }

    fn lock_with(&self, what: &str, wait: bool) -> Result<MachineLock> {
        let gens = self.generations_dir();
        match std::fs::create_dir(&gens) {
            Ok(()) => std::fs::set_permissions(&gens, std::fs::Permissions::from_mode(0o755))
                .map_err(io("set the mode of", &gens))?,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io("create", gens)(e)),
        }
        take(&self.lock_path(), what, wait, self.report())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use kod_report::{Level, Recorder};

    use super::*;

    #[test]
    fn the_holders_words_parse_and_read() {
        let h = Holder::parse("123 rebuild\n");
        assert_eq!(h.pid, Some(123));
        assert_eq!(h.to_string(), "kod pid 123 (rebuild)");
        assert_eq!(Holder::parse("9").to_string(), "kod pid 9");
        assert_eq!(Holder::parse("").pid, None);
        assert!(
            Holder::parse("junk words")
                .to_string()
                .contains("another kod")
        );
    }

    #[test]
    fn a_second_taker_fails_or_waits_and_then_proceeds() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(".lock");
        let first = take(&path, "rebuild", true, &Report::quiet()).unwrap();
        let words = std::fs::read_to_string(&path).unwrap();
        assert_eq!(words, format!("{} rebuild\n", std::process::id()));

        // Not waiting: the error names the holder.
        let e = take(&path, "gc", false, &Report::quiet()).unwrap_err();
        assert!(matches!(e, Error::Locked { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains(&format!("kod pid {} (rebuild)", std::process::id())),
            "{text}"
        );

        // Waiting: says so once, blocks until the first lets go.
        let rec = Recorder::new(false);
        let report = Report::to(rec.clone());
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|s| {
            let p = &path;
            s.spawn(move || {
                let second = take(p, "delete", true, &report).unwrap();
                tx.send(std::fs::read_to_string(p).unwrap()).unwrap();
                drop(second);
            });
            assert!(
                rx.recv_timeout(Duration::from_millis(300)).is_err(),
                "the second took a held lock"
            );
            drop(first);
            let words = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(words, format!("{} delete\n", std::process::id()));
        });
        let notes = rec.messages(Level::Note);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(
            notes[0],
            format!(
                "waiting for {}: held by kod pid {} (rebuild)",
                path.display(),
                std::process::id()
            )
        );
        // Released: empty words, and the lock is free.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        drop(take(&path, "gc", false, &Report::quiet()).unwrap());
    }
}
