//! kod-sandbox: run a command in another root as yourself, with Linux
//! namespaces.
//!
//! Its one job: given a root directory (an environment of another
//! distribution, or an overlay of the running system), start a command in
//! it with host paths bind-mounted into it, the way distrorun does, without
//! any setuid program of kod's own:
//!
//! - a private mount namespace (mounts are slaves of the host's, so nothing
//!   mounted for the command is seen outside it); the root bind-mounted onto
//!   itself `nosuid`, so setuid programs in it gain nothing;
//! - [`HOST_DIRS`] (`/dev`, `/proc`, `/sys`, `/home`, `/tmp`, `/run`) and any
//!   other [`Bind`] mounted recursively at their place in the root; mount
//!   points are resolved inside the root (`openat2(RESOLVE_IN_ROOT)`), so a
//!   symlink in the root cannot send a mount elsewhere;
//! - [`Ids::Caller`]: the command runs with the caller's uid, gid and
//!   groups. Root needs no user namespace; an ordinary user gets one that
//!   maps their uid and gid to themselves, written by the child itself (no
//!   setuid helper). The kernel then shows every other group of the caller
//!   as `nogroup` (65534) inside, while access checks still use them;
//! - [`Ids::SubIdRoot`]: root of a user namespace where the caller's
//!   subordinate ids (/etc/subuid, /etc/subgid) are mapped by the system's
//!   `newuidmap`/`newgidmap`, so a package manager can chown files in a
//!   personal environment (mmdebstrap's unshare mode);
//! - optionally ([`Sandbox::pid_namespace`]) a PID namespace for what the
//!   command starts, whose init (forked in the child) dies with the
//!   command, so nothing it started outlives it;
//! - the caller's environment, working directory (at the same path inside
//!   the root, else `$HOME`, else `/`, with a note), terminal and process
//!   group; the command is a direct child whose exit status kod passes on
//!   ([`exit_code`]) and to which signals sent to kod are forwarded.
//!
//! How the child is made: `std::process::Command` forks, and a `pre_exec`
//! step runs a list of raw system calls prepared by the parent (unshare,
//! id maps, mounts, chroot, chdir; see `child`): no allocation between fork
//! and exec, so it is safe in a multi-threaded parent, and no second exec
//! of a helper, so a run costs one fork and one exec. The child reports a
//! failing step through a pipe, so errors name the step, the path and the
//! errno; when a user namespace is refused, [`userns::diagnose`] names the
//! sysctl that forbids it and how to allow it.
//!
//! It is also kod's one overlay mounter: [`Overlay::data`] builds an
//! overlayfs mount's data (paths escaped; `userxattr` and the options that
//! keep the upper layer a plain tree of changes when asked), and
//! [`OverlayMount::mount`] mounts it without allocating, for the sandbox's
//! child or any other process's `pre_exec`.
#![deny(missing_docs)]

mod binds;
mod child;
mod error;
mod idmap;
mod ids;
mod overlay;
mod prepared;
mod sandbox;
mod signals;
pub mod userns;

pub use binds::Bind;
pub use error::SandboxError;
pub use ids::{
    CALLER_ENV, Caller, IdRange, SubIds, in_user_namespace, parse_subid_file, user_name,
};
pub use overlay::{Overlay, OverlayMarks, OverlayMount};
pub use prepared::Prepared;
pub use sandbox::{HOST_DIRS, Ids, Sandbox, Workdir};
pub use signals::exit_code;
