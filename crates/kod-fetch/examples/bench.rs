//! Hand-run benchmark: fetch many files from the fixture server on
//! 127.0.0.1 into a fresh cache, cold then warm, and print the figures.
//!
//! `cargo run --release -p kod-fetch --example bench -- [FILES] [TOTAL_MB] [JOBS]`
//! (defaults 100 files, 100 MB, 8 jobs); wrap it in `/usr/bin/time -v` for
//! the peak RSS. The fixture server runs in the same process and holds each
//! file it serves in memory while serving it, so the RSS is an upper bound.

use std::time::Instant;

use kod_fetch::{Cache, Client, ClientOptions, Download, Fetcher};
use kod_testkit::http::FileServer;
use sha2::{Digest, Sha256};

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let files = args.next().unwrap_or(100);
    let total_mb = args.next().unwrap_or(100);
    let jobs = args.next().unwrap_or(8);

    let mirror = tempfile::tempdir().expect("temp dir");
    let cache = tempfile::tempdir().expect("temp dir");
    let srv = FileServer::start(mirror.path());
    // Sizes spread like a package set: many small, a few large.
    let weights: Vec<usize> = (1..=files).map(|i| 1 + (i * i) % 37).collect();
    let unit = total_mb * 1_000_000 / weights.iter().sum::<usize>();
    let mut items = Vec::new();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for (i, w) in weights.iter().enumerate() {
        let data: Vec<u8> = (0..w * unit)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let name = format!("f{i}.deb");
        std::fs::write(mirror.path().join(&name), &data).expect("write fixture");
        items.push(Download {
            urls: vec![format!("{}/{name}", srv.url())],
            size: data.len() as u64,
            sha256: Sha256::digest(&data).into(),
            label: name,
        });
    }
    let bytes: u64 = items.iter().map(|d| d.size).sum();
    let fetcher = Fetcher::new(
        Client::new(ClientOptions::default()),
        Cache::open(cache.path()).expect("cache"),
    )
    .with_jobs(jobs);

    let t = Instant::now();
    fetcher.fetch_all(&items).expect("cold fetch");
    let cold = t.elapsed().as_secs_f64();
    let t = Instant::now();
    fetcher.fetch_all(&items).expect("warm fetch");
    let warm = t.elapsed().as_secs_f64();
    println!(
        "{files} files, {:.1} MB, {jobs} jobs: cold {cold:.3} s ({:.0} MB/s), warm {:.1} ms",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / cold,
        warm * 1e3
    );
}
