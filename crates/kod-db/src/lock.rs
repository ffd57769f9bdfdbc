//! Taking an exclusive lock on a file without blocking first, so that the
//! caller can say who holds it, then waiting or failing: the protocol of
//! every lock a transaction takes (kod's own per root, a database's).

use std::path::Path;

use kod_report::Report;
use rustix::fs::FlockOperation;
use rustix::io::Errno;

use crate::error::{Error, io_error};

/// Who keeps a lock: the error when not waiting, what to say while waiting.
pub struct Busy<E> {
    /// The error to return when the caller does not wait.
    pub error: E,
    /// What to tell people while waiting (`waiting for pid 12, ...`).
    pub waiting: String,
}

/// Takes an exclusive lock with `take` (`flock` or `fcntl`), without
/// blocking first: when another process holds it, `busy` says who, and the
/// caller waits for it (saying so through `report`) if `wait`, else gets
/// its error.
pub fn take_exclusive<E: From<Error>>(
    path: &Path,
    wait: bool,
    report: &Report,
    take: impl Fn(FlockOperation) -> rustix::io::Result<()>,
    busy: impl FnOnce() -> Busy<E>,
) -> Result<(), E> {
    match take(FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(()),
        // flock says EWOULDBLOCK; fcntl EAGAIN (the same number) or EACCES.
        Err(Errno::WOULDBLOCK | Errno::ACCESS) => {
            let busy = busy();
            if !wait {
                return Err(busy.error);
            }
            report.note(&busy.waiting);
            take(FlockOperation::LockExclusive)
                .map_err(|e| E::from(io_error("lock", path)(e.into())))
        }
        Err(e) => Err(E::from(io_error("lock", path)(e.into()))),
    }
}
