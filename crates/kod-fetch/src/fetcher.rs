//! Parallel verified package downloads into the [`Cache`].

use std::cmp::Reverse;
use std::collections::HashSet;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use kod_report::{Bytes, Report, Stage, StageRun, Work};

use crate::cache::{Cache, Partial};
use crate::client::{Client, Failure, into_error};
use crate::{FetchError, to_hex};

/// One file to download, as its signed index describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Download {
    /// Where to get it: mirrors, tried in order.
    pub urls: Vec<String>,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA256.
    pub sha256: [u8; 32],
    /// What it is, for progress and errors, e.g. `libc6 2.36-9`.
    pub label: String,
}

/// Downloads files into a [`Cache`] with a bounded pool of worker threads.
#[derive(Clone, Debug)]
pub struct Fetcher {
    client: Client,
    cache: Cache,
    jobs: usize,
    report: Report,
}

/// How one download ended when it did not succeed.
enum Stop {
    /// It failed for good: this is the error to report.
    Failed(FetchError),
    /// Another download failed; this one stopped early.
    Cancelled,
}

impl From<FetchError> for Stop {
    fn from(e: FetchError) -> Stop {
        Stop::Failed(e)
    }
}

/// Bytes read from the network before each write to the partial file.
const CHUNK: usize = 256 * 1024;

impl Fetcher {
    /// A fetcher with 8 parallel downloads that reports nowhere.
    pub fn new(client: Client, cache: Cache) -> Fetcher {
        Fetcher {
            client,
            cache,
            jobs: 8,
            report: Report::quiet(),
        }
    }

    /// Sets how many downloads run at once (at least 1).
    pub fn with_jobs(mut self, jobs: usize) -> Fetcher {
        self.jobs = jobs.max(1);
        self
    }

    /// Reports downloads to `report`: [`Stage::Fetch`] with the files and
    /// bytes to download, advanced per chunk written and per file verified
    /// (named by its label), bytes taken back when a partial file starts
    /// over; `-v` lines for each file and for what the cache already held.
    pub fn with_report(mut self, report: Report) -> Fetcher {
        self.report = report;
        self
    }

    /// The cache files go to.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Makes sure every item is in the cache, downloading the missing ones in
    /// parallel, and returns their cache paths in the order of `items`.
    /// Each file is verified against its size and SHA256 before it enters the
    /// cache. When one download fails for good, the others stop and that
    /// failure is returned; partial files stay for a later resume.
    pub fn fetch_all(&self, items: &[Download]) -> Result<Vec<PathBuf>, FetchError> {
        let paths = items
            .iter()
            .map(|d| self.cache.path_of(&d.sha256))
            .collect();
        let mut seen = HashSet::new();
        let mut cached = 0;
        let mut todo: Vec<&Download> = Vec::new();
        for d in items {
            if !seen.insert(d.sha256) {
                continue;
            }
            if self.cache.holds(&d.sha256, d.size) {
                cached += 1;
            } else {
                todo.push(d);
            }
        }
        // Largest first, so that no big file starts last and runs alone.
        todo.sort_by_key(|d| Reverse(d.size));
        if cached > 0 {
            self.report
                .verbose(|| format!("already in the cache: {cached} of {} files", seen.len()));
        }
        let meter = Meter {
            report: &self.report,
            run: (!todo.is_empty()).then(|| {
                let bytes = todo.iter().map(|d| d.size).sum();
                self.report
                    .stage(Stage::Fetch, Work::new(todo.len() as u64, bytes))
            }),
        };

        let next = AtomicUsize::new(0);
        let cancel = AtomicBool::new(false);
        let failure: Mutex<Option<FetchError>> = Mutex::new(None);
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..self.jobs.min(todo.len()))
                .map(|_| {
                    s.spawn(|| {
                        while !cancel.load(Ordering::Relaxed) {
                            let Some(d) = todo.get(next.fetch_add(1, Ordering::Relaxed)) else {
                                break;
                            };
                            match self.fetch_one(d, &cancel, &meter) {
                                Ok(()) => meter.file_done(d),
                                Err(Stop::Cancelled) => break,
                                Err(Stop::Failed(e)) => {
                                    let mut first =
                                        failure.lock().unwrap_or_else(|p| p.into_inner());
                                    first.get_or_insert(e);
                                    cancel.store(true, Ordering::Relaxed);
                                    break;
                                }
                            }
                        }
                    })
                })
                .collect();
            for w in workers {
                if let Err(panic) = w.join() {
                    std::panic::resume_unwind(panic);
                }
            }
        });
        // The stage finishes here, failed or not.
        drop(meter);
        match failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(paths),
        }
    }

    /// Downloads one file into the cache, trying each mirror in turn.
    fn fetch_one(&self, d: &Download, cancel: &AtomicBool, meter: &Meter) -> Result<(), Stop> {
        if d.urls.is_empty() {
            return Err(Stop::Failed(FetchError::BadUrl {
                url: String::new(),
                reason: format!("no URL given for {}", d.label),
            }));
        }
        let Some(mut part) = Partial::lock(&self.cache, &d.sha256, d.size)? else {
            return Ok(()); // another process put it in the cache meanwhile
        };
        meter.add(part.len());
        let mut errors = Vec::new();
        for url in &d.urls {
            match self.fetch_from(url, d, &mut part, cancel, meter) {
                Ok(()) => return Ok(part.commit(&self.cache.path_of(&d.sha256))?),
                Err(Stop::Failed(e)) => {
                    tracing::debug!(url, error = %e, "mirror failed");
                    errors.push(e);
                }
                Err(Stop::Cancelled) => {
                    drop_if_empty(part)?;
                    return Err(Stop::Cancelled);
                }
            }
        }
        drop_if_empty(part)?;
        Err(Stop::Failed(if errors.len() == 1 {
            errors.remove(0)
        } else {
            FetchError::Mirrors {
                label: d.label.clone(),
                errors,
            }
        }))
    }

    /// Completes `part` from one mirror, with retries. A hash mismatch on a
    /// file resumed from bytes fetched earlier starts over once from scratch,
    /// as those bytes may be what was wrong.
    fn fetch_from(
        &self,
        url: &str,
        d: &Download,
        part: &mut Partial,
        cancel: &AtomicBool,
        meter: &Meter,
    ) -> Result<(), Stop> {
        let mut fresh_retry = true;
        loop {
            let resumed = part.resumed();
            let result = self.client.retrying(url, cancel, || {
                attempt(&self.client, url, d, part, cancel, meter)
            });
            match result {
                Ok(()) => return Ok(()),
                Err((Failure::Cancelled, _)) => return Err(Stop::Cancelled),
                Err((Failure::Fatal(FetchError::HashMismatch { .. }), _))
                    if resumed && fresh_retry =>
                {
                    tracing::debug!(url, "hash mismatch on a resumed file; starting over");
                    fresh_retry = false;
                }
                Err((f, n)) => return Err(Stop::Failed(into_error(url, f, n))),
            }
        }
    }
}

/// One request: streams `url` from where `part` stands to its end, then
/// verifies size and hash. Network trouble keeps the bytes received for the
/// next attempt; wrong bytes empty `part`.
fn attempt(
    client: &Client,
    url: &str,
    d: &Download,
    part: &mut Partial,
    cancel: &AtomicBool,
    meter: &Meter,
) -> Result<(), Failure> {
    let size_mismatch = |actual| {
        Failure::Fatal(FetchError::SizeMismatch {
            label: d.label.clone(),
            url: url.to_string(),
            expected: d.size,
            actual,
        })
    };
    let fatal = Failure::Fatal;
    if part.len() == d.size {
        // Complete from an earlier run that stopped before its rename.
        if part.digest() == d.sha256 {
            return Ok(());
        }
        meter.sub(part.len());
        part.reset().map_err(fatal)?;
    }
    let mut stream = client.open(url, part.len())?;
    if stream.start != part.len() {
        // The server ignored the range: start over.
        meter.sub(part.len());
        part.reset().map_err(fatal)?;
    }
    if let Some(len) = stream.len
        && stream.start + len != d.size
    {
        meter.sub(part.len());
        part.reset().map_err(fatal)?;
        return Err(size_mismatch(stream.start + len));
    }
    let mut buf = vec![0u8; CHUNK.min((d.size - part.len()) as usize + 1)];
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(Failure::Cancelled);
        }
        // Fill the buffer before writing: large writes, fewer system calls.
        let mut filled = 0;
        let mut read_error = None;
        while filled < buf.len() {
            match stream.reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            }
        }
        if part.len() + filled as u64 > d.size {
            let actual = part.len() + filled as u64;
            meter.sub(part.len());
            part.reset().map_err(fatal)?;
            return Err(size_mismatch(actual));
        }
        part.write(&buf[..filled]).map_err(fatal)?;
        meter.add(filled as u64);
        if let Some(e) = read_error {
            return Err(Failure::net(format_args!(
                "broke off after {} of {} bytes: {e}",
                part.len(),
                d.size
            )));
        }
        if filled < buf.len() {
            break; // end of body
        }
    }
    if part.len() < d.size {
        return Err(Failure::net(format_args!(
            "the body ended after {} of {} bytes",
            part.len(),
            d.size
        )));
    }
    let actual = part.digest();
    if actual != d.sha256 {
        meter.sub(part.len());
        part.reset().map_err(fatal)?;
        return Err(Failure::Fatal(FetchError::HashMismatch {
            label: d.label.clone(),
            url: url.to_string(),
            expected: to_hex(&d.sha256),
            actual: to_hex(&actual),
        }));
    }
    Ok(())
}

/// Where one `fetch_all`'s progress goes: the running fetch stage (none
/// when everything was in the cache). Each call goes straight to the
/// reporter, whose `stage_advanced` only counts (see [`kod_report::Reporter`]),
/// so the download loop takes no lock for it.
struct Meter<'a> {
    report: &'a Report,
    run: Option<StageRun<'a>>,
}

impl Meter<'_> {
    /// Counts `n` more bytes on disk.
    fn add(&self, n: u64) {
        if let (Some(run), 1..) = (&self.run, n) {
            run.advance(Work::new(0, n), "");
        }
    }

    /// Takes back `n` bytes (a partial file started over).
    fn sub(&self, n: u64) {
        if let (Some(run), 1..) = (&self.run, n) {
            run.rewind(n);
        }
    }

    /// Counts one verified file.
    fn file_done(&self, d: &Download) {
        if let Some(run) = &self.run {
            run.advance(Work::items(1), &d.label);
        }
        self.report
            .verbose(|| format!("fetched {} ({})", d.label, Bytes(d.size)));
    }
}

/// Releases a partial file after a failure: kept for resume when it holds
/// bytes, removed when it is empty.
fn drop_if_empty(part: Partial) -> Result<(), FetchError> {
    if part.len() == 0 {
        part.discard()
    } else {
        Ok(())
    }
}
