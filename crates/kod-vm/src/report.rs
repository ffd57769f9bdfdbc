//! The host's side of the boot report: the lines the guest's script
//! (`guest/report`) wrote on the report port, parsed.

use serde::Serialize;

/// The prefix of every report line; other lines on the port are noise.
pub const PREFIX: &str = "kod-report: ";

/// The protocol version this parser reads (`begin 1`).
pub const VERSION: u32 = 1;

/// One check command the guest ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Run {
    /// Its line number in the check disk's `commands` (1-based).
    pub index: usize,
    /// The command.
    pub command: String,
    /// Its output lines, stdout and stderr together.
    pub output: Vec<String>,
    /// Its exit status; `None` when the report was cut before it.
    pub status: Option<i32>,
}

/// What the guest reported about its boot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The protocol version of `begin`; `None` before it was seen.
    pub version: Option<u32>,
    /// The booted generation (its `/.generation`).
    pub generation: Option<u64>,
    /// `systemd-bless-boot status`: good, bad, indeterminate, clean, or
    /// unknown when it is missing or failed.
    pub bless: Option<String>,
    /// The loader entry systemd-boot booted (`LoaderEntrySelected`);
    /// `None` for a direct kernel boot.
    pub entry: Option<String>,
    /// Units that failed in this boot.
    pub failed: Vec<String>,
    /// The check commands, in order.
    pub runs: Vec<Run>,
    /// Whether `end` was seen: the report is whole.
    pub complete: bool,
}

impl Report {
    /// Parses what the report port captured. `\r` is dropped (a port not
    /// set raw adds it), lines without [`PREFIX`] are ignored, and a last
    /// line without its newline is left out: the guest may still be
    /// writing it.
    pub fn parse(bytes: &[u8]) -> Report {
        let text = String::from_utf8_lossy(bytes);
        let mut report = Report::default();
        let whole = match text.rfind('\n') {
            Some(i) => &text[..i],
            None => return report,
        };
        for line in whole.split('\n') {
            let line = line.trim_end_matches('\r');
            if let Some(rest) = line.strip_prefix(PREFIX) {
                report.line(rest);
            }
        }
        report
    }

    /// Whether the boot was assessed good by systemd-bless-boot.
    pub fn blessed(&self) -> bool {
        self.bless.as_deref() == Some("good")
    }

    /// One report line, its prefix removed. Unknown keys are skipped, so
    /// a newer guest's extra lines do not break an older host.
    fn line(&mut self, rest: &str) {
        let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
        match key {
            "begin" => self.version = value.parse().ok(),
            "generation" => self.generation = value.parse().ok(),
            "blessed" => self.bless = Some(value.to_string()),
            "entry" => self.entry = Some(value.to_string()),
            "failed" => self.failed.push(value.to_string()),
            "run" => {
                if let Some((index, command)) = indexed(value) {
                    self.runs.push(Run {
                        index,
                        command: command.to_string(),
                        ..Run::default()
                    });
                }
            }
            "out" => {
                if let Some((index, text)) = indexed(value)
                    && let Some(run) = self.run(index)
                {
                    run.output.push(text.to_string());
                }
            }
            "status" => {
                if let Some((index, code)) = indexed(value)
                    && let Some(run) = self.run(index)
                {
                    run.status = code.parse().ok();
                }
            }
            "end" => self.complete = true,
            _ => {}
        }
    }

    fn run(&mut self, index: usize) -> Option<&mut Run> {
        self.runs.iter_mut().rev().find(|r| r.index == index)
    }
}

/// `I REST` of the run, out and status lines; REST may be empty (an
/// empty output line) and keeps its spaces.
fn indexed(value: &str) -> Option<(usize, &str)> {
    let (index, rest) = value.split_once(' ').unwrap_or((value, ""));
    Some((index.parse().ok()?, rest))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const FULL: &str = "noise before\r\n\
        kod-report: begin 1\r\n\
        kod-report: generation 3\n\
        kod-report: blessed good\n\
        kod-report: entry kod-3_2+2-1.conf\n\
        kod-report: failed foo.service\n\
        kod-report: failed bar.mount\n\
        [  12.3] kernel noise\n\
        kod-report: run 1 echo  a b\n\
        kod-report: out 1  a b\n\
        kod-report: out 1 \n\
        kod-report: status 1 0\n\
        kod-report: run 2 false\n\
        kod-report: status 2 1\n\
        kod-report: end\n";

    #[test]
    fn a_whole_report() {
        let r = Report::parse(FULL.as_bytes());
        assert_eq!(r.version, Some(1));
        assert_eq!(r.generation, Some(3));
        assert_eq!(r.bless.as_deref(), Some("good"));
        assert!(r.blessed());
        assert_eq!(r.entry.as_deref(), Some("kod-3_2+2-1.conf"));
        assert_eq!(r.failed, ["foo.service", "bar.mount"]);
        assert_eq!(
            r.runs,
            [
                Run {
                    index: 1,
                    command: "echo  a b".into(),
                    output: vec![" a b".into(), "".into()],
                    status: Some(0)
                },
                Run {
                    index: 2,
                    command: "false".into(),
                    output: vec![],
                    status: Some(1)
                }
            ]
        );
        assert!(r.complete);
    }

    #[test]
    fn a_cut_report_is_what_it_has_so_far() {
        let cut = FULL.find("status 2 1").unwrap() + "status 2".len();
        let r = Report::parse(&FULL.as_bytes()[..cut]);
        assert!(!r.complete);
        assert_eq!(r.runs.len(), 2);
        // "status 2" without its newline is not read as a status.
        assert_eq!(r.runs[1].status, None);
        assert_eq!(Report::parse(b"kod-report: begin 1"), Report::default());
        assert_eq!(Report::parse(b""), Report::default());
    }

    #[test]
    fn only_good_is_blessed() {
        for word in ["bad", "indeterminate", "clean", "unknown"] {
            let text = format!("kod-report: blessed {word}\n");
            let r = Report::parse(text.as_bytes());
            assert_eq!(r.bless.as_deref(), Some(word));
            assert!(!r.blessed());
        }
    }

    #[test]
    fn junk_is_ignored() {
        let r = Report::parse(
            b"kod-report: generation x\nkod-report: out 9 stray\nkod-report: later 1\n\xff\xfe\nkod-report: status x\n",
        );
        assert_eq!(r, Report::default());
    }

    proptest! {
        /// Whatever a command prints (lines without newlines), the host
        /// reads back the same lines, as the script writes them.
        #[test]
        fn command_output_round_trips(
            command in "[^\r\n]{1,40}",
            output in proptest::collection::vec("[^\r\n]{0,60}", 0..20),
            status in 0i32..256,
            cr in any::<bool>(),
        ) {
            let nl = if cr { "\r\n" } else { "\n" };
            let mut text = format!("{PREFIX}begin 1{nl}{PREFIX}run 1 {command}{nl}");
            for line in &output {
                text.push_str(&format!("{PREFIX}out 1 {line}{nl}"));
            }
            text.push_str(&format!("{PREFIX}status 1 {status}{nl}{PREFIX}end{nl}"));
            let r = Report::parse(text.as_bytes());
            prop_assert!(r.complete);
            prop_assert_eq!(&r.runs, &vec![Run { index: 1, command, output, status: Some(status) }]);
        }
    }
}
