//! `kod env` and `kod run`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::{Cli, EnvAction};

/// `kod env ACTION`.
pub fn run(_cli: &Cli, _action: &EnvAction) -> anyhow::Result<ExitCode> {
    Ok(super::not_implemented("env"))
}

/// `kod run NAME [--volume PATH]... -- CMD...`.
pub fn run_in(
    _cli: &Cli,
    _name: &str,
    _volumes: &[PathBuf],
    _command: &[String],
) -> anyhow::Result<ExitCode> {
    Ok(super::not_implemented("run"))
}
