//! Overlay filesystems: the one place kod builds an overlayfs mount's data
//! (layers escaped, options for a plain upper layer and for `userxattr`)
//! and mounts it. The sandbox mounts one on its root; a transaction on an
//! existing root mounts one in a namespace of its own.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use rustix::mount::{MountFlags, MountPropagationFlags};
use rustix::thread::UnshareFlags;

use crate::error::{SandboxError, cpath};

/// Where overlayfs keeps its own marks (opaque directories, whiteouts'
/// redirects, copy-up origins) on the upper layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverlayMarks {
    /// `trusted.overlay.*`: the overlay is mounted by root of the host.
    #[default]
    Trusted,
    /// `user.overlay.*` (mount option `userxattr`, Linux 5.11 and later):
    /// the overlay is mounted by root of a user namespace, which may not
    /// touch trusted attributes.
    User,
}

/// An overlay filesystem: read-only lower layers under one writable upper
/// layer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Overlay {
    /// Read-only lower layers, uppermost first.
    pub lower: Vec<PathBuf>,
    /// The writable upper layer.
    pub upper: PathBuf,
    /// overlayfs's work directory (empty, same filesystem as `upper`).
    pub work: PathBuf,
    /// Where overlayfs keeps its marks on the upper layer.
    pub marks: OverlayMarks,
    /// Keep the upper layer a plain tree of the changes, which can be
    /// applied onto the lower layer by copying it: no directory redirects,
    /// no inode index, no metadata-only copy-ups (`redirect_dir=off`,
    /// `index=off`, `metacopy=off`; with `userxattr`, which refuses
    /// `redirect_dir=off`, `redirect_dir=nofollow`).
    pub plain_upper: bool,
}

impl Overlay {
    /// The mount's data: `lowerdir=L1:L2,upperdir=U,workdir=W`, then
    /// `userxattr` and the plain-upper options as asked. `\`, `,` and `:`
    /// in a path are escaped with a backslash (overlayfs splits its options
    /// at `,` and the lower layers at `:`); paths need not be UTF-8.
    pub fn data(&self) -> Result<CString, SandboxError> {
        let mut s = b"lowerdir=".to_vec();
        for (i, l) in self.lower.iter().enumerate() {
            if i > 0 {
                s.push(b':');
            }
            escape(l.as_os_str(), &mut s);
        }
        s.extend_from_slice(b",upperdir=");
        escape(self.upper.as_os_str(), &mut s);
        s.extend_from_slice(b",workdir=");
        escape(self.work.as_os_str(), &mut s);
        let options: &[u8] = match (self.marks, self.plain_upper) {
            (OverlayMarks::Trusted, false) => b"",
            (OverlayMarks::User, false) => b",userxattr",
            (OverlayMarks::Trusted, true) => b",redirect_dir=off,index=off,metacopy=off",
            (OverlayMarks::User, true) => {
                b",userxattr,redirect_dir=nofollow,index=off,metacopy=off"
            }
        };
        s.extend_from_slice(options);
        CString::new(s).map_err(|_| SandboxError::Root {
            root: self.upper.clone(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                "a layer path contains a NUL byte",
            ),
        })
    }

    /// This overlay, ready to be mounted on `target`.
    pub fn mount_on(&self, target: &Path) -> Result<OverlayMount, SandboxError> {
        Ok(OverlayMount {
            target: cpath(target)?,
            data: self.data()?,
            flags: MountFlags::empty(),
        })
    }
}

/// An overlay ready to be mounted: its target and data made into C strings
/// beforehand, so that [`OverlayMount::mount`] allocates nothing and may
/// run between fork and exec (in a `pre_exec`, after the child unshared its
/// mount namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayMount {
    target: CString,
    data: CString,
    flags: MountFlags,
}

impl OverlayMount {
    /// Mounts it `nosuid` when `nosuid` is true.
    pub fn nosuid(mut self, nosuid: bool) -> OverlayMount {
        self.flags.set(MountFlags::NOSUID, nosuid);
        self
    }

    /// The mount's data, as [`Overlay::data`] made it (for `-v` lines).
    pub fn data(&self) -> &CStr {
        &self.data
    }

    /// `mount -t overlay overlay -o DATA TARGET` in the calling process's
    /// mount namespace, with one system call and no allocation.
    pub fn mount(&self) -> io::Result<()> {
        self.mount_raw().map_err(io::Error::from)
    }

    /// Unshares the mount namespace of the calling process, makes every
    /// mount in it private, and mounts the overlay there: a mount nothing
    /// outside sees and that goes away with the last process in the
    /// namespace. No allocation.
    ///
    /// # Safety
    ///
    /// Only for a process with one thread: a child between fork and exec,
    /// in a `pre_exec` (unsharing in a threaded process leaves its other
    /// threads in the old namespace).
    pub unsafe fn mount_in_private_namespace(&self) -> io::Result<()> {
        // SAFETY: the caller promises a single-threaded process.
        unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNS)? };
        rustix::mount::mount_change(
            c"/",
            MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
        )?;
        self.mount()
    }

    /// [`OverlayMount::mount`] with the bare errno, for the child's steps.
    pub(crate) fn mount_raw(&self) -> Result<(), Errno> {
        rustix::mount::mount(
            c"overlay",
            self.target.as_c_str(),
            c"overlay",
            self.flags,
            Some(self.data.as_c_str()),
        )
    }
}

/// Appends `p` to `out` with overlayfs's separators escaped.
fn escape(p: &OsStr, out: &mut Vec<u8>) {
    for &b in p.as_bytes() {
        if matches!(b, b',' | b':' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(o: &Overlay) -> String {
        o.data().unwrap().into_string().unwrap()
    }

    #[test]
    fn overlay_options_escape_separators() {
        let o = Overlay {
            lower: vec!["/a".into(), "/b:c".into()],
            upper: "/u,p".into(),
            work: "/w\\".into(),
            ..Overlay::default()
        };
        assert_eq!(data(&o), r"lowerdir=/a:/b\:c,upperdir=/u\,p,workdir=/w\\");
    }

    #[test]
    fn plain_upper_and_userxattr_options() {
        let o = Overlay {
            lower: vec!["/root".into()],
            upper: "/t/upper".into(),
            work: "/t/work".into(),
            marks: OverlayMarks::Trusted,
            plain_upper: true,
        };
        let layers = "lowerdir=/root,upperdir=/t/upper,workdir=/t/work";
        assert_eq!(
            data(&o),
            format!("{layers},redirect_dir=off,index=off,metacopy=off")
        );
        let user = Overlay {
            marks: OverlayMarks::User,
            ..o.clone()
        };
        assert_eq!(
            data(&user),
            format!("{layers},userxattr,redirect_dir=nofollow,index=off,metacopy=off")
        );
        let user_only = Overlay {
            plain_upper: false,
            ..user
        };
        assert_eq!(data(&user_only), format!("{layers},userxattr"));
    }

    #[test]
    fn non_utf8_paths_are_kept_and_nul_bytes_refused() {
        let o = Overlay {
            lower: vec![PathBuf::from(OsStr::from_bytes(b"/l\xff"))],
            upper: "/u".into(),
            work: "/w".into(),
            ..Overlay::default()
        };
        assert_eq!(
            o.data().unwrap().as_bytes(),
            b"lowerdir=/l\xff,upperdir=/u,workdir=/w"
        );
        let nul = Overlay {
            upper: PathBuf::from(OsStr::from_bytes(b"/u\0p")),
            ..o
        };
        assert!(nul.data().unwrap_err().to_string().contains("NUL byte"));
        assert!(nul.mount_on(Path::new("/mnt")).is_err());
    }

    #[test]
    fn nosuid_sets_and_clears_the_flag() {
        let o = Overlay {
            lower: vec!["/l".into()],
            ..Overlay::default()
        };
        let m = o.mount_on(Path::new("/mnt")).unwrap().nosuid(true);
        assert_eq!(m.flags, MountFlags::NOSUID);
        assert_eq!(m.clone().nosuid(false).flags, MountFlags::empty());
        assert_eq!(m.data(), o.data().unwrap().as_c_str());
    }
}
