//! A small HTTP/1.1 file server on 127.0.0.1 for fixture repositories.
//!
//! Serves a directory read-only, answers `Range`, `If-None-Match` and
//! `If-Modified-Since`, and can misbehave on purpose (fail the first requests,
//! cut a body short) so tests can exercise retries and resume.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::UNIX_EPOCH;

/// Misbehaviour for one path, applied per request in order.
#[derive(Debug, Clone, Default)]
pub struct Fault {
    /// Answer this many requests with `503 Service Unavailable` first.
    pub fail_first: usize,
    /// Close the connection after sending this many body bytes, for this many
    /// requests (after the failed ones).
    pub truncate_at: Option<(u64, usize)>,
}

#[derive(Default)]
struct State {
    /// Each fault with the number of requests it has seen so far.
    faults: HashMap<String, (Fault, usize)>,
    hits: HashMap<String, usize>,
    log: Vec<String>,
}

/// A running fixture server. Dropping it stops accepting connections.
pub struct FileServer {
    addr: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicUsize>,
}

impl FileServer {
    /// Serves `root` on an ephemeral port of 127.0.0.1.
    pub fn start(root: impl Into<PathBuf>) -> FileServer {
        let root: PathBuf = root.into();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let (st, sp, sv) = (state.clone(), stop.clone(), served.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (root, st, sv) = (root.clone(), st.clone(), sv.clone());
                thread::spawn(move || {
                    let _ = serve(conn, &root, &st, &sv);
                });
            }
        });
        FileServer {
            addr,
            state,
            stop,
            served,
        }
    }

    /// The base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.addr
    }

    /// Sets the misbehaviour for the requests of `path` (e.g. `/pool/a.deb`)
    /// from now on: the fault counts requests from its own start.
    pub fn set_fault(&self, path: &str, fault: Fault) {
        self.state
            .lock()
            .unwrap()
            .faults
            .insert(path.to_string(), (fault, 0));
    }

    /// How many requests reached `path`.
    pub fn hits(&self, path: &str) -> usize {
        *self.state.lock().unwrap().hits.get(path).unwrap_or(&0)
    }

    /// Every request line seen so far, with its notable headers.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// Total responses that carried a full or partial body.
    pub fn bodies_served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr.trim_start_matches("http://"));
    }
}

fn serve(
    conn: TcpStream,
    root: &Path,
    state: &Mutex<State>,
    served: &AtomicUsize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request)? == 0 {
            return Ok(());
        }
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let mut parts = request.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("/").to_string();
        let path = path.split('?').next().unwrap_or("/").to_string();

        let (fault_now, truncate) = {
            let mut st = state.lock().unwrap();
            st.log.push(format!(
                "{method} {path} range={:?} inm={:?} ims={:?}",
                headers.get("range"),
                headers.get("if-none-match"),
                headers.get("if-modified-since")
            ));
            *st.hits.entry(path.clone()).or_insert(0) += 1;
            match st.faults.get_mut(&path) {
                Some((f, seen)) => {
                    *seen += 1;
                    let n = *seen;
                    match f.truncate_at {
                        _ if n <= f.fail_first => (true, None),
                        Some((at, times)) if n <= f.fail_first + times => (false, Some(at)),
                        _ => (false, None),
                    }
                }
                None => (false, None),
            }
        };
        if fault_now {
            write!(
                out,
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
            )?;
            continue;
        }
        let Some(file) = resolve(root, &path) else {
            write!(out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?;
            continue;
        };
        let Ok(meta) = std::fs::metadata(&file) else {
            write!(out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?;
            continue;
        };
        let mtime = meta
            .modified()
            .ok()
            .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let etag = format!("\"{:x}-{:x}\"", meta.len(), mtime);
        let last_modified = http_date(mtime);
        let not_modified = headers.get("if-none-match") == Some(&etag)
            || headers.get("if-modified-since") == Some(&last_modified);
        if not_modified {
            write!(
                out,
                "HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nLast-Modified: {last_modified}\r\nContent-Length: 0\r\n\r\n"
            )?;
            continue;
        }
        let mut body = Vec::new();
        std::fs::File::open(&file)?.read_to_end(&mut body)?;
        let total = body.len() as u64;
        let mut start = 0u64;
        let mut status = "200 OK";
        let mut extra = String::new();
        let range_start = headers
            .get("range")
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.split('-').next())
            .and_then(|s| s.parse::<u64>().ok());
        if let Some(s) = range_start {
            if s >= total {
                write!(
                    out,
                    "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{total}\r\nContent-Length: 0\r\n\r\n"
                )?;
                continue;
            }
            start = s;
            status = "206 Partial Content";
            extra = format!("Content-Range: bytes {s}-{}/{total}\r\n", total - 1);
        }
        let slice = &body[start as usize..];
        write!(
            out,
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nETag: {etag}\r\nLast-Modified: {last_modified}\r\nAccept-Ranges: bytes\r\n{extra}\r\n",
            slice.len()
        )?;
        if method == "HEAD" {
            continue;
        }
        served.fetch_add(1, Ordering::SeqCst);
        match truncate {
            Some(at) => {
                let n = (at as usize).min(slice.len());
                out.write_all(&slice[..n])?;
                out.flush()?;
                return Ok(()); // drop the connection mid-body
            }
            None => out.write_all(slice)?,
        }
    }
}

/// Maps a URL path into `root`, refusing anything that would leave it.
fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    let mut p = root.to_path_buf();
    for c in Path::new(url_path.trim_start_matches('/')).components() {
        match c {
            Component::Normal(s) => p.push(s),
            Component::CurDir => {}
            _ => return None,
        }
    }
    p.is_file().then_some(p)
}

/// An RFC 7231 date for a Unix time (UTC).
fn http_date(secs: u64) -> String {
    jiff::Timestamp::from_second(secs as i64)
        .map(|t| t.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_date_matches_known_instant() {
        // 2001-09-09T01:46:40Z is Unix time 1_000_000_000, a Sunday.
        assert_eq!(http_date(1_000_000_000), "Sun, 09 Sep 2001 01:46:40 GMT");
    }

    #[test]
    fn resolve_refuses_parent_components() {
        let dir = std::env::temp_dir();
        assert!(resolve(&dir, "/../etc/passwd").is_none());
    }

    #[test]
    fn serves_ranges_and_faults() {
        let dir = std::env::temp_dir().join(format!("kod-testkit-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("f"), b"0123456789").unwrap();
        let srv = FileServer::start(&dir);
        srv.set_fault(
            "/f",
            Fault {
                fail_first: 1,
                truncate_at: None,
            },
        );
        let get = |range: Option<&str>| -> String {
            let mut s = TcpStream::connect(srv.url().trim_start_matches("http://")).unwrap();
            let r = range.map(|r| format!("Range: {r}\r\n")).unwrap_or_default();
            write!(
                s,
                "GET /f HTTP/1.1\r\nHost: x\r\n{r}Connection: close\r\n\r\n"
            )
            .unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        };
        assert!(get(None).starts_with("HTTP/1.1 503"));
        let full = get(None);
        assert!(full.starts_with("HTTP/1.1 200"), "{full}");
        assert!(full.ends_with("0123456789"));
        let part = get(Some("bytes=4-"));
        assert!(part.starts_with("HTTP/1.1 206"), "{part}");
        assert!(part.ends_with("456789"));
        assert_eq!(srv.hits("/f"), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
