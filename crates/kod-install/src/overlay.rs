//! The copy-on-write view a transaction on an existing root works in: an
//! overlayfs whose lower layer is the root and whose upper layer is a
//! directory next to it. The overlay is mounted in a mount namespace of its
//! own, held by a helper process (`cat` reading a pipe from kod); kod and
//! the chrooted commands reach it through `/proc/PID/root`. When kod drops
//! the pipe (commit, rollback, or kod killed), the helper exits, the
//! namespace dies and the overlay is gone: no mount is ever left behind.
//! Committing moves the upper layer onto the root ([`crate::tree::apply`]);
//! rolling back deletes it. The root itself is never written before the
//! commit.
//!
//! As root of a user namespace (a personal environment changed from the
//! caller's subordinate ids) the overlay is mounted with `userxattr`
//! (Linux 5.11 and later): overlayfs then keeps its marks in
//! `user.overlay.*` attributes, since `trusted.*` ones are out of reach
//! there ([`Marks`]).

use std::ffi::CStr;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use kod_report::Report;
use kod_sandbox::{Overlay, OverlayMarks};
use rustix::fs::{Mode, OFlags};

use crate::error::{Error, io_error};

/// Where overlayfs keeps its own marks (opaque directories, copy-up
/// origins) on the upper layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marks {
    /// `trusted.overlay.*`: kod is root of the host.
    Trusted,
    /// `user.overlay.*` (mount option `userxattr`): kod is root of a user
    /// namespace, which may not touch trusted attributes.
    User,
}

/// The file in a transaction's directory that says its overlay kept its
/// marks in `user.overlay.*`, for a later run that completes its commit.
pub(crate) const USER_MARKS_FILE: &str = "user-xattr";

impl Marks {
    /// The marks of an overlay mounted by root of the host, or
    /// `in_user_namespace`.
    pub(crate) fn for_namespace(in_user_namespace: bool) -> Marks {
        if in_user_namespace {
            Marks::User
        } else {
            Marks::Trusted
        }
    }

    /// The marks of the transaction directory `txn`, as [`Holder::start`]
    /// recorded them.
    pub(crate) fn of(txn: &Path) -> Marks {
        if txn.join(USER_MARKS_FILE).exists() {
            Marks::User
        } else {
            Marks::Trusted
        }
    }

    /// The prefix of overlayfs's attributes.
    pub(crate) fn prefix(self) -> &'static [u8] {
        match self {
            Marks::Trusted => b"trusted.overlay.",
            Marks::User => b"user.overlay.",
        }
    }

    /// The attribute that marks a directory opaque.
    pub(crate) fn opaque(self) -> &'static CStr {
        match self {
            Marks::Trusted => c"trusted.overlay.opaque",
            Marks::User => c"user.overlay.opaque",
        }
    }
}

/// The helper process holding the overlay's mount namespace.
#[derive(Debug)]
pub(crate) struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
    ns: OwnedFd,
    /// Where kod reaches the overlay: `/proc/PID/root/.../merged`.
    view: PathBuf,
    /// The overlay's mount point in the helper's namespace.
    merged: PathBuf,
}

impl Holder {
    /// Mounts `lower` + `upper` (with `work`) at `merged`, in a new mount
    /// namespace held by a helper process, keeping overlayfs's marks as
    /// `marks` says.
    pub(crate) fn start(
        lower: &Path,
        upper: &Path,
        work: &Path,
        merged: &Path,
        marks: Marks,
        report: &Report,
    ) -> Result<Holder, Error> {
        let overlay = Overlay {
            lower: vec![lower.to_path_buf()],
            upper: upper.to_path_buf(),
            work: work.to_path_buf(),
            marks: match marks {
                Marks::Trusted => OverlayMarks::Trusted,
                Marks::User => OverlayMarks::User,
            },
            // The upper layer is applied onto the root at commit.
            plain_upper: true,
        };
        let mount = overlay.mount_on(merged).map_err(|e| Error::Target {
            root: lower.to_path_buf(),
            reason: e.to_string(),
        })?;
        report.verbose(|| {
            format!(
                "+ unshare --mount --propagation private mount -t overlay overlay -o {} {} \
                 (held by a helper process; gone when it exits)",
                mount.data().to_string_lossy(),
                merged.display()
            )
        });
        let mut cmd = Command::new("cat");
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: the child between fork and exec has one thread, and the
        // mount allocates nothing.
        unsafe {
            cmd.pre_exec(move || mount.mount_in_private_namespace());
        }
        let needs = match marks {
            Marks::Trusted => "kod needs root and a kernel with overlayfs",
            Marks::User => {
                "in a user namespace kod needs Linux 5.11 or later (overlayfs with userxattr) \
                 and a file system with user extended attributes under the environment"
            }
        };
        let mut child = cmd.spawn().map_err(|e| Error::Target {
            root: lower.to_path_buf(),
            reason: format!(
                "cannot mount the transaction's overlay (lower {}, upper {}) in a private mount \
                 namespace: {e}; {needs}",
                lower.display(),
                upper.display()
            ),
        })?;
        let stdin = child.stdin.take();
        let pid = child.id();
        let ns = rustix::fs::open(
            format!("/proc/{pid}/ns/mnt").as_str(),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            io_error(
                "open the mount namespace of the overlay helper",
                format!("/proc/{pid}/ns/mnt"),
            )(e.into())
        })?;
        let rel = merged.strip_prefix("/").unwrap_or(merged);
        Ok(Holder {
            child,
            stdin,
            ns,
            view: Path::new("/proc")
                .join(pid.to_string())
                .join("root")
                .join(rel),
            merged: merged.to_path_buf(),
        })
    }

    /// The overlay as kod reaches it.
    pub(crate) fn view(&self) -> &Path {
        &self.view
    }

    /// The overlay's mount point inside the helper's namespace.
    pub(crate) fn merged(&self) -> &Path {
        &self.merged
    }

    /// A descriptor of the helper's mount namespace, for commands to enter.
    pub(crate) fn namespace(&self) -> Result<OwnedFd, Error> {
        self.ns.try_clone().map_err(io_error(
            "duplicate the namespace descriptor of",
            &self.view,
        ))
    }

    /// Ends the helper and waits for it: the namespace and the overlay go
    /// away with it.
    pub(crate) fn stop(mut self) {
        self.end();
    }

    fn end(&mut self) {
        drop(self.stdin.take());
        if self.child.try_wait().ok().flatten().is_none() {
            // `cat` ends at end of input; kill it anyway if it lingers.
            let _ = self.child.wait();
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.end();
    }
}
