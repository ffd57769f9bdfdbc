//! The Debian backend against the real archive named in the host's apt
//! sources, compared with apt's own view of the same sources.
//! Net tier: `KOD_TEST_NET=1`.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Instant, SystemTime};

use kod_repo::debian::{Debian, DebianSource, find_mirror};
use kod_repo::{Backend, Freshness, Index, LoadOptions, PackageRecord};
use kod_testkit::apt::PrivateApt;
use kod_testkit::{Tier, tier};

fn load(source: &DebianSource, cache: &Path, freshness: Freshness) -> Index {
    let options = LoadOptions {
        cache_dir: cache.to_path_buf(),
        freshness,
    };
    Debian::new()
        .load(std::slice::from_ref(source), &options)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn source(suite: &str) -> DebianSource {
    let mirror = find_mirror(None, None).unwrap_or_else(|e| panic!("{e}"));
    let mut s = DebianSource::release(&mirror, suite);
    s.architecture = "amd64".into();
    s
}

/// apt's candidate record of every package of `source`, from `apt-get
/// update` and `apt-cache dumpavail` run on a private state directory.
fn apt_candidates(source: &DebianSource, work: &Path) -> HashMap<String, HashMap<String, String>> {
    let lines: Vec<String> = source
        .suites
        .iter()
        .map(|suite| {
            format!(
                "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {} {} {}",
                source.base_url(suite),
                suite,
                source.components.join(" ")
            )
        })
        .collect();
    let apt = PrivateApt::new(work, &lines);
    let dump = String::from_utf8(apt.ok("apt-cache", &["dumpavail"], None)).unwrap();
    deb822_fast::borrowed::iter_paragraphs_borrowed(&dump)
        .map(|p| {
            let p = p.unwrap();
            let fields: HashMap<String, String> = p
                .iter()
                .map(|f| (f.name().to_string(), f.lines().join(" ")))
                .collect();
            (fields["Package"].clone(), fields)
        })
        .collect()
}

/// A dependency field as Packages files write it.
fn render(groups: &[kod_repo::Alternatives]) -> String {
    groups
        .iter()
        .map(|g| {
            g.iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn compare_with_apt(suite: &str) {
    let src = source(suite);
    let cache = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let index = load(&src, cache.path(), Freshness::Cached);
    let cold = t.elapsed();
    let t = Instant::now();
    let warm_index = load(&src, cache.path(), Freshness::Cached);
    let warm = t.elapsed();
    eprintln!(
        "{suite}: {} records; cold load (download + parse) {cold:?}, warm load (stored index) {warm:?}",
        index.len()
    );
    assert!(warm_index.records().eq(index.records()));

    let work = tempfile::tempdir().unwrap();
    let apt = apt_candidates(&src, work.path());
    assert!(apt.len() > 50_000, "apt sees only {} packages", apt.len());

    let mut best: HashMap<&str, &PackageRecord> = HashMap::new();
    for r in index.records() {
        let e = best.entry(r.name.as_str()).or_insert(r);
        if r.version > e.version {
            *e = r;
        }
    }
    let mut mismatches = Vec::new();
    for (name, fields) in &apt {
        let Some(ours) = best.get(name.as_str()) else {
            mismatches.push(format!("{name}: apt has it, kod does not"));
            continue;
        };
        let want = |f: &str| fields.get(f).map(String::as_str).unwrap_or("");
        if ours.version.as_str() != want("Version") {
            mismatches.push(format!(
                "{name}: apt's candidate {} but kod's highest {}",
                want("Version"),
                ours.version
            ));
            continue;
        }
        for (field, got) in [
            ("SHA256", ours.location.sha256.to_string()),
            ("Size", ours.location.size.to_string()),
            ("Filename", ours.location.path.to_string()),
            ("Depends", render(&ours.depends)),
            ("Pre-Depends", render(&ours.pre_depends)),
        ] {
            if got != want(field) {
                mismatches.push(format!(
                    "{name} {field}: apt {:?}, kod {got:?}",
                    want(field)
                ));
            }
        }
    }
    for name in best.keys() {
        if !apt.contains_key(*name) {
            mismatches.push(format!("{name}: kod has it, apt does not"));
        }
    }
    kod_testkit::assert_no_differences("kod and apt", &mismatches, 30);
}

#[test]
fn net_bookworm_matches_apt() {
    if !tier(Tier::Net) {
        return;
    }
    compare_with_apt("bookworm");
}

#[test]
fn net_trixie_matches_apt() {
    if !tier(Tier::Net) {
        return;
    }
    compare_with_apt("trixie");
}

fn mtimes(dir: &Path) -> Vec<(String, SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path().display().to_string(), m.modified().unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn net_refresh_downloads_nothing_unchanged() {
    if !tier(Tier::Net) {
        return;
    }
    let src = source("bookworm");
    let cache = tempfile::tempdir().unwrap();
    let first = load(&src, cache.path(), Freshness::Cached);
    let before = mtimes(cache.path());
    assert!(before.iter().any(|(p, _)| p.ends_with("InRelease")));
    assert!(before.iter().any(|(p, _)| p.ends_with(".kodidx")));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // A refresh asks conditionally: an unchanged InRelease is not written
    // again, no Packages file is downloaded, the stored index is reused.
    let t = Instant::now();
    let again = load(&src, cache.path(), Freshness::Refresh);
    eprintln!("refresh with nothing changed: {:?}", t.elapsed());
    // Nothing is rewritten: Packages files are not fetched again (their
    // hashes are cached), the stored index is reused, and InRelease is
    // either answered 304 or, from a server that sends no validators (some
    // caching proxies strip them), downloaded but found identical.
    assert_eq!(
        mtimes(cache.path()),
        before,
        "the refresh rewrote cached files"
    );
    assert!(again.records().eq(first.records()));
    for (path, _) in before
        .iter()
        .filter(|(p, _)| p.ends_with("InRelease.validators"))
    {
        let v: kod_fetch::Validators = postcard::from_bytes(&std::fs::read(path).unwrap()).unwrap();
        eprintln!(
            "{path}: ETag {:?}, Last-Modified {:?}{}",
            v.etag,
            v.last_modified,
            if v == kod_fetch::Validators::default() {
                " (the server sent none: a refresh must download InRelease again)"
            } else {
                ""
            }
        );
    }
}
