//! `kod plan`.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{Cli, Json};
use crate::plan_view;

/// Evaluates the configuration, plans it and prints the plan.
pub fn run(cli: &Cli, json: Json) -> anyhow::Result<ExitCode> {
    let file = kod_config::locate(cli.config.as_deref())?;
    let config = kod_config::load(&file, &kod_config::EvalOptions::default())?;
    let plan = kod_plan::plan(&config).with_context(|| format!("planning {}", file.display()))?;
    if json.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{}", plan_view::render(&plan));
    }
    Ok(ExitCode::SUCCESS)
}
