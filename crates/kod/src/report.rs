//! Drawing what the libraries report (kod-report) on stderr: on a terminal
//! one indicatif bar per running stage, redrawn by a ticker thread ten
//! times a second; elsewhere plain lines, one when a stage starts and one
//! when it ends, without redraws or control characters. Messages are
//! printed above the bars.
//!
//! Reporting costs the libraries' loops no lock: `stage_advanced` only adds
//! to a stage's atomic counters (the name of the last item is kept when its
//! lock is free); the ticker reads them and draws.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use kod_report::{Bytes, Level, Report, Reporter, Stage, Work};

/// The report of one command: bars when stderr is a terminal, else plain
/// lines; `-v` lines when `verbose`; stages not shown at all unless
/// `stages` (commands printing JSON show only messages).
pub fn for_command(verbose: bool, stages: bool) -> Report {
    let show = Show { verbose, stages };
    if std::io::stderr().is_terminal() {
        Report::to(Drawer::bars(show))
    } else {
        Report::to(Drawer::lines(show, Box::new(std::io::stderr())))
    }
}

/// A writer for the `tracing` events of the libraries (warnings): each
/// event becomes a warning of `report`, so it never tears a bar.
pub fn warnings(report: Report) -> impl Fn() -> Warnings {
    move || Warnings(report.clone())
}

/// See [`warnings`].
pub struct Warnings(Report);

impl Write for Warnings {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // tracing-subscriber writes one whole event per call.
        self.0.warning(String::from_utf8_lossy(buf).trim_end());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What is shown.
#[derive(Clone, Copy)]
struct Show {
    verbose: bool,
    stages: bool,
}

/// One stage's counts: set when it starts, added to while it runs.
#[derive(Default)]
struct Counts {
    total_items: AtomicU64,
    total_bytes: AtomicU64,
    items: AtomicU64,
    bytes: AtomicU64,
    /// The last item named, kept when its lock is free.
    last: Mutex<String>,
    started: Mutex<Option<Instant>>,
}

impl Counts {
    fn total(&self) -> Work {
        Work::new(
            self.total_items.load(Ordering::Relaxed),
            self.total_bytes.load(Ordering::Relaxed),
        )
    }

    fn done(&self) -> Work {
        Work::new(
            self.items.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    fn start(&self, total: Work) {
        self.total_items.store(total.items, Ordering::Relaxed);
        self.total_bytes.store(total.bytes, Ordering::Relaxed);
        self.items.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
        *lock(&self.last) = String::new();
        *lock(&self.started) = Some(Instant::now());
    }

    fn elapsed(&self) -> Duration {
        lock(&self.started).map_or(Duration::ZERO, |t| t.elapsed())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where the drawing goes.
enum Out {
    /// Plain lines to a writer.
    Lines(Mutex<Box<dyn Write + Send>>),
    /// Bars on the terminal, one slot per stage.
    Bars {
        multi: MultiProgress,
        bars: Box<[Mutex<Option<ProgressBar>>; Stage::ALL.len()]>,
    },
}

/// kod's [`Reporter`].
struct Drawer {
    show: Show,
    counts: [Arc<Counts>; Stage::ALL.len()],
    out: Out,
}

impl Drawer {
    fn lines(show: Show, to: Box<dyn Write + Send>) -> Arc<Drawer> {
        Arc::new(Drawer {
            show,
            counts: Default::default(),
            out: Out::Lines(Mutex::new(to)),
        })
    }

    fn bars(show: Show) -> Arc<Drawer> {
        let drawer = Arc::new(Drawer {
            show,
            counts: Default::default(),
            out: Out::Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(
                    redraw_rate(),
                )),
                bars: Default::default(),
            },
        });
        let weak: Weak<Drawer> = Arc::downgrade(&drawer);
        let tick = Duration::from_secs_f64(1.0 / f64::from(redraw_rate()));
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(tick);
                match weak.upgrade() {
                    Some(d) => d.redraw(),
                    None => break,
                }
            }
        });
        drawer
    }

    fn counts(&self, stage: Stage) -> &Counts {
        &self.counts[stage as usize]
    }

    /// Prints `text` as a line of its own (above the bars).
    fn print(&self, text: &str) {
        match &self.out {
            Out::Lines(w) => {
                let _ = writeln!(lock(w), "{text}");
            }
            Out::Bars { multi, .. } => multi.suspend(|| {
                let _ = writeln!(std::io::stderr().lock(), "{text}");
            }),
        }
    }

    /// Moves every running bar to its count (one draw each).
    fn redraw(&self) {
        let Out::Bars { bars, .. } = &self.out else {
            return;
        };
        for stage in Stage::ALL {
            if let Some(bar) = &*lock(&bars[stage as usize]) {
                let c = self.counts(stage);
                let done = c.done();
                let bytes = c.total().bytes > 0;
                bar.set_position(if bytes { done.bytes } else { done.items });
            }
        }
    }
}

/// A bar for `stage` with `total` work: bytes when known (items done of
/// total beside them), else items, else a spinner; the last item named at
/// the end. `{count}` and `{last}` are read from `counts` at each draw.
fn bar(stage: Stage, total: Work, counts: &Arc<Counts>) -> ProgressBar {
    let (len, template) = if total.bytes > 0 {
        (
            total.bytes,
            "{prefix:>9} [{elapsed_precise}] {wide_bar} {decimal_bytes}/{decimal_total_bytes} \
             {decimal_bytes_per_sec:>11} {count}",
        )
    } else if total.items > 0 {
        (
            total.items,
            "{prefix:>9} [{elapsed_precise}] {wide_bar} {count} {last:30}",
        )
    } else {
        (
            0,
            "{prefix:>9} [{elapsed_precise}] {spinner} {count} {last:30}",
        )
    };
    let bar = ProgressBar::hidden();
    let (c, l) = (counts.clone(), counts.clone());
    let count = move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
        let (done, total) = (c.done(), c.total());
        let _ = match total.items {
            0 => write!(w, "{} {}", done.items, unit(stage, done.items)),
            n => write!(w, "{}/{n} {}", done.items, unit(stage, n)),
        };
    };
    let last = move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
        if let Ok(last) = l.last.try_lock() {
            let _ = w.write_str(&last);
        }
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.with_key("count", count).with_key("last", last));
    }
    bar.set_length(len);
    bar.set_prefix(stage.name());
    bar
}

impl Reporter for Drawer {
    fn stage_started(&self, stage: Stage, total: Work) {
        if !self.show.stages {
            return;
        }
        self.counts(stage).start(total);
        match &self.out {
            Out::Lines(_) => self.print(&started_line(stage, total)),
            Out::Bars { multi, bars } => {
                let bar = multi.add(bar(stage, total, &self.counts[stage as usize]));
                if let Some(old) = lock(&bars[stage as usize]).replace(bar) {
                    multi.remove(&old);
                }
                self.redraw();
            }
        }
    }

    fn stage_advanced(&self, stage: Stage, done: Work, item: &str) {
        let c = self.counts(stage);
        c.items.fetch_add(done.items, Ordering::Relaxed);
        c.bytes.fetch_add(done.bytes, Ordering::Relaxed);
        if !item.is_empty()
            && let Ok(mut last) = c.last.try_lock()
        {
            last.clear();
            last.push_str(item);
        }
    }

    fn stage_rewound(&self, stage: Stage, bytes: u64) {
        let c = self.counts(stage);
        let _ = c
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(bytes))
            });
    }

    fn stage_finished(&self, stage: Stage) {
        if !self.show.stages {
            return;
        }
        if let Out::Bars { multi, bars } = &self.out
            && let Some(bar) = lock(&bars[stage as usize]).take()
        {
            bar.finish_and_clear();
            multi.remove(&bar);
        }
        let c = self.counts(stage);
        self.print(&finished_line(stage, c.total(), c.done(), c.elapsed()));
    }

    fn message(&self, level: Level, text: &str) {
        match level {
            Level::Verbose if !self.show.verbose => {}
            Level::Verbose | Level::Output => self.print(text),
            Level::Note => self.print(&format!("kod: {text}")),
            Level::Warning => self.print(&format!("kod: warning: {text}")),
        }
    }

    fn verbose(&self) -> bool {
        self.show.verbose
    }
}

/// Redraws per second of the bars (the counts are moved and drawn at this
/// rate): `KOD_PROGRESS_HZ` (1 to 255; lower for a slow link to the
/// terminal, higher to see short stages move), else 10.
fn redraw_rate() -> u8 {
    std::env::var("KOD_PROGRESS_HZ")
        .ok()
        .and_then(|v| v.parse::<u8>().ok())
        .filter(|&hz| hz > 0)
        .unwrap_or(10)
}

/// What a stage counts, for people: `files`, `packages`, ...
fn unit(stage: Stage, n: u64) -> &'static str {
    let (one, many) = match stage {
        Stage::Metadata | Stage::Fetch => ("file", "files"),
        Stage::Resolve | Stage::Unpack | Stage::Configure => ("package", "packages"),
        Stage::PreInstall => ("script", "scripts"),
        Stage::Settle => ("change", "changes"),
        Stage::Initramfs => ("kernel", "kernels"),
        Stage::Commit => ("step", "steps"),
    };
    if n == 1 { one } else { many }
}

/// `90 files, 50.00 MB`; `45 of 90 files` when `of` is more; the known
/// parts only.
fn amount(stage: Stage, done: Work, of: Work) -> String {
    let mut parts = Vec::new();
    if done.items > 0 || of.items > 0 {
        parts.push(if of.items > done.items {
            format!("{} of {} {}", done.items, of.items, unit(stage, of.items))
        } else {
            format!("{} {}", done.items, unit(stage, done.items))
        });
    }
    if done.bytes > 0 || of.bytes > 0 {
        parts.push(Bytes(done.bytes).to_string());
    }
    parts.join(", ")
}

/// `kod: fetch: 90 files, 50.00 MB` (the work ahead, where known).
fn started_line(stage: Stage, total: Work) -> String {
    match amount(stage, total, total) {
        a if a.is_empty() => format!("kod: {stage}"),
        a => format!("kod: {stage}: {a}"),
    }
}

/// `kod: fetch: done, 90 files, 50.00 MB in 3.20 s (15.63 MB/s)`, or
/// `stopped, 45 of 90 files, ...` when less was done than announced.
fn finished_line(stage: Stage, total: Work, done: Work, elapsed: Duration) -> String {
    let how = if done.items < total.items || done.bytes < total.bytes {
        "stopped"
    } else {
        "done"
    };
    let secs = elapsed.as_secs_f64();
    let rate = if done.bytes > 0 && secs > 0.0 {
        format!(" ({}/s)", Bytes((done.bytes as f64 / secs) as u64))
    } else {
        String::new()
    };
    match amount(stage, done, total) {
        a if a.is_empty() => format!("kod: {stage}: {how} in {secs:.2} s"),
        a => format!("kod: {stage}: {how}, {a} in {secs:.2} s{rate}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test reads afterwards.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(lock(&self.0).clone()).unwrap()
        }
    }

    fn lines(verbose: bool, stages: bool) -> (Report, Sink) {
        let sink = Sink::default();
        let show = Show { verbose, stages };
        (
            Report::to(Drawer::lines(show, Box::new(sink.clone()))),
            sink,
        )
    }

    /// Without the elapsed time, which differs from run to run.
    fn timeless(text: &str) -> Vec<String> {
        let secs = regex::Regex::new(r" in \d+\.\d\d s( \([^)]*/s\))?").unwrap();
        text.lines()
            .map(|l| secs.replace(l, " in S s").into_owned())
            .collect()
    }

    #[test]
    fn plain_lines_say_when_a_stage_starts_and_ends_with_its_counts() {
        let (report, sink) = lines(false, true);
        {
            let run = report.stage(Stage::Fetch, Work::new(2, 1_502_000));
            std::thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(|| {
                        run.advance(Work::new(0, 1_000), "");
                        run.advance(Work::new(0, 750_000), "");
                        run.advance(Work::items(1), "a 1.0");
                    });
                }
            });
        }
        {
            let run = report.stage(Stage::Unpack, Work::items(3));
            run.advance(Work::items(1), "a");
        }
        drop(report.stage(Stage::Commit, Work::default()));
        let text = sink.text();
        assert!(
            !text.contains(['\r', '\x1b']),
            "control characters in {text:?}"
        );
        assert_eq!(
            timeless(&text),
            [
                "kod: fetch: 2 files, 1.50 MB",
                "kod: fetch: done, 2 files, 1.50 MB in S s",
                "kod: unpack: 3 packages",
                "kod: unpack: stopped, 1 of 3 packages in S s",
                "kod: commit",
                "kod: commit: done in S s",
            ]
        );
    }

    #[test]
    fn the_rate_is_the_bytes_over_the_time() {
        let line = finished_line(
            Stage::Fetch,
            Work::new(90, 50_000_000),
            Work::new(90, 50_000_000),
            Duration::from_millis(3_200),
        );
        assert_eq!(
            line,
            "kod: fetch: done, 90 files, 50.00 MB in 3.20 s (15.62 MB/s)"
        );
        let line = finished_line(
            Stage::Fetch,
            Work::new(90, 50_000_000),
            Work::new(45, 20_000_000),
            Duration::from_secs(2),
        );
        assert_eq!(
            line,
            "kod: fetch: stopped, 45 of 90 files, 20.00 MB in 2.00 s (10.00 MB/s)"
        );
        assert_eq!(
            started_line(Stage::Metadata, Work::new(1, 999)),
            "kod: metadata: 1 file, 999 B"
        );
    }

    #[test]
    fn messages_by_level_and_verbose_only_with_v() {
        for verbose in [false, true] {
            let (report, sink) = lines(verbose, true);
            report.note("leftovers removed");
            report.warning("expired Release used anyway");
            report.message(Level::Output, "hello\tfrom lua");
            report.verbose(|| "+ dpkg --configure -a".into());
            assert_eq!(report.is_verbose(), verbose);
            let mut want = vec![
                "kod: leftovers removed",
                "kod: warning: expired Release used anyway",
                "hello\tfrom lua",
            ];
            if verbose {
                want.push("+ dpkg --configure -a");
            }
            assert_eq!(sink.text().lines().collect::<Vec<_>>(), want);
        }
    }

    #[test]
    fn without_stages_only_messages_are_shown() {
        let (report, sink) = lines(false, false);
        let run = report.stage(Stage::Fetch, Work::new(1, 10));
        run.advance(Work::new(1, 10), "a");
        drop(run);
        report.note("done");
        assert_eq!(sink.text(), "kod: done\n");
    }

    #[test]
    fn tracing_warnings_become_warnings() {
        let (report, sink) = lines(false, true);
        let mut w = warnings(report)();
        w.write_all(b"the stored index is damaged; rebuilding it\n")
            .unwrap();
        assert_eq!(
            sink.text(),
            "kod: warning: the stored index is damaged; rebuilding it\n"
        );
    }

    #[test]
    fn a_rewind_never_goes_below_zero_and_advances_count_from_threads() {
        let d = Drawer::lines(
            Show {
                verbose: false,
                stages: true,
            },
            Box::new(Sink::default()),
        );
        d.stage_started(Stage::Fetch, Work::new(8, 8_000));
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..1_000 {
                        d.stage_advanced(Stage::Fetch, Work::new(0, 1), "");
                    }
                    d.stage_advanced(Stage::Fetch, Work::items(1), "x");
                });
            }
        });
        assert_eq!(d.counts(Stage::Fetch).done(), Work::new(8, 8_000));
        d.stage_rewound(Stage::Fetch, 10_000);
        assert_eq!(d.counts(Stage::Fetch).done(), Work::new(8, 0));
        assert_eq!(*lock(&d.counts(Stage::Fetch).last), "x");
    }
}
