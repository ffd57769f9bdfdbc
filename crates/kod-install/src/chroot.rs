//! Running programs inside the target: chrooted, with `/proc`, `/sys` and
//! `/dev` (with `/dev/pts`) mounted, in a private mount namespace of their
//! own, so the mounts exist only for the command and vanish with it, on
//! success, failure, or when kod itself is killed. This is the
//! [`kod_db::Runner`] a transaction hands its package database.
//!
//! As root of a user namespace (a personal environment), a new proc or
//! sysfs cannot be mounted: the namespace owns neither kod's PID namespace
//! nor its network namespace. There the host's `/proc` and `/sys` are
//! bind-mounted instead (recursively, `/sys` read-only), as mmdebstrap's
//! unshare mode does for `/sys` and its root mode falls back to for
//! `/proc`. `/dev` is the host's either way, so the root needs no device
//! nodes of its own.
//!
//! The mounts are made with `rustix` system calls in the child between
//! `fork` and `exec` (`unshare(CLONE_NEWNS)`, `mount`, `chroot`) rather
//! than with the `mount` program: one process per command instead of five,
//! nothing to unmount (the namespace dies with the command), and no window
//! in which a killed kod leaves a mount behind.

use std::ffi::CString;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rustix::mount::{MountFlags, MountPropagationFlags};
use rustix::thread::{LinkNameSpaceType, UnshareFlags};

use kod_db::{Error, Output, Ran, Runner, io_error};
use kod_report::Report;

/// The environment maintainer scripts run with.
pub(crate) const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How many lines of a failed command's output an error keeps.
const TAIL: usize = 25;

/// Where commands run: a root directory, reached from kod's mount namespace
/// or from another one (an overlay held by a helper process).
#[derive(Debug)]
pub(crate) struct Chroot {
    /// The root as kod shows it in messages.
    shown: PathBuf,
    /// The root's path in the namespace the command starts in.
    dir: CString,
    proc_dir: CString,
    sys_dir: CString,
    dev_dir: CString,
    /// The mount namespace to enter first, if not kod's own.
    ns: Option<OwnedFd>,
    /// Bind the host's `/proc` and `/sys` rather than mounting new ones
    /// (kod is root of a user namespace).
    bind_kernel_dirs: bool,
    /// Show commands instead of running them.
    debug: bool,
    report: Report,
    /// More environment for every command ([`crate::Options::script_env`]).
    env: Vec<(String, String)>,
}

fn cpath(p: &Path) -> Result<CString, Error> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::Target {
        root: p.to_path_buf(),
        reason: "the path holds a NUL byte".into(),
    })
}

/// How a command ended, for messages.
pub(crate) fn describe_status(s: std::process::ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "ended abnormally".into(),
    }
}

impl Chroot {
    /// `dir` is the root in the namespace `ns` (kod's own when `None`);
    /// `shown` is how messages name it. `in_user_namespace`: kod is root
    /// of a user namespace, so `/proc` and `/sys` are bound from the host.
    /// `debug`: commands are shown (through `report`), not run.
    pub(crate) fn new(
        shown: &Path,
        dir: &Path,
        ns: Option<OwnedFd>,
        in_user_namespace: bool,
        debug: bool,
        report: &Report,
    ) -> Result<Chroot, Error> {
        Ok(Chroot {
            shown: shown.to_path_buf(),
            dir: cpath(dir)?,
            proc_dir: cpath(&dir.join("proc"))?,
            sys_dir: cpath(&dir.join("sys"))?,
            dev_dir: cpath(&dir.join("dev"))?,
            ns,
            bind_kernel_dirs: in_user_namespace,
            debug,
            report: report.clone(),
            env: Vec::new(),
        })
    }

    /// The same, with `env` added to every command's environment.
    pub(crate) fn with_env(mut self, env: &[(String, String)]) -> Chroot {
        self.env = env.to_vec();
        self
    }
}

impl Runner for Chroot {
    fn run_watching(
        &self,
        step: &str,
        argv: &[&str],
        env: &[(&str, &str)],
        on_line: &dyn Fn(&str),
    ) -> Result<Ran, Error> {
        let shown = self.show(argv, env);
        self.report.verbose(|| format!("+ {shown}"));
        if self.debug {
            return Ok(Ran {
                success: true,
                status: "was not run (debug)".into(),
                tail: Vec::new(),
                lines: Vec::new(),
            });
        }
        let (reader, writer) =
            std::io::pipe().map_err(io_error("create a pipe for", &self.shown))?;
        let writer2 = writer
            .try_clone()
            .map_err(io_error("duplicate a pipe for", &self.shown))?;
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..])
            .env_clear()
            .env("PATH", PATH)
            .env("LC_ALL", "C.UTF-8")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("DEBCONF_NONINTERACTIVE_SEEN", "true")
            .env("HOME", "/root")
            // kod holds the root's dpkg frontend lock (lock.rs), as apt does.
            .env("DPKG_FRONTEND_LOCKED", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(writer2);
        let dir = self.dir.clone();
        let proc_dir = self.proc_dir.clone();
        let sys_dir = self.sys_dir.clone();
        let dev_dir = self.dev_dir.clone();
        let bind_kernel_dirs = self.bind_kernel_dirs;
        let ns = match &self.ns {
            Some(fd) => Some(fd.try_clone().map_err(io_error(
                "duplicate the namespace descriptor for",
                &self.shown,
            ))?),
            None => None,
        };
        // SAFETY: the closure runs in the forked child before exec and only
        // makes system calls on data prepared before the fork (no
        // allocation, no locks).
        unsafe {
            cmd.pre_exec(move || {
                if let Some(fd) = &ns {
                    rustix::thread::move_into_link_name_space(
                        fd.as_fd(),
                        Some(LinkNameSpaceType::Mount),
                    )?;
                }
                // Dies with kod: a killed kod must not leave dpkg writing
                // into a transaction the next run throws away.
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))?;
                rustix::thread::unshare_unsafe(UnshareFlags::NEWNS)?;
                rustix::mount::mount_change(
                    c"/",
                    MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
                )?;
                let kernel = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
                if bind_kernel_dirs {
                    rustix::mount::mount_bind_recursive(c"/proc", proc_dir.as_c_str())?;
                    rustix::mount::mount_bind_recursive(c"/sys", sys_dir.as_c_str())?;
                    // Read-only on top of it when the kernel lets us (it
                    // refuses when the host's /sys has atime flags this
                    // would change); the host's sysfs files are owned by
                    // ids outside the namespace and not writable here
                    // anyway.
                    let _ = rustix::mount::mount_remount(
                        sys_dir.as_c_str(),
                        MountFlags::BIND | MountFlags::RDONLY | kernel,
                        c"",
                    );
                } else {
                    rustix::mount::mount(c"proc", proc_dir.as_c_str(), c"proc", kernel, None)?;
                    rustix::mount::mount(
                        c"sysfs",
                        sys_dir.as_c_str(),
                        c"sysfs",
                        MountFlags::RDONLY | kernel,
                        None,
                    )?;
                }
                rustix::mount::mount_bind_recursive(c"/dev", dev_dir.as_c_str())?;
                rustix::process::chroot(dir.as_c_str())?;
                rustix::process::chdir(c"/")?;
                rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
                Ok(())
            });
        }
        let kernel_dirs = if self.bind_kernel_dirs {
            "bind-mounting the host's /proc, /sys and /dev into the root"
        } else {
            "mounting proc, sysfs and /dev into the root"
        };
        let mut child = cmd.spawn().map_err(|e| Error::Command {
            step: step.to_string(),
            command: shown.clone(),
            status: format!(
                "could not start ({e}: entering a private mount namespace, {kernel_dirs}, \
                 chroot, then exec)"
            ),
            packages: Vec::new(),
            output: Output::default(),
        })?;
        // The child holds the only write ends now.
        drop(cmd);
        let mut lines = Vec::new();
        for line in BufReader::new(reader).split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line).into_owned();
            self.report.verbose(|| format!("  {line}"));
            on_line(&line);
            lines.push(line);
        }
        let status = child
            .wait()
            .map_err(io_error(format!("wait for `{shown}` in"), &self.shown))?;
        let tail = lines[lines.len().saturating_sub(TAIL)..].to_vec();
        Ok(Ran {
            success: status.success(),
            status: describe_status(status),
            tail,
            lines,
        })
    }

    fn show(&self, argv: &[&str], env: &[(&str, &str)]) -> String {
        let mut s = format!("chroot {} env", self.shown.display());
        let own = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        for (k, v) in own.chain(env.iter().copied()) {
            s.push_str(&format!(" {k}={v}"));
        }
        for a in argv {
            s.push(' ');
            s.push_str(a);
        }
        s
    }
}

/// Processes whose root directory is `root` (same device and inode),
/// killed with SIGKILL: daemons a maintainer script started despite
/// policy-rc.d would otherwise keep files of the target open. Returns what
/// was killed, for a warning.
pub(crate) fn kill_processes_in(root: &Path) -> Vec<String> {
    let Ok(target) = rustix::fs::stat(root) else {
        return Vec::new();
    };
    let me = std::process::id();
    let mut killed = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return killed;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(st) = rustix::fs::stat(format!("/proc/{pid}/root").as_str()) else {
            continue;
        };
        if st.st_dev == target.st_dev && st.st_ino == target.st_ino {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
            killed.push(format!("{} (pid {pid})", comm.trim()));
        }
    }
    killed
}
