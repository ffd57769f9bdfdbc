//! Hand-run benchmark against a real Debian mirror: downloads every package
//! of the given priorities (default `required`, about what a minbase
//! bootstrap fetches) of a suite's main/binary-amd64 into a fresh cache,
//! cold then warm.
//!
//! `cargo run --release -p kod-fetch --example bench_net -- MIRROR SUITE [JOBS [PRIORITY,...]]`
//! with MIRROR e.g. the `URIs:` of the host's apt sources; wrap it in
//! `/usr/bin/time -v` for the peak RSS.

use std::io::Read;
use std::time::Instant;

use kod_fetch::{Cache, Client, ClientOptions, Conditional, Download, Fetcher, sha256_from_hex};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(mirror), Some(suite)) = (args.next(), args.next()) else {
        eprintln!("usage: bench_net MIRROR SUITE [JOBS [PRIORITY,...]]");
        std::process::exit(2);
    };
    let mirror = mirror.trim_end_matches('/');
    let jobs = args
        .next()
        .map_or(8, |j| j.parse().expect("JOBS is a number"));
    let priorities: Vec<String> = args
        .next()
        .unwrap_or_else(|| "required".to_string())
        .split(',')
        .map(|p| format!("\nPriority: {p}\n"))
        .collect();
    let client = Client::new(ClientOptions::default());

    let url = format!("{mirror}/dists/{suite}/main/binary-amd64/Packages.gz");
    let t = Instant::now();
    let Ok(Conditional::Modified { body, .. }) = client.get_conditional(&url, None) else {
        panic!("cannot fetch {url}");
    };
    let mut text = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut text)
        .expect("a gzip Packages file");
    eprintln!("index: {:.2} s", t.elapsed().as_secs_f64());

    let items: Vec<Download> = text
        .split("\n\n")
        .filter(|s| priorities.iter().any(|p| s.contains(p.as_str())))
        .map(|s| {
            let field = |name: &str| {
                s.lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
                    .unwrap_or_else(|| panic!("no {name} in {s}"))
            };
            Download {
                urls: vec![format!("{mirror}/{}", field("Filename"))],
                size: field("Size").parse().expect("a size"),
                sha256: sha256_from_hex(field("SHA256")).expect("a SHA256"),
                label: format!("{} {}", field("Package"), field("Version")),
            }
        })
        .collect();
    let bytes: u64 = items.iter().map(|d| d.size).sum();

    let cache = tempfile::tempdir().expect("temp dir");
    let fetcher = Fetcher::new(client, Cache::open(cache.path()).expect("cache")).with_jobs(jobs);
    let t = Instant::now();
    fetcher.fetch_all(&items).expect("cold fetch");
    let cold = t.elapsed().as_secs_f64();
    let t = Instant::now();
    fetcher.fetch_all(&items).expect("warm fetch");
    let warm = t.elapsed().as_secs_f64();
    println!(
        "{} packages, {:.1} MB, {jobs} jobs: cold {cold:.2} s ({:.1} MB/s), warm {:.1} ms",
        items.len(),
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / cold,
        warm * 1e3
    );
}
