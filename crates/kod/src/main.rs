//! The `kod` binary: parses the command line, calls the library crates,
//! prints their results. Nothing else lives here.

mod cli;
mod plan_view;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use cli::{Cli, Command};

/// Exit status of a command that exists but is not built yet.
const NOT_IMPLEMENTED: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        Command::Plan { json } => {
            let plan = plan(cli)?;
            if json.json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                print!("{}", plan_view::render(&plan));
            }
            Ok(ExitCode::SUCCESS)
        }
        other => {
            eprintln!(
                "kod {}: not implemented yet (see `kod {} --help` for what it will do)",
                other.name(),
                other.name()
            );
            Ok(ExitCode::from(NOT_IMPLEMENTED))
        }
    }
}

/// Evaluates the configuration named by `-c` (or the default locations)
/// and plans it.
fn plan(cli: &Cli) -> anyhow::Result<kod_plan::Plan> {
    let file = kod_config::locate(cli.config.as_deref())?;
    let config = kod_config::load(&file, &kod_config::EvalOptions::default())?;
    kod_plan::plan(&config).with_context(|| format!("planning {}", file.display()))
}
