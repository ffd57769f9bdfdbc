//! Waiting for the command while passing signals on, the way `sudo` does.
//!
//! Before the fork the parent blocks the signals it wants to hear about and
//! then takes them synchronously with `sigwaitinfo`: no handlers, no
//! self-pipe. The child gets the original mask back before `exec`.
//!
//! A signal the terminal generates (Ctrl-C, a hang-up, a window resize)
//! already reaches the command, which is in the same foreground process
//! group: the parent swallows it (`si_code` is `SI_KERNEL`) instead of
//! dying from it. A signal some process sent to kod itself with `kill`
//! (`si_code` <= 0) is forwarded to the command. Ctrl-Z is not blocked:
//! command and kod stop together and `fg` continues both.

use std::io;
use std::mem::MaybeUninit;
use std::process::ExitStatus;

use std::os::unix::process::ExitStatusExt;

/// The signals kod passes on to the command when they are sent to it.
const FORWARDED: [libc::c_int; 7] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// The calling thread's signals blocked for the life of a command; the
/// mask before is restored on drop.
pub(crate) struct Blocked {
    set: libc::sigset_t,
    pub(crate) old: libc::sigset_t,
}

/// A signal taken from the pending set.
pub(crate) struct Received {
    pub(crate) signo: libc::c_int,
    /// Sent by a process with kill(2)/sigqueue (not by the kernel or a
    /// terminal).
    pub(crate) sent_by_process: bool,
    /// The sender's pid when `sent_by_process`.
    pub(crate) sender: libc::pid_t,
}

impl Blocked {
    /// Blocks the forwarded signals and SIGCHLD in the calling thread.
    pub(crate) fn block() -> io::Result<Blocked> {
        // SAFETY: sigemptyset/sigaddset initialise and fill the set before
        // it is read; pthread_sigmask gets valid pointers.
        unsafe {
            let mut set = MaybeUninit::<libc::sigset_t>::uninit();
            libc::sigemptyset(set.as_mut_ptr());
            let mut set = set.assume_init();
            for s in FORWARDED.iter().chain(&[libc::SIGCHLD]) {
                libc::sigaddset(&mut set, *s);
            }
            let mut old = MaybeUninit::<libc::sigset_t>::uninit();
            let r = libc::pthread_sigmask(libc::SIG_BLOCK, &set, old.as_mut_ptr());
            if r != 0 {
                return Err(io::Error::from_raw_os_error(r));
            }
            Ok(Blocked {
                set,
                old: old.assume_init(),
            })
        }
    }

    /// Waits for one of the blocked signals.
    pub(crate) fn wait(&self) -> io::Result<Received> {
        loop {
            // SAFETY: `set` is initialised; `info` is written by the call.
            let (r, info) = unsafe {
                let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
                let r = libc::sigwaitinfo(&self.set, info.as_mut_ptr());
                (r, info.assume_init())
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let sent_by_process = info.si_code <= 0;
            // SAFETY: si_pid is meaningful for process-sent signals and
            // SIGCHLD, and reading it is always defined on Linux.
            let sender = unsafe { info.si_pid() };
            return Ok(Received {
                signo: r,
                sent_by_process,
                sender,
            });
        }
    }

    /// Whether `signo` is passed on to the command.
    pub(crate) fn forwards(signo: libc::c_int) -> bool {
        FORWARDED.contains(&signo)
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        // Take what is still pending (a Ctrl-C that also reached the
        // command, the last SIGCHLD) so that unblocking does not deliver
        // it to kod itself.
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid set and timeout; the masks are initialised.
        unsafe {
            while libc::sigtimedwait(&self.set, std::ptr::null_mut(), &zero) > 0 {}
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut());
        }
    }
}

/// The exit status a shell reports for a finished command: its exit code,
/// or 128 + the signal that killed it.
pub fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(c), _) => (c & 0xff) as u8,
        (None, Some(s)) => (128 + (s & 0x7f)) as u8,
        (None, None) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_those_a_shell_reports() {
        assert_eq!(exit_code(ExitStatus::from_raw(7 << 8)), 7);
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        // Killed by SIGTERM (15), and by SIGKILL (9) with a core flag unset.
        assert_eq!(exit_code(ExitStatus::from_raw(15)), 143);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
        // Killed by SIGSEGV with a core dump (0x80 flag).
        assert_eq!(exit_code(ExitStatus::from_raw(11 | 0x80)), 139);
    }

    #[test]
    fn forwarded_signals() {
        assert!(Blocked::forwards(libc::SIGTERM));
        assert!(Blocked::forwards(libc::SIGWINCH));
        assert!(!Blocked::forwards(libc::SIGCHLD));
        assert!(!Blocked::forwards(libc::SIGTSTP));
    }
}
