//! `Fetcher::fetch_all` against the fixture server and file:// URLs.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{failing, truncated};
use kod_fetch::{Cache, Client, ClientOptions, Download, FetchError, Fetcher, to_hex};
use kod_report::{Event, Level, Recorder, Report, Stage, Work};
use kod_testkit::http::{Fault, FileServer};
use sha2::{Digest, Sha256};

/// Deterministic pseudo-random bytes (xorshift), different per seed.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

struct Fixture {
    _mirror: tempfile::TempDir,
    mirror: PathBuf,
    _cache: tempfile::TempDir,
    cache_dir: PathBuf,
    srv: FileServer,
}

impl Fixture {
    fn new() -> Fixture {
        let mirror = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let srv = FileServer::start(mirror.path());
        Fixture {
            mirror: mirror.path().to_path_buf(),
            _mirror: mirror,
            cache_dir: cache.path().to_path_buf(),
            _cache: cache,
            srv,
        }
    }

    /// Puts `data` on the mirror at pool/NAME and describes it.
    fn publish(&self, name: &str, data: &[u8]) -> Download {
        std::fs::create_dir_all(self.mirror.join("pool")).unwrap();
        std::fs::write(self.mirror.join("pool").join(name), data).unwrap();
        Download {
            urls: vec![format!("{}/pool/{name}", self.srv.url())],
            size: data.len() as u64,
            sha256: sha(data),
            label: format!("{name} 1.0-1"),
        }
    }

    /// [`Fixture::publish`], the server answering pool/NAME with `fault`.
    fn publish_faulty(&self, name: &str, data: &[u8], fault: Fault) -> Download {
        let d = self.publish(name, data);
        self.srv.set_fault(&format!("/pool/{name}"), fault);
        d
    }

    /// Leaves in the cache the partial download of `d` an earlier run would
    /// have left, holding `bytes`.
    fn leave_partial(&self, d: &Download, bytes: impl AsRef<[u8]>) {
        std::fs::create_dir_all(self.cache_dir.join("partial")).unwrap();
        std::fs::write(partial_path(self, d), bytes).unwrap();
    }

    fn fetcher(&self, retries: u32) -> Fetcher {
        let client = Client::new(ClientOptions {
            retries,
            initial_backoff: Duration::from_millis(5),
            ..ClientOptions::default()
        });
        Fetcher::new(client, Cache::open(&self.cache_dir).unwrap())
    }

    fn partial_files(&self) -> Vec<PathBuf> {
        files_under(&self.cache_dir.join("partial"))
    }

    fn requests(&self) -> usize {
        self.srv.log().len()
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn partial_path(f: &Fixture, d: &Download) -> PathBuf {
    f.cache_dir
        .join("partial")
        .join(format!("{}.part", to_hex(&d.sha256)))
}

#[test]
fn parallel_fetch_of_many_files_lands_verified_in_the_cache() {
    let f = Fixture::new();
    let mut data = Vec::new();
    let mut items = Vec::new();
    for i in 0..50u64 {
        // 0 bytes up to ~1 MB, uneven.
        let len = ((i * i * 7919) % 1_000_003) as usize * (i % 5 != 0) as usize;
        let d = bytes(i + 1, len);
        items.push(f.publish(&format!("p{i}.deb"), &d));
        data.push(d);
    }
    // The same file twice in one request is fetched once.
    items.push(items[3].clone());
    data.push(data[3].clone());

    let fetcher = f.fetcher(3).with_jobs(8);
    let paths = fetcher.fetch_all(&items).unwrap();
    assert_eq!(paths.len(), items.len());
    for ((p, d), item) in paths.iter().zip(&data).zip(&items) {
        assert_eq!(p, &fetcher.cache().path_of(&item.sha256));
        assert_eq!(&std::fs::read(p).unwrap(), d, "{}", item.label);
        assert!(fetcher.cache().contains(&item.sha256));
    }
    assert_eq!(f.srv.hits("/pool/p3.deb"), 1);
    assert!(f.partial_files().is_empty(), "{:?}", f.partial_files());

    let before = f.requests();
    assert_eq!(fetcher.fetch_all(&items).unwrap(), paths);
    assert_eq!(f.requests(), before, "a warm cache makes no request");
}

#[test]
fn hash_mismatch_leaves_nothing_in_the_cache() {
    let f = Fixture::new();
    let mut d = f.publish("evil.deb", &bytes(7, 100_000));
    let good = bytes(8, 100_000);
    d.sha256 = sha(&good);
    let fetcher = f.fetcher(3);
    let err = fetcher.fetch_all(std::slice::from_ref(&d)).unwrap_err();
    match &err {
        FetchError::HashMismatch {
            label,
            url,
            expected,
            actual,
        } => {
            assert_eq!(label, "evil.deb 1.0-1");
            assert_eq!(url, &d.urls[0]);
            assert_eq!(expected, &to_hex(&sha(&good)));
            assert_eq!(actual, &to_hex(&sha(&bytes(7, 100_000))));
        }
        other => panic!("expected HashMismatch, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("evil.deb 1.0-1") && msg.contains(&d.urls[0]),
        "{msg}"
    );
    assert!(!fetcher.cache().contains(&d.sha256));
    assert!(files_under(&f.cache_dir.join("blobs")).is_empty());
    assert!(f.partial_files().is_empty(), "{:?}", f.partial_files());
    assert_eq!(
        f.srv.hits("/pool/evil.deb"),
        1,
        "a hash mismatch is not retried"
    );
}

#[test]
fn size_mismatch_longer_and_shorter() {
    let f = Fixture::new();
    let data = bytes(9, 50_000);
    let fetcher = f.fetcher(3);
    for (name, served) in [
        ("long.deb", bytes(9, 50_001)),
        ("short.deb", data[..49_000].to_vec()),
    ] {
        let mut d = f.publish(name, &served);
        d.size = data.len() as u64;
        d.sha256 = sha(&data);
        let err = fetcher.fetch_all(&[d.clone()]).unwrap_err();
        match err {
            FetchError::SizeMismatch {
                expected,
                actual,
                ref url,
                ..
            } => {
                assert_eq!(expected, 50_000);
                assert_eq!(actual, served.len() as u64);
                assert_eq!(url, &d.urls[0]);
            }
            other => panic!("{name}: expected SizeMismatch, got {other:?}"),
        }
        assert!(!fetcher.cache().contains(&d.sha256));
    }
    assert!(f.partial_files().is_empty(), "{:?}", f.partial_files());
}

#[test]
fn dropped_connection_is_resumed_with_range() {
    let f = Fixture::new();
    let data = bytes(10, 1_000_000);
    let d = f.publish_faulty("big.deb", &data, truncated(300_000, 1));
    let paths = f.fetcher(3).fetch_all(std::slice::from_ref(&d)).unwrap();
    assert_eq!(std::fs::read(&paths[0]).unwrap(), data);
    let log = f.srv.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log[0].contains("range=None"), "{log:?}");
    assert!(log[1].contains(r#"range=Some("bytes=300000-")"#), "{log:?}");
}

#[test]
fn connection_dropping_every_time_fails_cleanly_then_resumes_next_run() {
    let f = Fixture::new();
    let data = bytes(11, 1_000_000);
    let d = f.publish_faulty("flaky.deb", &data, truncated(10_000, usize::MAX));
    let fetcher = f.fetcher(3);
    let err = fetcher.fetch_all(std::slice::from_ref(&d)).unwrap_err();
    assert!(
        matches!(err, FetchError::Network { attempts: 4, ref url, .. } if url == &d.urls[0]),
        "{err:?}"
    );
    assert!(err.to_string().contains(&d.urls[0]));
    assert_eq!(f.srv.hits("/pool/flaky.deb"), 4);
    assert!(!fetcher.cache().contains(&d.sha256));
    assert!(files_under(&f.cache_dir.join("blobs")).is_empty());
    // What arrived is kept for the next run ...
    let part = partial_path(&f, &d);
    assert_eq!(std::fs::metadata(&part).unwrap().len(), 40_000);

    // ... which resumes from there once the network is back.
    f.srv.set_fault("/pool/flaky.deb", Fault::default());
    let paths = fetcher.fetch_all(std::slice::from_ref(&d)).unwrap();
    assert_eq!(std::fs::read(&paths[0]).unwrap(), data);
    assert!(
        f.srv
            .log()
            .last()
            .unwrap()
            .contains(r#"range=Some("bytes=40000-")"#)
    );
    assert!(!part.exists());
}

#[test]
fn wrong_partial_bytes_are_refetched_from_scratch() {
    let f = Fixture::new();
    let data = bytes(12, 200_000);
    let d = f.publish("stale.deb", &data);
    // A partial file from some earlier run whose bytes are wrong.
    f.leave_partial(&d, bytes(99, 5_000));
    let paths = f.fetcher(3).fetch_all(std::slice::from_ref(&d)).unwrap();
    assert_eq!(std::fs::read(&paths[0]).unwrap(), data);
    let log = f.srv.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log[0].contains(r#"range=Some("bytes=5000-")"#), "{log:?}");
    assert!(log[1].contains("range=None"), "{log:?}");
}

#[test]
fn complete_partial_from_an_earlier_run_needs_no_request() {
    let f = Fixture::new();
    let data = bytes(13, 70_000);
    let d = f.publish("done.deb", &data);
    f.leave_partial(&d, &data);
    let paths = f.fetcher(3).fetch_all(std::slice::from_ref(&d)).unwrap();
    assert_eq!(std::fs::read(&paths[0]).unwrap(), data);
    assert_eq!(f.requests(), 0);
}

#[test]
fn second_mirror_is_used_when_the_first_is_down() {
    let f = Fixture::new();
    let data = bytes(14, 120_000);
    let mut d = f.publish("m.deb", &data);
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/pool/m.deb", l.local_addr().unwrap())
    };
    let broken = Fixture::new(); // answers 503 for ever
    broken.srv.set_fault("/pool/m.deb", failing(usize::MAX));
    let good = d.urls.remove(0);
    d.urls = vec![down, format!("{}/pool/m.deb", broken.srv.url()), good];
    let paths = f.fetcher(1).fetch_all(std::slice::from_ref(&d)).unwrap();
    assert_eq!(std::fs::read(&paths[0]).unwrap(), data);
    assert_eq!(broken.srv.hits("/pool/m.deb"), 2);
    assert_eq!(f.srv.hits("/pool/m.deb"), 1);
}

#[test]
fn every_mirror_failing_names_each() {
    let f = Fixture::new();
    let d = Download {
        urls: vec![
            format!("{}/pool/a.deb", f.srv.url()),
            format!("{}/other/a.deb", f.srv.url()),
        ],
        size: 10,
        sha256: sha(b"0123456789"),
        label: "a 1".into(),
    };
    let err = f.fetcher(1).fetch_all(&[d]).unwrap_err();
    let FetchError::Mirrors { label, errors } = &err else {
        panic!("expected Mirrors, got {err:?}");
    };
    assert_eq!(label, "a 1");
    assert!(matches!(
        errors[..],
        [FetchError::NotFound { .. }, FetchError::NotFound { .. }]
    ));
    let msg = err.to_string();
    assert!(
        msg.contains("/pool/a.deb") && msg.contains("/other/a.deb"),
        "{msg}"
    );
    assert!(f.partial_files().is_empty());
}

#[test]
fn file_urls_are_fetched_and_verified() {
    let f = Fixture::new();
    let data = bytes(15, 300_000);
    let mut d = f.publish("local.deb", &data);
    d.urls = vec![format!("file://{}/pool/local.deb", f.mirror.display())];
    let fetcher = f.fetcher(3);
    let paths = fetcher.fetch_all(std::slice::from_ref(&d)).unwrap();
    assert_eq!(std::fs::read(&paths[0]).unwrap(), data);
    assert_eq!(f.requests(), 0);

    let mut bad = f.publish("other.deb", &bytes(16, 1000));
    bad.urls = vec![format!("file://{}/pool/other.deb", f.mirror.display())];
    bad.sha256 = sha(b"something else");
    assert!(matches!(
        fetcher.fetch_all(&[bad]).unwrap_err(),
        FetchError::HashMismatch { .. }
    ));
}

#[test]
fn one_failure_stops_the_others_promptly() {
    let f = Fixture::new();
    let slow = f.publish_faulty("slow.deb", &bytes(17, 1000), failing(usize::MAX));
    let missing = Download {
        urls: vec![format!("{}/pool/missing.deb", f.srv.url())],
        size: 5,
        sha256: sha(b"abcde"),
        label: "missing 1".into(),
    };
    // Without cancellation the 503s would be retried for about a minute.
    let client = Client::new(ClientOptions {
        retries: 6,
        initial_backoff: Duration::from_secs(1),
        ..ClientOptions::default()
    });
    let fetcher = Fetcher::new(client, Cache::open(&f.cache_dir).unwrap());
    let t = Instant::now();
    let err = fetcher.fetch_all(&[slow, missing]).unwrap_err();
    assert!(matches!(err, FetchError::NotFound { .. }), "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(f.partial_files().is_empty(), "{:?}", f.partial_files());
}

#[test]
fn two_fetchers_share_one_cache() {
    let f = Fixture::new();
    let items: Vec<Download> = (0..20)
        .map(|i| f.publish(&format!("s{i}.deb"), &bytes(100 + i, 200_000)))
        .collect();
    let a = f.fetcher(3);
    let b = f.fetcher(3);
    let (pa, pb) = std::thread::scope(|s| {
        let ta = s.spawn(|| a.fetch_all(&items).unwrap());
        let tb = s.spawn(|| b.fetch_all(&items).unwrap());
        (ta.join().unwrap(), tb.join().unwrap())
    });
    assert_eq!(pa, pb);
    for (p, i) in pa.iter().zip(100..) {
        assert_eq!(std::fs::read(p).unwrap(), bytes(i, 200_000));
    }
    assert!(f.partial_files().is_empty(), "{:?}", f.partial_files());
}

#[test]
fn progress_is_reported_as_the_fetch_stage() {
    let f = Fixture::new();
    let a = f.publish("a.deb", &bytes(20, 1_500_000));
    let b = f.publish("b.deb", &bytes(21, 2_000));
    let c = f.publish("c.deb", &bytes(22, 3_000));
    let fetcher = f.fetcher(3);
    fetcher.fetch_all(std::slice::from_ref(&c)).unwrap();

    let rec = Recorder::new(true);
    let fetcher = fetcher.with_report(Report::to(rec.clone()));
    fetcher.fetch_all(&[a, b, c]).unwrap();
    let events = rec.events();
    assert_eq!(
        events.first(),
        Some(&Event::Message(
            Level::Verbose,
            "already in the cache: 1 of 3 files".into()
        )),
        "{events:?}"
    );
    assert_eq!(
        events[1],
        Event::Started(Stage::Fetch, Work::new(2, 1_502_000))
    );
    assert_eq!(events.last(), Some(&Event::Finished(Stage::Fetch)));
    assert_eq!(rec.done(Stage::Fetch), Work::new(2, 1_502_000));
    let mut finished: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Advanced(Stage::Fetch, Work { items: 1, bytes: 0 }, label) => Some(&**label),
            _ => None,
        })
        .collect();
    finished.sort();
    assert_eq!(finished, ["a.deb 1.0-1", "b.deb 1.0-1"]);
    let mut per_file = rec.messages(Level::Verbose)[1..].to_vec();
    per_file.sort();
    assert_eq!(
        per_file,
        [
            "fetched a.deb 1.0-1 (1.50 MB)",
            "fetched b.deb 1.0-1 (2.00 kB)"
        ]
    );

    // Nothing to fetch: no stage, only what the cache held.
    let rec = Recorder::new(true);
    let fetcher = fetcher.with_report(Report::to(rec.clone()));
    fetcher
        .fetch_all(&[f.publish("c.deb", &bytes(22, 3_000))])
        .unwrap();
    assert_eq!(
        rec.events(),
        [Event::Message(
            Level::Verbose,
            "already in the cache: 1 of 1 files".into()
        )]
    );
    // Without -v the lines are not even built.
    let rec = Recorder::new(false);
    f.fetcher(3)
        .with_report(Report::to(rec.clone()))
        .fetch_all(&[
            f.publish("d.deb", &bytes(23, 4_000)),
            f.publish("c.deb", &bytes(22, 3_000)),
        ])
        .unwrap();
    assert!(rec.messages(Level::Verbose).is_empty());
    assert_eq!(rec.done(Stage::Fetch), Work::new(1, 4_000));
}

/// A server that answers every request with the whole `body` and 200,
/// ignoring `Range`; returns its URL and the request heads it saw.
fn range_ignoring_server(body: Vec<u8>) -> (String, Arc<Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/x.deb", l.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut out = conn;
            loop {
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                if head.is_empty() {
                    break;
                }
                log.lock().unwrap().push(head.to_ascii_lowercase());
                let _ = write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                let _ = out.write_all(&body);
            }
        }
    });
    (url, seen)
}

#[test]
fn server_ignoring_range_is_fetched_from_the_start() {
    let f = Fixture::new();
    let data = bytes(30, 150_000);
    let (url, seen) = range_ignoring_server(data.clone());
    let d = Download {
        urls: vec![url],
        size: data.len() as u64,
        sha256: sha(&data),
        label: "x 1".into(),
    };
    // The right first 40 000 bytes, from an earlier run.
    f.leave_partial(&d, &data[..40_000]);
    let rec = Recorder::new(false);
    let paths = f
        .fetcher(3)
        .with_report(Report::to(rec.clone()))
        .fetch_all(std::slice::from_ref(&d))
        .unwrap();
    assert_eq!(std::fs::read(&paths[0]).unwrap(), data);
    // The kept bytes counted, taken back when the body came from the
    // start, and the whole file counted once in the end.
    let events = rec.events();
    assert_eq!(
        events[..2],
        [
            Event::Started(Stage::Fetch, Work::new(1, 150_000)),
            Event::Advanced(Stage::Fetch, Work::new(0, 40_000), String::new()),
        ]
    );
    assert!(
        events.contains(&Event::Rewound(Stage::Fetch, 40_000)),
        "{events:?}"
    );
    assert_eq!(rec.done(Stage::Fetch), Work::new(1, 150_000));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].contains("range: bytes=40000-"), "{seen:?}");
    assert!(f.partial_files().is_empty());
}

#[test]
fn listing_and_removing_a_cached_file_counts_and_removes_what_was_kept_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let (a, b) = (bytes(1, 1000), bytes(2, 500));
    let mut paths = Vec::new();
    for data in [&a, &b] {
        let path = cache.path_of(&sha(data));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data).unwrap();
        paths.push(path);
    }
    // What kod-unpack keeps for `a`: named by its SHA256.
    let kept = kod_fetch::kept_data_dir(dir.path());
    std::fs::create_dir_all(&kept).unwrap();
    let hex = to_hex(&sha(&a));
    std::fs::write(kept.join(format!("{hex}.tar")), vec![0; 300]).unwrap();
    std::fs::write(kept.join(format!("{hex}.tar.b3")), "x 300\n").unwrap();
    let b_seen = kept.join(format!("{}.seen", to_hex(&sha(&b))));
    std::fs::write(&b_seen, "").unwrap();
    let mut expected = vec![(paths[0].clone(), 1000 + 300 + 6), (paths[1].clone(), 500)];
    expected.sort();
    assert_eq!(cache.files().unwrap(), expected);

    cache.remove(&paths[..1]).unwrap();
    assert!(!paths[0].exists());
    assert_eq!(
        std::fs::read_dir(&kept).unwrap().count(),
        1,
        "a's kept files gone, b's left"
    );
    assert!(b_seen.exists());
    assert_eq!(cache.files().unwrap(), [(paths[1].clone(), 500)]);
    // Only files of the cache are removed.
    assert!(cache.remove(&[dir.path().join("elsewhere")]).is_err());
}
