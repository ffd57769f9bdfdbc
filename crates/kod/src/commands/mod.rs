//! One module per subcommand: the glue between the command line and the
//! library crates.

pub mod bootstrap;
pub mod env;
pub mod generations;
pub mod install;
pub mod pkg;
pub mod plan;
pub mod rebuild;
pub mod shell;
pub mod vm;

use std::process::ExitCode;

/// Exit status of a command that exists but is not built yet.
const NOT_IMPLEMENTED: u8 = 2;

/// Says a command is not built yet and returns its exit status.
pub fn not_implemented(name: &str) -> ExitCode {
    eprintln!("kod {name}: not implemented yet (see `kod {name} --help` for what it will do)");
    ExitCode::from(NOT_IMPLEMENTED)
}
