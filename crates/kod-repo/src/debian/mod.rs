//! The Debian backend: apt repositories (signed InRelease, Packages
//! indices, by-hash) and dpkg's relation syntax. Its versions are ordered by
//! [`Scheme::Debian`](crate::Scheme::Debian), which the neutral
//! [`version`](crate::version) layer owns.
//!
//! Cache layout under [`LoadOptions::cache_dir`]:
//! - `debian/lists/<mirror>/<suite>/InRelease` (+ `.validators`): the last
//!   InRelease fetched and its HTTP validators, for conditional requests;
//! - `blobs/sha256/...`: the compressed Packages files, by hash
//!   ([`kod_fetch::Cache`]), so one whose hash is cached is never fetched
//!   again;
//! - `debian/index/<sources digest>.kodidx`: the parsed index
//!   ([`Index::store`]), tagged with the digest of every Packages file it
//!   was built from.

mod error;
pub mod packages;
pub mod relations;
pub mod release;
mod source;
pub mod verify;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use kod_fetch::{
    Cache, Client, ClientOptions, Conditional, Download, FetchError, Fetcher, Validators,
};
use kod_report::{Level, Report, Reporter, Stage, Work};
use rayon::prelude::*;

pub use error::Error;
pub use source::{
    DebianSource, Mirror, MirrorOrigin, apt_sources, find_mirror, find_mirror_in,
    host_architecture, release_suites,
};

use crate::model::{Origin, OriginId, Sha256, Text};
use crate::{Backend, Freshness, Index, LoadOptions};
use relations::Target;
use release::{FileEntry, Release, format_time};
use verify::{DEBIAN_ARCHIVE_KEYRING, Keyring, keyring_digest, verify_clearsigned};

/// Set to `no` to accept Release files past their Valid-Until (a stale
/// mirror, a snapshot): the equivalent of apt's `check-valid-until=no` for
/// every source. kod warns on every use.
pub const VALID_UNTIL_ENV: &str = "KOD_CHECK_VALID_UNTIL";

/// Whether `source`'s Release files must be within their Valid-Until.
fn valid_until_checked(source: &DebianSource) -> bool {
    let env_off = std::env::var(VALID_UNTIL_ENV)
        .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "no" | "false" | "0"));
    source.check_valid_until && !env_off
}

/// The version of how this backend builds an index; part of the stored
/// index's key, so a change here invalidates stored indices.
const INDEX_FORMAT: &str = "kod-repo debian index 1";

/// Loads Debian repositories.
#[derive(Debug, Clone)]
pub struct Debian {
    client: Client,
    report: Report,
}

impl Default for Debian {
    fn default() -> Self {
        Debian::new()
    }
}

impl Debian {
    /// A loader with kod-fetch's default client that reports nowhere.
    pub fn new() -> Debian {
        Debian {
            client: Client::new(ClientOptions::default()),
            report: Report::quiet(),
        }
    }

    /// Uses `client` for every request.
    pub fn with_client(mut self, client: Client) -> Debian {
        self.client = client;
        self
    }

    /// Reports to `report`: building an index is [`Stage::Metadata`]
    /// (Packages files parsed, bytes downloaded); a repository used without
    /// its signature, an expired Release used anyway and an index that
    /// could not be stored are warnings.
    pub fn with_report(mut self, report: Report) -> Debian {
        self.report = report;
        self
    }
}

/// A suite's verified Release and where it came from.
struct SuiteRelease {
    base_url: String,
    suite: String,
    inrelease_url: String,
    release: Release,
}

/// One Packages file to read.
struct PackagesFile {
    origin: Origin,
    /// Path in the Release (e.g. `main/binary-amd64/Packages.xz`).
    path: String,
    entry: FileEntry,
    download: Download,
}

impl Backend for Debian {
    type Source = DebianSource;
    type Error = Error;

    fn load(&self, sources: &[DebianSource], options: &LoadOptions) -> Result<Index, Error> {
        let native = match sources.first() {
            Some(s) => s.architecture.clone(),
            None => host_architecture().to_string(),
        };
        if let Some(other) = sources.iter().find(|s| s.architecture != native) {
            return Err(Error::Spec(format!(
                "all sources of one load must have the same architecture ({native}), but \
                 {} has {}",
                other.mirror, other.architecture
            )));
        }
        match self.load_as(sources, &native, options) {
            // A cached Release can name Packages files the mirror has since
            // dropped or replaced: look at the current Release once before
            // giving up.
            Err(e) if options.freshness == Freshness::Cached && stale_release_symptom(&e) => {
                tracing::info!("{e}; refreshing the Release files");
                let refresh = LoadOptions {
                    freshness: Freshness::Refresh,
                    ..options.clone()
                };
                self.load_as(sources, &native, &refresh)
            }
            other => other,
        }
    }
}

impl Debian {
    fn load_as(
        &self,
        sources: &[DebianSource],
        native: &str,
        options: &LoadOptions,
    ) -> Result<Index, Error> {
        let mut files = Vec::new();
        for source in sources {
            if source.trusted_without_signature {
                self.report.warning(&format!(
                    "{} is trusted WITHOUT checking its signature (trusted_without_signature); \
                     anyone on the network path can change what gets installed",
                    source.mirror
                ));
            }
            let keys = keys_for(source)?;
            for suite in &source.suites {
                let rel = self.suite_release(source, suite, &keys, options)?;
                files.extend(packages_files(source, &rel)?);
            }
        }
        if files.len() > usize::from(u16::MAX) {
            return Err(Error::Spec(format!(
                "{} package indices in one load; kod handles at most {}",
                files.len(),
                u16::MAX
            )));
        }
        let key = index_key(native, &files);
        let stored = stored_index_path(&options.cache_dir, sources);
        if let Some(index) = Index::load_stored(&stored, &key) {
            tracing::debug!(path = %stored.display(), "loaded the parsed index");
            return Ok(index);
        }
        let index = self.build_index(native, files, options)?;
        if let Err(e) = index.store(&stored, &key) {
            self.report.warning(&e.to_string());
        }
        Ok(index)
    }

    /// Fetches (or takes from the cache) and verifies one suite's InRelease.
    fn suite_release(
        &self,
        source: &DebianSource,
        suite: &str,
        keys: &Keys,
        options: &LoadOptions,
    ) -> Result<SuiteRelease, Error> {
        let base_url = source.base_url(suite);
        let url = format!("{base_url}/dists/{suite}/InRelease");
        let dir = options
            .cache_dir
            .join("debian/lists")
            .join(escape(&base_url))
            .join(escape(suite));
        let cached = dir.join("InRelease");
        let validators_path = dir.join("InRelease.validators");
        // What a killed kod left while writing these.
        let _ = kod_root::remove_stale_temporaries(&dir);
        let read_cached = || std::fs::read(&cached).ok();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);

        let mut data = match options.freshness {
            Freshness::Refresh => None,
            Freshness::Cached | Freshness::Offline => read_cached(),
        };
        let mut from_cache = data.is_some();
        if data.is_none() && options.freshness == Freshness::Offline {
            return Err(Error::NotCached {
                what: url,
                path: cached,
            });
        }
        loop {
            let bytes = match data.take() {
                Some(d) => d,
                None => {
                    from_cache = false;
                    self.fetch_inrelease(&url, &base_url, suite, &cached, &validators_path)?
                }
            };
            let text = keys.signed_text(&bytes, &url, &dir.join("InRelease.verified"))?;
            let text = String::from_utf8_lossy(&text);
            let release = Release::parse(&text).map_err(|reason| Error::BadRelease {
                url: url.clone(),
                reason,
            })?;
            let expired = release
                .valid_until
                .as_ref()
                .filter(|(_, until)| *until < now);
            if let Some((written, until)) = expired
                && !valid_until_checked(source)
            {
                self.report.warning(&format!(
                    "{url} expired on {written} ({}); used anyway because the check is off \
                     for this source (check-valid-until=no or {VALID_UNTIL_ENV}=no)",
                    format_time(*until)
                ));
            } else if let Some((written, until)) = expired {
                // A stale cached copy gets one fresh try before giving up.
                if from_cache && options.freshness != Freshness::Offline {
                    from_cache = false;
                    continue;
                }
                return Err(Error::Expired {
                    url,
                    valid_until: format!("{written} ({})", format_time(*until)),
                    now: format_time(now),
                });
            }
            return Ok(SuiteRelease {
                base_url,
                suite: suite.to_string(),
                inrelease_url: url,
                release,
            });
        }
    }

    /// A conditional GET of InRelease; keeps the body and its validators in
    /// the cache and returns the body (the cached one when unchanged).
    fn fetch_inrelease(
        &self,
        url: &str,
        mirror: &str,
        suite: &str,
        cached: &Path,
        validators_path: &Path,
    ) -> Result<Vec<u8>, Error> {
        let validators: Option<Validators> = std::fs::read(validators_path)
            .ok()
            .and_then(|b| postcard::from_bytes(&b).ok())
            .filter(|_| cached.is_file());
        match self.client.get_conditional(url, validators.as_ref()) {
            Ok(Conditional::NotModified) => {
                tracing::debug!(url, "InRelease not modified");
                std::fs::read(cached).map_err(Error::cache(cached))
            }
            Ok(Conditional::Modified { body, validators }) => {
                let dir = cached.parent().unwrap_or(cached);
                kod_root::make_dirs(dir).map_err(Error::cache(dir))?;
                // A server without validators sends the same file again:
                // leave the cached copy (and its mtime) alone then.
                if std::fs::read(cached).ok().as_deref() != Some(body.as_slice()) {
                    write_atomic(cached, &body)?;
                }
                let v = postcard::to_stdvec(&validators).map_err(|e| Error::Cache {
                    path: validators_path.to_path_buf(),
                    source: std::io::Error::other(e),
                })?;
                if std::fs::read(validators_path).ok().as_deref() != Some(v.as_slice()) {
                    write_atomic(validators_path, &v)?;
                }
                Ok(body)
            }
            Err(FetchError::NotFound { .. }) => Err(Error::UnknownSuite {
                mirror: mirror.to_string(),
                suite: suite.to_string(),
                url: url.to_string(),
            }),
            Err(source) => Err(Error::Fetch {
                what: format!("InRelease of suite {suite}"),
                source,
            }),
        }
    }

    /// Downloads what is missing, decompresses and parses every Packages
    /// file (in parallel), and makes the index: the metadata stage.
    fn build_index(
        &self,
        native: &str,
        files: Vec<PackagesFile>,
        options: &LoadOptions,
    ) -> Result<Index, Error> {
        let cache = Cache::open(&options.cache_dir).map_err(|source| Error::Fetch {
            what: "the download cache".into(),
            source,
        })?;
        let missing = files
            .iter()
            .filter(|f| !cache.contains(&f.entry.sha256.0))
            .map(|f| f.download.size)
            .sum();
        let run = self
            .report
            .stage(Stage::Metadata, Work::new(files.len() as u64, missing));
        if options.freshness == Freshness::Offline {
            if let Some(f) = files.iter().find(|f| !cache.contains(&f.entry.sha256.0)) {
                return Err(Error::NotCached {
                    what: f.download.label.clone(),
                    path: cache.path_of(&f.entry.sha256.0),
                });
            }
        } else {
            let downloads: Vec<Download> = files.iter().map(|f| f.download.clone()).collect();
            let downloading = Report::to(std::sync::Arc::new(Downloading(self.report.clone())));
            Fetcher::new(self.client.clone(), cache.clone())
                .with_report(downloading)
                .fetch_all(&downloads)
                .map_err(|e| fetch_error(e, &files))?;
        }
        let target = Target {
            architecture: native,
            profiles: &[],
        };
        let parsed: Vec<Vec<crate::PackageRecord>> = files
            .par_iter()
            .enumerate()
            .map(|(i, f)| {
                let path = cache.path_of(&f.entry.sha256.0);
                let records = read_packages(&path, &f.download.label, OriginId(i as u16), target);
                run.advance(Work::items(1), &f.download.label);
                records
            })
            .collect::<Result<_, Error>>()?;
        drop(run);
        let mut records = Vec::with_capacity(parsed.iter().map(Vec::len).sum());
        for p in parsed {
            records.extend(p);
        }
        let origins = files.into_iter().map(|f| f.origin).collect();
        Ok(Index::new(vec![Text::new(native)], origins, records))
    }
}

/// The downloads of the metadata stage: the fetcher's bytes count into
/// [`Stage::Metadata`], which [`Debian::build_index`] runs (its items are
/// the files parsed, so the fetcher's files are not counted again).
struct Downloading(Report);

impl Reporter for Downloading {
    fn stage_advanced(&self, _: Stage, done: Work, _: &str) {
        if done.bytes > 0 {
            let bytes = Work::new(0, done.bytes);
            self.0.reporter().stage_advanced(Stage::Metadata, bytes, "");
        }
    }
    fn stage_rewound(&self, _: Stage, bytes: u64) {
        self.0.reporter().stage_rewound(Stage::Metadata, bytes);
    }
    fn message(&self, level: Level, text: &str) {
        self.0.message(level, text);
    }
    fn verbose(&self) -> bool {
        self.0.is_verbose()
    }
}

/// How a source's InRelease files are checked.
enum Keys {
    /// Trusted without a signature.
    Unchecked,
    /// Verified against these keyring files, parsed when first needed.
    Keyring {
        paths: Vec<PathBuf>,
        digest: Sha256,
        parsed: std::sync::OnceLock<Keyring>,
    },
}

impl Keys {
    /// The signed text of `inrelease`. A verification is remembered in
    /// `marker` (the digest of the file and of the keyring), so the same
    /// cached file is not verified again against the same keys: the cache is
    /// as trusted as the lists directory apt keeps after `apt-get update`.
    fn signed_text(&self, inrelease: &[u8], url: &str, marker: &Path) -> Result<Vec<u8>, Error> {
        let Keys::Keyring {
            paths,
            digest,
            parsed,
        } = self
        else {
            return Ok(strip_clearsign(inrelease));
        };
        let mut both = Vec::with_capacity(inrelease.len() + 32);
        both.extend_from_slice(inrelease);
        both.extend_from_slice(&digest.0);
        let seal = Sha256::digest(&both);
        if std::fs::read(marker).is_ok_and(|m| m == seal.0) {
            return Ok(strip_clearsign(inrelease));
        }
        let keyring = match parsed.get() {
            Some(k) => k,
            None => {
                let k = Keyring::load(paths)?;
                parsed.get_or_init(|| k)
            }
        };
        let text = verify_clearsigned(inrelease, keyring, url)?;
        if let Some(dir) = marker.parent() {
            kod_root::make_dirs(dir).map_err(Error::cache(dir))?;
        }
        write_atomic(marker, &seal.0)?;
        Ok(text)
    }
}

/// How `source` is verified: its signed_by keyrings, else the host's Debian
/// archive keyring, or nothing when it is trusted without a signature.
fn keys_for(source: &DebianSource) -> Result<Keys, Error> {
    if source.trusted_without_signature {
        return Ok(Keys::Unchecked);
    }
    let paths = if source.signed_by.is_empty() {
        vec![PathBuf::from(DEBIAN_ARCHIVE_KEYRING)]
    } else {
        source.signed_by.clone()
    };
    Ok(Keys::Keyring {
        digest: keyring_digest(&paths)?,
        paths,
        parsed: std::sync::OnceLock::new(),
    })
}

/// The Packages files of one suite for the source's components and
/// architectures, as the signed Release lists them.
fn packages_files(source: &DebianSource, rel: &SuiteRelease) -> Result<Vec<PackagesFile>, Error> {
    let r = &rel.release;
    let mut archs = vec![source.architecture.clone()];
    if r.architectures.iter().any(|a| a == "all") && !r.all_in_arch_indices {
        archs.push("all".to_string());
    }
    let mut out = Vec::new();
    for component in &source.components {
        for arch in &archs {
            let dir = format!("{component}/binary-{arch}");
            let pick = ["Packages.xz", "Packages.gz", "Packages"]
                .iter()
                .map(|name| format!("{dir}/{name}"))
                .find_map(|p| r.files.get(&p).map(|e| (p, *e)));
            let Some((path, entry)) = pick else {
                if arch == "all" {
                    continue;
                }
                return Err(Error::NoPackagesIndex {
                    url: rel.inrelease_url.clone(),
                    component: component.clone(),
                    architecture: arch.clone(),
                });
            };
            let dists = format!("{}/dists/{}", rel.base_url, rel.suite);
            let canonical = format!("{dists}/{path}");
            let mut urls = Vec::with_capacity(2);
            if r.by_hash {
                urls.push(format!("{dists}/{dir}/by-hash/SHA256/{}", entry.sha256));
            }
            urls.push(canonical);
            out.push(PackagesFile {
                origin: Origin {
                    base_url: rel.base_url.clone(),
                    suite: rel.suite.clone(),
                    codename: r.codename.clone(),
                    component: component.clone(),
                    architecture: arch.clone(),
                },
                download: Download {
                    urls,
                    size: entry.size,
                    sha256: entry.sha256.0,
                    label: format!("{} {}", rel.suite, path),
                },
                path,
                entry,
            });
        }
    }
    Ok(out)
}

/// Maps a download failure to the error a person can act on: a Packages
/// file the Release lists but the mirror lacks is [`Error::MissingIndex`].
fn fetch_error(e: FetchError, files: &[PackagesFile]) -> Error {
    let not_found_url = match &e {
        FetchError::NotFound { url } => Some(url.clone()),
        FetchError::Mirrors { errors, .. }
            if errors
                .iter()
                .all(|e| matches!(e, FetchError::NotFound { .. })) =>
        {
            errors.last().map(|e| match e {
                FetchError::NotFound { url } => url.clone(),
                _ => String::new(),
            })
        }
        _ => None,
    };
    if let Some(url) = not_found_url {
        let canonical = files
            .iter()
            .find(|f| f.download.urls.contains(&url))
            .and_then(|f| f.download.urls.last().cloned())
            .unwrap_or(url);
        return Error::MissingIndex { url: canonical };
    }
    Error::Fetch {
        what: "package index".into(),
        source: e,
    }
}

/// Whether `e` is what a Release older than the mirror's causes: a
/// Packages file it names is gone, or has another size or hash.
fn stale_release_symptom(e: &Error) -> bool {
    match e {
        Error::MissingIndex { .. } => true,
        Error::Fetch { source, .. } => mismatch_or_gone(source),
        _ => false,
    }
}

fn mismatch_or_gone(e: &FetchError) -> bool {
    match e {
        FetchError::HashMismatch { .. }
        | FetchError::SizeMismatch { .. }
        | FetchError::NotFound { .. } => true,
        FetchError::Mirrors { errors, .. } => errors.iter().all(mismatch_or_gone),
        _ => false,
    }
}

/// Bytes of decompressed text handed from the decompressing thread to the
/// parser at a time (cut at the end of a paragraph).
const BLOCK: usize = 4 << 20;

/// Decompresses (by its first bytes) and parses a cached Packages file at
/// once: a thread decompresses block by block while the blocks already out
/// are parsed.
fn read_packages(
    path: &Path,
    label: &str,
    origin: OriginId,
    target: Target<'_>,
) -> Result<Vec<crate::PackageRecord>, Error> {
    let decompress_error = |reason: String| Error::Decompress {
        what: label.to_string(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(Error::cache(path))?;
    let reader = std::io::BufReader::with_capacity(1 << 16, file);
    let mut decoder = kod_root::decompress(reader).map_err(|e| decompress_error(e.to_string()))?;
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(2);
        let producer = s.spawn(move || -> Result<(), String> {
            let mut pending: Vec<u8> = Vec::new();
            loop {
                let start = pending.len();
                pending.resize(start + BLOCK, 0);
                let mut filled = start;
                while filled < pending.len() {
                    match decoder.read(&mut pending[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e.to_string()),
                    }
                }
                let eof = filled < pending.len();
                pending.truncate(filled);
                let cut = if eof {
                    pending.len()
                } else {
                    match pending.windows(2).rposition(|w| w == b"\n\n") {
                        Some(i) => i + 2,
                        None => continue,
                    }
                };
                let rest = pending.split_off(cut);
                let chunk = std::mem::replace(&mut pending, rest);
                let text = String::from_utf8(chunk)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                if !text.is_empty() && tx.send(text).is_err() {
                    return Ok(()); // the parser stopped on an error
                }
                if eof {
                    return Ok(());
                }
            }
        });
        let mut records = Vec::new();
        let mut parsed = Ok(());
        for text in rx {
            match packages::parse_packages(&text, origin, target) {
                Ok(r) => records.extend(r),
                Err(mut source) => {
                    // Every earlier paragraph made one record.
                    source.paragraph += records.len();
                    parsed = Err(Error::Packages {
                        what: label.to_string(),
                        source,
                    });
                    break;
                }
            }
        }
        producer
            .join()
            .map_err(|_| decompress_error("the decompressing thread panicked".into()))?
            .map_err(decompress_error)?;
        parsed.map(|()| records)
    })
}

/// The signed text of a clearsigned message, without checking the
/// signature (only for sources trusted without one); a file that is not
/// clearsigned is returned whole.
fn strip_clearsign(data: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(data);
    let Some(rest) = text.strip_prefix("-----BEGIN PGP SIGNED MESSAGE-----") else {
        return data.to_vec();
    };
    // Armor headers (Hash: ...) end at the first empty line.
    let body = rest.split_once("\n\n").map_or("", |(_, b)| b);
    let body = body
        .split_once("\n-----BEGIN PGP SIGNATURE-----")
        .map_or(body, |(b, _)| b);
    body.lines()
        .map(|l| l.strip_prefix("- ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
}

/// What a stored index is valid for: the format, the architecture, and
/// every Packages file with its origin and hash.
fn index_key(native: &str, files: &[PackagesFile]) -> Sha256 {
    let mut s = format!("{INDEX_FORMAT}\n{native}\n");
    for f in files {
        let o = &f.origin;
        s.push_str(&format!(
            "{} {} {} {} {} {} {}\n",
            o.base_url, o.suite, o.codename, o.component, o.architecture, f.path, f.entry.sha256
        ));
    }
    Sha256::digest(s.as_bytes())
}

/// Where the parsed index of `sources` is stored: one file per set of
/// sources, overwritten when their metadata changes.
fn stored_index_path(cache_dir: &Path, sources: &[DebianSource]) -> PathBuf {
    let mut s = String::new();
    for src in sources {
        s.push_str(&format!(
            "{} {:?} {:?} {:?} {}\n",
            src.mirror, src.security_mirror, src.suites, src.components, src.architecture
        ));
    }
    let digest = Sha256::digest(s.as_bytes()).to_string();
    cache_dir
        .join("debian/index")
        .join(format!("{}.kodidx", &digest[..32]))
}

/// A file-name-safe form of a URL or suite (`/` and `:` become `_`).
fn escape(s: &str) -> String {
    let s = s.split_once("://").map_or(s, |(_, rest)| rest);
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<(), Error> {
    kod_root::write_atomic(path, data).map_err(Error::cache(path))
}
