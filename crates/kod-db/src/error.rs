//! What can go wrong in a package database's steps, on what, and what to
//! do about it.

use std::fmt;
use std::io;
use std::path::PathBuf;

use kod_unpack::UnpackError;

/// A dependency of an installed package that a removal would leave
/// unsatisfied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The installed package that would break.
    pub package: String,
    /// The field (`Depends` or `Pre-Depends`).
    pub field: &'static str,
    /// The dependency as written (`libc6 (>= 2.34) | foo`).
    pub dependency: String,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}: {})", self.package, self.field, self.dependency)
    }
}

/// How many broken dependencies a [`Error::WouldBreak`] message lists.
const BROKEN_SHOWN: usize = 10;

/// The first [`BROKEN_SHOWN`] of `broken`, then how many more there are.
fn list_broken(broken: &[Broken]) -> String {
    let mut s = broken
        .iter()
        .take(BROKEN_SHOWN)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if broken.len() > BROKEN_SHOWN {
        s.push_str(&format!(" and {} more", broken.len() - BROKEN_SHOWN));
    }
    s
}

/// The last lines a failed command printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output(pub Vec<String>);

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(it printed nothing)");
        }
        for l in &self.0 {
            write!(f, "\n    {l}")?;
        }
        Ok(())
    }
}

/// A step of a package database failed. The transaction it belongs to
/// leaves the target as it was.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another program (apt or dpkg) uses the root's dpkg database and
    /// the caller asked not to wait.
    #[error(
        "another program (apt or dpkg) is using the dpkg database of {root} (lock {lock}); \
         wait until it is done, or let kod wait for it"
    )]
    DpkgLocked {
        /// The target root.
        root: PathBuf,
        /// dpkg's frontend lock file.
        lock: PathBuf,
    },
    /// A system call on a path failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done (`create`, `read`, `rename`, ...).
        op: String,
        /// The path it was done on.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// The target is not something this operation can work on.
    #[error("{root}: {reason}")]
    Target {
        /// The target root.
        root: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A package's control data is unusable.
    #[error("package {package} ({archive}): {reason}")]
    Package {
        /// The package (or the archive's file name).
        package: String,
        /// The archive.
        archive: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Unpacking failed (the unpack error names the package, the member,
    /// the entry and the reason).
    #[error("{0}")]
    Unpack(Box<UnpackError>),
    /// A new package ships a file that an installed package owns, without
    /// declaring `Replaces` on it.
    #[error(
        "file conflict: {package} ships {path}, which installed package {owner} owns, and \
         {package} does not declare Replaces on {owner}; remove {owner} first, or install a \
         version of {package} that replaces it"
    )]
    FileConflict {
        /// The new package.
        package: String,
        /// The path (as in the packages' file lists).
        path: String,
        /// The installed package that owns it.
        owner: String,
    },
    /// An external command (a maintainer script, dpkg) failed.
    #[error(
        "{step} failed: `{command}` {status}{}; last lines of its output:{output}\n\
         the target was left as it was before the transaction; fix the package or its \
         dependencies and run again",
        if .packages.is_empty() { String::new() } else { format!(" (failing: {})", .packages.join(", ")) }
    )]
    Command {
        /// The step (`preinst of base-passwd`, `configuring`, `removing`).
        step: String,
        /// The command as run (inside the target's chroot).
        command: String,
        /// How it ended (`exited with status 1`, `was killed by signal 9`).
        status: String,
        /// The packages dpkg reported as failing, with their script and
        /// exit status when it said so.
        packages: Vec<String>,
        /// Its last lines of output.
        output: Output,
    },
    /// Packages asked to be removed are not installed.
    #[error("cannot remove {}: not installed in {root}", .packages.join(", "))]
    NotInstalled {
        /// The target root.
        root: PathBuf,
        /// The names.
        packages: Vec<String>,
    },
    /// Essential or protected packages would be removed.
    #[error(
        "refusing to remove {}: Essential or Protected, the system needs them",
        .packages.join(", ")
    )]
    Essential {
        /// The packages.
        packages: Vec<String>,
    },
    /// Removing the packages would leave installed packages with unmet
    /// dependencies.
    #[error(
        "removing {} would break {}; remove those too (--with-dependents), or keep {}",
        .requested.join(", "),
        list_broken(.broken),
        if .requested.len() == 1 { "it" } else { "them" }
    )]
    WouldBreak {
        /// The packages asked for.
        requested: Vec<String>,
        /// What would break.
        broken: Vec<Broken>,
    },
}

impl From<UnpackError> for Error {
    fn from(e: UnpackError) -> Self {
        Error::Unpack(Box::new(e))
    }
}

/// Builds an [`Error::Io`] from what was done (`op`) on `path`.
pub fn io_error(
    op: impl Into<String>,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> Error {
    let op = op.into();
    let path = path.into();
    move |source| Error::Io { op, path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn would_break(n: usize) -> String {
        Error::WouldBreak {
            requested: vec!["libfoo".into()],
            broken: (0..n)
                .map(|i| Broken {
                    package: format!("p{i}"),
                    field: "Depends",
                    dependency: "libfoo".into(),
                })
                .collect(),
        }
        .to_string()
    }

    #[test]
    fn would_break_names_the_flag_and_lists_at_most_ten() {
        assert_eq!(
            would_break(2),
            "removing libfoo would break p0 (Depends: libfoo), p1 (Depends: libfoo); remove \
             those too (--with-dependents), or keep it"
        );
        let many = would_break(13);
        assert!(
            many.contains("p9 (Depends: libfoo) and 3 more; remove those too (--with-dependents)"),
            "{many}"
        );
        assert!(!many.contains("p10"), "{many}");
        assert!(many.contains("p0 (Depends: libfoo), "), "{many}");
        assert!(!would_break(10).contains("more"));
    }
}
