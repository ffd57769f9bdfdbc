//! `Client::get_conditional` against the fixture server and file:// URLs.

mod common;

use std::time::Duration;

use common::{failing, truncated};
use kod_fetch::{Client, ClientOptions, Conditional, FetchError, Validators};
use kod_testkit::assert_contains;
use kod_testkit::http::{Fault, FileServer};

fn client() -> Client {
    Client::new(ClientOptions {
        initial_backoff: Duration::from_millis(10),
        ..ClientOptions::default()
    })
}

fn modified(c: Conditional) -> (Vec<u8>, Validators) {
    match c {
        Conditional::Modified { body, validators } => (body, validators),
        Conditional::NotModified => panic!("expected Modified, got NotModified"),
    }
}

/// The fixture server with one file, `/NAME` holding `data`, served with
/// `fault`: its directory (kept while it runs), the server and the file's
/// URL.
fn serving(name: &str, data: &[u8], fault: Fault) -> (tempfile::TempDir, FileServer, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), data).unwrap();
    let srv = FileServer::start(dir.path());
    srv.set_fault(&format!("/{name}"), fault);
    let url = format!("{}/{name}", srv.url());
    (dir, srv, url)
}

#[test]
fn conditional_get_follows_changes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Release"), b"first version\n").unwrap();
    let srv = FileServer::start(dir.path());
    let url = format!("{}/Release", srv.url());
    let c = client();

    let (body, v) = modified(c.get_conditional(&url, None).unwrap());
    assert_eq!(body, b"first version\n");
    assert!(v.etag.is_some(), "{v:?}");
    assert!(v.last_modified.is_some(), "{v:?}");

    assert_eq!(
        c.get_conditional(&url, Some(&v)).unwrap(),
        Conditional::NotModified
    );
    let log = srv.log();
    assert!(
        log.last()
            .unwrap()
            .contains(&format!("inm=Some({:?})", v.etag.as_ref().unwrap())),
        "{log:?}"
    );

    // A new size gives a new ETag even within the same second.
    std::fs::write(dir.path().join("Release"), b"second, longer version\n").unwrap();
    let (body, v2) = modified(c.get_conditional(&url, Some(&v)).unwrap());
    assert_eq!(body, b"second, longer version\n");
    assert_ne!(v, v2);
}

#[test]
fn missing_file_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let srv = FileServer::start(dir.path());
    let url = format!("{}/dists/x/Packages.xz", srv.url());
    match client().get_conditional(&url, None) {
        Err(FetchError::NotFound { url: u }) => assert_eq!(u, url),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(
        srv.hits("/dists/x/Packages.xz"),
        1,
        "404 must not be retried"
    );
}

#[test]
fn server_errors_are_retried() {
    let (_dir, srv, url) = serving("InRelease", b"signed", failing(2));
    let (body, _) = modified(client().get_conditional(&url, None).unwrap());
    assert_eq!(body, b"signed");
    assert_eq!(srv.hits("/InRelease"), 3);
}

#[test]
fn persistent_server_error_fails_cleanly() {
    let (_dir, srv, url) = serving("InRelease", b"signed", failing(1000));
    let err = client().get_conditional(&url, None).unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::Status {
                status: 503,
                attempts: 4,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert_contains(&msg, &url);
    assert_contains(&msg, "503");
    assert_eq!(srv.hits("/InRelease"), 4, "1 attempt + 3 retries");
}

#[test]
fn truncated_metadata_is_retried() {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let (_dir, srv, url) = serving("Packages", &data, truncated(1000, 1));
    let (body, _) = modified(client().get_conditional(&url, None).unwrap());
    assert_eq!(body, data);
    assert_eq!(srv.hits("/Packages"), 2);
}

#[test]
fn refused_connection_is_a_network_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/InRelease");
    let c = Client::new(ClientOptions {
        retries: 1,
        initial_backoff: Duration::from_millis(1),
        ..ClientOptions::default()
    });
    let err = c.get_conditional(&url, None).unwrap_err();
    assert!(
        matches!(err, FetchError::Network { attempts: 2, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&url));
}

#[test]
fn file_urls_work_conditionally() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Release");
    std::fs::write(&path, b"local").unwrap();
    let url = format!("file://{}", path.display());
    let c = client();
    let (body, v) = modified(c.get_conditional(&url, None).unwrap());
    assert_eq!(body, b"local");
    assert_eq!(
        c.get_conditional(&url, Some(&v)).unwrap(),
        Conditional::NotModified
    );
    std::fs::write(&path, b"changed!").unwrap();
    let (body, _) = modified(c.get_conditional(&url, Some(&v)).unwrap());
    assert_eq!(body, b"changed!");
    let missing = format!("file://{}/nope", dir.path().display());
    assert!(matches!(
        c.get_conditional(&missing, None),
        Err(FetchError::NotFound { .. })
    ));
}

#[test]
fn unknown_scheme_is_refused() {
    let err = client()
        .get_conditional("ftp://example.org/x", None)
        .unwrap_err();
    assert!(matches!(err, FetchError::BadUrl { .. }), "{err:?}");
}

#[test]
fn tls_handshake_failure_is_not_retried() {
    // A server that answers a TLS ClientHello with plain HTTP.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { return };
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = std::io::Write::write_all(
                &mut conn,
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
            );
        }
    });
    let url = format!("https://127.0.0.1:{port}/InRelease");
    let err = client().get_conditional(&url, None).unwrap_err();
    assert!(matches!(err, FetchError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains(&url));
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
}
