//! Mapping a child's subordinate ids: a helper thread of the parent runs
//! the system's setuid `newuidmap`/`newgidmap` on the child's pid while
//! the child waits, after it unshared its user namespace.

use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::process::Command;
use std::thread::JoinHandle;

use rustix::pipe::PipeFlags;

use crate::error::SandboxError;
use crate::ids::SubIds;

/// The pipes through which the child and the parent's helper thread agree
/// on the id maps: the child sends its pid, the helper runs
/// newuidmap/newgidmap on it and answers with one byte.
pub(crate) struct Handshake {
    pid_r: OwnedFd,
    pub(crate) pid_w: OwnedFd,
    pub(crate) go_r: OwnedFd,
    go_w: OwnedFd,
}

pub(crate) struct Helper {
    thread: JoinHandle<Result<(), SandboxError>>,
    // The child's ends, kept open until the spawn returned.
    _pid_w: OwnedFd,
    _go_r: OwnedFd,
}

impl Handshake {
    pub(crate) fn new() -> io::Result<Handshake> {
        let (pid_r, pid_w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?;
        let (go_r, go_w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?;
        Ok(Handshake {
            pid_r,
            pid_w,
            go_r,
            go_w,
        })
    }

    pub(crate) fn start(self, subids: SubIds) -> Helper {
        let Handshake {
            pid_r,
            pid_w,
            go_r,
            go_w,
        } = self;
        let thread = std::thread::spawn(move || {
            let mut pid = [0u8; 4];
            let mut f = std::fs::File::from(pid_r);
            if f.read_exact(&mut pid).is_err() {
                // The child ended before unsharing; its error says why.
                return Ok(());
            }
            let pid = i32::from_le_bytes(pid).to_string();
            let result = map_ids("newuidmap", &pid, &subids.uid_map_args())
                .and_then(|()| map_ids("newgidmap", &pid, &subids.gid_map_args()));
            let go = [u8::from(result.is_err())];
            // If the child is gone, its own error is reported.
            let _ = rustix::io::write(&go_w, &go);
            result
        });
        Helper {
            thread,
            _pid_w: pid_w,
            _go_r: go_r,
        }
    }
}

impl Helper {
    pub(crate) fn finish(self) -> Result<(), SandboxError> {
        let Helper { thread, .. } = self;
        thread.join().unwrap_or_else(|_| {
            Err(SandboxError::IdMap {
                command: "newuidmap".into(),
                detail: "the helper thread panicked".into(),
            })
        })
    }
}

fn map_ids(tool: &str, pid: &str, args: &[String]) -> Result<(), SandboxError> {
    let command = format!("{tool} {pid} {}", args.join(" "));
    let out = Command::new(tool)
        .arg(pid)
        .args(args)
        .output()
        .map_err(|e| SandboxError::IdMap {
            command: command.clone(),
            detail: e.to_string(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(SandboxError::IdMap {
            command,
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}
