//! `kod plan`.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::Json;
use crate::context::Context;
use crate::plan_view;

/// Evaluates the configuration, plans it and prints the plan.
pub fn run(ctx: &Context, json: Json) -> anyhow::Result<ExitCode> {
    let c = ctx.configuration()?;
    let plan =
        kod_plan::plan(&c.config).with_context(|| format!("planning {}", c.file.display()))?;
    if json.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{}", plan_view::render(&plan));
    }
    Ok(ExitCode::SUCCESS)
}
