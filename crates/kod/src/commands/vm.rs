//! `kod vm IMAGE [--generation N] [--check] [--run CMD]... [--timeout S]
//! [--json]`: boots an image in qemu under OVMF (kod-vm). Interactive
//! without --check; with it, the guest's report judged: 0 booted, 1
//! failed, 3 no report in time.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use kod_vm::{Boot, Ending, Firmware, Outcome, Report, Request, Watch};
use serde::Serialize;

use crate::context::Context;

/// The command line of `kod vm`.
pub struct Args<'a> {
    /// The image.
    pub image: &'a Path,
    /// `--generation N`.
    pub generation: Option<u32>,
    /// `--check`.
    pub check: bool,
    /// `--run CMD`.
    pub run: &'a [String],
    /// `--timeout S`.
    pub timeout: u64,
    /// `--json`.
    pub json: bool,
}

#[derive(Serialize)]
struct RunOut<'a> {
    command: &'a str,
    status: Option<i32>,
    output: &'a [String],
}

#[derive(Serialize)]
struct Output<'a> {
    generation: Option<u64>,
    blessed: bool,
    bless: Option<&'a str>,
    entry: Option<&'a str>,
    failed_units: &'a [String],
    runs: Vec<RunOut<'a>>,
    accel: kod_vm::Accel,
    seconds: f64,
    outcome: Ending,
    reason: Option<&'a str>,
    /// Kept when the boot did not pass; removed with its directory otherwise.
    console_log: Option<String>,
}

/// Boots the image; checked when --check, --run or --json asks for it.
pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    // Before the firmware's probe: a mistyped path is the likelier mistake.
    std::fs::metadata(args.image)
        .with_context(|| format!("cannot read the image {}", args.image.display()))?;
    let firmware = Firmware::find()?;
    let probe = tempfile::Builder::new().prefix("kod-vm-probe-").tempdir()?;
    let choice = kod_vm::choose(&firmware, probe.path())?;
    ctx.report
        .verbose(|| format!("accelerator {}: {}", choice.accel, choice.why));
    let checked = args.check || !args.run.is_empty() || args.json;
    let request = Request {
        image: args.image.to_path_buf(),
        generation: args.generation.map(u64::from),
        checks: checked.then(|| args.run.to_vec()),
        accel: choice.accel,
    };
    let boot = Boot::prepare(&request, &firmware)?;
    ctx.report.verbose(|| format!("{:?}", boot.command()));
    let what = match args.generation {
        Some(n) => format!("generation {n} of {}", args.image.display()),
        None => args.image.display().to_string(),
    };
    eprintln!("kod: booting {what} ({}) …", choice.accel);
    if !checked {
        let (status, report) = boot.interactive()?;
        if report.complete {
            eprintln!("kod: the guest reported: {}", summary(&report));
        }
        return Ok(ExitCode::from(
            status.code().unwrap_or(1).clamp(0, 255) as u8
        ));
    }
    let watch = Progress::new(&what, choice.accel, ctx.cli.verbose);
    let outcome = boot.check(Duration::from_secs(args.timeout), &watch)?;
    watch.finish();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json(&outcome, choice.accel))?
        );
    } else {
        print!("{}", text(&outcome.report));
    }
    tell(&outcome);
    Ok(ExitCode::from(outcome.exit_code()))
}

/// The spinner on a terminal, and with -v the console's lines.
struct Progress {
    bar: Option<ProgressBar>,
    console: bool,
}

impl Progress {
    fn new(what: &str, accel: kod_vm::Accel, console: bool) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                    .expect("a valid template"),
            );
            bar.set_message(format!("waiting for the report of {what} ({accel})"));
            bar
        });
        Progress { bar, console }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Watch for Progress {
    fn tick(&self, _elapsed: Duration) {
        if let Some(bar) = &self.bar {
            bar.tick();
        }
    }

    fn console(&self, line: &str) {
        if !self.console {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(format!("console: {line}")),
            None => eprintln!("console: {line}"),
        }
    }
}

/// One line on what the guest said about its boot.
fn summary(r: &Report) -> String {
    let generation = r
        .generation
        .map_or("an unknown generation".to_string(), |g| {
            format!("generation {g}")
        });
    let entry = r
        .entry
        .as_deref()
        .map_or("booted directly".to_string(), |e| format!("entry {e}"));
    let failed = if r.failed.is_empty() {
        "no failed units".to_string()
    } else {
        format!("failed units: {}", r.failed.join(", "))
    };
    format!(
        "{generation} ({entry}), blessed: {}, {failed}",
        r.bless.as_deref().unwrap_or("not reported")
    )
}

/// The report for people: the summary, then each command with its
/// output and status.
fn text(r: &Report) -> String {
    let mut s = format!("{}\n", summary(r));
    for run in &r.runs {
        let status = run
            .status
            .map_or("did not finish".to_string(), |c| format!("status {c}"));
        s.push_str(&format!("$ {}    ({status})\n", run.command));
        for line in &run.output {
            s.push_str(&format!("  {line}\n"));
        }
    }
    s
}

fn json(o: &Outcome, accel: kod_vm::Accel) -> Output<'_> {
    let r = &o.report;
    Output {
        generation: r.generation,
        blessed: r.blessed(),
        bless: r.bless.as_deref(),
        entry: r.entry.as_deref(),
        failed_units: &r.failed,
        runs: r
            .runs
            .iter()
            .map(|run| RunOut {
                command: &run.command,
                status: run.status,
                output: &run.output,
            })
            .collect(),
        accel,
        seconds: o.seconds,
        outcome: o.ending,
        reason: o.reason.as_deref(),
        console_log: (o.ending != Ending::Booted).then(|| o.console_log.display().to_string()),
    }
}

/// The verdict on stderr; for a boot that did not pass, where its console
/// log is and its last lines.
fn tell(o: &Outcome) {
    let reason = o.reason.as_deref().unwrap_or_default();
    match o.ending {
        Ending::Booted => {
            eprintln!("kod: the guest booted and reported in {:.0} s", o.seconds);
            return;
        }
        Ending::Failed => eprintln!("kod: the boot failed: {reason}"),
        Ending::Timeout => eprintln!("kod: timed out: {reason} (a longer --timeout?)"),
    }
    eprintln!(
        "kod: the console's last {} lines (all of it in {}):",
        o.console_tail.len(),
        o.console_log.display()
    );
    for line in &o.console_tail {
        eprintln!("  {line}");
    }
}
