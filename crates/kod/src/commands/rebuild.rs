//! `kod rebuild -n [--target TOP] [-u] [--dry-run] [--json]`: the
//! machine's next generation from its configuration, beside the default
//! one, made the default (the next boot's). The running system, or the
//! offline default generation, is only read.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use kod_engine::rebuild::{PackageChange, RebuildPlan};
use kod_gen::RecordDiff;
use serde::Serialize;

use crate::context::Context;

/// The command line of `kod rebuild`.
pub struct Args<'a> {
    /// `--target TOP`.
    pub target: Option<&'a Path>,
    /// `-n`.
    pub new_generation: bool,
    /// `-u`.
    pub update: bool,
    /// `--dry-run`.
    pub dry_run: bool,
    /// `--json`.
    pub json: bool,
}

#[derive(Serialize)]
struct Output<'a> {
    /// The default generation the rebuild starts from.
    from: u64,
    /// The generation made (none for a dry run or when nothing changes).
    generation: Option<u64>,
    /// Whether the next generation would equal the default.
    unchanged: bool,
    dry_run: bool,
    packages: &'a [PackageChange],
    /// What settling writes or runs (planned against the default's root;
    /// null when it is planned once the packages are in).
    settle: Option<&'a [String]>,
    diff: &'a RecordDiff,
}

/// Plans the rebuild and, unless it is a dry run or changes nothing,
/// builds the new generation.
pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    if !args.new_generation {
        eprintln!(
            "kod rebuild: changing the running generation in place (without -n) is not \
             implemented yet; use -n to build a new generation beside it"
        );
        return Ok(ExitCode::from(super::NOT_IMPLEMENTED));
    }
    let (top, _running) = super::generations::machine(ctx, args.target)?;
    // Dry runs take nothing (they change nothing); a rebuild holds the
    // machine lock from planning to the default pointer.
    let lock = if args.dry_run {
        None
    } else {
        let lock = super::generations::lock(ctx, &top, "rebuild")?;
        // Also when this run turns out to change nothing.
        kod_engine::machine::remove_leftovers(&top, &ctx.report)?;
        Some(lock)
    };
    let configuration = ctx.configuration()?;
    let plan = kod_plan::plan(&configuration.config)?;
    let rebuild = RebuildPlan::new(
        &top,
        configuration.config.clone(),
        configuration.files.clone(),
        plan,
        args.update,
        &ctx.report,
    )?;
    let unchanged = rebuild.is_noop();
    let mut out = Output {
        from: rebuild.from,
        generation: None,
        unchanged,
        dry_run: args.dry_run,
        packages: &rebuild.packages,
        settle: rebuild.settle.as_deref(),
        diff: &rebuild.diff,
    };
    if args.dry_run || unchanged {
        if args.json {
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            print!("{}", text(&out));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(lock) = lock else {
        unreachable!("taken for every run that builds")
    };
    let options = super::pkg::install_options(ctx);
    let made = rebuild.build(&top, &lock, &options, &ctx.report)?;
    if !made.committed {
        eprintln!(
            "kod: debug run: commands printed, {} untouched",
            top.path().display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    out.generation = Some(made.generation);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", text(&out));
        eprintln!(
            "kod: generation {} with {} packages in {} ({:.1} s), the default; generation {} \
             is unchanged (changes made to its /etc from now on will not reach {})",
            made.generation,
            made.packages,
            made.rootfs.display(),
            started.elapsed().as_secs_f64(),
            rebuild.from,
            made.generation,
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What the rebuild changes, for people.
fn text(out: &Output) -> String {
    let mut s = String::new();
    if out.unchanged {
        s.push_str(&format!(
            "nothing to do: the configuration gives generation {} again; no generation made\n",
            out.from
        ));
        return s;
    }
    let width = out.packages.iter().map(|p| p.name.len()).max().unwrap_or(0);
    for p in out.packages {
        let versions = match (&p.from, &p.to) {
            (Some(f), Some(t)) => format!("{f} -> {t}"),
            (None, Some(t)) => t.clone(),
            (Some(f), None) => f.clone(),
            (None, None) => String::new(),
        };
        s.push_str(&format!("{:9} {:width$}  {versions}\n", p.action, p.name));
    }
    for u in &out.diff.services.enabled {
        s.push_str(&format!("enable    {u}\n"));
    }
    for u in &out.diff.services.disabled {
        s.push_str(&format!("disable   {u}\n"));
    }
    for u in &out.diff.users.added {
        s.push_str(&format!("add user  {u}\n"));
    }
    for u in &out.diff.users.removed {
        s.push_str(&format!("remove user {u} (the home stays in /home)\n"));
    }
    for u in &out.diff.users.changed {
        s.push_str(&format!(
            "change    user {}: {}\n",
            u.name,
            u.fields.join(", ")
        ));
    }
    match out.settle {
        Some(changes) => {
            for c in changes {
                s.push_str(&format!("settle    {c}\n"));
            }
        }
        None => s.push_str("settle    (planned on the new root once its packages are in)\n"),
    }
    if out.dry_run {
        s.push_str(&format!(
            "generation {} would become the default; nothing changed (dry run)\n",
            out.from + 1
        ));
    }
    s
}
