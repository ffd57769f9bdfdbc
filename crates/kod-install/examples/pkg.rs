//! By-hand driver: install .deb files into an existing root, or remove
//! packages from it, with kod-install, printing where the time went.
//!
//! usage: pkg [-v] [--no-wait] install ROOT DEB...
//!        pkg [-v] [--no-wait] remove ROOT [--with-dependents] [--purge] NAME...

use std::path::PathBuf;
use std::time::Instant;

use kod_install::{Options, Transaction};
use kod_report::{Lines, Report};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut options = Options::default();
    while args.first().is_some_and(|a| a.starts_with('-')) {
        match args.remove(0).as_str() {
            "-v" => {
                options.report = Report::to(Lines::new(Box::new(std::io::stderr()), true));
            }
            "--no-wait" => options.no_wait = true,
            "--debug" => options.debug = true,
            other => usage(&format!("unknown option {other}")),
        }
    }
    if args.len() < 3 {
        usage("missing arguments");
    }
    let cmd = args.remove(0);
    let root = PathBuf::from(args.remove(0));
    let t0 = Instant::now();
    let t = Transaction::begin(&root, &options).unwrap_or_else(|e| fail(&e));
    let t1 = Instant::now();
    // `run` drops the transaction (rolling it back on error) before we exit.
    let result = run(t, &cmd, &args, t0, t1);
    if let Err(e) = result {
        fail(&e);
    }
}

fn run(
    mut t: Transaction,
    cmd: &str,
    args: &[String],
    t0: Instant,
    t1: Instant,
) -> Result<(), kod_install::Error> {
    match cmd {
        "install" => {
            let debs: Vec<PathBuf> = args.iter().map(PathBuf::from).collect();
            let r = t.install(&debs)?;
            let t2 = Instant::now();
            let c = t.commit()?;
            let t3 = Instant::now();
            println!(
                "{} new, {} upgraded, {} unchanged, {} files; begin {:.3} s, unpack+register \
                 {:.3} s, configure+commit {:.3} s ({} moved, {} removed), total {:.3} s",
                r.unpacked.len(),
                r.upgraded.len(),
                r.unchanged.len(),
                r.files,
                (t1 - t0).as_secs_f64(),
                (t2 - t1).as_secs_f64(),
                (t3 - t2).as_secs_f64(),
                c.moved,
                c.removed,
                (t3 - t0).as_secs_f64()
            );
        }
        "remove" => {
            let with = args.iter().any(|a| a == "--with-dependents");
            let purge = args.iter().any(|a| a == "--purge");
            let names: Vec<&str> = args
                .iter()
                .filter(|a| !a.starts_with("--"))
                .map(String::as_str)
                .collect();
            let plan = t
                .plan_removal(&names, with, purge)
                .unwrap_or_else(|e| fail(&e));
            println!(
                "removing: {}",
                plan.packages().collect::<Vec<_>>().join(" ")
            );
            t.remove(&plan)?;
            let c = t.commit()?;
            println!(
                "done in {:.3} s ({} moved, {} removed)",
                t0.elapsed().as_secs_f64(),
                c.moved,
                c.removed
            );
        }
        other => usage(&format!("unknown command {other}")),
    }
    Ok(())
}

fn usage(why: &str) -> ! {
    eprintln!(
        "{why}\nusage: pkg [-v] [--no-wait] install ROOT DEB...\n       pkg [-v] [--no-wait] remove ROOT [--with-dependents] [--purge] NAME..."
    );
    std::process::exit(2);
}

fn fail(e: &kod_install::Error) -> ! {
    eprintln!("error: {e}");
    std::process::exit(1);
}
