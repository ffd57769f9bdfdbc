//! The sandbox: what to mount, as whom, where to start; preparing it in the
//! parent and spawning the command through the child's raw steps.

use std::ffi::{CString, OsStr};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::thread::JoinHandle;

use rustix::fs::{Mode, OFlags, ResolveFlags, StatVfsMountFlags};
use rustix::io::Errno;
use rustix::mount::MountFlags;
use rustix::pipe::PipeFlags;
use rustix::thread::UnshareFlags;

use crate::child::{self, Op};
use crate::error::SandboxError;
use crate::ids::{Caller, SubIds};
use crate::signals::Blocked;
use crate::userns;

/// The host directories distrorun shares with every environment, in mount
/// order.
pub const HOST_DIRS: [&str; 6] = ["/dev", "/proc", "/sys", "/home", "/tmp", "/run"];

/// As whom the command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ids {
    /// As the caller: same uid, gid and groups. As root: a mount namespace
    /// only. As an ordinary user: a user namespace that maps the caller's
    /// uid and gid to themselves (no setuid helper; other groups the
    /// caller belongs to keep their effect on the host but show as
    /// `nogroup` (65534) inside).
    Caller,
    /// As root of a user namespace in which the caller is 0 and their
    /// subordinate ids are 1 and up, mapped through the system's setuid
    /// `newuidmap`/`newgidmap` (mmdebstrap's unshare mode, podman's
    /// rootless layout): what a package manager needs to chown files in a
    /// personal environment. For root, plain root (no user namespace).
    SubIdRoot(SubIds),
}

/// A host path bind-mounted (recursively) into the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// The host path.
    pub source: PathBuf,
    /// Where it appears, as an absolute path inside the root.
    pub target: PathBuf,
    /// A required bind fails the sandbox when it cannot be made; an
    /// optional one is skipped with a note.
    pub required: bool,
}

impl Bind {
    /// A host path at the same place inside the root; required.
    pub fn same(path: impl Into<PathBuf>) -> Bind {
        let p = path.into();
        Bind {
            source: p.clone(),
            target: p,
            required: true,
        }
    }

    /// The same bind, skipped with a note when it cannot be made.
    pub fn optional(mut self) -> Bind {
        self.required = false;
        self
    }
}

/// Where the command starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workdir {
    /// The working directory (the command's `current_dir` if set, which
    /// must then exist on the host too, else this process's), at the same
    /// path inside the root; when it does not exist there, `home` (if
    /// given), then `/`, each with a note on stderr.
    Inherit {
        /// The fallback directory inside the root (usually `$HOME`).
        home: Option<PathBuf>,
    },
    /// This directory inside the root.
    At(PathBuf),
}

/// An overlay filesystem mounted on the root before anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    /// Read-only lower layers, uppermost first.
    pub lower: Vec<PathBuf>,
    /// The writable upper layer.
    pub upper: PathBuf,
    /// overlayfs's work directory (empty, same filesystem as `upper`).
    pub work: PathBuf,
}

/// A command's surroundings: a root with host paths bound into it, the ids
/// it runs with, and where it starts.
///
/// Build one, [`prepare`](Sandbox::prepare) it (which checks and resolves
/// everything in the parent), then [`run`](Prepared::run) or
/// [`spawn`](Prepared::spawn) commands.
#[derive(Debug, Clone)]
pub struct Sandbox {
    root: Option<PathBuf>,
    overlay: Option<Overlay>,
    binds: Vec<Bind>,
    ids: Ids,
    nosuid: bool,
    workdir: Workdir,
}

impl Sandbox {
    /// A sandbox whose command runs in `root` (a directory on the host),
    /// with no binds yet, as the caller, nosuid, starting in the caller's
    /// working directory.
    pub fn new(root: impl Into<PathBuf>) -> Sandbox {
        Sandbox {
            root: Some(root.into()),
            overlay: None,
            binds: Vec::new(),
            ids: Ids::Caller,
            nosuid: true,
            workdir: Workdir::Inherit { home: None },
        }
    }

    /// A sandbox that keeps the host's root: only namespaces (and binds at
    /// host paths, private to the command).
    pub fn host() -> Sandbox {
        Sandbox {
            root: None,
            nosuid: false,
            ..Sandbox::new("/")
        }
    }

    /// Adds a bind mount.
    pub fn bind(mut self, bind: Bind) -> Sandbox {
        self.binds.push(bind);
        self
    }

    /// Shares distrorun's host directories ([`HOST_DIRS`]), each optional.
    pub fn share_host_dirs(mut self) -> Sandbox {
        self.binds
            .extend(HOST_DIRS.iter().map(|d| Bind::same(d).optional()));
        self
    }

    /// Sets the ids.
    pub fn ids(mut self, ids: Ids) -> Sandbox {
        self.ids = ids;
        self
    }

    /// Whether the root is mounted nosuid (the default for a root).
    pub fn nosuid(mut self, nosuid: bool) -> Sandbox {
        self.nosuid = nosuid;
        self
    }

    /// Sets where the command starts.
    pub fn workdir(mut self, workdir: Workdir) -> Sandbox {
        self.workdir = workdir;
        self
    }

    /// Mounts an overlay on the root (the root directory is its mount
    /// point; its own content is hidden).
    pub fn overlay(mut self, overlay: Overlay) -> Sandbox {
        self.overlay = Some(overlay);
        self
    }

    /// Checks the root, resolves every mount target inside it (never
    /// leaving it through a symlink), creates missing mount points where
    /// the caller may, and plans the child's steps.
    pub fn prepare(&self) -> Result<Prepared, SandboxError> {
        let caller_is_root = rustix::process::geteuid().is_root();
        let mut plan = Plan::default();
        let mut notes = Vec::new();

        let root = match &self.root {
            Some(r) => Some(
                std::fs::canonicalize(r).map_err(|source| SandboxError::Root {
                    root: r.clone(),
                    source,
                })?,
            ),
            None => None,
        };

        let mut unshare = UnshareFlags::NEWNS;
        let mut subids = None;
        match (&self.ids, caller_is_root) {
            (_, true) => {}
            (Ids::Caller, false) => unshare |= UnshareFlags::NEWUSER,
            (Ids::SubIdRoot(s), false) => {
                unshare |= UnshareFlags::NEWUSER;
                subids = Some(s.clone());
            }
        }
        let userns = unshare.contains(UnshareFlags::NEWUSER);
        plan.push(
            Op::Unshare(unshare),
            if userns {
                "create a user and mount namespace (unshare CLONE_NEWUSER|CLONE_NEWNS)"
            } else {
                "create a mount namespace (unshare CLONE_NEWNS)"
            },
            userns,
        );
        if userns && subids.is_none() {
            let me = Caller {
                uid: rustix::process::getuid().as_raw(),
                gid: rustix::process::getgid().as_raw(),
            };
            plan.push(
                Op::WriteFile {
                    path: c"/proc/self/setgroups".into(),
                    data: b"deny".to_vec(),
                },
                "write deny to /proc/self/setgroups",
                true,
            );
            plan.push(
                Op::WriteFile {
                    path: c"/proc/self/uid_map".into(),
                    data: format!("{0} {0} 1", me.uid).into_bytes(),
                },
                "map your uid to itself in /proc/self/uid_map",
                true,
            );
            plan.push(
                Op::WriteFile {
                    path: c"/proc/self/gid_map".into(),
                    data: format!("{0} {0} 1", me.gid).into_bytes(),
                },
                "map your gid to itself in /proc/self/gid_map",
                true,
            );
        }
        let handshake = match &subids {
            Some(_) => {
                let h = Handshake::new().map_err(|e| step_error("create pipes", e))?;
                plan.push(
                    Op::AwaitIdMaps {
                        pid_out: h.pid_w.as_raw_fd(),
                        go_in: h.go_r.as_raw_fd(),
                    },
                    "wait for newuidmap/newgidmap",
                    true,
                );
                plan.push(Op::BecomeRoot, "become root of the user namespace", true);
                Some(h)
            }
            None => None,
        };
        plan.push(
            Op::MakeSlave,
            "make the mounts of the new namespace slaves of the host's",
            userns,
        );

        if let Some(root) = &root {
            if let Some(o) = &self.overlay {
                let mut flags = MountFlags::empty();
                if self.nosuid {
                    flags |= MountFlags::NOSUID;
                }
                plan.push(
                    Op::Overlay {
                        target: cpath(root)?,
                        options: overlay_options(o)?,
                        flags,
                    },
                    &format!("mount an overlay on {}", root.display()),
                    userns,
                );
            } else if self.nosuid {
                let keep = mount_flags_of(root)?;
                plan.push(
                    Op::Bind {
                        source: cpath(root)?,
                        target: cpath(root)?,
                    },
                    &format!("bind-mount {} onto itself", root.display()),
                    userns,
                );
                plan.push(
                    Op::RemountBind {
                        target: cpath(root)?,
                        flags: keep | MountFlags::NOSUID,
                    },
                    &format!("remount {} nosuid", root.display()),
                    userns,
                );
            }
        }

        for b in &self.binds {
            if !b.source.exists() {
                if b.required {
                    return Err(SandboxError::Target {
                        source_path: b.source.clone(),
                        target: b.target.clone(),
                        root: root.clone().unwrap_or_else(|| "/".into()),
                        problem: "it does not exist on the host".into(),
                    });
                }
                notes.push(format!(
                    "{} does not exist on the host; not shared",
                    b.source.display()
                ));
                continue;
            }
            let target = match &root {
                Some(r) if self.overlay.is_none() => match resolve_target(r, b) {
                    Ok(t) => t,
                    Err(problem) if !b.required => {
                        notes.push(format!("{} is not shared: {problem}", b.source.display()));
                        continue;
                    }
                    Err(problem) => {
                        return Err(SandboxError::Target {
                            source_path: b.source.clone(),
                            target: b.target.clone(),
                            root: r.clone(),
                            problem,
                        });
                    }
                },
                Some(r) => r.join(relative(&b.target).map_err(|problem| SandboxError::Target {
                    source_path: b.source.clone(),
                    target: b.target.clone(),
                    root: r.clone(),
                    problem,
                })?),
                None => b.target.clone(),
            };
            plan.push(
                Op::Bind {
                    source: cpath(&b.source)?,
                    target: cpath(&target)?,
                },
                &format!(
                    "bind-mount {} onto {}",
                    b.source.display(),
                    target.display()
                ),
                userns,
            );
        }

        if let Some(root) = &root {
            plan.push(
                Op::Chroot(cpath(root)?),
                &format!("chroot into {}", root.display()),
                userns,
            );
        }
        Ok(Prepared {
            plan,
            handshake,
            subids,
            root,
            workdir: self.workdir.clone(),
            notes,
        })
    }
}

/// A sandbox checked and planned: ready to spawn commands.
pub struct Prepared {
    plan: Plan,
    handshake: Option<Handshake>,
    subids: Option<SubIds>,
    root: Option<PathBuf>,
    workdir: Workdir,
    notes: Vec<String>,
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
struct Plan {
    ops: Vec<Op>,
    what: Vec<String>,
    /// Whether the step runs inside a (new) user namespace, where a
    /// permission error may mean the host forbids them.
    userns: Vec<bool>,
}

impl Plan {
    fn push(&mut self, op: Op, what: &str, userns: bool) {
        self.ops.push(op);
        self.what.push(what.to_string());
        self.userns.push(userns);
    }

    fn step(&self, index: usize) -> Option<(&str, bool)> {
        Some((self.what.get(index)?.as_str(), *self.userns.get(index)?))
    }
}

/// The pipes through which the child and the parent's helper thread agree
/// on the id maps: the child sends its pid, the helper runs
/// newuidmap/newgidmap on it and answers with one byte.
struct Handshake {
    pid_r: OwnedFd,
    pid_w: OwnedFd,
    go_r: OwnedFd,
    go_w: OwnedFd,
}

struct Helper {
    thread: JoinHandle<Result<(), SandboxError>>,
    // The child's ends, kept open until the spawn returned.
    _pid_w: OwnedFd,
    _go_r: OwnedFd,
}

impl Handshake {
    fn new() -> io::Result<Handshake> {
        let (pid_r, pid_w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?;
        let (go_r, go_w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?;
        Ok(Handshake {
            pid_r,
            pid_w,
            go_r,
            go_w,
        })
    }

    fn start(self, subids: SubIds) -> Helper {
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
    fn finish(self) -> Result<(), SandboxError> {
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

fn step_error(step: &str, e: impl Into<io::Error>) -> SandboxError {
    SandboxError::Step {
        step: step.to_string(),
        source: e.into(),
    }
}

fn cpath(p: &Path) -> Result<CString, SandboxError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| SandboxError::Root {
        root: p.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "the path contains a NUL byte"),
    })
}

fn overlay_options(o: &Overlay) -> Result<CString, SandboxError> {
    let mut s = Vec::new();
    s.extend_from_slice(b"lowerdir=");
    for (i, l) in o.lower.iter().enumerate() {
        if i > 0 {
            s.push(b':');
        }
        s.extend_from_slice(&escape_overlay(l.as_os_str()));
    }
    s.extend_from_slice(b",upperdir=");
    s.extend_from_slice(&escape_overlay(o.upper.as_os_str()));
    s.extend_from_slice(b",workdir=");
    s.extend_from_slice(&escape_overlay(o.work.as_os_str()));
    CString::new(s).map_err(|_| SandboxError::Root {
        root: o.upper.clone(),
        source: io::Error::new(
            io::ErrorKind::InvalidInput,
            "a layer path contains a NUL byte",
        ),
    })
}

/// overlayfs splits its options at `,` and layers at `:`; a backslash
/// escapes them.
fn escape_overlay(p: &OsStr) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in p.as_bytes() {
        if matches!(b, b',' | b':' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

/// The flags of the mount holding `path` that a bind remount must keep
/// (inside a user namespace the kernel refuses to clear locked ones).
fn mount_flags_of(path: &Path) -> Result<MountFlags, SandboxError> {
    let st = rustix::fs::statvfs(path).map_err(|e| SandboxError::Root {
        root: path.to_path_buf(),
        source: e.into(),
    })?;
    let mut f = MountFlags::empty();
    for (vfs, m) in [
        (StatVfsMountFlags::RDONLY, MountFlags::RDONLY),
        (StatVfsMountFlags::NOSUID, MountFlags::NOSUID),
        (StatVfsMountFlags::NODEV, MountFlags::NODEV),
        (StatVfsMountFlags::NOEXEC, MountFlags::NOEXEC),
    ] {
        if st.f_flag.contains(vfs) {
            f |= m;
        }
    }
    Ok(f)
}

/// `path` (absolute, inside a root) as a relative path without `..`.
fn relative(path: &Path) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                return Err("the target has a `..` component".into());
            }
        }
    }
    Ok(out)
}

/// The host path of `bind.target` inside `root`, following symlinks as the
/// root sees them (never out of it); a missing last component is created
/// (a directory, or an empty file when the source is a file).
fn resolve_target(root: &Path, bind: &Bind) -> Result<PathBuf, String> {
    let rel = relative(&bind.target)?;
    let root_fd = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("cannot open the root: {e}"))?;
    let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let open = |p: &Path| {
        rustix::fs::openat2(
            &root_fd,
            p,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            how,
        )
    };
    let fd = match open(&rel) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => {
            let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
                return Err("the target is the root itself".into());
            };
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            let dir = rustix::fs::openat2(
                &root_fd,
                parent,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                how,
            )
            .map_err(|e| {
                format!(
                    "its parent {} does not exist in the environment ({e})",
                    Path::new("/").join(parent).display()
                )
            })?;
            let made = if bind.source.is_dir() {
                rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o755))
            } else {
                rustix::fs::openat(
                    &dir,
                    name,
                    OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o644),
                )
                .map(drop)
            };
            made.map_err(|e| {
                format!(
                    "it does not exist in the environment and cannot be created as you ({e}); \
                     create {} in the environment as its owner",
                    bind.target.display()
                )
            })?;
            open(&rel).map_err(|e| format!("cannot open it after creating it: {e}"))?
        }
        Err(e) => return Err(format!("cannot resolve it in the environment: {e}")),
    };
    let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let host = rustix::fs::readlink(link.as_str(), Vec::new())
        .map_err(|e| format!("cannot read back its path: {e}"))?;
    let host = PathBuf::from(OsStr::from_bytes(host.as_bytes()));
    if !host.starts_with(root) {
        return Err(format!(
            "it resolves to {}, outside the root",
            host.display()
        ));
    }
    let is_dir = rustix::fs::fstat(&fd)
        .map(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
        })
        .unwrap_or(false);
    if is_dir != bind.source.is_dir() {
        return Err(format!(
            "{} is a {} but the target is {}",
            bind.source.display(),
            if bind.source.is_dir() {
                "directory"
            } else {
                "file"
            },
            if is_dir {
                "a directory"
            } else {
                "not a directory"
            }
        ));
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_escape_separators() {
        let o = Overlay {
            lower: vec!["/a".into(), "/b:c".into()],
            upper: "/u,p".into(),
            work: "/w\\".into(),
        };
        assert_eq!(
            overlay_options(&o).unwrap().to_str().unwrap(),
            r"lowerdir=/a:/b\:c,upperdir=/u\,p,workdir=/w\\"
        );
    }

    #[test]
    fn targets_never_climb() {
        assert_eq!(
            relative(Path::new("/dev/pts")).unwrap(),
            Path::new("dev/pts")
        );
        assert!(relative(Path::new("/a/../../etc")).is_err());
    }

    #[test]
    fn targets_resolve_through_symlinks_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("usr/run")).unwrap();
        // An absolute symlink resolves inside the root, not on the host.
        std::os::unix::fs::symlink("/usr/run", root.join("run")).unwrap();
        let src = tempfile::tempdir().unwrap();
        let b = Bind {
            source: src.path().to_path_buf(),
            target: "/run".into(),
            required: true,
        };
        assert_eq!(resolve_target(&root, &b).unwrap(), root.join("usr/run"));
        // A symlink climbing out stays in the root as well.
        std::fs::create_dir(root.join("tmp")).unwrap();
        std::os::unix::fs::symlink("../../../../tmp", root.join("up")).unwrap();
        let b = Bind {
            target: "/up".into(),
            ..b
        };
        assert_eq!(resolve_target(&root, &b).unwrap(), root.join("tmp"));
        // A missing mount point is created.
        let b = Bind {
            target: "/work".into(),
            ..b
        };
        assert_eq!(resolve_target(&root, &b).unwrap(), root.join("work"));
        assert!(root.join("work").is_dir());
        // A file source needs a file target.
        let file = src.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let b = Bind {
            source: file,
            target: "/work".into(),
            required: true,
        };
        assert!(resolve_target(&root, &b).unwrap_err().contains("is a file"));
    }
}
