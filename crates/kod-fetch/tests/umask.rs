//! The cache is not writable by other users even when kod runs with a
//! permissive umask (root installs what is in it). A test binary of its
//! own: the umask is the process's.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use kod_fetch::{Cache, Client, ClientOptions, Download, Fetcher};
use sha2::{Digest, Sha256};

#[test]
fn cache_directories_and_files_are_only_writable_by_their_owner_whatever_the_umask() {
    let tmp = tempfile::tempdir().unwrap();
    let data = b"a package".to_vec();
    let source = tmp.path().join("pkg.deb");
    std::fs::write(&source, &data).unwrap();
    rustix::process::umask(rustix::fs::Mode::empty());
    let cache_dir = tmp.path().join("cache");
    let fetcher = Fetcher::new(
        Client::new(ClientOptions::default()),
        Cache::open(&cache_dir).unwrap(),
    );
    let d = Download {
        urls: vec![format!("file://{}", source.display())],
        size: data.len() as u64,
        sha256: Sha256::digest(&data).into(),
        label: "pkg 1".into(),
    };
    let paths = fetcher.fetch_all(&[d]).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&paths[0]), 0o644);
    let mut dir = paths[0].parent().unwrap();
    while dir != tmp.path() {
        assert_eq!(mode(dir), 0o755, "{dir:?}");
        dir = dir.parent().unwrap();
    }
    assert_eq!(mode(&cache_dir.join("partial")), 0o755);
}
