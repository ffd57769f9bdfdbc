//! The metadata cache (InRelease files, their verification seals, the
//! stored index) is not writable by other users even when kod runs with a
//! permissive umask: a planted seal or index would make root trust what
//! nobody signed. A test binary of its own: the umask is the process's.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use kod_repo::debian::{Debian, DebianSource};
use kod_repo::{Backend, Freshness, LoadOptions};
use kod_testkit::debrepo::{DebRepo, ReleaseOptions};
use kod_testkit::http::FileServer;

const PACKAGES: &str = "Package: hello
Version: 2.10-3
Architecture: amd64
Description: example package
Filename: pool/main/h/hello/hello_2.10-3_amd64.deb
Size: 53000
SHA256: 1111111111111111111111111111111111111111111111111111111111111111
";

/// Every path below `dir` with its permission bits.
fn modes(dir: &Path, out: &mut Vec<(String, u32)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        out.push((p.display().to_string(), m.permissions().mode() & 0o777));
        if m.is_dir() {
            modes(&p, out);
        }
    }
}

#[test]
fn metadata_cache_is_only_writable_by_its_owner_whatever_the_umask() {
    let repo = DebRepo::new("kodtest");
    repo.publish(PACKAGES, &ReleaseOptions::default());
    let server = FileServer::start(repo.serve_dir());
    let mut source = DebianSource::new(&format!("{}/repo", server.url()), &["kodtest"]);
    source.architecture = "amd64".into();
    source.signed_by = vec![repo.keyring().to_path_buf()];
    rustix::process::umask(rustix::fs::Mode::empty());
    let cache = tempfile::tempdir().unwrap();
    let options = LoadOptions {
        cache_dir: cache.path().join("kod"),
        freshness: Freshness::Cached,
    };
    let index = Debian::new().load(&[source], &options).unwrap();
    assert_eq!(index.len(), 1);
    let mut all = Vec::new();
    modes(cache.path(), &mut all);
    assert!(all.len() > 4, "{all:?}");
    let writable: Vec<_> = all.iter().filter(|(_, m)| m & 0o022 != 0).collect();
    assert!(writable.is_empty(), "writable by others: {writable:?}");
}
