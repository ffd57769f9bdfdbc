//! The planner: the root as it will be after the changes planned so far,
//! and the rule that a change already true in the root is left out.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use kod_root::Root;
use rustix::fs::{FileType, Stat};

use crate::change::{Action, Change};
use crate::error::{Error, io_err};

/// Collects the changes of a plan over a root it only reads.
pub(crate) struct Planner<'r> {
    /// The target root.
    pub(crate) root: &'r Root,
    changes: Vec<Change>,
}

/// What a path is, in the root or after the planned changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    /// Nothing there.
    Absent,
    /// A regular file.
    File {
        /// Permission bits.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
    /// A directory.
    Dir {
        /// Permission bits.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
    /// A symlink and its target.
    Symlink(PathBuf),
    /// Anything else (a device, a socket).
    Other,
}

fn node_of(root: &Root, path: &Path, st: &Stat) -> Result<Node, Error> {
    let mode = st.st_mode & 0o7777;
    let (uid, gid) = (st.st_uid, st.st_gid);
    Ok(match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Node::File { mode, uid, gid },
        FileType::Directory => Node::Dir { mode, uid, gid },
        FileType::Symlink => Node::Symlink(read_link(root, path)?),
        _ => Node::Other,
    })
}

/// The target of the symlink `path` in the root.
pub(crate) fn read_link(root: &Root, path: &Path) -> Result<PathBuf, Error> {
    let (dir, name) = crate::apply::parent(root, path)?;
    let t = rustix::fs::readlinkat(&dir, name, Vec::new())
        .map_err(|e| io_err("read the link", root.show(path))(e.into()))?;
    Ok(PathBuf::from(std::ffi::OsStr::from_bytes(t.as_bytes())))
}

impl<'r> Planner<'r> {
    pub(crate) fn new(root: &'r Root) -> Self {
        Planner {
            root,
            changes: Vec::new(),
        }
    }

    pub(crate) fn finish(self) -> Vec<Change> {
        self.changes
    }

    /// The last planned change on `path`, if any.
    fn pending(&self, path: &Path) -> Option<&Action> {
        self.changes
            .iter()
            .rev()
            .map(|c| &c.action)
            .find(|a| a.path().is_some_and(|p| p == path))
    }

    /// What `path` is once the planned changes are made (the last
    /// component not followed).
    pub(crate) fn node(&self, path: &Path) -> Result<Node, Error> {
        match self.pending(path) {
            Some(Action::Write { mode, uid, gid, .. }) => {
                return Ok(Node::File {
                    mode: *mode,
                    uid: *uid,
                    gid: *gid,
                });
            }
            Some(Action::Dir { mode, uid, gid, .. }) => {
                return Ok(Node::Dir {
                    mode: *mode,
                    uid: *uid,
                    gid: *gid,
                });
            }
            Some(Action::Symlink { target, .. }) => return Ok(Node::Symlink(target.clone())),
            Some(Action::Remove { .. }) => return Ok(Node::Absent),
            _ => {}
        }
        match self
            .root
            .lstat(path)
            .map_err(io_err("look at", self.root.show(path)))?
        {
            None => Ok(Node::Absent),
            Some(st) => node_of(self.root, path, &st),
        }
    }

    /// The content of the file `path` once the planned changes are made
    /// (symlinks in the root followed inside it); `None` when absent.
    pub(crate) fn read(&self, path: &Path) -> Result<Option<Vec<u8>>, Error> {
        match self.pending(path) {
            Some(Action::Write { content, .. }) => return Ok(Some(content.clone())),
            Some(Action::Remove { .. }) => return Ok(None),
            _ => {}
        }
        self.root
            .read(path)
            .map_err(io_err("read", self.root.show(path)))
    }

    /// [`Planner::read`] as text (lossy).
    pub(crate) fn read_text(&self, path: &Path) -> Result<Option<String>, Error> {
        Ok(self
            .read(path)?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Whether `path` is (or will be) a directory, symlinks followed.
    pub(crate) fn is_dir(&self, path: &Path) -> Result<bool, Error> {
        if let Some(a) = self.pending(path) {
            return Ok(matches!(a, Action::Dir { .. }));
        }
        Ok(self
            .root
            .stat(path)
            .map_err(io_err("look at", self.root.show(path)))?
            .is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory))
    }

    /// Plans writing `content` to `path` unless it is there already with
    /// that mode and owner; true when a change was added.
    pub(crate) fn write(
        &mut self,
        key: &str,
        path: impl Into<PathBuf>,
        content: impl Into<Vec<u8>>,
        mode: u32,
        (uid, gid): (u32, u32),
    ) -> Result<bool, Error> {
        let path = path.into();
        let content = content.into();
        if self.node(&path)? == (Node::File { mode, uid, gid })
            && self.read(&path)?.as_deref() == Some(&content[..])
        {
            return Ok(false);
        }
        self.push(
            key,
            Action::Write {
                path,
                content,
                mode,
                uid,
                gid,
            },
        );
        Ok(true)
    }

    /// Plans the missing directories of `path` (itself included), each
    /// with `mode` and owner.
    pub(crate) fn dirs(
        &mut self,
        key: &str,
        path: &Path,
        mode: u32,
        (uid, gid): (u32, u32),
    ) -> Result<(), Error> {
        let mut done = PathBuf::from("/");
        for c in path.components().skip_while(|c| c.as_os_str() == "/") {
            done.push(c);
            if !self.is_dir(&done)? {
                self.push(
                    key,
                    Action::Dir {
                        path: done.clone(),
                        mode,
                        uid,
                        gid,
                    },
                );
            }
        }
        Ok(())
    }

    /// Plans the directory `path` with exactly `mode` and owner (its
    /// parents must exist or be planned).
    pub(crate) fn dir_exact(
        &mut self,
        key: &str,
        path: &Path,
        mode: u32,
        (uid, gid): (u32, u32),
    ) -> Result<(), Error> {
        if self.node(path)? != (Node::Dir { mode, uid, gid }) {
            self.push(
                key,
                Action::Dir {
                    path: path.to_path_buf(),
                    mode,
                    uid,
                    gid,
                },
            );
        }
        Ok(())
    }

    /// Plans the symlink `path -> target` unless it is there already.
    pub(crate) fn symlink(
        &mut self,
        key: &str,
        path: impl Into<PathBuf>,
        target: impl Into<PathBuf>,
        (uid, gid): (u32, u32),
    ) -> Result<bool, Error> {
        let path = path.into();
        let target = target.into();
        if self.node(&path)? == Node::Symlink(target.clone()) {
            return Ok(false);
        }
        self.push(
            key,
            Action::Symlink {
                path,
                target,
                uid,
                gid,
            },
        );
        Ok(true)
    }

    /// Plans running `argv` in the target.
    /// Removes the file or symlink `path`.
    pub(crate) fn remove(&mut self, key: &str, path: PathBuf) {
        self.changes.push(Change {
            key: key.into(),
            action: Action::Remove { path },
        });
    }

    pub(crate) fn run(&mut self, key: &str, argv: Vec<String>, why: impl Into<String>) {
        self.push(
            key,
            Action::Run {
                argv,
                why: why.into(),
            },
        );
    }

    /// Whether a change on `path` is planned.
    pub(crate) fn changes_path(&self, path: &Path) -> bool {
        self.pending(path).is_some()
    }

    /// The first of `candidates` that exists in the root (a program).
    pub(crate) fn program(&self, candidates: &[&str]) -> Result<Option<String>, Error> {
        for c in candidates {
            if self
                .root
                .stat(c)
                .map_err(io_err("look at", self.root.show(c)))?
                .is_some()
            {
                return Ok(Some((*c).to_string()));
            }
        }
        Ok(None)
    }

    fn push(&mut self, key: &str, action: Action) {
        self.changes.push(Change {
            key: key.to_string(),
            action,
        });
    }
}
