//! A prepared sandbox: the child's steps planned, ready to spawn or run
//! commands, and the reading of a failed step's report.

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};

use rustix::io::Errno;
use rustix::pipe::PipeFlags;

use crate::child::{self, Op};
use crate::error::{SandboxError, cpath, step_error};
use crate::idmap::{Handshake, Helper};
use crate::ids::SubIds;
use crate::sandbox::Workdir;
use crate::signals::Blocked;
use crate::userns;

/// A sandbox checked and planned: ready to spawn commands.
pub struct Prepared {
    pub(crate) plan: Plan,
    pub(crate) handshake: Option<Handshake>,
    pub(crate) subids: Option<SubIds>,
    pub(crate) root: Option<PathBuf>,
    pub(crate) workdir: Workdir,
    pub(crate) notes: Vec<String>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("steps", &self.plan.what)
            .field("root", &self.root)
            .field("notes", &self.notes)
            .finish()
    }
}

impl Prepared {
    /// What was skipped while preparing (optional binds that could not be
    /// made), one line each, for the caller to show.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The namespace and mount steps the child takes before it changes
    /// directory and calls `exec`, in words (for `-v`).
    pub fn steps(&self) -> &[String] {
        &self.plan.what
    }

    /// Starts `cmd` in the sandbox and returns at once. `cmd`'s program is
    /// looked up on its `PATH` inside the root. The command inherits the
    /// caller's signal mask.
    pub fn spawn(self, cmd: Command) -> Result<Child, SandboxError> {
        self.spawn_with(cmd, None)
    }

    /// Runs `cmd` in the sandbox as a direct child and waits for it,
    /// forwarding the signals sent to this process (SIGHUP, SIGINT,
    /// SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH) and swallowing those
    /// the terminal already delivered to the command. Use
    /// [`crate::exit_code`] for the status a shell would report.
    ///
    /// Call it from a process whose other threads (if any) block those
    /// signals, or they may take them instead.
    pub fn run(self, cmd: Command) -> Result<ExitStatus, SandboxError> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let wait_err = |source| SandboxError::Wait {
            program: program.clone(),
            source,
        };
        let blocked = Blocked::block().map_err(wait_err)?;
        let mut child = self.spawn_with(cmd, Some(blocked.old))?;
        let pid = child.id();
        loop {
            if let Some(status) = child.try_wait().map_err(wait_err)? {
                drop(blocked);
                return Ok(status);
            }
            let got = blocked.wait().map_err(wait_err)?;
            if Blocked::forwards(got.signo)
                && got.sent_by_process
                && u32::try_from(got.sender).ok() != Some(pid)
                && let Some(sig) = rustix::process::Signal::from_named_raw(got.signo)
                && let Some(p) = i32::try_from(pid)
                    .ok()
                    .and_then(rustix::process::Pid::from_raw)
            {
                // The command may have exited meanwhile; try_wait says so.
                let _ = rustix::process::kill_process(p, sig);
            }
        }
    }

    /// The `chdir` step: the command's (or this process's) working
    /// directory inside the root, then the fallbacks.
    fn chdir(&self, cmd: &Command) -> Result<Option<(Op, String)>, SandboxError> {
        let candidates = match (&self.workdir, &self.root) {
            (Workdir::At(dir), _) => vec![(cpath(dir)?, Vec::new())],
            (Workdir::Inherit { .. }, None) => return Ok(None),
            (Workdir::Inherit { home }, Some(_)) => {
                let here = std::env::current_dir().unwrap_or_else(|_| "/".into());
                let cwd = match cmd.get_current_dir() {
                    Some(d) => here.join(d),
                    None => here,
                };
                let note = |to: &Path| {
                    format!(
                        "kod: {} does not exist in the environment; starting in {}\n",
                        cwd.display(),
                        to.display()
                    )
                    .into_bytes()
                };
                let mut c = vec![(cpath(&cwd)?, Vec::new())];
                if let Some(h) = home.as_ref().filter(|h| **h != cwd) {
                    c.push((cpath(h)?, note(h)));
                }
                c.push((c"/".into(), note(Path::new("/"))));
                c
            }
        };
        let what = format!(
            "change to {}",
            candidates
                .iter()
                .map(|(d, _)| d.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" or ")
        );
        Ok(Some((Op::Chdir(candidates), what)))
    }

    fn spawn_with(
        mut self,
        mut cmd: Command,
        mask: Option<libc::sigset_t>,
    ) -> Result<Child, SandboxError> {
        if let Some((op, what)) = self.chdir(&cmd)? {
            self.plan.push(op, &what, false);
        }
        if let Some(m) = mask {
            self.plan
                .push(Op::SetSigmask(m), "restore the signal mask", false);
        }
        let (report_r, report_w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)
            .map_err(|e| step_error("create a pipe", e))?;
        let report_raw = report_w.as_raw_fd();
        let ops = std::mem::take(&mut self.plan.ops);
        // SAFETY: the closure only runs `child::run`, which makes raw system
        // calls on data prepared here and does not allocate (see `child`).
        unsafe {
            cmd.pre_exec(move || child::run(&ops, report_raw));
        }
        let helper = match (self.handshake.take(), &self.subids) {
            (Some(h), Some(s)) => Some(h.start(s.clone())),
            _ => None,
        };
        let spawned = cmd.spawn();
        let program = cmd.get_program().to_string_lossy().into_owned();
        drop(cmd);
        drop(report_w);
        // The helper's pipes end with the child: join it either way.
        let helper_result = helper.map(Helper::finish);
        match spawned {
            Ok(child) => Ok(child),
            Err(e) => {
                let mut buf = [0u8; 8];
                let failed_step = match std::fs::File::from(report_r).read(&mut buf) {
                    Ok(8) => {
                        let index = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                        let errno = i32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
                        Some((index, errno))
                    }
                    _ => None,
                };
                match failed_step {
                    Some((index, errno)) => {
                        if let Some(Err(helper_err)) = helper_result {
                            return Err(helper_err);
                        }
                        let (what, in_userns) =
                            self.plan.step(index).unwrap_or(("a set-up step", false));
                        let os = io::Error::from_raw_os_error(errno);
                        if in_userns
                            && matches!(
                                Errno::from_raw_os_error(errno),
                                Errno::PERM | Errno::ACCESS | Errno::NOSPC | Errno::INVAL
                            )
                            && let Some(blocked) = userns::diagnose(&userns::Sysctls::read())
                        {
                            return Err(SandboxError::UserNamespaces(blocked));
                        }
                        Err(SandboxError::Step {
                            step: what.to_string(),
                            source: os,
                        })
                    }
                    None => Err(SandboxError::Exec {
                        program,
                        root: self
                            .root
                            .as_ref()
                            .map_or_else(|| "the host".into(), |r| r.display().to_string()),
                        source: e,
                    }),
                }
            }
        }
    }
}

/// The child's steps and, by index, what each does.
#[derive(Default)]
pub(crate) struct Plan {
    ops: Vec<Op>,
    what: Vec<String>,
    /// Whether the step runs inside a (new) user namespace, where a
    /// permission error may mean the host forbids them.
    userns: Vec<bool>,
}

impl Plan {
    pub(crate) fn push(&mut self, op: Op, what: &str, userns: bool) {
        self.ops.push(op);
        self.what.push(what.to_string());
        self.userns.push(userns);
    }

    pub(crate) fn step(&self, index: usize) -> Option<(&str, bool)> {
        Some((self.what.get(index)?.as_str(), *self.userns.get(index)?))
    }
}
