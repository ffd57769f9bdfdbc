//! `kod install -c CONFIG`: generation 0 of the configured machine, on
//! its disks (`--disk`, or the configured devices), on new disk images
//! (`--image`), or on a mounted Btrfs top level (`--target TOP`).

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::bail;
use kod_engine::machine::{DiskError, MachinePlan, Medium};
use serde::Serialize;

use crate::cli::Command;
use crate::context::Context;
use crate::output::human_bytes;

#[derive(Serialize)]
struct DryRunOutput<'a> {
    /// The `--target` top level (none for disks).
    target: Option<&'a Path>,
    /// What each disk would get (none for `--target`).
    disks: Vec<kod_disk::Description>,
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

/// Where the install goes.
enum Destination {
    /// A mounted Btrfs top level.
    Target(PathBuf),
    /// Disks and images, by `devices` key.
    Disks(BTreeMap<String, Medium>),
}

/// Plans, then (without --dry-run) installs generation 0 where `install`
/// (a `Command::Install`) says.
pub fn run(ctx: &Context, install: &Command) -> anyhow::Result<ExitCode> {
    let Command::Install {
        target,
        mount_point,
        image,
        size,
        disk,
        yes,
        dry_run,
        json,
    } = install
    else {
        unreachable!("commands::install::run is given `kod install`")
    };
    let (dry_run, json) = (dry_run.dry_run, json.json);
    let started = Instant::now();
    let configuration = ctx.configuration()?;
    let plan = kod_plan::plan(&configuration.config)?;
    // Everything about the disks and the terminal that can be refused is
    // refused before the repositories are read.
    let destination = match target {
        Some(top) => Destination::Target(top.clone()),
        None => {
            let size = kod_disk::parse_size(size)?;
            let media = media(&plan.devices, image, disk, size)?;
            kod_engine::machine::check_media(&plan, &media)?;
            if !dry_run && !yes && !std::io::stdin().is_terminal() {
                bail!(
                    "refusing to write the disks without confirmation: there is no terminal to ask on; \
                     run `kod install --dry-run` to see what would be written, and add --yes to write it"
                );
            }
            Destination::Disks(media)
        }
    };
    let machine = MachinePlan::new(
        configuration.config.clone(),
        configuration.files.clone(),
        plan,
        &ctx.report,
    )?;
    if dry_run {
        return print_dry_run(&machine, &destination, json);
    }
    let options = super::pkg::install_options(ctx);
    let report = match &destination {
        Destination::Target(top) => machine.install(top, &options, &ctx.report)?,
        Destination::Disks(media) => {
            let done = machine
                .install_disks(
                    media,
                    mount_point.as_deref(),
                    &options,
                    |descriptions| confirm(descriptions, *yes),
                    &ctx.report,
                )
                // The engine's own error, unwrapped, so that main's hints
                // (a lock: --no-wait) see it as they see `--target`'s.
                .map_err(|e| match e {
                    DiskError::Engine(e) => anyhow::Error::from(*e),
                    e => e.into(),
                })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&done)?);
                return Ok(ExitCode::SUCCESS);
            }
            for d in &done.disks {
                let on = d.image.as_deref().unwrap_or(&d.device);
                eprintln!(
                    "kod: devices.{}: {} partitioned and formatted",
                    d.key,
                    on.display()
                );
            }
            if let Some(boot) = &done.boot {
                eprintln!(
                    "kod: ESP: systemd-boot and the entries of generation(s) {:?} written ({} \
                     operations)",
                    boot.entries,
                    boot.operations.len() + boot.loader_files.len()
                );
            }
            // The root was mounted privately and is gone now: name it by
            // its disk.
            let on = done
                .disks
                .iter()
                .find(|d| d.partitions.iter().any(|p| p.is_root()));
            let mut report = done.generation;
            if let Some(d) = on {
                report.rootfs = PathBuf::from(format!(
                    "generations/{}/rootfs on {}",
                    report.generation,
                    d.image.as_deref().unwrap_or(&d.device).display()
                ));
            }
            report
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !report.committed {
        eprintln!("kod: debug run: commands printed, the machine untouched");
    } else {
        eprintln!(
            "kod: generation {} with {} packages in {} ({:.1} s), the default",
            report.generation,
            report.packages,
            report.rootfs.display(),
            started.elapsed().as_secs_f64()
        );
        if let Destination::Target(top) = &destination
            && kod_gen::Top::open(top).is_ok_and(|t| !t.boots())
        {
            eprintln!("kod: {}", kod_gen::DOES_NOT_BOOT);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Each configured disk's medium from `--image` and `--disk` (each
/// `[KEY=]PATH`: the key may be left out when there is one disk); with
/// neither, the configured devices.
fn media(
    devices: &BTreeMap<String, kod_config::Disk>,
    images: &[String],
    disks: &[String],
    size: u64,
) -> anyhow::Result<BTreeMap<String, Medium>> {
    if devices.is_empty() {
        bail!(
            "the configuration has no `devices` to install onto: add one \
             (e.g. `devices = {{ disk0 = disk.disk_definition(\"/dev/vda\") }}`), \
             or install onto a mounted Btrfs with --target TOP"
        );
    }
    if images.is_empty() && disks.is_empty() {
        return Ok(devices
            .iter()
            .map(|(k, d)| (k.clone(), Medium::Device(PathBuf::from(&d.device))))
            .collect());
    }
    let keys = devices.keys().cloned().collect::<Vec<_>>().join(", ");
    let mut out = BTreeMap::new();
    let given = images
        .iter()
        .map(|s| ("--image", "FILE", s))
        .chain(disks.iter().map(|s| ("--disk", "DEV", s)));
    for (flag, what, spec) in given {
        let (key, path) = match spec.split_once('=') {
            Some((k, p)) if devices.contains_key(k) => (k.to_string(), p),
            // A path may hold `=`: `./a=b` is a path, `data=b` a key.
            Some((k, _)) if !k.contains('/') => bail!(
                "{flag} {spec}: the configuration has no devices.{k}; its disks are {keys} \
                 (write ./{spec} for a path with `=`)"
            ),
            _ if devices.len() == 1 => (keys.clone(), spec.as_str()),
            _ => bail!(
                "{flag} {spec}: the configuration has {} disks ({keys}): say which with {flag} KEY={what}",
                devices.len()
            ),
        };
        if path.is_empty() {
            bail!("{flag} {spec}: no {what} after `=`");
        }
        let path = PathBuf::from(path);
        if out.values().any(|m: &Medium| match m {
            Medium::Image { path: p, .. } | Medium::Device(p) => *p == path,
        }) {
            bail!(
                "{flag} {spec}: {} is named for two disks: give each disk its own",
                path.display()
            );
        }
        let medium = match flag {
            "--image" => Medium::Image { path, size },
            _ => Medium::Device(path),
        };
        if out.insert(key.clone(), medium).is_some() {
            bail!("{flag} {spec}: devices.{key} is named twice by --image/--disk: name it once");
        }
    }
    let missing: Vec<&String> = devices.keys().filter(|k| !out.contains_key(*k)).collect();
    if let Some(key) = missing.first() {
        bail!(
            "devices.{key} has no --image or --disk, while other disks do: add --image {key}=FILE \
             or --disk {key}=DEV (kod does not fall back to a configured device when others are named)"
        );
    }
    Ok(out)
}

/// Shows what will be written (on stderr: stdout is for `--json`) and,
/// unless `yes`, asks on the terminal; only `yes` typed out confirms.
fn confirm(descriptions: &[kod_disk::Description], yes: bool) -> bool {
    for d in descriptions {
        eprint!("{d}");
    }
    if yes {
        return true;
    }
    eprint!("Write these disks, losing everything on them? Type yes to go on: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).is_ok() && answer.trim() == "yes"
}

/// `--dry-run`: the disks' plans, then the packages, files and settings.
fn print_dry_run(
    machine: &MachinePlan,
    destination: &Destination,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (target, disks) = match destination {
        Destination::Target(top) => (Some(top.as_path()), Vec::new()),
        Destination::Disks(media) => (None, machine.describe_disks(media)?),
    };
    let out = DryRunOutput {
        target,
        disks,
        generation: 0,
        packages: machine.packages(),
        download_size: machine.resolution.download_size,
        files: machine.own_files(),
        settings: settings(&machine.plan),
        enabled_services: machine.plan.services.system.keys().collect(),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    for d in &out.disks {
        print!("{d}");
    }
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
    let untouched = match target {
        Some(top) => format!("{} not touched", top.display()),
        None => "no disk or image written or created".to_string(),
    };
    println!(
        "generation 0: {} packages, {} to download; {untouched} (dry run)",
        out.packages.len(),
        human_bytes(out.download_size),
    );
    Ok(ExitCode::SUCCESS)
}
