//! `kod pkg`: query repositories; install and remove packages in a root.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use kod_engine::packages::{self, InstallPlan};
use kod_engine::sources::{DistroSpec, Repositories};
use kod_repo::{Dependencies, Freshness, Index, PackageRecord, Relation};
use serde::Serialize;

use crate::cli::PkgAction;
use crate::context::Context;
use crate::output::human_bytes;

/// `kod pkg ACTION`.
pub fn run(ctx: &Context, action: &PkgAction) -> anyhow::Result<ExitCode> {
    match action {
        PkgAction::Update { distro } => {
            let repositories = repositories(ctx, distro.as_deref())?;
            let index = repositories.load(Freshness::Refresh, &ctx.report)?;
            eprintln!("kod: {} packages from {repositories}", index.len());
            Ok(ExitCode::SUCCESS)
        }
        PkgAction::Search {
            pattern,
            distro,
            json,
        } => {
            let index = load(ctx, distro.as_deref())?;
            let regex = regex::RegexBuilder::new(pattern)
                .case_insensitive(true)
                .build()
                .with_context(|| format!("{pattern:?} is not a valid regular expression"))?;
            let mut hits: Vec<&PackageRecord> = newest_per_name(&index, index.search_regex(&regex));
            hits.sort_by(|a, b| a.name.cmp(&b.name));
            if json.json {
                let out: Vec<SearchHit> = hits
                    .iter()
                    .map(|r| SearchHit {
                        name: r.name.to_string(),
                        version: r.version.to_string(),
                        description: r.description.to_string(),
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                let width = hits.iter().map(|r| r.name.len()).max().unwrap_or(0);
                for r in &hits {
                    println!("{:width$}  {}  {}", r.name, r.version, r.description);
                }
            }
            Ok(if hits.is_empty() {
                eprintln!("kod: no package matches {pattern:?}");
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        PkgAction::Show { name, distro, json } => {
            let index = load(ctx, distro.as_deref())?;
            let mut records: Vec<&PackageRecord> = index.by_name(name).collect();
            if records.is_empty() {
                anyhow::bail!("no package named {name:?}{}", suggestion(&index, name));
            }
            records.sort_by(|a, b| b.version.cmp(&a.version));
            let views: Vec<PackageView> = records.iter().map(|r| view(&index, r)).collect();
            if json.json {
                println!("{}", serde_json::to_string_pretty(&views)?);
            } else {
                for (i, v) in views.iter().enumerate() {
                    if i > 0 {
                        println!();
                    }
                    print!("{}", v.render());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        PkgAction::Install {
            root,
            packages,
            dry_run,
            json,
        } => install(ctx, root, packages, dry_run.dry_run, json.json),
        PkgAction::Remove {
            root,
            packages,
            with_dependents,
            purge,
            dry_run,
            json,
        } => {
            let options = install_options(ctx);
            let plan = packages::plan_removal(root, packages, *with_dependents, *purge, &options)?;
            let removed: Vec<&str> = plan.packages().collect();
            if json.json {
                let out = serde_json::json!({
                    "root": root,
                    "remove": plan.requested,
                    "dependents": plan.dependents,
                    "purge": plan.purge,
                    "dry_run": dry_run.dry_run,
                });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                let verb = if plan.purge { "purge" } else { "remove" };
                println!("{verb}: {}", plan.requested.join(" "));
                if !plan.dependents.is_empty() {
                    println!("{verb} (they depend on it): {}", plan.dependents.join(" "));
                }
            }
            if dry_run.dry_run {
                eprintln!("kod: dry run: {} untouched", root.display());
                return Ok(ExitCode::SUCCESS);
            }
            packages::remove(root, &plan, &options)?;
            eprintln!(
                "kod: removed {} package(s) from {}",
                removed.len(),
                root.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `kod pkg install --root DIR P...`.
fn install(
    ctx: &Context,
    root: &Path,
    requests: &[String],
    dry_run: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let plan = InstallPlan::new(root, requests, &ctx.report)?;
    let changes = plan.changes();
    if json {
        let out = serde_json::json!({
            "root": root,
            "changes": changes,
            "download_size": changes.iter().map(|c| c.size).sum::<u64>(),
            "dry_run": dry_run,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if changes.is_empty() {
        println!("nothing to do: {} already installed", requests.join(" "));
    } else {
        let width = changes.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &changes {
            let from = c
                .from
                .as_deref()
                .map(|f| format!(" (from {f})"))
                .unwrap_or_default();
            let why = if c.requested { "" } else { "  [dependency]" };
            println!("{:9} {:width$}  {}{from}{why}", c.action, c.name, c.version);
        }
        let size: u64 = changes.iter().map(|c| c.size).sum();
        println!(
            "{} package(s), {} to download",
            changes.len(),
            human_bytes(size)
        );
    }
    if dry_run {
        eprintln!("kod: dry run: {} untouched", root.display());
        return Ok(ExitCode::SUCCESS);
    }
    plan.run(&install_options(ctx), &ctx.report)?;
    if !changes.is_empty() {
        eprintln!(
            "kod: {} package(s) changed in {}",
            changes.len(),
            root.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// How transactions run, from the global flags.
pub fn install_options(ctx: &Context) -> kod_install::Options {
    let cache = kod_fetch::cache_dir();
    kod_install::Options {
        debug: ctx.cli.debug,
        no_wait: ctx.cli.no_wait,
        data_cache: Some(kod_fetch::kept_data_dir(&cache)),
        journal: Some(cache.join("transactions")),
        report: ctx.report.clone(),
        script_env: Vec::new(),
        binds: Vec::new(),
    }
}

/// The repositories of `--distro`, else of the configuration.
fn repositories(ctx: &Context, distro: Option<&str>) -> anyhow::Result<Repositories> {
    match distro {
        Some(spec) => Ok(Repositories::for_spec(&DistroSpec::parse(spec)?, None)?),
        None => {
            let c = ctx.configuration().map_err(|e| match e {
                e @ kod_config::ConfigError::NotFound { .. } => anyhow::Error::new(e).context(
                    "kod pkg needs --distro DISTRO:SUITE or a configuration with repositories",
                ),
                e => e.into(),
            })?;
            Ok(Repositories::for_config(&c.config, None)?)
        }
    }
}

fn load(ctx: &Context, distro: Option<&str>) -> anyhow::Result<Index> {
    Ok(repositories(ctx, distro)?.load(Freshness::Cached, &ctx.report)?)
}

/// The newest record of each name among `ids`.
fn newest_per_name(index: &Index, ids: Vec<kod_repo::RecordId>) -> Vec<&PackageRecord> {
    let mut best: std::collections::BTreeMap<&str, &PackageRecord> = Default::default();
    for id in ids {
        let r = index.record(id);
        best.entry(r.name.as_str())
            .and_modify(|b| {
                if r.version > b.version {
                    *b = r;
                }
            })
            .or_insert(r);
    }
    best.into_values().collect()
}

/// "; did you mean ...?" for the close names (the solver's own routine, so
/// `pkg show` and `pkg install` suggest alike), or a pointer to search.
fn suggestion(index: &Index, name: &str) -> String {
    let close = kod_solve::close_names(index, name);
    if close.is_empty() {
        return format!("; try `kod pkg search {name}`");
    }
    format!("; did you mean {}?", close.join(", "))
}

#[derive(Serialize)]
struct SearchHit {
    name: String,
    version: String,
    description: String,
}

#[derive(Serialize)]
struct PackageView {
    package: String,
    version: String,
    architecture: String,
    priority: String,
    essential: bool,
    section: String,
    source: String,
    installed_size_kib: Option<u64>,
    pre_depends: Vec<String>,
    depends: Vec<String>,
    recommends: Vec<String>,
    suggests: Vec<String>,
    provides: Vec<String>,
    conflicts: Vec<String>,
    breaks: Vec<String>,
    replaces: Vec<String>,
    suite: String,
    url: String,
    size: u64,
    sha256: String,
    description: String,
}

fn view(index: &Index, r: &PackageRecord) -> PackageView {
    let origin = index.origin(r.origin);
    PackageView {
        package: r.name.to_string(),
        version: r.version.to_string(),
        architecture: r.architecture.to_string(),
        priority: r.priority.as_str().to_string(),
        essential: r.essential,
        section: r.section.to_string(),
        source: r.source.to_string(),
        installed_size_kib: r.installed_size,
        pre_depends: groups(&r.pre_depends),
        depends: groups(&r.depends),
        recommends: groups(&r.recommends),
        suggests: groups(&r.suggests),
        provides: r
            .provides
            .iter()
            .map(|p| match &p.version {
                Some(v) => format!("{} (= {v})", p.name),
                None => p.name.to_string(),
            })
            .collect(),
        conflicts: relations(&r.conflicts),
        breaks: relations(&r.breaks),
        replaces: relations(&r.replaces),
        suite: format!("{}/{}", origin.suite, origin.component),
        url: index.download_url(r),
        size: r.location.size,
        sha256: r.location.sha256.to_string(),
        description: r.description.to_string(),
    }
}

fn groups(deps: &Dependencies) -> Vec<String> {
    deps.iter()
        .map(|alts| {
            alts.iter()
                .map(Relation::to_string)
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect()
}

fn relations(rels: &[Relation]) -> Vec<String> {
    rels.iter().map(Relation::to_string).collect()
}

impl PackageView {
    /// apt-cache show's layout.
    fn render(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let mut field = |k: &str, v: &str| {
            if !v.is_empty() {
                let _ = writeln!(o, "{k}: {v}");
            }
        };
        field("Package", &self.package);
        field("Version", &self.version);
        field("Architecture", &self.architecture);
        field("Priority", &self.priority);
        field("Essential", if self.essential { "yes" } else { "" });
        field("Section", &self.section);
        field("Source", &self.source);
        field(
            "Installed-Size",
            &self
                .installed_size_kib
                .map(|s| s.to_string())
                .unwrap_or_default(),
        );
        field("Pre-Depends", &self.pre_depends.join(", "));
        field("Depends", &self.depends.join(", "));
        field("Recommends", &self.recommends.join(", "));
        field("Suggests", &self.suggests.join(", "));
        field("Provides", &self.provides.join(", "));
        field("Conflicts", &self.conflicts.join(", "));
        field("Breaks", &self.breaks.join(", "));
        field("Replaces", &self.replaces.join(", "));
        field("Suite", &self.suite);
        field("URL", &self.url);
        field("Size", &self.size.to_string());
        field("SHA256", &self.sha256);
        field("Description", &self.description);
        o
    }
}
