//! `kod generations [list|diff|rollback|delete|gc]`: a machine's
//! generations, on its top level (`--target TOP`, or the running
//! system's at `/kod`). The commands that change them take the machine
//! lock; their dry runs take nothing and change nothing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use kod_engine::boot_entries::EspAt;
use kod_engine::image::MachineImage;
use kod_gen::{GcPlan, Listing, MachineLock, Record, RecordDiff, Running, Top};
use serde::Serialize;

use crate::cli::{DryRun, GenerationsAction, GenerationsFlags};
use crate::context::Context;

/// The running system's root: `/`, or `KOD_RUNNING_ROOT` (for tests, and
/// for looking at a machine from a rescue system).
fn running_root() -> PathBuf {
    std::env::var_os("KOD_RUNNING_ROOT")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

/// A machine a command works on: its top level, which of its generations
/// is running, and its ESP where kod can find it.
pub(crate) struct Machine {
    /// The top level (with the boot marks of its entries, when read).
    pub top: Top,
    /// Which generations the running system is (none for an image).
    pub running: Running,
    /// Where its boot entries are: the image's ESP, the running
    /// system's `/efi`, or the ESP fstab names for `--target`.
    pub esp: Option<EspAt>,
    /// The image, mounted while the command runs.
    _image: Option<MachineImage>,
}

/// The machine `--target TOP`, `--image FILE` or (with neither) the
/// running system names.
pub(crate) fn machine(
    ctx: &Context,
    target: Option<&Path>,
    image: Option<&Path>,
) -> anyhow::Result<Machine> {
    let root = running_root();
    let opened = image.map(MachineImage::open).transpose()?;
    let top = match (target, &opened) {
        (_, Some(img)) => Top::open(img.top())?,
        (Some(t), None) => Top::open(t)?,
        (None, None) => {
            let kod = root.join("kod");
            Top::open(&kod).with_context(|| {
                format!(
                    "the running system has no kod top level at {}: name a machine's top level with --target TOP or its image with --image FILE",
                    kod.display()
                )
            })?
        }
    };
    if !top.generations_dir().is_dir() {
        anyhow::bail!(
            "{} is not a kod machine's top level ({} is missing): name a machine's top level with --target TOP, or install one with `kod install --target`",
            image.unwrap_or(top.path()).display(),
            top.generations_dir().display()
        );
    }
    let running = match opened {
        Some(_) => Running::none(),
        None => Running::detect(&top, &root)?,
    };
    let esp = match (&opened, target) {
        (Some(img), _) => img.esp().cloned(),
        (None, Some(_)) => kod_engine::boot_entries::esp_in_fstab(&top)?,
        (None, None) => kod_engine::boot_entries::mounted_esp(&root),
    };
    let mut top = top.with_report(ctx.report.clone());
    if let Some(at) = &esp {
        match kod_engine::boot_entries::boot_marks(at) {
            Ok(marks) => top = top.with_boot_marks(marks),
            Err(e) => eprintln!("kod: warning: the boot entries on {at} could not be read: {e}"),
        }
    }
    Ok(Machine {
        top,
        running,
        esp,
        _image: opened,
    })
}

/// Brings the machine's boot entries in step with its generations after
/// a change (a commit, a rollback, a delete); nothing for a machine whose
/// ESP kod does not know. The change itself is done already, so a failure
/// here says so.
pub(crate) fn sync_entries(ctx: &Context, m: &Machine) -> anyhow::Result<()> {
    let Some(at) = &m.esp else {
        return Ok(());
    };
    kod_engine::boot_entries::update(&m.top, at, m.running.booted, false, &ctx.report)
        .with_context(|| {
            format!(
                "the generations changed, but the boot entries on {at} could not follow: run \
                 `kod generations rollback N` (N the default) to write them again"
            )
        })?;
    Ok(())
}

/// The machine lock for `what`: waiting for another kod unless --no-wait.
/// An in-place rebuild a stopped kod left is finished (or undone) first,
/// so that every command that changes generations sees whole ones.
pub(crate) fn lock(ctx: &Context, top: &Top, what: &str) -> anyhow::Result<MachineLock> {
    let lock = if ctx.cli.no_wait {
        top.try_lock(what)
            .map_err(|e| anyhow::anyhow!("{e} (or run again without --no-wait to wait for it)"))?
    } else {
        top.lock(what)?
    };
    kod_engine::in_place::recover(top, &running_root(), &ctx.report)?;
    Ok(lock)
}

/// Runs `kod generations ACTION` (list without one).
pub fn run(
    ctx: &Context,
    action: Option<&GenerationsAction>,
    flags: &GenerationsFlags,
) -> anyhow::Result<ExitCode> {
    let m = machine(ctx, flags.target.as_deref(), flags.image.as_deref())?;
    let (top, running) = (&m.top, &m.running);
    let json = flags.json;
    let changed = match action.unwrap_or(&GenerationsAction::List) {
        GenerationsAction::List => list(top, running, json).map(|()| false),
        GenerationsAction::Diff { a, b } => diff(top, *a, *b, json).map(|()| false),
        GenerationsAction::Rollback {
            generation,
            dry_run,
        } => rollback(ctx, top, running, *generation, *dry_run, json).map(|()| !dry_run.dry_run),
        GenerationsAction::Delete {
            generations,
            dry_run,
        } => delete(ctx, top, running, generations, *dry_run, json).map(|()| !dry_run.dry_run),
        GenerationsAction::Gc { keep, dry_run } => {
            gc(ctx, top, running, *keep, *dry_run, json).map(|()| !dry_run.dry_run)
        }
    }?;
    if changed {
        // Under the machine lock again: no other kod moves the default
        // while the entries are written.
        let _lock = lock(ctx, top, "boot entries")?;
        sync_entries(ctx, &m)?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct ListOutput<'a> {
    top: &'a Path,
    #[serde(flatten)]
    listing: &'a Listing,
}

fn list(top: &Top, running: &Running, json: bool) -> anyhow::Result<()> {
    let listing = top.list(running)?;
    if json {
        let out = ListOutput {
            top: top.path(),
            listing: &listing,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if listing.generations.is_empty() {
        println!("no generations on {}", top.path().display());
        return Ok(());
    }
    print!("{}", table(&listing));
    if !top.boots() {
        println!("({})", kod_gen::DOES_NOT_BOOT);
    }
    Ok(())
}

/// The human table of a listing.
fn table(listing: &Listing) -> String {
    let rows: Vec<[String; 5]> = listing
        .generations
        .iter()
        .map(|g| {
            // YYYY-MM-DD HH:MM
            let date = g.committed.get(..16).unwrap_or(&g.committed);
            [
                g.number.to_string(),
                date.replacen('T', " ", 1),
                g.packages.to_string(),
                g.kernel
                    .as_ref()
                    .map_or("-".to_owned(), |k| match &k.version {
                        Some(v) => format!("{} {v}", k.package),
                        None => format!("{} (not installed)", k.package),
                    }),
                g.marks().join(", "),
            ]
        })
        .collect();
    let head = ["GEN", "COMMITTED (UTC)", "PACKAGES", "KERNEL", "MARKS"];
    let mut width = head.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: [&str; 5]| {
        format!(
            "{:>w0$}  {:w1$}  {:>w2$}  {:w3$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            w0 = width[0],
            w1 = width[1],
            w2 = width[2],
            w3 = width[3],
        )
        .trim_end()
        .to_owned()
            + "\n"
    };
    let mut out = line(head);
    for r in &rows {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
    }
    out
}

#[derive(Serialize)]
struct DiffOutput<'a> {
    from: u64,
    to: u64,
    #[serde(flatten)]
    diff: &'a RecordDiff,
}

fn diff(top: &Top, a: u64, b: u64, json: bool) -> anyhow::Result<()> {
    let ra = Record::read(top, a)?;
    let rb = Record::read(top, b)?;
    let d = RecordDiff::between(&ra, &rb);
    if json {
        let out = DiffOutput {
            from: a,
            to: b,
            diff: &d,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if d.is_empty() {
        println!(
            "generations {a} and {b} do not differ (packages, services, users, configuration files)"
        );
        return Ok(());
    }
    print!("{}", diff_text(a, b, &d));
    Ok(())
}

/// The human text of a diff: one section per kind that changed, `+` added,
/// `-` removed, `~` changed.
fn diff_text(a: u64, b: u64, d: &RecordDiff) -> String {
    let mut out = format!("from generation {a} to generation {b}:\n");
    let p = &d.packages;
    if !(p.added.is_empty() && p.removed.is_empty() && p.changed.is_empty()) {
        out.push_str(&format!(
            "packages: {} added, {} removed, {} changed\n",
            p.added.len(),
            p.removed.len(),
            p.changed.len()
        ));
        for x in &p.added {
            out.push_str(&format!("  + {} {} {}\n", x.name, x.version, x.arch));
        }
        for x in &p.removed {
            out.push_str(&format!("  - {} {} {}\n", x.name, x.version, x.arch));
        }
        for c in &p.changed {
            out.push_str(&format!(
                "  ~ {} {} {} -> {}\n",
                c.name, c.arch, c.from, c.to
            ));
        }
    }
    let s = &d.services;
    if !(s.enabled.is_empty() && s.disabled.is_empty()) {
        out.push_str("services:\n");
        for u in &s.enabled {
            out.push_str(&format!("  + {u} (enabled)\n"));
        }
        for u in &s.disabled {
            out.push_str(&format!("  - {u} (no longer enabled)\n"));
        }
    }
    let u = &d.users;
    if !(u.added.is_empty() && u.removed.is_empty() && u.changed.is_empty()) {
        out.push_str("users:\n");
        for n in &u.added {
            out.push_str(&format!("  + {n}\n"));
        }
        for n in &u.removed {
            out.push_str(&format!("  - {n}\n"));
        }
        for c in &u.changed {
            out.push_str(&format!("  ~ {}: {}\n", c.name, c.fields.join(", ")));
        }
    }
    let f = &d.config_files;
    if !(f.added.is_empty() && f.removed.is_empty() && f.changed.is_empty()) {
        out.push_str("configuration files:\n");
        for (sign, paths) in [("+", &f.added), ("-", &f.removed), ("~", &f.changed)] {
            for p in paths {
                out.push_str(&format!("  {sign} {}\n", p.display()));
            }
        }
    }
    out
}

#[derive(Serialize)]
struct RollbackOutput {
    /// The default before.
    was: Option<u64>,
    /// The default after.
    default: u64,
    /// The pointer's previous defaults after, newest first.
    previous_defaults: Vec<u64>,
    dry_run: bool,
}

/// Refuses a generation that is missing or not committed, as
/// `set_default` would.
fn committed(top: &Top, n: u64) -> Result<(), kod_gen::Error> {
    let dir = top.generation_dir(n);
    if !dir.is_dir() {
        return Err(kod_gen::Error::NoGeneration {
            generation: n,
            path: dir,
        });
    }
    if !top.is_committed(n) {
        return Err(kod_gen::Error::Incomplete {
            generation: n,
            marker: dir.join(kod_gen::RECORD_COMPLETE),
        });
    }
    Ok(())
}

/// The pointer after the rollback (to `n`, or back in its history).
fn rolled(top: &Top, n: Option<u64>) -> anyhow::Result<kod_gen::Pointer> {
    let pointer = top.pointer()?;
    Ok(match n {
        Some(n) => {
            committed(top, n)?;
            match pointer {
                Some(p) => p.moved_to(n),
                None => kod_gen::Pointer::new(n),
            }
        }
        None => pointer
            .and_then(|p| p.rolled_back(|g| top.is_committed(g)))
            .ok_or(kod_gen::Error::NoPrevious)?,
    })
}

fn rollback(
    ctx: &Context,
    top: &Top,
    running: &Running,
    n: Option<u64>,
    dry_run: DryRun,
    json: bool,
) -> anyhow::Result<()> {
    let (was, after) = if dry_run.dry_run {
        (top.default()?, rolled(top, n)?)
    } else {
        let _lock = lock(ctx, top, "rollback")?;
        let was = top.default()?;
        match n {
            Some(n) => top.set_default(n)?,
            None => {
                top.roll_back_default()?;
            }
        }
        let after = top
            .pointer()?
            .with_context(|| format!("{} vanished", top.path().join(kod_gen::POINTER).display()))?;
        (was, after)
    };
    if json {
        let out = RollbackOutput {
            was,
            default: after.default,
            previous_defaults: after.previous.clone(),
            dry_run: dry_run.dry_run,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let to = after.default;
        let from = was.map_or("none".to_owned(), |w| w.to_string());
        if Some(to) == was {
            println!("generation {to} is already the default");
        } else if dry_run.dry_run {
            println!("would make generation {to} the default (now {from})");
        } else {
            println!("generation {to} is the default now (was {from}): the next boot starts it");
        }
        if let Some(b) = running.booted.filter(|&b| b != to) {
            println!("the running system stays generation {b} until it boots generation {to}");
        }
    }
    if dry_run.dry_run {
        eprintln!("kod: dry run: {} untouched", top.path().display());
    }
    Ok(())
}

#[derive(Serialize)]
struct DeleteOutput<'a> {
    /// Deleted (or, in a dry run, to delete), oldest first.
    deleted: &'a [u64],
    dry_run: bool,
}

fn delete(
    ctx: &Context,
    top: &Top,
    running: &Running,
    generations: &[u64],
    dry_run: DryRun,
    json: bool,
) -> anyhow::Result<()> {
    let wanted: Vec<u64> = generations
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let check = |top: &Top| -> anyhow::Result<()> {
        for &n in &wanted {
            top.check_delete(running, n)
                .map_err(|e| anyhow::anyhow!("{e}; nothing was deleted"))?;
        }
        Ok(())
    };
    if dry_run.dry_run {
        check(top)?;
    } else {
        let _lock = lock(ctx, top, "delete")?;
        check(top)?;
        for &n in &wanted {
            top.delete(n)?;
            if !json {
                println!("deleted generation {n}");
            }
        }
    }
    if json {
        let out = DeleteOutput {
            deleted: &wanted,
            dry_run: dry_run.dry_run,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    if dry_run.dry_run {
        if !json {
            for n in &wanted {
                println!(
                    "would delete generation {n} ({})",
                    top.generation_dir(*n).display()
                );
            }
        }
        eprintln!("kod: dry run: {} untouched", top.path().display());
    }
    Ok(())
}

#[derive(Serialize)]
struct GcOutput<'a> {
    #[serde(flatten)]
    plan: &'a GcPlan,
    dry_run: bool,
}

fn gc(
    ctx: &Context,
    top: &Top,
    running: &Running,
    keep: usize,
    dry_run: DryRun,
    json: bool,
) -> anyhow::Result<()> {
    let _lock = if dry_run.dry_run {
        None
    } else {
        Some(lock(ctx, top, "gc")?)
    };
    // Planned under the lock, so no other kod changes it meanwhile.
    let plan = top.gc_plan(running, keep)?;
    if !json {
        for k in &plan.kept {
            let why: Vec<&str> = k.why.iter().map(|w| w.word()).collect();
            println!("keep generation {} ({})", k.generation, why.join(", "));
        }
    }
    for &n in &plan.delete {
        if dry_run.dry_run {
            if !json {
                println!("would delete generation {n}");
            }
        } else {
            top.delete(n)?;
            if !json {
                println!("deleted generation {n}");
            }
        }
    }
    if json {
        let out = GcOutput {
            plan: &plan,
            dry_run: dry_run.dry_run,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if plan.delete.is_empty() {
        println!("nothing to delete");
    }
    if dry_run.dry_run {
        eprintln!("kod: dry run: {} untouched", top.path().display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kod_gen::{Generation, Kernel, LockedPackage, PackageChange};

    use super::*;

    #[test]
    fn the_table_lines_up_and_names_the_marks() {
        let g = |number, kernel: Option<Kernel>, default, last_good| Generation {
            number,
            committed: kod_gen::utc(1_709_210_096),
            committed_unix: 1_709_210_096,
            kernel,
            packages: 120 + number as usize,
            kod_version: "0.1.0".into(),
            booted: number == 9,
            current: number == 9,
            default,
            last_good,
            bad: number == 8,
        };
        let listing = Listing {
            booted: Some(9),
            current: Some(9),
            default: Some(10),
            last_good: Some(10),
            bad: vec![8],
            previous_defaults: vec![9],
            generations: vec![
                g(8, None, false, false),
                g(9, None, false, false),
                g(
                    10,
                    Some(Kernel {
                        package: "linux-image-amd64".into(),
                        version: Some("6.1.129-1".into()),
                    }),
                    true,
                    true,
                ),
            ],
        };
        assert_eq!(
            table(&listing),
            "\
GEN  COMMITTED (UTC)   PACKAGES  KERNEL                       MARKS
  8  2024-02-29 12:34       128  -                            bad
  9  2024-02-29 12:34       129  -                            booted, current
 10  2024-02-29 12:34       130  linux-image-amd64 6.1.129-1  default, last good
"
        );
    }

    #[test]
    fn the_diff_text_has_a_section_per_kind_that_changed() {
        let mut d = RecordDiff::default();
        d.packages.added.push(LockedPackage {
            name: "vim".into(),
            version: "2:9.0".into(),
            arch: "amd64".into(),
        });
        d.packages.changed.push(PackageChange {
            name: "libc6".into(),
            arch: "amd64".into(),
            from: "2.36-9".into(),
            to: "2.36-10".into(),
        });
        d.services.disabled.push("cron.service".into());
        d.config_files.changed.push("configuration.lua".into());
        assert_eq!(
            diff_text(1, 2, &d),
            "\
from generation 1 to generation 2:
packages: 1 added, 0 removed, 1 changed
  + vim 2:9.0 amd64
  ~ libc6 amd64 2.36-9 -> 2.36-10
services:
  - cron.service (no longer enabled)
configuration files:
  ~ configuration.lua
"
        );
    }
}
