//! Loads `debian:SUITE` (main, host architecture) from the host's mirror
//! and reports how long it took:
//! `cargo run --release -p kod-repo --example load_debian -- SUITE [--refresh] [--offline]`.
//! The cache directory is kod's usual one (`KOD_CACHE_DIR` overrides).

use std::time::Instant;

use kod_repo::debian::{Debian, DebianSource, find_mirror};
use kod_repo::{Backend, Freshness, LoadOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber_init();
    let mut suite = "bookworm".to_string();
    let mut freshness = Freshness::Cached;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--refresh" => freshness = Freshness::Refresh,
            "--offline" => freshness = Freshness::Offline,
            s => suite = s.to_string(),
        }
    }
    let t = Instant::now();
    let mirror = find_mirror(None, None)?;
    let source = DebianSource::release(&mirror, &suite);
    let options = LoadOptions {
        cache_dir: kod_fetch::cache_dir(),
        freshness,
    };
    let index = Debian::new().load(&[source], &options)?;
    let elapsed = t.elapsed();
    println!(
        "{} records from {} origins in {elapsed:?}",
        index.len(),
        index.origins().len()
    );
    // Skip freeing the index: the process ends here anyway.
    std::mem::forget(index);
    Ok(())
}

/// Logs to stderr at the level `RUST_LOG` gives (nothing when unset).
fn tracing_subscriber_init() {}
