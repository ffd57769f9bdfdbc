//! The sandbox: what to mount, as whom, where to start; preparing it in the
//! parent turns it into the child's steps ([`Prepared`]).

use std::os::fd::AsRawFd;
use std::path::PathBuf;

use rustix::mount::MountFlags;
use rustix::thread::UnshareFlags;

use crate::binds::{Bind, mount_flags_of, relative, resolve_target};
use crate::child::Op;
use crate::error::{SandboxError, cpath, step_error};
use crate::idmap::Handshake;
use crate::ids::{Caller, SubIds};
use crate::overlay::Overlay;
use crate::prepared::{Plan, Prepared};

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
    die_with_parent: bool,
    pid_namespace: bool,
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
            die_with_parent: false,
            pid_namespace: false,
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

    /// Whether the command is killed (SIGKILL) when kod dies: then
    /// nothing it does outlives a killed kod, and its mount namespace goes
    /// with it.
    pub fn die_with_parent(mut self, yes: bool) -> Sandbox {
        self.die_with_parent = yes;
        self
    }

    /// Whether everything the command starts runs in a PID namespace of
    /// its own, whose init dies with the command: then nothing the command
    /// started outlives it (or a killed kod, with [`die_with_parent`]).
    /// The command itself stays a direct child of kod, which passes
    /// signals on to it as before.
    ///
    /// [`die_with_parent`]: Sandbox::die_with_parent
    pub fn pid_namespace(mut self, yes: bool) -> Sandbox {
        self.pid_namespace = yes;
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

        if self.die_with_parent {
            plan.push(Op::DieWithParent, "die with kod (PR_SET_PDEATHSIG)", false);
        }
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
        if self.pid_namespace {
            plan.push(
                Op::PidNamespace,
                "put what the command starts in a new PID namespace (unshare CLONE_NEWPID) \
                 with an init that dies with the command",
                userns,
            );
        }
        plan.push(
            Op::MakeSlave,
            "make the mounts of the new namespace slaves of the host's",
            userns,
        );

        if let Some(root) = &root {
            if let Some(o) = &self.overlay {
                plan.push(
                    Op::Overlay(o.mount_on(root)?.nosuid(self.nosuid)),
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
