//! What can go wrong while setting up a sandbox or running in it.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::userns::Blocked;

/// A sandbox could not be set up, or its command could not be run.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The root directory cannot be used.
    #[error("the root {root} cannot be used: {source}")]
    Root {
        /// The root.
        root: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A mount target inside the root is unusable.
    #[error("cannot mount {source_path} on {target} inside {root}: {problem}")]
    Target {
        /// The host path to bind.
        source_path: PathBuf,
        /// The path inside the root.
        target: PathBuf,
        /// The root.
        root: PathBuf,
        /// What is wrong and what to do.
        problem: String,
    },
    /// A step of the namespace set-up failed in the child.
    #[error("setting up the namespace failed: could not {step}: {source}")]
    Step {
        /// What the step does, with its paths.
        step: String,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// The host forbids unprivileged user namespaces.
    #[error("{0}")]
    UserNamespaces(Blocked),
    /// The caller has no subordinate ids.
    #[error(
        "{file} {problem}, so {user} cannot own the many users of a distribution's root without \
         root; ask an administrator to run `usermod --add-subuids 100000-165535 \
         --add-subgids 100000-165535 YOUR_LOGIN` (with a range no other user has)"
    )]
    SubIds {
        /// /etc/subuid or /etc/subgid.
        file: PathBuf,
        /// What is wrong with it.
        problem: String,
        /// The user, for the message.
        user: String,
    },
    /// `newuidmap` or `newgidmap` failed.
    #[error(
        "`{command}` failed: {detail}; check that the uidmap package is installed \
         (it provides newuidmap and newgidmap, setuid root) and that /etc/subuid and \
         /etc/subgid grant you these ranges"
    )]
    IdMap {
        /// The command line.
        command: String,
        /// Its exit status and error output.
        detail: String,
    },
    /// The command could not be started.
    #[error("cannot run {program} in {root}: {source}")]
    Exec {
        /// The program as given.
        program: String,
        /// The root it was looked for in (`the host` without one).
        root: String,
        /// The system error (`NotFound`: no such program there).
        #[source]
        source: io::Error,
    },
    /// Waiting for the command, or handling signals while waiting, failed.
    #[error("while waiting for {program}: {source}")]
    Wait {
        /// The program.
        program: String,
        /// The system error.
        #[source]
        source: io::Error,
    },
}

/// A failed set-up step of the parent, in words.
pub(crate) fn step_error(step: &str, e: impl Into<io::Error>) -> SandboxError {
    SandboxError::Step {
        step: step.to_string(),
        source: e.into(),
    }
}

/// `p` as a C string for a system call.
pub(crate) fn cpath(p: &Path) -> Result<CString, SandboxError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| SandboxError::Root {
        root: p.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "the path contains a NUL byte"),
    })
}
