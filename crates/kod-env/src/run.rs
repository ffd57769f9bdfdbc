//! `kod run NAME [--volume PATH]... -- CMD...`: distrorun's semantics on top
//! of [`kod_sandbox`].

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use kod_sandbox::{Bind, Caller, Ids, Prepared, Sandbox, SandboxError, Workdir};

use crate::error::EnvError;
use crate::store::Env;
use kod_root::{Root, relative};

/// A command ready to run in an environment.
#[derive(Debug)]
pub struct RunPlan {
    prepared: Prepared,
    command: Command,
    notes: Vec<String>,
}

impl RunPlan {
    /// Notes for the caller (skipped shares, a shell fallback).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// What the child does before `exec`, in words.
    pub fn steps(&self) -> &[String] {
        self.prepared.steps()
    }

    /// Runs the command as a direct child, passing signals on, and returns
    /// the status a shell would report (see [`kod_sandbox::exit_code`]).
    pub fn run(self) -> Result<u8, EnvError> {
        let status = self.prepared.run(self.command)?;
        Ok(kod_sandbox::exit_code(status))
    }
}

/// The exit status kod run gives for an error of its own, as `env(1)` and
/// `chroot(1)` do: 127 when the command does not exist in the environment,
/// 126 when it cannot be executed, 125 for any other failure.
pub fn exit_code_for(e: &EnvError) -> u8 {
    match e {
        EnvError::Sandbox(SandboxError::Exec { source, .. }) => match source.kind() {
            std::io::ErrorKind::NotFound => 127,
            _ => 126,
        },
        _ => 125,
    }
}

/// The caller's shell inside `root`: `$SHELL`, else the passwd entry's
/// shell, when the root has it; else `/bin/sh` (with a note).
fn shell(root: &Root, caller: Caller, notes: &mut Vec<String>) -> PathBuf {
    let from_passwd = || {
        let text = std::fs::read_to_string("/etc/passwd").ok()?;
        text.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 7 && f[2].parse() == Ok(caller.uid)).then(|| PathBuf::from(f[6]))
        })
    };
    let wanted = std::env::var_os("SHELL")
        .map(PathBuf::from)
        .filter(|s| s.is_absolute())
        .or_else(from_passwd);
    match wanted {
        Some(s) if relative(&s).is_some_and(|r| matches!(root.stat(&r), Ok(Some(_)))) => s,
        Some(s) => {
            notes.push(format!(
                "your shell {} is not in this environment; starting /bin/sh",
                s.display()
            ));
            "/bin/sh".into()
        }
        None => "/bin/sh".into(),
    }
}

/// Plans running `command` (empty: the caller's shell) in `env`, as the
/// caller, with the host's /dev, /proc, /sys, /home, /tmp and /run, the
/// environment's recorded volumes and `volumes` bound at the same paths,
/// in the caller's working directory (else `$HOME`, else `/`), with the
/// caller's environment variables.
pub fn plan(env: &Env, volumes: &[PathBuf], command: &[OsString]) -> Result<RunPlan, EnvError> {
    let root = env.root();
    let rootdir = Root::open(&root).map_err(EnvError::io("open", &root))?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    let mut sandbox = Sandbox::new(&root)
        .share_host_dirs()
        .ids(Ids::Caller)
        .workdir(Workdir::Inherit {
            home: std::env::var_os("HOME").map(PathBuf::from),
        });
    for v in env.record.volumes.iter().chain(volumes) {
        let abs = if v.is_absolute() {
            v.clone()
        } else {
            cwd.join(v)
        };
        sandbox = sandbox.bind(Bind::same(abs));
    }
    RunPlan::new(&sandbox, &rootdir, command)
}

impl RunPlan {
    /// Plans running `command` (empty: the caller's shell, if `root`, the
    /// root the command sees, has it) in a sandbox set up by the caller:
    /// what `kod run` does for an environment and `kod shell` for an
    /// overlay.
    pub fn new(sandbox: &Sandbox, root: &Root, command: &[OsString]) -> Result<RunPlan, EnvError> {
        let prepared = sandbox.prepare()?;
        let mut notes: Vec<String> = prepared.notes().to_vec();
        let cmd = match command.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args);
                c
            }
            None => Command::new(shell(root, Caller::current(), &mut notes)),
        };
        Ok(RunPlan {
            prepared,
            command: cmd,
            notes,
        })
    }
}
