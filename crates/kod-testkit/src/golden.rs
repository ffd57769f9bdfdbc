//! The golden image of the vm tier: `examples/debian-vm` installed once
//! onto a disk image by the kod under test (`kod install --image`), kept
//! in a cache that every vm test shares, and copied (reflinked where the
//! filesystem can) for each test, so the tests cost their boots, not
//! installs.
//!
//! The cache is `target/kod-golden/` (beside the test binaries, so a
//! clean clone starts without one), keyed by the kod binary (size and
//! modification time) and the example's files: a new build or a changed
//! example makes a new image, and the one before is removed. An exclusive
//! `flock` on the cache's lock file lets one test build while the others
//! wait; an image is complete when its `.done` marker exists.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// The image size: room for generation 0 and the tests' rebuilds.
const SIZE: &str = "6G";

/// The repository's `examples/debian-vm`.
pub fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/debian-vm")
}

/// A fresh copy of the golden image at `dest` (made first if the cache
/// has none for this `kod` binary), for a test to boot and change.
pub fn copy_to(kod: &Path, dest: &Path) -> PathBuf {
    let golden = golden(kod);
    let ran = Command::new("cp")
        .args(["--reflink=auto", "--sparse=always"])
        .arg(&golden)
        .arg(dest)
        .status()
        .expect("cp");
    assert!(ran.success(), "copying {} failed", golden.display());
    dest.to_path_buf()
}

/// The golden image for `kod`, built under the cache's lock if missing.
pub fn golden(kod: &Path) -> PathBuf {
    let dir = cache_dir();
    fs::create_dir_all(&dir).expect("the golden image's cache directory");
    let lock = fs::File::create(dir.join("lock")).expect("the cache's lock file");
    // Held until `lock` closes, at the end of this function.
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .unwrap_or_else(|e| panic!("flock on {}: {e}", dir.display()));
    let key = key(kod);
    let image = dir.join(format!("debian-vm-{key}.img"));
    let done = image.with_extension("done");
    if !done.exists() {
        remove_others(&dir, &key);
        let _ = fs::remove_file(&image);
        let started = std::time::Instant::now();
        let out = Command::new(kod)
            .env("KOD_CACHE_DIR", cache())
            .arg("-c")
            .arg(example())
            .args(["install", "--image"])
            .arg(&image)
            .args(["--size", SIZE, "--yes"])
            .output()
            .expect("running kod install --image");
        assert!(
            out.status.success(),
            "building the golden image failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        fs::write(&done, "").expect("the golden image's marker");
        eprintln!(
            "kod-testkit: golden image {} built in {:.0} s",
            image.display(),
            started.elapsed().as_secs_f64()
        );
    }
    image
}

/// kod's cache for the golden image and the vm tests' rebuilds
/// (`KOD_CACHE_DIR`), so that they download each package once.
pub fn cache() -> PathBuf {
    cache_dir().join("cache")
}

fn cache_dir() -> PathBuf {
    // target/ is two levels above each crate's manifest directory.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("kod-golden")
}

/// The binary's size and modification time and the example's files.
fn key(kod: &Path) -> String {
    let mut h = Sha256::new();
    let m = fs::metadata(kod).expect("the kod binary");
    h.update(format!("{} {} {}", m.len(), m.mtime(), m.mtime_nsec()));
    let mut files: Vec<PathBuf> = fs::read_dir(example())
        .expect("examples/debian-vm")
        .map(|e| e.expect("an example file").path())
        .collect();
    files.sort();
    for f in files {
        h.update(f.file_name().unwrap().as_encoded_bytes());
        h.update(fs::read(&f).expect("an example file"));
    }
    let d = h.finalize();
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Removes the cache's images of other keys (an older build's).
fn remove_others(dir: &Path, key: &str) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("debian-vm-") && !name.contains(key) {
            // An image, its marker, and the EFI variables `kod vm` kept.
            let _ = fs::remove_file(e.path());
        }
    }
}
