//! The `kod` binary: parses the command line, calls the library crates,
//! prints their results. Nothing else lives here: each subcommand's glue is
//! a module of `commands`.

mod cli;
mod commands;
mod output;
mod plan_view;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The libraries' warnings (an unsigned or expired repository used
    // anyway, a stored index that could not be written) reach stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .without_time()
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kod: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Plan { json } => commands::plan::run(cli, *json),
        Command::Env { action } => commands::env::run(cli, action),
        Command::Pkg { action } => commands::pkg::run(cli, action),
        Command::Bootstrap {
            distro,
            dir,
            variant,
            include,
            mirror,
            dry_run,
            json,
        } => commands::bootstrap::run(
            cli,
            commands::bootstrap::Args {
                distro,
                dir,
                variant,
                include,
                mirror: mirror.as_deref(),
                dry_run: *dry_run,
                json: *json,
            },
        ),
        Command::Run {
            name,
            volume,
            command,
        } => commands::env::run_in(cli, name, volume, command),
        other => Ok(commands::not_implemented(other.name())),
    }
}
