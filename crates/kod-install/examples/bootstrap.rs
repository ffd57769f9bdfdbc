//! By-hand benchmark and smoke test: builds a new root from .deb files
//! with kod-install (unpack, register, preinsts, `dpkg --configure -a`,
//! commit) and prints where the time went.
//!
//! usage: bootstrap [-v] ROOT ARCH DEB...   (as root)

use std::path::PathBuf;
use std::time::Instant;

use kod_install::{BootstrapOptions, Options, Transaction};
use kod_report::{Lines, Report};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let verbose = args.first().is_some_and(|a| a == "-v");
    if verbose {
        args.remove(0);
    }
    if args.len() < 3 {
        eprintln!("usage: bootstrap [-v] ROOT ARCH DEB...");
        std::process::exit(2);
    }
    let root = PathBuf::from(&args[0]);
    let debs: Vec<PathBuf> = args[2..].iter().map(PathBuf::from).collect();
    let options = Options {
        report: Report::to(Lines::new(Box::new(std::io::stderr()), verbose)),
        ..Options::default()
    };
    let t0 = Instant::now();
    let mut t = Transaction::bootstrap(&root, &BootstrapOptions::new(&args[1]), &options)
        .unwrap_or_else(|e| fail(&e));
    let t1 = Instant::now();
    let r = t.install(&debs).unwrap_or_else(|e| fail(&e));
    let t2 = Instant::now();
    let c = t.commit().unwrap_or_else(|e| fail(&e));
    let t3 = Instant::now();
    println!(
        "{} packages, {} files, {} MB; prepare {:.3} s, unpack+register+preinst {:.3} s, \
         configure+commit {:.3} s, total {:.3} s; committed: {}",
        r.unpacked.len(),
        r.files,
        r.bytes / 1_000_000,
        (t1 - t0).as_secs_f64(),
        (t2 - t1).as_secs_f64(),
        (t3 - t2).as_secs_f64(),
        (t3 - t0).as_secs_f64(),
        c.committed
    );
}

fn fail(e: &kod_install::Error) -> ! {
    eprintln!("error: {e}");
    std::process::exit(1);
}
