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

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, MountPropagationFlags};
use rustix::thread::UnshareFlags;

use crate::Options;
use crate::error::{Error, io_error};

/// Escapes a path for an overlayfs mount option (`\`, `,` and `:` are
/// special there).
fn escape(p: &Path) -> Result<String, Error> {
    let s = p.to_str().ok_or_else(|| Error::Target {
        root: p.to_path_buf(),
        reason: "the path is not UTF-8, which an overlay mount cannot be given".into(),
    })?;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | ':') {
            out.push('\\');
        }
        out.push(c);
    }
    Ok(out)
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
    /// namespace held by a helper process.
    pub(crate) fn start(
        lower: &Path,
        upper: &Path,
        work: &Path,
        merged: &Path,
        options: &Options,
    ) -> Result<Holder, Error> {
        let data = format!(
            "lowerdir={},upperdir={},workdir={},redirect_dir=off,index=off,metacopy=off",
            escape(lower)?,
            escape(upper)?,
            escape(work)?
        );
        if options.verbose || options.debug {
            eprintln!(
                "+ unshare --mount --propagation private mount -t overlay overlay -o {data} {} \
                 (held by a helper process; gone when it exits)",
                merged.display()
            );
        }
        let data = CString::new(data).map_err(|_| Error::Target {
            root: lower.to_path_buf(),
            reason: "the path holds a NUL byte".into(),
        })?;
        let target = CString::new(merged.as_os_str().as_bytes()).map_err(|_| Error::Target {
            root: lower.to_path_buf(),
            reason: "the path holds a NUL byte".into(),
        })?;
        let mut cmd = Command::new("cat");
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only system calls on data prepared before the fork.
        unsafe {
            cmd.pre_exec(move || {
                rustix::thread::unshare_unsafe(UnshareFlags::NEWNS)?;
                rustix::mount::mount_change(
                    c"/",
                    MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
                )?;
                rustix::mount::mount(
                    c"overlay",
                    target.as_c_str(),
                    c"overlay",
                    MountFlags::empty(),
                    Some(data.as_c_str()),
                )?;
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| Error::Target {
            root: lower.to_path_buf(),
            reason: format!(
                "cannot mount the transaction's overlay (lower {}, upper {}) in a private mount \
                 namespace: {e}; kod needs root and a kernel with overlayfs",
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
