//! Loads `debian:SUITE` from the host's mirror through kod-repo and
//! resolves a variant plus packages, printing `name version` per line and
//! the timings on stderr:
//!
//! ```text
//! cargo run --release -p kod-solve --example resolve -- \
//!     [--suite bookworm] [--variant minbase] [--root DIR] [--recommends] \
//!     [--offline] [--repeat N] [--load-only] [--print-sources] [PACKAGE...]
//! ```
//!
//! `--load-only` stops after loading the index; `--print-sources` prints
//! the apt source lines (`deb URL SUITE COMPONENTS`) kod loads, taken from
//! the host's apt sources, and exits.
//!
//! `--root DIR` keeps and prefers the packages installed in DIR (its
//! /var/lib/dpkg/status) and prints only what changes. The cache
//! directory is kod's usual one (`KOD_CACHE_DIR` overrides).

use std::path::PathBuf;
use std::time::Instant;

use kod_repo::debian::{Debian, DebianSource, find_mirror};
use kod_repo::{Backend, Freshness, LoadOptions};
use kod_solve::{Action, Request, solve, variant_base};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut suite = "bookworm".to_string();
    let mut variant = "minbase".to_string();
    let mut root: Option<PathBuf> = None;
    let mut recommends = false;
    let mut freshness = Freshness::Cached;
    let mut repeat = 1;
    let mut load_only = false;
    let mut print_sources = false;
    let mut packages = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--suite" => suite = args.next().ok_or("--suite needs a value")?,
            "--variant" => variant = args.next().ok_or("--variant needs a value")?,
            "--root" => root = Some(args.next().ok_or("--root needs a value")?.into()),
            "--recommends" => recommends = true,
            "--offline" => freshness = Freshness::Offline,
            "--repeat" => repeat = args.next().ok_or("--repeat needs a value")?.parse()?,
            "--load-only" => load_only = true,
            "--print-sources" => print_sources = true,
            p => packages.push(p.to_string()),
        }
    }
    let t = Instant::now();
    let mirror = find_mirror(None, None)?;
    let source = DebianSource::release(&mirror, &suite);
    if print_sources {
        for s in &source.suites {
            println!(
                "deb {} {} {}",
                source.base_url(s),
                s,
                source.components.join(" ")
            );
        }
        return Ok(());
    }
    let options = LoadOptions {
        cache_dir: kod_fetch::cache_dir(),
        freshness,
    };
    let index = Debian::new().load(&[source], &options)?;
    let load = t.elapsed();
    if load_only {
        eprintln!("{} records loaded in {load:?}", index.len());
        std::mem::forget(index);
        return Ok(());
    }
    let installed = match &root {
        Some(r) => Some(kod_db::dpkg::read_installed(
            r,
            index.native_architecture(),
        )?),
        None => None,
    };
    let mut resolution = None;
    let mut times = Vec::new();
    for _ in 0..repeat {
        let t = Instant::now();
        let base = if installed.is_some() {
            Vec::new()
        } else {
            variant_base(&index, &variant)?
        };
        let t_base = t.elapsed();
        let mut request = Request::new(base, &packages)?;
        request.recommends = recommends;
        resolution = Some(solve(&index, &request, installed.as_ref())?);
        times.push((t.elapsed(), t_base));
    }
    let resolution = resolution.ok_or("--repeat must be at least 1")?;
    for p in &resolution.packages {
        if installed.is_none() || p.action != Action::Keep {
            println!("{} {}", p.name, p.version);
        }
    }
    times.sort();
    eprintln!(
        "{} records loaded in {load:?}; resolved {} packages ({} to fetch, {} bytes) in {:?} \
         (median of {repeat}; the base set took {:?})",
        index.len(),
        resolution.packages.len(),
        resolution.changes().count(),
        resolution.download_size,
        times[times.len() / 2].0,
        times[times.len() / 2].1,
    );
    // The process ends here; skip freeing the index.
    std::mem::forget(index);
    Ok(())
}
