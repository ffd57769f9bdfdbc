//! What the forked child does before `exec`: raw system calls only.
//!
//! This code runs between `fork` and `exec` of a process that may have had
//! other threads, so it must not allocate, lock, or touch anything those
//! threads might have held (the malloc lock above all). Every string is
//! prepared by the parent as a `CString`; every step is one or two system
//! calls through rustix (which calls the kernel directly, without libc
//! wrappers that might lock), plus `pthread_sigmask`, which is
//! async-signal-safe. A failing step writes its index and errno to a pipe
//! the parent reads, so the parent can say which step failed and why.

use std::ffi::CString;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{MountFlags, MountPropagationFlags};
use rustix::process::{Gid, Uid};
use rustix::thread::UnshareFlags;

use crate::overlay::OverlayMount;

/// One step of the set-up.
pub(crate) enum Op {
    /// `unshare(flags)`.
    Unshare(UnshareFlags),
    /// Write `data` to the file `path` (uid_map, gid_map, setgroups).
    WriteFile { path: CString, data: Vec<u8> },
    /// Send our pid to the parent (which runs newuidmap/newgidmap on it)
    /// and wait for its go-ahead byte (0 = mapped).
    AwaitIdMaps { pid_out: RawFd, go_in: RawFd },
    /// Become root of the new user namespace: gid 0, no groups, uid 0.
    BecomeRoot,
    /// Make every mount a slave, so nothing mounted here reaches the host.
    MakeSlave,
    /// Mount an overlay filesystem.
    Overlay(OverlayMount),
    /// Recursive bind mount.
    Bind { source: CString, target: CString },
    /// Change the flags of the bind mount at `target`.
    RemountBind { target: CString, flags: MountFlags },
    /// `chroot(path)`.
    Chroot(CString),
    /// `chdir` to the first directory that works; each has a note written
    /// to stderr when it is the one chosen (empty: say nothing).
    Chdir(Vec<(CString, Vec<u8>)>),
    /// Set the signal mask (the parent blocked signals to wait for them).
    SetSigmask(libc::sigset_t),
    /// Be killed (SIGKILL) when the parent dies.
    DieWithParent,
    /// Put what the command starts into a new PID namespace whose init is
    /// a reaper forked here (see [`reaper`]).
    PidNamespace,
}

// SAFETY: `sigset_t` is plain data; every other field is owned data.
unsafe impl Send for Op {}
// SAFETY: as above; the child only reads the ops.
unsafe impl Sync for Op {}

fn fd(raw: RawFd) -> BorrowedFd<'static> {
    // SAFETY: the parent keeps these descriptors open until the spawn has
    // returned, so they are open in the child for its whole set-up.
    unsafe { BorrowedFd::borrow_raw(raw) }
}

fn write_all(raw: RawFd, mut data: &[u8]) -> Result<(), Errno> {
    while !data.is_empty() {
        match rustix::io::write(fd(raw), data) {
            Ok(0) => return Err(Errno::IO),
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Op {
    fn apply(&self) -> Result<(), Errno> {
        match self {
            // SAFETY: the child has a single thread, and unsharing the
            // mount or user namespace does not invalidate anything Rust
            // holds (no CLONE_FILES/CLONE_VM here).
            Op::Unshare(flags) => unsafe { rustix::thread::unshare_unsafe(*flags) },
            Op::WriteFile { path, data } => {
                let f = rustix::fs::open(
                    path.as_c_str(),
                    OFlags::WRONLY | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let r = rustix::io::write(&f, data);
                drop(f);
                match r {
                    Ok(n) if n == data.len() => Ok(()),
                    Ok(_) => Err(Errno::IO),
                    Err(e) => Err(e),
                }
            }
            Op::AwaitIdMaps { pid_out, go_in } => {
                let pid = rustix::process::getpid().as_raw_nonzero().get();
                write_all(*pid_out, &pid.to_le_bytes())?;
                let mut go = [1u8];
                loop {
                    match rustix::io::read(fd(*go_in), &mut go) {
                        Ok(1) if go[0] == 0 => return Ok(()),
                        Ok(_) => return Err(Errno::PERM),
                        Err(Errno::INTR) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Op::BecomeRoot => {
                let root_gid = Gid::from_raw(0);
                let root_uid = Uid::from_raw(0);
                rustix::thread::set_thread_res_gid(root_gid, root_gid, root_gid)?;
                rustix::thread::set_thread_groups(&[])?;
                rustix::thread::set_thread_res_uid(root_uid, root_uid, root_uid)
            }
            Op::MakeSlave => rustix::mount::mount_change(
                c"/",
                MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
            ),
            Op::Overlay(m) => m.mount_raw(),
            Op::Bind { source, target } => {
                rustix::mount::mount_bind_recursive(source.as_c_str(), target.as_c_str())
            }
            Op::RemountBind { target, flags } => {
                rustix::mount::mount_remount(target.as_c_str(), MountFlags::BIND | *flags, c"")
            }
            Op::Chroot(path) => rustix::process::chroot(path.as_c_str()),
            Op::Chdir(candidates) => {
                let mut last = Errno::NOENT;
                for (dir, note) in candidates {
                    match rustix::process::chdir(dir.as_c_str()) {
                        Ok(()) => {
                            if !note.is_empty() {
                                // A note that cannot be written is no reason
                                // to fail the command.
                                let _ = write_all(2, note);
                            }
                            return Ok(());
                        }
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
            Op::DieWithParent => rustix::process::set_parent_process_death_signal(Some(
                rustix::process::Signal::KILL,
            )),
            Op::PidNamespace => {
                // SAFETY: as for `Unshare`; CLONE_NEWPID changes only the
                // namespace of the children made from now on.
                unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWPID) }?;
                // A raw fork: glibc's fork would run its atfork handlers,
                // which take locks other threads of kod may have held.
                // SAFETY: clone with SIGCHLD only is fork; the child runs
                // `reaper`, which makes system calls only.
                match unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0) } {
                    -1 => Err(Errno::from_raw_os_error(
                        io::Error::last_os_error().raw_os_error().unwrap_or(0),
                    )),
                    0 => reaper(),
                    _ => Ok(()),
                }
            }
            Op::SetSigmask(set) => {
                // SAFETY: `set` is a valid, initialised signal set.
                let r =
                    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, set, std::ptr::null_mut()) };
                if r == 0 {
                    Ok(())
                } else {
                    Err(Errno::from_raw_os_error(r))
                }
            }
        }
    }
}

/// The init of the command's PID namespace: the first process in it, a
/// copy of the child before it runs the command. It dies (SIGKILL) with
/// the command, and the kernel then kills everything the command started,
/// so nothing outlives the command or a killed kod; meanwhile it reaps
/// the orphans of the namespace. It closes every descriptor (the spawn's
/// pipes among them, which would hold the spawn open) and blocks every
/// signal but the kill.
fn reaper() -> ! {
    // SAFETY: plain system calls on local, initialised data.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        let mut chld: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut chld);
        libc::sigaddset(&mut chld, libc::SIGCHLD);
        loop {
            while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {}
            libc::sigwaitinfo(&chld, std::ptr::null_mut());
        }
    }
}

/// Runs the steps in order. On failure writes `[index as u32, errno as
/// i32]` (little-endian) to `report` and returns the errno as an
/// `io::Error` (made without allocating), which makes the spawn fail.
pub(crate) fn run(ops: &[Op], report: RawFd) -> io::Result<()> {
    for (i, op) in ops.iter().enumerate() {
        if let Err(e) = op.apply() {
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            let mut msg = [0u8; 8];
            msg[..4].copy_from_slice(&index.to_le_bytes());
            msg[4..].copy_from_slice(&e.raw_os_error().to_le_bytes());
            let _ = write_all(report, &msg);
            return Err(io::Error::from_raw_os_error(e.raw_os_error()));
        }
    }
    Ok(())
}
