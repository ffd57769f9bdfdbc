//! Progress output of a [`crate::Fetcher`]: a bar on a terminal, plain lines
//! elsewhere, or nothing. Workers only add to atomic counters; a ticker thread
//! draws the bar, so progress costs the download loop no lock.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{DecimalBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How a [`crate::Fetcher`] reports progress.
#[derive(Clone, Default)]
pub enum Progress {
    /// A bar when stderr is a terminal, else plain lines on stderr.
    #[default]
    Auto,
    /// A bar on stderr (total bytes, files done of total, rate).
    Bar,
    /// One line per finished file and a summary line, written to this sink.
    Lines(Arc<Mutex<dyn Write + Send>>),
    /// Nothing.
    Quiet,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Progress::Auto => "Auto",
            Progress::Bar => "Bar",
            Progress::Lines(_) => "Lines",
            Progress::Quiet => "Quiet",
        })
    }
}

enum Output {
    Bar(ProgressBar),
    Lines(Arc<Mutex<dyn Write + Send>>),
    Quiet,
}

/// Counters of one `fetch_all` call and where they are shown.
pub(crate) struct Meter {
    bytes: AtomicU64,
    files: AtomicUsize,
    total_files: usize,
    cached: usize,
    start: Instant,
    done: AtomicBool,
    out: Output,
}

impl Meter {
    /// A meter for `total_files` downloads of `total_bytes`, `cached` more
    /// files being in the cache already.
    pub(crate) fn new(
        progress: &Progress,
        total_files: usize,
        total_bytes: u64,
        cached: usize,
    ) -> Meter {
        let bar = || {
            // Styled while hidden, so that its first frame is complete; never
            // shown when there is nothing to download.
            let bar =
                ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::hidden());
            if let Ok(style) = ProgressStyle::with_template(
                "{msg} [{elapsed}] {wide_bar} {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec}",
            ) {
                bar.set_style(style);
            }
            bar.set_message(format!("0/{total_files} files"));
            if total_files > 0 {
                bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(10));
            }
            Output::Bar(bar)
        };
        let out = match progress {
            Progress::Quiet => Output::Quiet,
            Progress::Lines(sink) => Output::Lines(sink.clone()),
            Progress::Bar => bar(),
            Progress::Auto if std::io::stderr().is_terminal() => bar(),
            Progress::Auto => Output::Lines(Arc::new(Mutex::new(std::io::stderr()))),
        };
        let meter = Meter {
            bytes: AtomicU64::new(0),
            files: AtomicUsize::new(0),
            total_files,
            cached,
            start: Instant::now(),
            done: AtomicBool::new(false),
            out,
        };
        meter.draw();
        meter
    }

    /// Counts `n` more bytes on disk.
    pub(crate) fn add(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Takes back `n` bytes (a partial file started over).
    pub(crate) fn sub(&self, n: u64) {
        self.bytes.fetch_sub(n, Ordering::Relaxed);
    }

    /// Records one verified file.
    pub(crate) fn file_done(&self, label: &str, size: u64) {
        self.files.fetch_add(1, Ordering::Relaxed);
        if let Output::Lines(sink) = &self.out {
            let mut w = sink.lock().unwrap_or_else(|p| p.into_inner());
            let _ = writeln!(w, "fetched {label} ({})", DecimalBytes(size));
        }
    }

    /// Whether a ticker thread must redraw the bar.
    pub(crate) fn has_bar(&self) -> bool {
        matches!(self.out, Output::Bar(_))
    }

    /// Redraws the bar every 100 ms until [`Meter::finish`]; run on its own
    /// thread.
    pub(crate) fn tick_until_done(&self) {
        while !self.done.load(Ordering::Relaxed) {
            self.draw();
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn draw(&self) {
        if let Output::Bar(bar) = &self.out {
            bar.set_position(self.bytes.load(Ordering::Relaxed));
            bar.set_message(format!(
                "{}/{} files",
                self.files.load(Ordering::Relaxed),
                self.total_files
            ));
        }
    }

    /// Stops the ticker, clears the bar and, when `ok`, prints the summary.
    pub(crate) fn finish(&self, ok: bool) {
        self.done.store(true, Ordering::Relaxed);
        let line = ok.then(|| self.summary());
        match &self.out {
            Output::Quiet => {}
            Output::Bar(bar) => {
                bar.finish_and_clear();
                if let Some(line) = line {
                    eprintln!("{line}");
                }
            }
            Output::Lines(sink) => {
                if let Some(line) = line {
                    let mut w = sink.lock().unwrap_or_else(|p| p.into_inner());
                    let _ = writeln!(w, "{line}");
                }
            }
        }
    }

    fn summary(&self) -> String {
        let cached = match self.cached {
            0 => String::new(),
            n => format!("; {n} already in the cache"),
        };
        if self.total_files == 0 {
            return format!("nothing to fetch{cached}");
        }
        let bytes = self.bytes.load(Ordering::Relaxed);
        let secs = self.start.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { bytes as f64 / secs } else { 0.0 };
        format!(
            "fetched {} files, {} in {secs:.2} s ({}/s){cached}",
            self.total_files,
            DecimalBytes(bytes),
            DecimalBytes(rate as u64)
        )
    }
}
