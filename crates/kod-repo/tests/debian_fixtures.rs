//! The Debian backend against repositories built here with the real tools
//! (gpg to make keys and clearsign, xz to compress), served on 127.0.0.1.

use std::path::Path;

use kod_repo::debian::{Debian, DebianSource, Error};
use kod_repo::{Backend, Freshness, Index, LoadOptions};
use kod_report::{Event, Level, Recorder, Report, Stage, Work};
use kod_testkit::debrepo::{DebRepo, ReleaseOptions};
use kod_testkit::http::FileServer;

const SUITE: &str = "kodtest";

/// Two packages, written the way dak writes them.
const PACKAGES: &str = "Package: hello
Version: 2.10-3
Installed-Size: 280
Maintainer: Someone <someone@example.org>
Architecture: amd64
Depends: libc6 (>= 2.34), kod-virtual | other (<< 1:2~)
Description: example package based on GNU hello
Multi-Arch: foreign
Section: devel
Priority: optional
Filename: pool/main/h/hello/hello_2.10-3_amd64.deb
Size: 53000
SHA256: 1111111111111111111111111111111111111111111111111111111111111111

Package: libc6
Source: glibc
Version: 2.36-9+deb12u4
Installed-Size: 12000
Architecture: amd64
Multi-Arch: same
Priority: required
Essential: yes
Provides: kod-virtual (= 1.0), libc-bin-x
Breaks: hurd (<< 1:0.9.git20220301-2)
Description: GNU C Library: Shared libraries
Section: libs
Filename: pool/main/g/glibc/libc6_2.36-9+deb12u4_amd64.deb
Size: 2750000
SHA256: 2222222222222222222222222222222222222222222222222222222222222222
";

/// The fixture repository of these tests, with its [`DebianSource`].
struct Repo(DebRepo);

impl std::ops::Deref for Repo {
    type Target = DebRepo;
    fn deref(&self) -> &DebRepo {
        &self.0
    }
}

impl Repo {
    fn new() -> Repo {
        Repo(DebRepo::new(SUITE))
    }

    fn source(&self, server: &FileServer) -> DebianSource {
        let mut s = DebianSource::new(&format!("{}/repo", server.url()), &[SUITE]);
        s.architecture = "amd64".into();
        s.signed_by = vec![self.keyring().to_path_buf()];
        s
    }
}

fn load(source: &DebianSource, cache: &Path, freshness: Freshness) -> Result<Index, Error> {
    load_reporting(source, cache, freshness, Report::quiet())
}

fn load_reporting(
    source: &DebianSource,
    cache: &Path,
    freshness: Freshness,
    report: Report,
) -> Result<Index, Error> {
    let options = LoadOptions {
        cache_dir: cache.to_path_buf(),
        freshness,
    };
    Debian::new()
        .with_report(report)
        .load(std::slice::from_ref(source), &options)
}

#[test]
fn good_repository_loads_exactly_its_records() {
    let repo = Repo::new();
    repo.publish(PACKAGES, &ReleaseOptions::default());
    let server = FileServer::start(repo.serve_dir());
    let cache = tempfile::tempdir().unwrap();
    let index = load(&repo.source(&server), cache.path(), Freshness::Cached).unwrap();

    assert_eq!(index.len(), 2);
    let hello = index.by_name("hello").next().unwrap();
    assert_eq!(hello.version.to_string(), "2.10-3");
    assert_eq!(hello.architecture, "amd64");
    assert_eq!(hello.installed_size, Some(280));
    assert_eq!(hello.section, "devel");
    assert_eq!(hello.description, "example package based on GNU hello");
    let deps: Vec<Vec<String>> = hello
        .depends
        .iter()
        .map(|g| g.iter().map(|r| r.to_string()).collect())
        .collect();
    assert_eq!(
        deps,
        [
            vec!["libc6 (>= 2.34)".to_string()],
            vec!["kod-virtual".into(), "other (<< 1:2~)".into()]
        ]
    );
    assert_eq!(
        hello.location.path,
        "pool/main/h/hello/hello_2.10-3_amd64.deb"
    );
    assert_eq!(hello.location.size, 53000);
    assert_eq!(hello.location.sha256.to_string(), "1".repeat(64));
    assert_eq!(
        index.download_url(hello),
        format!(
            "{}/repo/pool/main/h/hello/hello_2.10-3_amd64.deb",
            server.url()
        )
    );
    let origin = index.origin(hello.origin);
    assert_eq!(
        (origin.suite.as_str(), origin.component.as_str()),
        (SUITE, "main")
    );

    let libc = index.by_name("libc6").next().unwrap();
    assert!(libc.essential);
    assert_eq!(libc.source, "glibc");
    assert_eq!(libc.priority, kod_repo::Priority::Required);
    assert_eq!(libc.multi_arch, kod_repo::MultiArch::Same);
    assert_eq!(libc.breaks[0].to_string(), "hurd (<< 1:0.9.git20220301-2)");
    let providers: Vec<_> = index.providers("kod-virtual").collect();
    assert_eq!(providers.len(), 1);
    assert_eq!(providers[0].1.name, "libc6");
    assert_eq!(providers[0].2.version.as_ref().unwrap().to_string(), "1.0");
    assert_eq!(index.search_substring("GNU").len(), 2);
    let re = regex::Regex::new("(?i)^libc").unwrap();
    assert_eq!(index.search_regex(&re).len(), 1);
}

#[test]
fn broken_signature_is_refused() {
    let repo = Repo::new();
    repo.publish(PACKAGES, &ReleaseOptions::default());
    let inrelease = repo.dists().join("InRelease");
    let text = std::fs::read_to_string(&inrelease).unwrap();
    std::fs::write(&inrelease, text.replace("Label: kod", "Label: kox")).unwrap();
    let server = FileServer::start(repo.serve_dir());
    let cache = tempfile::tempdir().unwrap();
    let e = load(&repo.source(&server), cache.path(), Freshness::Cached).unwrap_err();
    assert!(matches!(e, Error::BadSignature { .. }), "{e}");
    assert!(e.to_string().contains("InRelease"), "{e}");
}

#[test]
fn unknown_key_is_refused_and_named() {
    let repo = Repo::new();
    repo.publish(
        PACKAGES,
        &ReleaseOptions {
            signer: "other",
            ..Default::default()
        },
    );
    let server = FileServer::start(repo.serve_dir());
    let cache = tempfile::tempdir().unwrap();
    let e = load(&repo.source(&server), cache.path(), Freshness::Cached).unwrap_err();
    let Error::UnknownKey {
        issuers, keyrings, ..
    } = &e
    else {
        panic!("expected UnknownKey, got {e}");
    };
    let other_fpr =
        String::from_utf8(
            repo.gpg()
                .run(&["--with-colons", "--fingerprint", "other@example.org"]),
        )
        .unwrap();
    assert!(
        other_fpr.contains(issuers.as_str()),
        "issuer {issuers} is not the other key: {other_fpr}"
    );
    assert!(keyrings.contains("good.gpg"));
    assert!(e.to_string().contains("signed_by"), "{e}");
}

#[test]
fn armoured_keyring_with_several_keys_verifies() {
    let repo = Repo::new();
    repo.publish(
        PACKAGES,
        &ReleaseOptions {
            signer: "other",
            ..Default::default()
        },
    );
    let armoured = repo.serve_dir().join("both.asc");
    let both = repo.gpg().run(&[
        "--armor",
        "--export",
        "good@example.org",
        "other@example.org",
    ]);
    std::fs::write(&armoured, both).unwrap();
    let server = FileServer::start(repo.serve_dir());
    let cache = tempfile::tempdir().unwrap();
    let mut source = repo.source(&server);
    source.signed_by = vec![armoured];
    assert_eq!(
        load(&source, cache.path(), Freshness::Cached)
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn packages_hash_differing_from_release_is_refused() {
    let repo = Repo::new();
    repo.publish(PACKAGES, &ReleaseOptions::default());
    // Same size, one byte changed: only the hash can tell.
    let xz = repo.dists().join("main/binary-amd64/Packages.xz");
    let mut bytes = std::fs::read(&xz).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&xz, bytes).unwrap();
    let server = FileServer::start(repo.serve_dir());
    let cache = tempfile::tempdir().unwrap();
    let e = load(&repo.source(&server), cache.path(), Freshness::Cached).unwrap_err();
    let Error::Fetch { source, .. } = &e else {
        panic!("expected a fetch error, got {e}");
    };
    assert!(
        matches!(source, kod_fetch::FetchError::HashMismatch { .. }),
        "{source}"
    );
    assert!(e.to_string().contains("signed index"), "{e}");
}

#[test]
fn expired_release_is_refused_with_its_date() {
    let repo = Repo::new();
    repo.publish(
        PACKAGES,
        &ReleaseOptions {
            valid_until: "Sun, 09 Sep 2001 01:46:40 UTC".into(),
            ..Default::default()
        },
    );
    let server = FileServer::start(repo.serve_dir());
    let cache = tempfile::tempdir().unwrap();
    let e = load(&repo.source(&server), cache.path(), Freshness::Cached).unwrap_err();
    let Error::Expired { valid_until, .. } = &e else {
        panic!("expected Expired, got {e}");
    };
    assert!(
        valid_until.contains("2001-09-09 01:46:40 UTC"),
        "{valid_until}"
    );
    assert!(e.to_string().contains("kod pkg update"), "{e}");
    // A snapshot archive is loaded when the source says so explicitly.
    let mut snapshot = repo.source(&server);
    snapshot.check_valid_until = false;
    assert_eq!(
        load(&snapshot, cache.path(), Freshness::Cached)
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn missing_packages_file_is_named() {
    let repo = Repo::new();
    repo.publish(PACKAGES, &ReleaseOptions::default());
    std::fs::remove_file(repo.dists().join("main/binary-amd64/Packages.xz")).unwrap();
    let server = FileServer::start(repo.serve_dir());
    let cache = tempfile::tempdir().unwrap();
    let e = load(&repo.source(&server), cache.path(), Freshness::Cached).unwrap_err();
    let Error::MissingIndex { url } = &e else {
        panic!("expected MissingIndex, got {e}");
    };
    assert!(
        url.ends_with("/dists/kodtest/main/binary-amd64/Packages.xz"),
        "{url}"
    );
}

#[test]
fn unknown_suite_and_component_are_named() {
    let repo = Repo::new();
    repo.publish(PACKAGES, &ReleaseOptions::default());
    let server = FileServer::start(repo.serve_dir());
    let cache = tempfile::tempdir().unwrap();
    let mut source = repo.source(&server);
    source.suites = vec!["nosuchsuite".into()];
    let e = load(&source, cache.path(), Freshness::Cached).unwrap_err();
    assert!(
        matches!(&e, Error::UnknownSuite { suite, .. } if suite == "nosuchsuite"),
        "{e}"
    );
    let mut source = repo.source(&server);
    source.components = vec!["contrib".into()];
    let e = load(&source, cache.path(), Freshness::Cached).unwrap_err();
    assert!(
        matches!(&e, Error::NoPackagesIndex { component, .. } if component == "contrib"),
        "{e}"
    );
}

#[test]
fn by_hash_is_used_when_the_release_offers_it() {
    let repo = Repo::new();
    repo.publish(
        PACKAGES,
        &ReleaseOptions {
            by_hash: true,
            ..Default::default()
        },
    );
    let server = FileServer::start(repo.serve_dir());
    let cache = tempfile::tempdir().unwrap();
    let index = load(&repo.source(&server), cache.path(), Freshness::Cached).unwrap();
    assert_eq!(index.len(), 2);
    assert!(
        server.log().iter().any(|l| l.contains("/by-hash/SHA256/")),
        "{:?}",
        server.log()
    );
}

#[test]
fn unsigned_repository_only_when_trusted_explicitly() {
    let repo = Repo::new();
    repo.publish(PACKAGES, &ReleaseOptions::default());
    // Replace the signed file by the bare Release text.
    std::fs::copy(repo.dists().join("Release"), repo.dists().join("InRelease")).unwrap();
    let server = FileServer::start(repo.serve_dir());
    let cache = tempfile::tempdir().unwrap();
    let mut source = repo.source(&server);
    let e = load(&source, cache.path(), Freshness::Cached).unwrap_err();
    assert!(matches!(e, Error::BadSignature { .. }), "{e}");
    source.trusted_without_signature = true;
    assert_eq!(
        load(&source, cache.path(), Freshness::Cached)
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn second_loads_reuse_the_cache_and_the_stored_index() {
    let repo = Repo::new();
    repo.publish(PACKAGES, &ReleaseOptions::default());
    let server = FileServer::start(repo.serve_dir());
    let cache = tempfile::tempdir().unwrap();
    let source = repo.source(&server);
    let inrelease = format!("/repo/dists/{SUITE}/InRelease");
    let packages = format!("/repo/dists/{SUITE}/main/binary-amd64/Packages.xz");

    let first = load(&source, cache.path(), Freshness::Cached).unwrap();
    assert_eq!((server.hits(&inrelease), server.hits(&packages)), (1, 1));

    // Cached: no request at all.
    let again = load(&source, cache.path(), Freshness::Cached).unwrap();
    assert_eq!((server.hits(&inrelease), server.hits(&packages)), (1, 1));
    assert!(again.records().eq(first.records()));

    // Refresh: a conditional request answered 304, the Packages file not
    // asked for again.
    let bodies = server.bodies_served();
    load(&source, cache.path(), Freshness::Refresh).unwrap();
    assert_eq!((server.hits(&inrelease), server.hits(&packages)), (2, 1));
    assert_eq!(server.bodies_served(), bodies, "{:?}", server.log());
    assert!(server.log()[2].contains("inm=Some"), "{:?}", server.log());

    // The warm load reads the stored index, not the Packages text: it still
    // works with the downloaded Packages file gone from the cache.
    let blobs = cache.path().join("blobs");
    std::fs::remove_dir_all(&blobs).unwrap();
    let warm = load(&source, cache.path(), Freshness::Offline).unwrap();
    assert!(warm.records().eq(first.records()));

    // A changed repository is noticed on refresh and parsed again.
    let more = PACKAGES.replace("Version: 2.10-3", "Version: 2.10-4");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    repo.publish(&more, &ReleaseOptions::default());
    let fresh = load(&source, cache.path(), Freshness::Refresh).unwrap();
    assert_eq!(
        fresh.by_name("hello").next().unwrap().version.to_string(),
        "2.10-4"
    );
    assert_eq!(server.hits(&packages), 2);
}

#[test]
fn building_an_index_is_the_metadata_stage() {
    let repo = Repo::new();
    repo.publish(PACKAGES, &ReleaseOptions::default());
    let server = FileServer::start(repo.serve_dir());
    let cache = tempfile::tempdir().unwrap();
    let source = repo.source(&server);
    let rec = Recorder::new(false);
    load_reporting(
        &source,
        cache.path(),
        Freshness::Cached,
        Report::to(rec.clone()),
    )
    .unwrap();
    let size = std::fs::metadata(repo.dists().join("main/binary-amd64/Packages.xz"))
        .unwrap()
        .len();
    let events = rec.events();
    assert_eq!(
        events.first(),
        Some(&Event::Started(Stage::Metadata, Work::new(1, size))),
        "{events:?}"
    );
    assert_eq!(events.last(), Some(&Event::Finished(Stage::Metadata)));
    // Only the metadata stage: the download is a part of it.
    assert!(
        events.iter().all(|e| !matches!(
            e,
            Event::Started(s, _) | Event::Advanced(s, _, _) | Event::Finished(s)
                if *s != Stage::Metadata
        )),
        "{events:?}"
    );
    assert_eq!(rec.done(Stage::Metadata), Work::new(1, size));
    assert!(rec.messages(Level::Warning).is_empty());

    // The stored index is read without a stage.
    let rec = Recorder::new(false);
    load_reporting(
        &source,
        cache.path(),
        Freshness::Cached,
        Report::to(rec.clone()),
    )
    .unwrap();
    assert_eq!(rec.events(), []);
}

#[test]
fn what_is_used_against_its_checks_is_a_warning() {
    let repo = Repo::new();
    repo.publish(
        PACKAGES,
        &ReleaseOptions {
            valid_until: "Sun, 09 Sep 2001 01:46:40 UTC".into(),
            ..Default::default()
        },
    );
    let server = FileServer::start(repo.serve_dir());
    let cache = tempfile::tempdir().unwrap();
    let mut source = repo.source(&server);
    source.check_valid_until = false;
    let rec = Recorder::new(false);
    load_reporting(
        &source,
        cache.path(),
        Freshness::Cached,
        Report::to(rec.clone()),
    )
    .unwrap();
    let warnings = rec.messages(Level::Warning);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("expired on") && warnings[0].contains("used anyway"),
        "{warnings:?}"
    );

    std::fs::copy(repo.dists().join("Release"), repo.dists().join("InRelease")).unwrap();
    source.trusted_without_signature = true;
    let rec = Recorder::new(false);
    let fresh = tempfile::tempdir().unwrap();
    load_reporting(
        &source,
        fresh.path(),
        Freshness::Cached,
        Report::to(rec.clone()),
    )
    .unwrap();
    let warnings = rec.messages(Level::Warning);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("trusted WITHOUT checking its signature")),
        "{warnings:?}"
    );
}

#[test]
fn offline_without_cache_says_what_is_missing() {
    let repo = Repo::new();
    repo.publish(PACKAGES, &ReleaseOptions::default());
    let server = FileServer::start(repo.serve_dir());
    let cache = tempfile::tempdir().unwrap();
    let e = load(&repo.source(&server), cache.path(), Freshness::Offline).unwrap_err();
    assert!(matches!(e, Error::NotCached { .. }), "{e}");
    assert_eq!(server.log().len(), 0);
}

#[test]
fn a_cached_release_naming_a_dropped_index_is_refreshed() {
    let repo = Repo::new();
    repo.publish(PACKAGES, &ReleaseOptions::default());
    let server = FileServer::start(repo.serve_dir());
    let cache = tempfile::tempdir().unwrap();
    let source = repo.source(&server);
    load(&source, cache.path(), Freshness::Cached).unwrap();
    // The mirror moves on: new Packages, new Release; the cached Release
    // names a file that is gone, and the parsed index no longer matches
    // because the cached blob is dropped too.
    std::fs::remove_dir_all(cache.path().join("blobs")).unwrap();
    std::fs::remove_dir_all(cache.path().join("debian/index")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    repo.publish(
        &PACKAGES.replace("Version: 2.10-3", "Version: 2.10-5"),
        &ReleaseOptions::default(),
    );
    let index = load(&source, cache.path(), Freshness::Cached).unwrap();
    assert_eq!(
        index.by_name("hello").next().unwrap().version.to_string(),
        "2.10-5"
    );
}
