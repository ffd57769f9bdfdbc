//! `kod env` and `kod run`: glue between the command line and kod-env.
//!
//! Personal environments whose files are shifted into the caller's
//! subordinate ids are changed from inside the caller's user namespace:
//! kod runs itself again there with the same arguments
//! ([`kod_env::userns`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::Context as _;
use kod_engine::env::{ENV_VARIANT, EnvEngine};
use kod_env::view::{self, Mode, View};
use kod_env::{Env, EnvError, Locations, Store, export, lifecycle, run as envrun, status, userns};
use kod_sandbox::{Caller, SandboxError, SubIds};

use crate::cli::EnvAction;
use crate::context::Context;
use crate::output::human_bytes;

/// `kod env ACTION`.
pub fn run(ctx: &Context, action: &EnvAction) -> anyhow::Result<ExitCode> {
    let cli = ctx.cli;
    let caller = Caller::current();
    let loc = Locations::for_caller(caller);
    // `-d` prints instead of doing: the actions that have a dry run take
    // it; the others would change the machine, so they refuse.
    if cli.debug {
        match action {
            EnvAction::Import { .. }
            | EnvAction::Export { .. }
            | EnvAction::Unexport { .. }
            | EnvAction::View { .. }
            | EnvAction::Switch { .. } => {
                eprintln!(
                    "kod: -d (print instead of doing) is not available for this kod env \
                     action, which has no dry run; leave out -d to carry it out"
                );
                return Ok(ExitCode::from(2));
            }
            EnvAction::List { .. } | EnvAction::Status { .. } => {}
            _ => ctx
                .report
                .note("-d: nothing is changed; this is what would be done"),
        }
    }
    let dry = |d: &crate::cli::DryRun| d.dry_run || cli.debug;
    let change = |name: &str, packages: &[String], d: &crate::cli::DryRun, how: Change| {
        change_packages(ctx, &loc, caller, name, packages, dry(d), how)
    };
    match action {
        EnvAction::Create {
            name,
            distro,
            packages,
            dry_run,
        } => create(ctx, &loc, caller, name, distro, packages, dry(dry_run)),
        EnvAction::Install {
            name,
            packages,
            dry_run,
        } => change(name, packages, dry_run, Change::Install),
        EnvAction::Remove {
            name,
            packages,
            dry_run,
        } => change(name, packages, dry_run, Change::Remove),
        EnvAction::Cleanup { dry_run, json } => cleanup(&loc, dry(dry_run), json.json),
        EnvAction::Import {
            name,
            source,
            distro,
        } => import(ctx, &loc, caller, name, source, distro),
        EnvAction::List { json } => list(&loc, json.json),
        EnvAction::Status { name, json } => show_status(&loc, name.as_deref(), json.json),
        EnvAction::Delete { name, dry_run } => delete(ctx, &loc, caller, name, dry(dry_run)),
        EnvAction::Export { name, bins, app } => {
            let mut env = own_env(&loc, name)?;
            let kod = std::env::current_exe().context("finding the kod binary")?;
            for f in export::export_bins(&mut env, bins, &kod)? {
                println!("exported {}", f.display());
            }
            for id in app {
                println!(
                    "exported {}",
                    export::export_app(&mut env, id, &kod)?.display()
                );
            }
            print_view(&view::compute(&env.store)?.0);
            Ok(ExitCode::SUCCESS)
        }
        EnvAction::Unexport { name, bins, app } => {
            let mut env = own_env(&loc, name)?;
            for m in export::unexport(&mut env, bins, app)? {
                ctx.report
                    .note(&format!("{m} was not exported from {name}"));
            }
            Ok(ExitCode::SUCCESS)
        }
        EnvAction::View { mode, priority } => {
            let v = view::set_mode(&loc.writable, Mode::parse(mode)?, priority.clone())?;
            print_view(&v);
            Ok(ExitCode::SUCCESS)
        }
        EnvAction::Switch { name } => {
            let v = view::switch(&loc.writable, name)?;
            if v.mode != Mode::Isolated {
                ctx.report.note(&format!(
                    "the view is unified; `kod env view isolated` shows {name} alone"
                ));
            }
            print_view(&v);
            Ok(ExitCode::SUCCESS)
        }
        EnvAction::Sync { prune, dry_run } => sync(ctx, &loc, caller, *prune, dry(dry_run)),
    }
}

/// `kod run NAME [--volume PATH]... -- CMD...`.
pub fn run_in(
    ctx: &Context,
    name: &str,
    volumes: &[PathBuf],
    command: &[OsString],
) -> anyhow::Result<ExitCode> {
    let caller = Caller::current();
    let result = Locations::for_caller(caller).find(name).and_then(|env| {
        let plan = envrun::plan(&env, volumes, command)?;
        for n in plan.notes() {
            ctx.report.note(n);
        }
        for s in plan.steps() {
            ctx.report.verbose(|| format!("kod: {s}"));
        }
        plan.run()
    });
    match result {
        Ok(code) => Ok(ExitCode::from(code)),
        Err(e) => {
            eprintln!("kod run: {e}");
            Ok(ExitCode::from(envrun::exit_code_for(&e)))
        }
    }
}

/// The package engine for environments, from the global flags.
fn engine(ctx: &Context) -> EnvEngine {
    // `-d` is a dry run for environments (see `run`).
    let options = kod_install::Options {
        debug: false,
        ..super::pkg::install_options(ctx)
    };
    EnvEngine::new(options, ctx.report.clone())
}

/// Runs this kod command again as root of the caller's user namespace.
fn again_in_user_namespace(
    loc: &Locations,
    caller: Caller,
    subids: SubIds,
) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("finding the kod binary")?;
    let mut command = Command::new(exe);
    command.args(std::env::args_os().skip(1));
    let code = userns::run_again(loc, caller, subids, command)?;
    Ok(ExitCode::from(code))
}

fn create(
    ctx: &Context,
    loc: &Locations,
    caller: Caller,
    name: &str,
    distro: &str,
    packages: &[String],
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    kod_env::validate_name(name)?;
    if let Some(env) = loc.writable.get(name)? {
        anyhow::bail!(EnvError::Exists {
            name: name.to_string(),
            dir: env.dir(),
        });
    }
    let engine = engine(ctx);
    if dry_run {
        let plan = engine.plan_create(distro, packages)?;
        println!(
            "would create {name} ({distro}, {ENV_VARIANT}) in {} with {} packages, {} to download",
            loc.writable.env_dir(name).display(),
            plan.resolution.packages.len(),
            human_bytes(plan.resolution.download_size)
        );
        return Ok(ExitCode::SUCCESS);
    }
    if userns::wanted(loc, caller) {
        return again_in_user_namespace(loc, caller, SubIds::for_caller(caller)?);
    }
    let made = lifecycle::create(&loc.writable, name, distro, packages, &engine, caller)?;
    show_new(ctx, made, "created", "in")
}

/// Installing or removing packages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    Install,
    Remove,
}

/// `kod env install|remove NAME P...`.
fn change_packages(
    ctx: &Context,
    loc: &Locations,
    caller: Caller,
    name: &str,
    packages: &[String],
    dry_run: bool,
    change: Change,
) -> anyhow::Result<ExitCode> {
    let mut env = own_env(loc, name)?;
    let engine = engine(ctx);
    if dry_run {
        let root = env.root();
        match change {
            Change::Install => {
                for c in engine.plan_install(&root, packages)?.changes() {
                    println!("would {} {} {}", c.action, c.name, c.version);
                }
            }
            Change::Remove => {
                let plan = engine.plan_remove(&root, packages)?;
                println!(
                    "would remove {}",
                    plan.packages().collect::<Vec<_>>().join(" ")
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if userns::wanted(loc, caller) {
        return again_in_user_namespace(loc, caller, SubIds::for_caller(caller)?);
    }
    match change {
        Change::Install => lifecycle::install(&mut env, packages, &engine)?,
        Change::Remove => lifecycle::remove(&mut env, packages, &engine)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `kod env cleanup`: cached packages no environment has installed.
fn cleanup(loc: &Locations, dry_run: bool, json: bool) -> anyhow::Result<ExitCode> {
    let cache = kod_fetch::Cache::open(&kod_fetch::cache_dir())?;
    let plan = kod_env::cleanup::plan(&cache, &loc.list()?)?;
    if !dry_run {
        kod_env::cleanup::apply(&cache, &plan)?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
        return Ok(ExitCode::SUCCESS);
    }
    for u in &plan.unused {
        println!("{} {} ({})", u.name, u.version, human_bytes(u.size));
    }
    let verb = if dry_run { "would free" } else { "freed" };
    println!(
        "{} cached package(s) unused, {verb} {}; {} in use",
        plan.unused.len(),
        human_bytes(plan.bytes),
        plan.in_use
    );
    Ok(ExitCode::SUCCESS)
}

fn import(
    ctx: &Context,
    loc: &Locations,
    caller: Caller,
    name: &str,
    source: &Path,
    distro: &str,
) -> anyhow::Result<ExitCode> {
    kod_env::validate_name(name)?;
    if userns::wanted(loc, caller) && !source.is_dir() {
        match SubIds::for_caller(caller) {
            Ok(s) => return again_in_user_namespace(loc, caller, s),
            Err(e @ SandboxError::SubIds { .. }) => {
                ctx.report.note(&e.to_string());
                ctx.report
                    .note("importing anyway; every file will be owned by you");
            }
            Err(e) => return Err(e.into()),
        }
    }
    let made = lifecycle::import(&loc.writable, name, source, distro, caller)?;
    show_new(ctx, made, "imported", "into")
}

/// The notes of a new environment, then what it is (`created NAME (DISTRO)
/// in ROOT`) and how to run it.
fn show_new(
    ctx: &Context,
    (env, notes): (Env, Vec<String>),
    done: &str,
    place: &str,
) -> anyhow::Result<ExitCode> {
    for n in notes {
        ctx.report.note(&n);
    }
    println!(
        "{done} {} ({}) {place} {}",
        env.name,
        env.record.distro,
        env.root().display()
    );
    println!("run it with: kod run {} -- COMMAND", env.name);
    Ok(ExitCode::SUCCESS)
}

/// Environment `name` of the caller's writable store.
fn own_env(loc: &Locations, name: &str) -> anyhow::Result<Env> {
    if let Some(env) = loc.writable.get(name)? {
        return Ok(env);
    }
    if let Ok(other) = loc.find(name) {
        anyhow::bail!(
            "{name} is in {} ({}), which only its owner changes; you change environments in {}",
            other.store.dir.display(),
            other.store.scope.name(),
            loc.writable.dir.display()
        );
    }
    Err(EnvError::NotFound {
        name: name.to_string(),
        searched: vec![loc.writable.dir.clone()],
    }
    .into())
}

fn delete(
    ctx: &Context,
    loc: &Locations,
    caller: Caller,
    name: &str,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let env = own_env(loc, name)?;
    if dry_run {
        println!(
            "would delete {} ({})",
            env.dir().display(),
            env.record.distro
        );
        if let Some(r) = &env.record.root {
            println!(
                "and forget the adopted root {} (left in place)",
                r.display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if lifecycle::needs_user_namespace(&env) && userns::wanted(loc, caller) {
        return again_in_user_namespace(loc, caller, SubIds::for_caller(caller)?);
    }
    for n in lifecycle::delete(&env)? {
        ctx.report.note(&n);
    }
    println!("deleted {name}");
    Ok(ExitCode::SUCCESS)
}

fn print_view(v: &View) {
    match (&v.mode, &v.current) {
        (Mode::Isolated, Some(c)) => println!("view: isolated, showing {c}"),
        (Mode::Isolated, None) => println!("view: isolated (no environment yet)"),
        (Mode::Unified, _) => println!("view: unified ({})", v.order.join(" > ")),
    }
    for c in &v.conflicts {
        println!(
            "conflict: {} is exported by {}; {} wins",
            c.name,
            c.envs.join(", "),
            c.winner
        );
    }
    println!("add to your shell profile:\n{}", v.path_lines().trim_end());
}

fn table(rows: &[Vec<String>]) {
    let Some(first) = rows.first() else { return };
    let widths: Vec<usize> = (0..first.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}

fn list(loc: &Locations, json: bool) -> anyhow::Result<ExitCode> {
    let envs: Vec<_> = loc.list()?.iter().map(status::summary).collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&envs)?);
        return Ok(ExitCode::SUCCESS);
    }
    if envs.is_empty() {
        println!("no environments (looked in {})", stores(loc));
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![vec![
        "NAME".to_string(),
        "SCOPE".into(),
        "DISTRO".into(),
        "CREATED".into(),
        "ROOT".into(),
    ]];
    rows.extend(envs.into_iter().map(|s| {
        vec![
            s.name,
            s.scope.name().into(),
            s.distro,
            s.created,
            s.root.display().to_string(),
        ]
    }));
    table(&rows);
    Ok(ExitCode::SUCCESS)
}

fn stores(loc: &Locations) -> String {
    loc.search
        .iter()
        .map(|s: &Store| s.dir.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn show_status(loc: &Locations, name: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let envs = match name {
        Some(n) => vec![loc.find(n)?],
        None => loc.list()?,
    };
    let all: Vec<status::Status> = envs.iter().map(status::status).collect::<Result<_, _>>()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(ExitCode::SUCCESS);
    }
    if all.is_empty() {
        println!("no environments (looked in {})", stores(loc));
    }
    for (i, s) in all.iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!("{} ({}, {})", s.name, s.scope.name(), s.store.display());
        println!(
            "  distro:    {} (release {})",
            s.distribution,
            if s.release.is_empty() {
                "-"
            } else {
                &s.release
            }
        );
        println!("  created:   {} ({})", s.created, s.origin);
        println!("  root:      {}", s.root.display());
        let partial = if s.size.unreadable_dirs > 0 {
            format!(
                " at least ({} directories unreadable)",
                s.size.unreadable_dirs
            )
        } else {
            String::new()
        };
        println!("  size:      {}{partial}", status::human_size(s.size.bytes));
        println!(
            "  packages:  asked for {}; {}",
            if s.requested.is_empty() {
                "none".to_string()
            } else {
                s.requested.join(", ")
            },
            match &s.installed {
                Some(p) => format!("{} installed (dpkg)", p.len()),
                None => "no dpkg database".into(),
            }
        );
        println!(
            "  exports:   {}",
            if s.exports.is_empty() && s.apps.is_empty() {
                "none".to_string()
            } else {
                s.exports
                    .iter()
                    .cloned()
                    .chain(s.apps.iter().map(|a| format!("app:{a}")))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        if !s.volumes.is_empty() {
            let v: Vec<String> = s.volumes.iter().map(|v| v.display().to_string()).collect();
            println!("  volumes:   {}", v.join(", "));
        }
        let shown = match s.view {
            Mode::Unified => String::new(),
            Mode::Isolated if s.current => " (shown)".into(),
            Mode::Isolated => " (not shown; `kod env switch` shows it)".into(),
        };
        println!(
            "  view:      {}{shown}, PATH entry {}",
            s.view.name(),
            s.view_bin.display()
        );
        for c in &s.conflicts {
            println!(
                "  conflict:  {} is exported by {}; {} wins",
                c.name,
                c.envs.join(", "),
                c.winner
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn sync(
    ctx: &Context,
    loc: &Locations,
    caller: Caller,
    prune: bool,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    if !dry_run
        && userns::wanted(loc, caller)
        && let Ok(s) = SubIds::for_caller(caller)
    {
        // Environments made here are shifted into the subordinate ids, and
        // deleting one needs them.
        return again_in_user_namespace(loc, caller, s);
    }
    let configuration = ctx.configuration()?;
    let declared = configuration
        .config
        .environments
        .iter()
        .map(|(name, e)| {
            (
                name.clone(),
                kod_env::sync::Declared {
                    distro: e.distro.clone(),
                    packages: e.packages.clone(),
                    exports: e.exports.clone(),
                    volumes: e.volumes.clone(),
                },
            )
        })
        .collect();
    let steps = kod_env::sync::plan(&loc.writable, &declared, prune)?;
    if steps.is_empty() {
        println!(
            "environments are in line with {}",
            configuration.file.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for s in &steps {
        println!("{}{}", if dry_run { "would " } else { "" }, s.describe());
    }
    if dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let kod = std::env::current_exe().context("finding the kod binary")?;
    let engine = engine(ctx);
    for n in kod_env::sync::apply(&loc.writable, &steps, Some(&engine), &kod, caller)? {
        ctx.report.note(&n);
    }
    Ok(ExitCode::SUCCESS)
}
