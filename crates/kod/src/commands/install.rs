//! `kod install -c CONFIG --target TOP`: generation 0 of the configured
//! machine on a mounted Btrfs top level. Disks and images come with their
//! own issue: without `--target` the command is not built yet.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use kod_engine::machine::MachinePlan;
use serde::Serialize;

use crate::cli::{DryRun, Json};
use crate::context::Context;
use crate::output::human_bytes;

#[derive(Serialize)]
struct DryRunOutput<'a> {
    target: &'a Path,
    generation: u64,
    packages: Vec<kod_engine::bootstrap::PlannedPackage>,
    download_size: u64,
    /// Files kod writes besides what settling writes.
    files: Vec<String>,
    /// What settling will set in the new root, by configuration key.
    settings: Vec<String>,
    enabled_services: Vec<&'a String>,
}

/// `KEY = VALUE` for each setting the plan gives the new root.
fn settings(plan: &kod_plan::Plan) -> Vec<String> {
    let l = &plan.locale;
    let mut out = Vec::new();
    let mut set = |key: &str, value: Option<&String>| {
        if let Some(v) = value {
            out.push(format!("{key} = {v}"));
        }
    };
    set("locale.locale.default", l.default.as_ref());
    set("locale.keymap", l.keymap.as_ref());
    set("locale.timezone", l.timezone.as_ref());
    set("network.hostname", Some(&plan.network.hostname));
    for (login, user) in &plan.users {
        out.push(format!(
            "users.{login} (password: {}, groups: {})",
            user.password,
            user.groups.join(" ")
        ));
    }
    out
}

/// Plans, then (without --dry-run) installs generation 0 on `target`.
pub fn run(ctx: &Context, target: &Path, dry_run: DryRun, json: Json) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let configuration = ctx.configuration()?;
    let plan = kod_plan::plan(&configuration.config)?;
    let machine = MachinePlan::new(
        configuration.config.clone(),
        configuration.files.clone(),
        plan,
        &ctx.report,
    )?;
    if dry_run.dry_run {
        let out = DryRunOutput {
            target,
            generation: 0,
            packages: machine.packages(),
            download_size: machine.resolution.download_size,
            files: machine.own_files(),
            settings: settings(&machine.plan),
            enabled_services: machine.plan.services.system.keys().collect(),
        };
        if json.json {
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            let width = out.packages.iter().map(|p| p.name.len()).max().unwrap_or(0);
            for p in &out.packages {
                println!("{:width$}  {}  {}", p.name, p.version, p.architecture);
            }
            for f in &out.files {
                println!("write {f}");
            }
            for s in &out.settings {
                println!("set {s}");
            }
            for unit in &out.enabled_services {
                println!("enable {unit}");
            }
            println!(
                "generation 0: {} packages, {} to download; {} not touched (dry run)",
                out.packages.len(),
                human_bytes(out.download_size),
                target.display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let options = super::pkg::install_options(ctx);
    let report = machine.install(target, &options, &ctx.report)?;
    if json.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !report.committed {
        eprintln!(
            "kod: debug run: commands printed, {} untouched",
            target.display()
        );
    } else {
        eprintln!(
            "kod: generation {} with {} packages in {} ({:.1} s), the default",
            report.generation,
            report.packages,
            report.rootfs.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}
