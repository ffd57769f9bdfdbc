//! `kod rebuild [-n] [--target TOP] [-u] [--dry-run] [--json]`: the
//! machine's next generation from its configuration, made the default
//! (the next boot's). With `-n` it is built beside the default one, which
//! (and the running system) is only read; without, the current root
//! itself is changed and its state before is kept under its number
//! ([`kod_engine::in_place`]).

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
    /// `--image FILE`.
    pub image: Option<&'a Path>,
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
    /// The generation the rebuild starts from: the default with `-n`,
    /// the current one in place.
    from: u64,
    /// Whether the root of `from` is changed in place (no `-n`).
    in_place: bool,
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
    let in_place = !args.new_generation;
    let machine = super::generations::machine(ctx, args.target, args.image)?;
    let (top, running) = (&machine.top, &machine.running);
    // Dry runs take nothing (they change nothing); a rebuild holds the
    // machine lock from planning to the default pointer.
    let lock = if args.dry_run {
        None
    } else {
        let lock = super::generations::lock(ctx, top, "rebuild")?;
        // Also when this run turns out to change nothing.
        kod_engine::machine::remove_leftovers(top, &ctx.report)?;
        Some(lock)
    };
    let configuration = ctx.configuration()?;
    let plan = kod_plan::plan(&configuration.config)?;
    // In place, the root that changes is the one running now (offline:
    // the default's); a new generation starts from the default.
    let from = if in_place { running.current } else { None };
    let rebuild = RebuildPlan::new(
        top,
        from,
        configuration.config.clone(),
        configuration.files.clone(),
        plan,
        args.update,
        &ctx.report,
    )?;
    let unchanged = rebuild.is_noop();
    let mut out = Output {
        from: rebuild.from,
        in_place,
        generation: None,
        unchanged,
        dry_run: args.dry_run,
        packages: &rebuild.packages,
        settle: rebuild.settle.as_deref(),
        diff: &rebuild.diff,
    };
    let Some(lock) = lock.filter(|_| !unchanged) else {
        if args.json {
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            print!("{}", text(&out));
        }
        return Ok(ExitCode::SUCCESS);
    };
    let options = super::pkg::install_options(ctx);
    let made = rebuild.build(top, &lock, in_place, &options, &ctx.report)?;
    if made.committed {
        // The new generation is the default: its entry goes on the ESP
        // now, after the commit, never before it.
        super::generations::sync_entries(ctx, &machine)?;
    }
    drop(lock);
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
        let elapsed = started.elapsed().as_secs_f64();
        // An image's top level was mounted privately: name the root by
        // the image.
        let rootfs = match args.image {
            Some(image) => format!(
                "generations/{}/rootfs on {}",
                made.generation,
                image.display()
            ),
            None => made.rootfs.display().to_string(),
        };
        if in_place {
            eprintln!(
                "kod: generation {} with {} packages ({elapsed:.1} s), the default: the root of \
                 generation {} changed in place, now at {}; generation {} is kept as it was, \
                 bootable under its number",
                made.generation, made.packages, rebuild.from, rootfs, rebuild.from,
            );
        } else {
            eprintln!(
                "kod: generation {} with {} packages in {} ({elapsed:.1} s), the default; \
                 generation {} is unchanged (changes made to its /etc from now on will not \
                 reach {})",
                made.generation, made.packages, rootfs, rebuild.from, made.generation,
            );
        }
        if !top.boots() {
            eprintln!("kod: {}", kod_gen::DOES_NOT_BOOT);
        }
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
    if out.dry_run && out.in_place {
        s.push_str(&format!(
            "generation {}'s root would be changed in place into the next generation, the \
             default, and {} kept as it is; nothing changed (dry run)\n",
            out.from, out.from
        ));
    } else if out.dry_run {
        s.push_str(&format!(
            "the next generation would be built beside {} and become the default; nothing \
             changed (dry run)\n",
            out.from
        ));
    }
    s
}
