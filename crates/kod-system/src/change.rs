//! One change settling makes to a root, and how it is shown.

use std::fmt;
use std::path::PathBuf;

/// One change to the target, with the configuration key it comes from.
#[derive(Clone, PartialEq, Eq)]
pub struct Change {
    /// The configuration key that asks for it (`locale.keymap`,
    /// `users.ann.ssh_authorized`).
    pub key: String,
    /// What is done.
    pub action: Action,
}

/// What a [`Change`] does. Paths are absolute paths inside the root.
#[derive(Clone, PartialEq, Eq)]
pub enum Action {
    /// Replace the file `path` (atomically) with `content`, mode exactly
    /// `mode`, owned by `uid:gid`. Its directory exists or is created by
    /// an earlier change.
    Write {
        /// The file.
        path: PathBuf,
        /// Its bytes.
        content: Vec<u8>,
        /// Permission bits.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
    /// Create the directory `path` (or fix its mode and owner).
    Dir {
        /// The directory.
        path: PathBuf,
        /// Permission bits.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
    /// Make `path` a symlink to `target`, replacing what is there.
    Symlink {
        /// The link.
        path: PathBuf,
        /// What it points to, as written into the link.
        target: PathBuf,
        /// Owner of the link itself.
        uid: u32,
        /// Group of the link itself.
        gid: u32,
    },
    /// Remove the file or symlink `path`.
    Remove {
        /// The path.
        path: PathBuf,
    },
    /// Run `argv` in the target (`argv[0]` an absolute path there).
    Run {
        /// Program and arguments.
        argv: Vec<String>,
        /// What it is for, for messages.
        why: String,
    },
}

impl Action {
    /// The path a file-system action works on; `None` for a command.
    pub fn path(&self) -> Option<&PathBuf> {
        match self {
            Action::Write { path, .. }
            | Action::Dir { path, .. }
            | Action::Symlink { path, .. }
            | Action::Remove { path } => Some(path),
            Action::Run { .. } => None,
        }
    }
}

/// File contents shown in `Debug`: text as text, up to a length.
struct Shown<'a>(&'a [u8]);

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 2000;
        let text = String::from_utf8_lossy(&self.0[..self.0.len().min(MAX)]);
        write!(f, "{text:?}")?;
        if self.0.len() > MAX {
            write!(f, " (+{} bytes)", self.0.len() - MAX)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Write {
                path,
                content,
                mode,
                uid,
                gid,
            } => f
                .debug_struct("Write")
                .field("path", path)
                .field("content", &Shown(content))
                .field("mode", &format_args!("{mode:04o}"))
                .field("uid", uid)
                .field("gid", gid)
                .finish(),
            Action::Dir {
                path,
                mode,
                uid,
                gid,
            } => f
                .debug_struct("Dir")
                .field("path", path)
                .field("mode", &format_args!("{mode:04o}"))
                .field("uid", uid)
                .field("gid", gid)
                .finish(),
            Action::Symlink {
                path,
                target,
                uid,
                gid,
            } => f
                .debug_struct("Symlink")
                .field("path", path)
                .field("target", target)
                .field("uid", uid)
                .field("gid", gid)
                .finish(),
            Action::Remove { path } => f.debug_struct("Remove").field("path", path).finish(),
            Action::Run { argv, why } => f
                .debug_struct("Run")
                .field("argv", argv)
                .field("why", why)
                .finish(),
        }
    }
}

impl fmt::Debug for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Change")
            .field("key", &self.key)
            .field("action", &self.action)
            .finish()
    }
}

/// One line for `--dry-run`: what is done, on what, and why.
impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.action {
            Action::Write {
                path,
                content,
                mode,
                uid,
                gid,
            } => write!(
                f,
                "write {} ({} bytes, {mode:04o}, {uid}:{gid})",
                path.display(),
                content.len()
            )?,
            Action::Dir {
                path,
                mode,
                uid,
                gid,
            } => write!(f, "directory {} ({mode:04o}, {uid}:{gid})", path.display())?,
            Action::Symlink { path, target, .. } => {
                write!(f, "symlink {} -> {}", path.display(), target.display())?
            }
            Action::Remove { path } => write!(f, "remove {}", path.display())?,
            Action::Run { argv, why } => write!(f, "run `{}` ({why})", argv.join(" "))?,
        }
        write!(f, "  [{}]", self.key)
    }
}
