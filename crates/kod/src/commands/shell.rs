//! `kod shell -p PKG... [--root DIR] [--keep DIR] [-- CMD...]`: extra
//! packages on a throwaway overlay, and a command run there as the caller
//! (`kod_engine::shell`).

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use kod_engine::packages::InstallPlan;
use kod_engine::shell::Shell;
use kod_env::run as envrun;

use crate::context::Context;

/// The arguments of `kod shell`.
pub struct Args<'a> {
    /// The packages to add.
    pub packages: &'a [String],
    /// The root to overlay.
    pub root: &'a Path,
    /// `--env NAME`.
    pub env: Option<&'a str>,
    /// `--keep DIR`.
    pub keep: Option<&'a Path>,
    /// The command (empty: the caller's shell).
    pub command: &'a [OsString],
}

/// The backends a prefix names that kod cannot install from yet.
const LATER: [&str; 2] = ["aur:", "flatpak:"];

/// `kod shell`.
pub fn run(ctx: &Context, args: Args<'_>) -> anyhow::Result<ExitCode> {
    if let Some(name) = args.env {
        anyhow::bail!(
            "kod shell --env {name}: shells on environments are not available yet; \
             use `kod env install {name} PKG...` then `kod run {name}`"
        );
    }
    if let Some(p) = args
        .packages
        .iter()
        .find(|p| LATER.iter().any(|l| p.starts_with(l)))
    {
        let backend = p.split(':').next().unwrap_or_default();
        anyhow::bail!(
            "{p}: the {backend} backend is not available yet; kod shell installs packages \
             from the root's own repositories only (drop the prefix if it is one of theirs)"
        );
    }
    if !kod_sandbox::Caller::current().is_root() {
        anyhow::bail!(
            "kod shell needs root to overlay {}: run it with sudo (the command then runs as \
             root); shells on your own environments (--env NAME) are not available yet",
            args.root.display()
        );
    }
    if let Some(k) = args.keep
        && std::fs::symlink_metadata(k).is_ok()
    {
        anyhow::bail!(
            "--keep {}: exists already; give a path that does not exist",
            k.display()
        );
    }
    // Resolved before anything is mounted: an unknown name fails here.
    let plan = InstallPlan::new(args.root, args.packages, &ctx.report)?;
    let shell = Shell::prepare(&plan, &super::pkg::install_options(ctx), &ctx.report)?;
    ctx.report.verbose(|| {
        let names: Vec<String> = shell
            .changes()
            .iter()
            .map(|c| format!("{} {}", c.name, c.version))
            .collect();
        format!(
            "kod: {} package(s) on {}: {}",
            names.len(),
            args.root.display(),
            names.join(", ")
        )
    });
    let ran = shell.plan(args.command).and_then(|p| {
        for n in p.notes() {
            ctx.report.note(n);
        }
        for s in p.steps() {
            ctx.report.verbose(|| format!("kod: {s}"));
        }
        p.run()
    });
    let code = match ran {
        Ok(code) => code,
        Err(e) => {
            match &e {
                // Its root is the overlay's private mount point: name the
                // root it shows instead.
                kod_env::EnvError::Sandbox(kod_sandbox::SandboxError::Exec {
                    program,
                    source,
                    ..
                }) => eprintln!(
                    "kod shell: cannot run {program} in the shell on {}: {source}; is it in one \
                     of the packages (-p)?",
                    args.root.display()
                ),
                e => eprintln!("kod shell: {e}"),
            }
            envrun::exit_code_for(&e)
        }
    };
    if let Some(k) = args.keep {
        shell.keep(k, &ctx.report)?;
        eprintln!("kod shell: the layer is kept at {}", k.display());
    }
    Ok(ExitCode::from(code))
}
