//! Machine commands (`install`, `rebuild`, `generations --image`) mount
//! things: the shared store's directories into the generation being
//! built, an image's root. They run in a
//! private mount namespace of their own, so nothing they mount is seen
//! outside and a killed kod leaves no mount behind: kod starts itself
//! again as a child in a new mount namespace (made in the freshly forked
//! child, through kod-sandbox), which dies with it, and passes its exit
//! status on.

use std::process::{Command, ExitCode};

use crate::cli::Command as Sub;

/// Set in the child: it is in its namespace already.
const INSIDE: &str = "KOD_PRIVATE_MOUNTS";

/// Whether `command` needs its own mount namespace.
fn needs(command: &Sub) -> bool {
    match command {
        Sub::Install { .. } | Sub::Rebuild { .. } => true,
        // An image's root is mounted to read or change its generations.
        Sub::Generations { flags, .. } => flags.image.is_some(),
        _ => false,
    }
}

/// Runs this kod again in a private mount namespace when `command` needs
/// one and this process is not in it yet (and is root: without root, the
/// command fails with its own error); returns the child's exit status, or
/// `None` to go on here.
pub fn reenter(command: &Sub) -> Option<ExitCode> {
    if !needs(command)
        || std::env::var_os(INSIDE).is_some()
        || !kod_sandbox::Caller::current().is_root()
    {
        return None;
    }
    let mut cmd = Command::new("/proc/self/exe");
    cmd.args(std::env::args_os().skip(1)).env(INSIDE, "1");
    let ran = kod_sandbox::Sandbox::host()
        .die_with_parent(true)
        .prepare()
        .and_then(|p| p.run(cmd));
    Some(match ran {
        Ok(status) => ExitCode::from(kod_sandbox::exit_code(status)),
        Err(e) => {
            eprintln!("kod: error: cannot start in a private mount namespace: {e}");
            ExitCode::FAILURE
        }
    })
}
