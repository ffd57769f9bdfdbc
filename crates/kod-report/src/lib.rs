//! kod-report: the one way kod's libraries tell what they are doing.
//!
//! Libraries never print. A stage (loading metadata, resolving, fetching,
//! unpacking, pre-install scripts, configuring, committing) announces its
//! work, advances, and finishes through a [`Report`]; notes, warnings,
//! `-v` lines (external commands, timings) and the configuration's Lua
//! `print` go through it as [`Level`]ed messages. The binary implements
//! [`Reporter`] (bars on a terminal, plain lines elsewhere); tests use
//! [`Recorder`]; [`Report::quiet`] drops everything.
//!
//! Error texts are not reports: libraries return errors that say what to
//! do in words, and the binary maps them to its flags.
#![deny(missing_docs)]

use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// A stage of a transaction (or of the commands around one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Reading repository metadata and building the index.
    Metadata,
    /// Resolving what to install.
    Resolve,
    /// Downloading packages.
    Fetch,
    /// Unpacking packages into the target.
    Unpack,
    /// Scripts that run before unpacking (dpkg's preinsts).
    PreInstall,
    /// Configuring what was installed (dpkg --configure, hooks).
    Configure,
    /// Writing the configuration's settings into the root (kod-system).
    Settle,
    /// Building the initramfs of the root's kernels.
    Initramfs,
    /// Making the result the target (sync, rename, record).
    Commit,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 9] = [
        Stage::Metadata,
        Stage::Resolve,
        Stage::Fetch,
        Stage::Unpack,
        Stage::PreInstall,
        Stage::Configure,
        Stage::Settle,
        Stage::Initramfs,
        Stage::Commit,
    ];

    /// A short name for people: `fetch`, `unpack`, ...
    pub fn name(self) -> &'static str {
        match self {
            Stage::Metadata => "metadata",
            Stage::Resolve => "resolve",
            Stage::Fetch => "fetch",
            Stage::Unpack => "unpack",
            Stage::PreInstall => "preinst",
            Stage::Configure => "configure",
            Stage::Settle => "settle",
            Stage::Initramfs => "initramfs",
            Stage::Commit => "commit",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How much work a stage has, or has done: items (packages, files) and
/// bytes; 0 where it is not known or does not apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    /// Items: packages, files, scripts.
    pub items: u64,
    /// Bytes.
    pub bytes: u64,
}

impl Work {
    /// `items` items and `bytes` bytes.
    pub fn new(items: u64, bytes: u64) -> Work {
        Work { items, bytes }
    }

    /// `items` items, no byte count.
    pub fn items(items: u64) -> Work {
        Work { items, bytes: 0 }
    }
}

/// A byte count with SI prefixes as people read sizes and rates in kod's
/// reports: `512 B`, `2.00 kB`, `1.50 MB` (the form indicatif's
/// `DecimalBytes` draws, so messages and bars agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const PREFIXES: [&str; 6] = ["k", "M", "G", "T", "P", "E"];
        let mut v = self.0 as f64;
        if v < 1000.0 {
            return write!(f, "{} B", self.0);
        }
        let mut i = 0;
        v /= 1000.0;
        while v >= 1000.0 && i + 1 < PREFIXES.len() {
            v /= 1000.0;
            i += 1;
        }
        write!(f, "{v:.2} {}B", PREFIXES[i])
    }
}

/// What kind of message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// Detail shown with `-v`: every external command kod runs, mounts,
    /// timings, the output of commands.
    Verbose,
    /// Something a person should know (leftovers removed, an interrupted
    /// commit completed).
    Note,
    /// Something went wrong but the work goes on.
    Warning,
    /// What the user's own code printed (the configuration's Lua `print`).
    Output,
}

/// What a front end implements to show kod's work. Every method has a
/// do-nothing default. Called from several threads at once, and
/// [`Reporter::stage_advanced`] from inside download and unpack loops: it
/// must stay cheap (count with atomics, draw on another thread), so that
/// reporting costs the work no lock.
pub trait Reporter: Send + Sync {
    /// A stage begins, with the work it has ahead (zeros when unknown).
    fn stage_started(&self, _stage: Stage, _total: Work) {}
    /// Part of a stage's work is done: `done` more items and bytes;
    /// `item` names the last one (may be empty).
    fn stage_advanced(&self, _stage: Stage, _done: Work, _item: &str) {}
    /// Bytes counted by [`Reporter::stage_advanced`] are taken back (a
    /// partial download starting over).
    fn stage_rewound(&self, _stage: Stage, _bytes: u64) {}
    /// The stage is over (also when it failed).
    fn stage_finished(&self, _stage: Stage) {}
    /// A message for people.
    fn message(&self, _level: Level, _text: &str) {}
    /// Whether [`Level::Verbose`] messages are shown; libraries may skip
    /// building them (and collecting command output) when not.
    fn verbose(&self) -> bool {
        false
    }
}

/// A reporter that shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Reporter for Quiet {}

/// Where a library reports: a cheap, cloneable handle on a [`Reporter`].
/// The default is quiet.
#[derive(Clone)]
pub struct Report(Arc<dyn Reporter>);

impl Default for Report {
    fn default() -> Report {
        Report::quiet()
    }
}

impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Report")
    }
}

/// Two handles are equal when they report to the same reporter.
impl PartialEq for Report {
    fn eq(&self, other: &Report) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.0), Arc::as_ptr(&other.0))
    }
}

impl Eq for Report {}

impl Report {
    /// Reports to `reporter`.
    pub fn to(reporter: Arc<dyn Reporter>) -> Report {
        Report(reporter)
    }

    /// Reports nowhere.
    pub fn quiet() -> Report {
        Report(Arc::new(Quiet))
    }

    /// Starts `stage` with `total` work ahead; it finishes when the
    /// returned guard is dropped.
    pub fn stage(&self, stage: Stage, total: Work) -> StageRun<'_> {
        self.0.stage_started(stage, total);
        StageRun {
            report: self,
            stage,
        }
    }

    /// A message at `level`.
    pub fn message(&self, level: Level, text: &str) {
        self.0.message(level, text);
    }

    /// A `-v` line, built only when it is shown.
    pub fn verbose(&self, text: impl FnOnce() -> String) {
        if self.0.verbose() {
            self.0.message(Level::Verbose, &text());
        }
    }

    /// A note.
    pub fn note(&self, text: &str) {
        self.0.message(Level::Note, text);
    }

    /// A warning.
    pub fn warning(&self, text: &str) {
        self.0.message(Level::Warning, text);
    }

    /// Whether `-v` lines are shown.
    pub fn is_verbose(&self) -> bool {
        self.0.verbose()
    }

    /// The reporter itself (for code that reports from plain references).
    pub fn reporter(&self) -> &dyn Reporter {
        &*self.0
    }
}

/// A running stage; reports it finished when dropped.
pub struct StageRun<'a> {
    report: &'a Report,
    stage: Stage,
}

impl StageRun<'_> {
    /// `done` more work, the last item named `item`.
    pub fn advance(&self, done: Work, item: &str) {
        self.report.0.stage_advanced(self.stage, done, item);
    }

    /// Takes back `bytes` counted before.
    pub fn rewind(&self, bytes: u64) {
        self.report.0.stage_rewound(self.stage, bytes);
    }

    /// The stage.
    pub fn stage(&self) -> Stage {
        self.stage
    }
}

impl Drop for StageRun<'_> {
    fn drop(&mut self) {
        self.report.0.stage_finished(self.stage);
    }
}

/// A reporter that writes every message as a plain line into a sink the
/// caller chooses (`-v` lines only when `verbose`), and nothing of stages:
/// for by-hand tools and examples. Notes and warnings get a `kod: ` prefix.
pub struct Lines {
    sink: Mutex<Box<dyn std::io::Write + Send>>,
    verbose: bool,
}

impl Lines {
    /// Lines into `sink`.
    pub fn new(sink: Box<dyn std::io::Write + Send>, verbose: bool) -> Arc<Lines> {
        Arc::new(Lines {
            sink: Mutex::new(sink),
            verbose,
        })
    }
}

impl Reporter for Lines {
    fn message(&self, level: Level, text: &str) {
        let prefix = match level {
            Level::Verbose | Level::Output => "",
            Level::Note => "kod: ",
            Level::Warning => "kod: warning: ",
        };
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(sink, "{prefix}{text}");
    }

    fn verbose(&self) -> bool {
        self.verbose
    }
}

/// One thing a [`Recorder`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// [`Reporter::stage_started`].
    Started(Stage, Work),
    /// [`Reporter::stage_advanced`].
    Advanced(Stage, Work, String),
    /// [`Reporter::stage_rewound`].
    Rewound(Stage, u64),
    /// [`Reporter::stage_finished`].
    Finished(Stage),
    /// [`Reporter::message`].
    Message(Level, String),
}

/// A reporter that keeps every event, for tests and for front ends that
/// show a summary afterwards.
#[derive(Debug, Default)]
pub struct Recorder {
    events: Mutex<Vec<Event>>,
    verbose: bool,
}

impl Recorder {
    /// A recorder; `verbose` says whether it asks for `-v` lines.
    pub fn new(verbose: bool) -> Arc<Recorder> {
        Arc::new(Recorder {
            events: Mutex::new(Vec::new()),
            verbose,
        })
    }

    /// What it saw so far.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The messages at `level`, in order.
    pub fn messages(&self, level: Level) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Message(l, t) if l == level => Some(t),
                _ => None,
            })
            .collect()
    }

    /// The work reported done in `stage`, summed.
    pub fn done(&self, stage: Stage) -> Work {
        let mut w = Work::default();
        for e in self.events() {
            match e {
                Event::Advanced(s, d, _) if s == stage => {
                    w.items += d.items;
                    w.bytes += d.bytes;
                }
                Event::Rewound(s, b) if s == stage => w.bytes -= b,
                _ => {}
            }
        }
        w
    }

    fn push(&self, e: Event) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e);
    }
}

impl Reporter for Recorder {
    fn stage_started(&self, stage: Stage, total: Work) {
        self.push(Event::Started(stage, total));
    }
    fn stage_advanced(&self, stage: Stage, done: Work, item: &str) {
        self.push(Event::Advanced(stage, done, item.to_string()));
    }
    fn stage_rewound(&self, stage: Stage, bytes: u64) {
        self.push(Event::Rewound(stage, bytes));
    }
    fn stage_finished(&self, stage: Stage) {
        self.push(Event::Finished(stage));
    }
    fn message(&self, level: Level, text: &str) {
        self.push(Event::Message(level, text.to_string()));
    }
    fn verbose(&self) -> bool {
        self.verbose
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_finishes_when_its_guard_goes_even_on_early_return() {
        let rec = Recorder::new(false);
        let report = Report::to(rec.clone());
        let failing = || -> Result<(), ()> {
            let run = report.stage(Stage::Unpack, Work::items(2));
            run.advance(Work::new(1, 10), "a");
            Err(())
        };
        assert!(failing().is_err());
        assert_eq!(
            rec.events(),
            vec![
                Event::Started(Stage::Unpack, Work::items(2)),
                Event::Advanced(Stage::Unpack, Work::new(1, 10), "a".into()),
                Event::Finished(Stage::Unpack),
            ]
        );
    }

    #[test]
    fn verbose_lines_are_built_only_when_asked_for() {
        let quiet = Recorder::new(false);
        let mut built = false;
        Report::to(quiet.clone()).verbose(|| {
            built = true;
            "x".into()
        });
        assert!(!built);
        assert!(quiet.events().is_empty());
        let loud = Recorder::new(true);
        Report::to(loud.clone()).verbose(|| "+ dpkg --configure -a".into());
        assert_eq!(loud.messages(Level::Verbose), ["+ dpkg --configure -a"]);
    }

    #[test]
    fn lines_prefix_notes_and_warnings_and_keep_verbose_lines_when_asked() {
        #[derive(Clone, Default)]
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Shared {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        for verbose in [false, true] {
            let out = Shared::default();
            let report = Report::to(Lines::new(Box::new(out.clone()), verbose));
            report.note("removing x");
            report.warning("killed y");
            report.verbose(|| "+ dpkg".into());
            report.message(Level::Output, "hello from lua");
            let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
            let verbose_line = if verbose { "+ dpkg\n" } else { "" };
            assert_eq!(
                text,
                format!("kod: removing x\nkod: warning: killed y\n{verbose_line}hello from lua\n")
            );
        }
    }

    #[test]
    fn bytes_read_like_the_bars() {
        let shown: Vec<String> = [0, 999, 1_000, 2_000, 1_500_000, 1_999_999_999, u64::MAX]
            .into_iter()
            .map(|b| Bytes(b).to_string())
            .collect();
        assert_eq!(
            shown,
            [
                "0 B", "999 B", "1.00 kB", "2.00 kB", "1.50 MB", "2.00 GB", "18.45 EB"
            ]
        );
    }

    #[test]
    fn rewound_bytes_are_taken_back() {
        let rec = Recorder::new(false);
        let report = Report::to(rec.clone());
        let run = report.stage(Stage::Fetch, Work::new(1, 100));
        run.advance(Work::new(0, 60), "");
        run.rewind(60);
        run.advance(Work::new(1, 100), "hello 2.10");
        drop(run);
        assert_eq!(rec.done(Stage::Fetch), Work::new(1, 100));
        assert_ne!(report, Report::quiet());
        assert_eq!(report.clone(), report);
    }
}
