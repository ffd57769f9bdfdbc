//! The HTTP(S) and `file://` client: conditional GETs of metadata, ranged
//! streams for package downloads, retries with exponential back-off.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use ureq::http::StatusCode;
use ureq::tls::{RootCerts, TlsConfig};
use ureq::unversioned::transport::DefaultConnector;

use crate::FetchError;
use crate::resolver::CachingResolver;

/// How the [`Client`] talks to servers.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Longest wait to establish a connection (including TLS).
    pub connect_timeout: Duration,
    /// Longest wait for one read from the network (headers or body) before
    /// the attempt counts as stalled.
    pub read_timeout: Duration,
    /// How many times a failed request is retried after the first attempt
    /// (connection errors, timeouts, 5xx, 408, 429; never 404 or 403).
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub initial_backoff: Duration,
    /// Upper bound of the wait between two attempts.
    pub max_backoff: Duration,
    /// The `User-Agent` header sent.
    pub user_agent: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(30),
            retries: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            user_agent: concat!("kod/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// HTTP cache validators of a fetched file, to send back on the next
/// conditional request.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Validators {
    /// The `ETag` header the server sent.
    pub etag: Option<String>,
    /// The `Last-Modified` header the server sent.
    pub last_modified: Option<String>,
}

/// The outcome of [`Client::get_conditional`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conditional {
    /// The file has not changed since the validators were taken.
    NotModified,
    /// The file, whole, with its new validators.
    Modified {
        /// The file's bytes.
        body: Vec<u8>,
        /// Validators to send next time.
        validators: Validators,
    },
}

/// An HTTP(S) and `file://` client with retries. Cheap to clone: clones share
/// one connection pool.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("opts", &self.inner.opts)
            .finish_non_exhaustive()
    }
}

struct Inner {
    agent: ureq::Agent,
    opts: ClientOptions,
}

/// Why one attempt failed, as far as retrying is concerned.
pub(crate) enum Failure {
    /// Worth another attempt: connection trouble, timeouts, server errors.
    Transient {
        /// The HTTP status, when the server answered.
        status: Option<u16>,
        /// What went wrong, for the final error.
        reason: String,
    },
    /// Another attempt at this URL cannot help.
    Fatal(FetchError),
    /// The caller asked to stop.
    Cancelled,
}

impl Failure {
    pub(crate) fn net(reason: impl std::fmt::Display) -> Failure {
        Failure::Transient {
            status: None,
            reason: reason.to_string(),
        }
    }
}

/// A response body positioned at byte `start` of the file.
pub(crate) struct Stream {
    /// The body from `start` on.
    pub reader: Box<dyn Read + Send>,
    /// The offset the body starts at: the one asked for, or 0 when the server
    /// ignored the range.
    pub start: u64,
    /// How many bytes the body announces, when known.
    pub len: Option<u64>,
}

/// Never set: for requests nobody cancels.
static NEVER: AtomicBool = AtomicBool::new(false);

impl Client {
    /// A client with these options.
    pub fn new(opts: ClientOptions) -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // The system's CA store, as apt and curl use: it holds the
            // authorities an administrator added (e.g. for a TLS proxy).
            .tls_config(
                TlsConfig::builder()
                    .root_certs(RootCerts::PlatformVerifier)
                    .build(),
            )
            .user_agent(opts.user_agent.as_str())
            .timeout_connect(Some(opts.connect_timeout))
            .timeout_recv_response(Some(opts.read_timeout))
            .timeout_per_read(Some(opts.read_timeout))
            .max_idle_connections(32)
            .max_idle_connections_per_host(16)
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            DefaultConnector::default(),
            CachingResolver::default(),
        );
        Client {
            inner: Arc::new(Inner { agent, opts }),
        }
    }

    /// The options this client was made with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.opts
    }

    /// Fetches a small file (metadata) whole into memory, unless it is
    /// unchanged since `validators` were taken (then [`Conditional::NotModified`]).
    /// `file://` URLs get validators from the file's size, time and inode.
    pub fn get_conditional(
        &self,
        url: &str,
        validators: Option<&Validators>,
    ) -> Result<Conditional, FetchError> {
        match local_path(url)? {
            Some(path) => local_conditional(url, path, validators),
            None => self
                .retrying(url, &NEVER, || self.http_conditional(url, validators))
                .map_err(|(f, n)| into_error(url, f, n)),
        }
    }

    fn http_conditional(
        &self,
        url: &str,
        validators: Option<&Validators>,
    ) -> Result<Conditional, Failure> {
        let mut req = self.inner.agent.get(url);
        // The ETag alone when there is one: it is exact, while a date has a
        // resolution of one second (RFC 9110 lets If-None-Match win anyway).
        match validators {
            Some(Validators {
                etag: Some(etag), ..
            }) => req = req.header("If-None-Match", etag),
            Some(Validators {
                last_modified: Some(lm),
                ..
            }) => req = req.header("If-Modified-Since", lm),
            _ => {}
        }
        let resp = req.call().map_err(|e| classify(url, e))?;
        let status = resp.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Conditional::NotModified);
        }
        check_status(url, status)?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let validators = Validators {
            etag: header("etag"),
            last_modified: header("last-modified"),
        };
        let mut body = Vec::new();
        resp.into_body()
            .into_reader()
            .read_to_end(&mut body)
            .map_err(Failure::net)?;
        Ok(Conditional::Modified { body, validators })
    }

    /// Opens `url` for streaming from byte `offset` (a `Range` request when
    /// `offset > 0`). When the server cannot honour the range (it ignores it,
    /// or the file is shorter), the stream starts at 0 instead.
    pub(crate) fn open(&self, url: &str, offset: u64) -> Result<Stream, Failure> {
        match local_path(url).map_err(Failure::Fatal)? {
            Some(path) => open_local(url, path, offset),
            None => self.open_http(url, offset),
        }
    }

    fn open_http(&self, url: &str, offset: u64) -> Result<Stream, Failure> {
        let mut req = self.inner.agent.get(url);
        if offset > 0 {
            req = req.header("Range", format!("bytes={offset}-"));
        }
        let resp = req.call().map_err(|e| classify(url, e))?;
        let status = resp.status();
        let honoured = status == StatusCode::PARTIAL_CONTENT
            && resp
                .headers()
                .get("content-range")
                .and_then(|v| v.to_str().ok())
                .and_then(range_start)
                == Some(offset);
        if offset > 0 && !honoured && status != StatusCode::OK {
            // 416 (the partial file is longer than the server's) or a range we
            // did not ask for: start over from the beginning.
            drop(resp);
            return self.open_http(url, 0);
        }
        check_status(url, status)?;
        let len = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        Ok(Stream {
            reader: Box::new(resp.into_body().into_reader()),
            start: if honoured { offset } else { 0 },
            len,
        })
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retries are
    /// spent, sleeping with exponential back-off in between. Stops early when
    /// `cancel` is set.
    pub(crate) fn retrying<T>(
        &self,
        url: &str,
        cancel: &AtomicBool,
        mut attempt: impl FnMut() -> Result<T, Failure>,
    ) -> Result<T, (Failure, u32)> {
        let opts = &self.inner.opts;
        let mut backoff = opts.initial_backoff;
        let mut n = 0;
        loop {
            n += 1;
            if cancel.load(Ordering::Relaxed) {
                return Err((Failure::Cancelled, n - 1));
            }
            match attempt() {
                Ok(v) => return Ok(v),
                Err(Failure::Transient { status, reason }) if n <= opts.retries => {
                    tracing::debug!(url, attempt = n, ?status, %reason, "retrying");
                    if !sleep_unless(cancel, backoff) {
                        return Err((Failure::Cancelled, n));
                    }
                    backoff = (backoff * 2).min(opts.max_backoff);
                }
                Err(f) => return Err((f, n)),
            }
        }
    }
}

/// The error for a [`Failure`] that ended the attempts at `url`. `Cancelled`
/// is never the error a caller sees (a cancelled fetch reports the failure
/// that caused the cancellation); it maps to a network error for completeness.
pub(crate) fn into_error(url: &str, f: Failure, attempts: u32) -> FetchError {
    match f {
        Failure::Fatal(FetchError::Status { url, status, .. }) => FetchError::Status {
            url,
            status,
            attempts,
        },
        Failure::Fatal(e) => e,
        Failure::Transient {
            status: Some(status),
            ..
        } => FetchError::Status {
            url: url.to_string(),
            status,
            attempts,
        },
        Failure::Transient {
            status: None,
            reason,
        } => FetchError::Network {
            url: url.to_string(),
            attempts,
            reason,
        },
        Failure::Cancelled => FetchError::Network {
            url: url.to_string(),
            attempts,
            reason: "cancelled".to_string(),
        },
    }
}

/// Sleeps `d`, waking early when `cancel` is set. False if cancelled.
fn sleep_unless(cancel: &AtomicBool, d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// The start offset of a `Content-Range: bytes START-END/TOTAL` header.
fn range_start(v: &str) -> Option<u64> {
    v.trim()
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Success, or the failure an HTTP status stands for.
fn check_status(url: &str, status: StatusCode) -> Result<(), Failure> {
    match status.as_u16() {
        200..=299 => Ok(()),
        404 | 410 => Err(Failure::Fatal(FetchError::NotFound {
            url: url.to_string(),
        })),
        s @ (408 | 429 | 500..=599) => Err(Failure::Transient {
            status: Some(s),
            reason: format!("HTTP {s}"),
        }),
        s => Err(Failure::Fatal(FetchError::Status {
            url: url.to_string(),
            status: s,
            attempts: 1,
        })),
    }
}

/// Sorts a ureq error into retryable or not.
fn classify(url: &str, e: ureq::Error) -> Failure {
    use ureq::Error as E;
    match e {
        E::BadUri(_) | E::Http(_) | E::RequireHttpsOnly(_) | E::InvalidProxyUrl => {
            Failure::Fatal(FetchError::BadUrl {
                url: url.to_string(),
                reason: e.to_string(),
            })
        }
        E::TooManyRedirects | E::RedirectFailed => Failure::Fatal(FetchError::Network {
            url: url.to_string(),
            attempts: 1,
            reason: e.to_string(),
        }),
        // rustls reports a failed handshake (untrusted certificate, not TLS
        // at all) as invalid data: the same again on every retry.
        E::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            Failure::Fatal(FetchError::Tls {
                url: url.to_string(),
                reason: io.to_string(),
            })
        }
        other => Failure::net(other),
    }
}

/// The local path of a `file://` URL, `None` for `http(s)://`.
fn local_path(url: &str) -> Result<Option<PathBuf>, FetchError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(None);
    }
    let bad = |reason: &str| FetchError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let rest = url
        .strip_prefix("file://")
        .ok_or_else(|| bad("unknown scheme"))?;
    // file:///path or file://localhost/path
    let path = rest.strip_prefix("localhost").unwrap_or(rest);
    if !path.starts_with('/') {
        return Err(bad("a file:// URL needs an absolute path (file:///...)"));
    }
    let decoded = percent_decode(path).ok_or_else(|| bad("malformed %-escape"))?;
    Ok(Some(PathBuf::from(
        <std::ffi::OsString as OsStringExt>::from_vec(decoded),
    )))
}

/// Decodes `%XX` escapes.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

fn local_error(url: &str, path: PathBuf, e: std::io::Error) -> FetchError {
    if e.kind() == std::io::ErrorKind::NotFound {
        FetchError::NotFound {
            url: url.to_string(),
        }
    } else {
        FetchError::Local {
            url: url.to_string(),
            path,
            source: e,
        }
    }
}

fn local_conditional(
    url: &str,
    path: PathBuf,
    validators: Option<&Validators>,
) -> Result<Conditional, FetchError> {
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) => return Err(local_error(url, path, e)),
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return Err(local_error(url, path, e)),
    };
    let etag = format!(
        "\"file-{:x}-{:x}.{:x}-{:x}\"",
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ino()
    );
    if validators.and_then(|v| v.etag.as_deref()) == Some(etag.as_str()) {
        return Ok(Conditional::NotModified);
    }
    let mut body = Vec::with_capacity(meta.len() as usize);
    if let Err(e) = file.read_to_end(&mut body) {
        return Err(local_error(url, path, e));
    }
    Ok(Conditional::Modified {
        body,
        validators: Validators {
            etag: Some(etag),
            last_modified: None,
        },
    })
}

fn open_local(url: &str, path: PathBuf, offset: u64) -> Result<Stream, Failure> {
    let fatal = |path, e| Failure::Fatal(local_error(url, path, e));
    let mut file = File::open(&path).map_err(|e| fatal(path.clone(), e))?;
    let total = file.metadata().map_err(|e| fatal(path.clone(), e))?.len();
    let start = if offset <= total { offset } else { 0 };
    file.seek(SeekFrom::Start(start))
        .map_err(|e| fatal(path.clone(), e))?;
    Ok(Stream {
        reader: Box::new(file),
        start,
        len: Some(total - start),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_are_decoded() {
        assert_eq!(
            local_path("file:///srv/m/pool/a_1%253a2.deb").unwrap(),
            Some(PathBuf::from("/srv/m/pool/a_1%3a2.deb"))
        );
        assert_eq!(
            local_path("file://localhost/x%20y").unwrap(),
            Some(PathBuf::from("/x y"))
        );
        assert_eq!(local_path("http://example.org/x").unwrap(), None);
        assert!(matches!(
            local_path("ftp://example.org/x"),
            Err(FetchError::BadUrl { .. })
        ));
        assert!(matches!(
            local_path("file://relative/x"),
            Err(FetchError::BadUrl { .. })
        ));
        assert!(matches!(
            local_path("file:///x%2"),
            Err(FetchError::BadUrl { .. })
        ));
    }

    #[test]
    fn content_range_start() {
        assert_eq!(range_start("bytes 100-199/200"), Some(100));
        assert_eq!(range_start("bytes */200"), None);
    }
}
