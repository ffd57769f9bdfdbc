//! Paths relative to a root.

use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

/// `path` as a relative path without `.`, empty or `..` components (a
/// leading `/` is dropped): `None` when it has a `..`. For paths that name
/// something inside a root and must not climb (archive entries, paths read
/// from files).
pub fn relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// The parent (empty for the top) and the last component of `rel` (a
/// leading `/` is ignored); `None` when it has no last component (empty,
/// `/`, or ending in `..`).
pub fn split(rel: &Path) -> Option<(&Path, &OsStr)> {
    let rel = inside(rel);
    Some((rel.parent().unwrap_or(Path::new("")), rel.file_name()?))
}

/// `rel` without its leading `/`: paths beneath a root are relative to it.
pub(crate) fn inside(rel: &Path) -> &Path {
    rel.strip_prefix("/").unwrap_or(rel)
}

/// `rel` as openat2 takes it: `.` for the top.
pub(crate) fn dot(rel: &Path) -> &Path {
    let rel = inside(rel);
    if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_drop_roots_and_refuse_dotdot() {
        assert_eq!(
            relative(Path::new("/etc/passwd")).unwrap(),
            Path::new("etc/passwd")
        );
        assert_eq!(relative(Path::new("./a/./b/")).unwrap(), Path::new("a/b"));
        assert_eq!(relative(Path::new("/")).unwrap(), Path::new(""));
        assert!(relative(Path::new("a/../b")).is_none());
    }

    #[test]
    fn split_gives_parent_and_name() {
        let s = |p: &str| split(Path::new(p)).map(|(a, b)| (a.to_path_buf(), b.to_owned()));
        assert_eq!(s("etc/passwd"), Some(("etc".into(), "passwd".into())));
        assert_eq!(s("/etc/passwd"), Some(("etc".into(), "passwd".into())));
        assert_eq!(s("passwd"), Some(("".into(), "passwd".into())));
        assert_eq!(s("/"), None);
        assert_eq!(s(""), None);
        assert_eq!(s("a/.."), None);
        assert_eq!(dot(Path::new("/")), Path::new("."));
        assert_eq!(dot(Path::new("/usr/bin")), Path::new("usr/bin"));
    }
}
