//! Measures parsing a Packages file, storing the parsed index and loading it
//! back: `cargo run --release -p kod-repo --example parse_packages -- FILE [ARCH]`.

use std::time::Instant;

use kod_repo::debian::packages::parse_packages;
use kod_repo::debian::relations::Target;
use kod_repo::{Index, Origin, OriginId, Sha256};

/// Counts allocations, to see what loading costs besides decoding.
struct Counting;
static ALLOCS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
// SAFETY: forwards to the system allocator unchanged.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.dealloc(p, l) }
    }
}
#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: parse_packages FILE [ARCH] | --stored FILE")?;
    if path == "--stored" {
        // Only load a stored index (kept by KOD_KEEP_STORED=1), in a fresh process.
        let stored = args.next().ok_or("--stored needs a file")?;
        let key = std::fs::read(&stored)?;
        let key = Sha256(key.get(8..40).ok_or("short file")?.try_into()?);
        let t = Instant::now();
        let index = Index::load_stored(stored.as_ref(), &key).ok_or("stored index did not load")?;
        println!(
            "{} records: load stored {:?}, {} allocations",
            index.len(),
            t.elapsed(),
            ALLOCS.load(std::sync::atomic::Ordering::Relaxed)
        );
        return Ok(());
    }
    let arch = args.next().unwrap_or_else(|| "amd64".to_string());
    let t = Instant::now();
    let text = std::fs::read_to_string(&path)?;
    let read = t.elapsed();
    let t = Instant::now();
    let target = Target {
        architecture: &arch,
        profiles: &[],
    };
    let records = parse_packages(&text, OriginId(0), target)?;
    let parse = t.elapsed();
    let n = records.len();
    let origin = Origin {
        base_url: "http://example.org/debian".into(),
        suite: "x".into(),
        codename: "x".into(),
        component: "main".into(),
        architecture: arch.clone(),
    };
    let t = Instant::now();
    let index = Index::new(vec![arch.as_str().into()], vec![origin], records);
    let build = t.elapsed();
    let key = Sha256::digest(text.as_bytes());
    let store = std::env::temp_dir().join("kod-repo-parse-bench.idx");
    let t = Instant::now();
    index.store(&store, &key)?;
    let write = t.elapsed();
    let t = Instant::now();
    let back = Index::load_stored(&store, &key).ok_or("stored index did not load")?;
    let load = t.elapsed();
    assert!(back.records().eq(index.records()));
    let size = std::fs::metadata(&store)?.len();
    if std::env::var_os("KOD_KEEP_STORED").is_some() {
        println!("kept {}", store.display());
    } else {
        std::fs::remove_file(&store)?;
    }
    println!(
        "{n} records, {} MB text: read {read:?}, parse {parse:?}, index {build:?}, store {write:?} ({} MB), load stored {load:?}",
        text.len() >> 20,
        size >> 20
    );
    Ok(())
}
