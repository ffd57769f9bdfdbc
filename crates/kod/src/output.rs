//! Small helpers for printing things people read.

/// A byte count as people read it: `1.5 MiB`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// Prints what libraries report on stderr: notes as `kod: …`, warnings as
/// `kod: warning: …`, `-v` lines (and with `-d` the commands kod would
/// run) as they are.
struct Stderr {
    verbose: bool,
}

impl kod_report::Reporter for Stderr {
    fn message(&self, level: kod_report::Level, text: &str) {
        match level {
            kod_report::Level::Verbose | kod_report::Level::Output => eprintln!("{text}"),
            kod_report::Level::Note => eprintln!("kod: {text}"),
            kod_report::Level::Warning => eprintln!("kod: warning: {text}"),
        }
    }

    fn verbose(&self) -> bool {
        self.verbose
    }
}

/// The report of one command, from the global flags.
pub fn report(cli: &crate::cli::Cli) -> kod_report::Report {
    kod_report::Report::to(std::sync::Arc::new(Stderr {
        verbose: cli.verbose || cli.debug,
    }))
}
