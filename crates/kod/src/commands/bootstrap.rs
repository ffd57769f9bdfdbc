//! `kod bootstrap DISTRO:SUITE DIR`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use kod_engine::bootstrap::BootstrapPlan;
use kod_engine::sources::DistroSpec;
use serde::Serialize;

use crate::cli::{DryRun, Json};
use crate::context::Context;
use crate::output::human_bytes;

/// What `kod bootstrap` was asked.
pub struct Args<'a> {
    pub distro: &'a str,
    pub dir: &'a Path,
    pub variant: &'a str,
    pub include: &'a [String],
    pub mirror: Option<&'a str>,
    pub dry_run: DryRun,
    pub json: Json,
}

#[derive(Serialize)]
struct PlanOutput<'a> {
    distro: &'a str,
    variant: &'a str,
    dir: &'a Path,
    packages: Vec<kod_engine::bootstrap::PlannedPackage>,
    download_size: u64,
}

/// Resolves, then (without --dry-run) builds the root.
pub fn run(ctx: &Context, args: Args<'_>) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let spec = DistroSpec::parse(args.distro)?;
    let plan = BootstrapPlan::new(&spec, args.variant, args.include, args.mirror, &ctx.report)?;
    if args.dry_run.dry_run {
        let out = PlanOutput {
            distro: args.distro,
            variant: args.variant,
            dir: args.dir,
            packages: plan.packages(),
            download_size: plan.resolution.download_size,
        };
        if args.json.json {
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            let width = out.packages.iter().map(|p| p.name.len()).max().unwrap_or(0);
            for p in &out.packages {
                println!("{:width$}  {}  {}", p.name, p.version, p.architecture);
            }
            println!(
                "{} packages, {} to download; {} not touched (dry run)",
                out.packages.len(),
                human_bytes(out.download_size),
                args.dir.display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let options = super::pkg::install_options(ctx);
    let report = plan.run(args.dir, &options, &ctx.report)?;
    if args.json.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report.committed {
        eprintln!(
            "kod: {} {} root with {} packages in {} ({:.1} s)",
            args.distro,
            args.variant,
            report.packages,
            args.dir.display(),
            started.elapsed().as_secs_f64()
        );
    } else {
        eprintln!(
            "kod: debug run: commands printed, {} untouched",
            args.dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
