//! Cache layout and the choice of the cache directory.

use std::path::PathBuf;

use kod_fetch::{Cache, cache_dir, sha256_from_hex};

#[test]
fn cache_paths_are_named_by_hash() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(&dir.path().join("new/cache")).unwrap();
    // SHA256 of the empty string, as sha256sum prints it.
    let empty = sha256_from_hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        .unwrap();
    assert_eq!(
        cache.path_of(&empty),
        dir.path().join(
            "new/cache/blobs/sha256/e3/b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        )
    );
    assert!(!cache.contains(&empty));
    assert!(dir.path().join("new/cache/blobs/sha256").is_dir());
    cache.sync().unwrap();
}

#[test]
fn cache_dir_follows_the_environment() {
    // SAFETY: nextest runs each test in its own process; no other thread
    // reads the environment here.
    unsafe {
        std::env::set_var("KOD_CACHE_DIR", "/srv/kod-cache");
    }
    assert_eq!(cache_dir(), PathBuf::from("/srv/kod-cache"));
    unsafe {
        std::env::remove_var("KOD_CACHE_DIR");
        std::env::set_var("XDG_CACHE_HOME", "/home/u/.xdg-cache");
    }
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    let expected = if root {
        PathBuf::from("/var/cache/kod")
    } else {
        PathBuf::from("/home/u/.xdg-cache/kod")
    };
    assert_eq!(cache_dir(), expected);
}
