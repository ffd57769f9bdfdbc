//! The Debian backend against repositories built here with the real tools
//! (gpg to make keys and clearsign, xz to compress), served on 127.0.0.1.

use std::sync::Arc;

use kod_repo::debian::{Debian, DebianSource, Error};
use kod_repo::{Backend, Freshness, Index, LoadOptions};
use kod_report::{Event, Level, Recorder, Report, Stage, Work};
use kod_testkit::assert_contains;
use kod_testkit::debrepo::{DebRepo, ReleaseOptions};
use kod_testkit::http::FileServer;
use tempfile::TempDir;

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

/// The fixture repository of these tests, served, with an empty cache.
struct Fixture {
    repo: DebRepo,
    server: FileServer,
    cache: TempDir,
}

impl Fixture {
    /// [`PACKAGES`] published with `options`, the repository then changed
    /// by `tweak`, and served.
    fn serve(options: ReleaseOptions, tweak: impl FnOnce(&DebRepo)) -> Fixture {
        let repo = DebRepo::new(SUITE);
        repo.publish(PACKAGES, &options);
        tweak(&repo);
        let server = FileServer::start(repo.serve_dir());
        Fixture {
            repo,
            server,
            cache: tempfile::tempdir().unwrap(),
        }
    }

    /// [`PACKAGES`] published as it should be, and served.
    fn good() -> Fixture {
        Fixture::serve(ReleaseOptions::default(), |_| {})
    }

    /// [`PACKAGES`] behind a Release whose Valid-Until has passed.
    fn expired() -> Fixture {
        Fixture::serve(
            ReleaseOptions {
                valid_until: "Sun, 09 Sep 2001 01:46:40 UTC".into(),
                ..Default::default()
            },
            |_| {},
        )
    }

    /// The repository's source, verified with the key that signs it.
    fn source(&self) -> DebianSource {
        let mut s = DebianSource::new(&format!("{}/repo", self.server.url()), &[SUITE]);
        s.architecture = "amd64".into();
        s.signed_by = vec![self.repo.keyring().to_path_buf()];
        s
    }

    /// Loads `source` through the fixture's cache.
    fn load_source(&self, source: &DebianSource, freshness: Freshness) -> Result<Index, Error> {
        self.load_reporting(source, self.cache.path(), freshness, Report::quiet())
    }

    /// Loads `source` through `cache` from what is cached, which must work;
    /// returns what it reported.
    fn load_recorded(&self, source: &DebianSource, cache: &std::path::Path) -> Arc<Recorder> {
        let rec = Recorder::new(false);
        self.load_reporting(source, cache, Freshness::Cached, Report::to(rec.clone()))
            .unwrap();
        rec
    }

    /// Loads `source` through `cache`, reporting to `report`.
    fn load_reporting(
        &self,
        source: &DebianSource,
        cache: &std::path::Path,
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

    /// Loads the repository's source as `change` changes it.
    fn load_changed(&self, change: impl FnOnce(&mut DebianSource)) -> Result<Index, Error> {
        let mut source = self.source();
        change(&mut source);
        self.load_source(&source, Freshness::Cached)
    }

    /// Loads the repository's own source.
    fn load(&self, freshness: Freshness) -> Result<Index, Error> {
        self.load_source(&self.source(), freshness)
    }
}

/// Release options for a repository signed by the key its keyring lacks.
fn signed_by_other() -> ReleaseOptions {
    ReleaseOptions {
        signer: "other",
        ..Default::default()
    }
}

/// The load succeeded with both records of [`PACKAGES`].
fn assert_records(loaded: Result<Index, Error>) {
    assert_eq!(loaded.unwrap().len(), 2);
}

#[test]
fn good_repository_loads_exactly_its_records() {
    let f = Fixture::good();
    let index = f.load(Freshness::Cached).unwrap();

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
            f.server.url()
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
    let f = Fixture::serve(ReleaseOptions::default(), |repo| {
        let inrelease = repo.dists().join("InRelease");
        let text = std::fs::read_to_string(&inrelease).unwrap();
        std::fs::write(&inrelease, text.replace("Label: kod", "Label: kox")).unwrap();
    });
    let e = f.load(Freshness::Cached).unwrap_err();
    assert!(matches!(e, Error::BadSignature { .. }), "{e}");
    assert!(e.to_string().contains("InRelease"), "{e}");
}

#[test]
fn unknown_key_is_refused_and_named() {
    let f = Fixture::serve(signed_by_other(), |_| {});
    let e = f.load(Freshness::Cached).unwrap_err();
    let Error::UnknownKey {
        issuers, keyrings, ..
    } = &e
    else {
        panic!("expected UnknownKey, got {e}");
    };
    let other_fpr = String::from_utf8(f.repo.gpg().run(&[
        "--with-colons",
        "--fingerprint",
        "other@example.org",
    ]))
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
    let f = Fixture::serve(signed_by_other(), |repo| {
        let both = repo.gpg().run(&[
            "--armor",
            "--export",
            "good@example.org",
            "other@example.org",
        ]);
        std::fs::write(repo.serve_dir().join("both.asc"), both).unwrap();
    });
    assert_records(f.load_changed(|s| s.signed_by = vec![f.repo.serve_dir().join("both.asc")]));
}

#[test]
fn packages_hash_differing_from_release_is_refused() {
    let f = Fixture::serve(ReleaseOptions::default(), |repo| {
        // Same size, one byte changed: only the hash can tell.
        let xz = repo.dists().join("main/binary-amd64/Packages.xz");
        let mut bytes = std::fs::read(&xz).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&xz, bytes).unwrap();
    });
    let e = f.load(Freshness::Cached).unwrap_err();
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
    let f = Fixture::expired();
    let e = f.load(Freshness::Cached).unwrap_err();
    let Error::Expired { valid_until, .. } = &e else {
        panic!("expected Expired, got {e}");
    };
    assert_contains(valid_until, "2001-09-09 01:46:40 UTC");
    assert!(e.to_string().contains("kod pkg update"), "{e}");
    // A snapshot archive is loaded when the source says so explicitly.
    assert_records(f.load_changed(|s| s.check_valid_until = false));
}

#[test]
fn missing_packages_file_is_named() {
    let f = Fixture::serve(ReleaseOptions::default(), |repo| {
        std::fs::remove_file(repo.dists().join("main/binary-amd64/Packages.xz")).unwrap();
    });
    let e = f.load(Freshness::Cached).unwrap_err();
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
    let f = Fixture::good();
    let no_suite = f.load_changed(|s| s.suites = vec!["nosuchsuite".into()]);
    let no_component = f.load_changed(|s| s.components = vec!["contrib".into()]);
    let (suite_error, component_error) = (no_suite.unwrap_err(), no_component.unwrap_err());
    assert!(
        matches!(&suite_error, Error::UnknownSuite { suite, .. } if suite == "nosuchsuite"),
        "{suite_error}"
    );
    assert!(
        matches!(&component_error, Error::NoPackagesIndex { component, .. } if component == "contrib"),
        "{component_error}"
    );
}

#[test]
fn by_hash_is_used_when_the_release_offers_it() {
    let f = Fixture::serve(
        ReleaseOptions {
            by_hash: true,
            ..Default::default()
        },
        |_| {},
    );
    assert_records(f.load(Freshness::Cached));
    let log = f.server.log();
    assert!(
        log.iter().any(|l| l.contains("/by-hash/SHA256/")),
        "{log:?}"
    );
}

#[test]
fn unsigned_repository_only_when_trusted_explicitly() {
    let f = Fixture::serve(ReleaseOptions::default(), |repo| {
        // Replace the signed file by the bare Release text.
        std::fs::copy(repo.dists().join("Release"), repo.dists().join("InRelease")).unwrap();
    });
    let e = f.load(Freshness::Cached).unwrap_err();
    assert!(matches!(e, Error::BadSignature { .. }), "{e}");
    assert_records(f.load_changed(|s| s.trusted_without_signature = true));
}

#[test]
fn second_loads_reuse_the_cache_and_the_stored_index() {
    let f = Fixture::good();
    let (server, cache) = (&f.server, &f.cache);
    let inrelease = format!("/repo/dists/{SUITE}/InRelease");
    let packages = format!("/repo/dists/{SUITE}/main/binary-amd64/Packages.xz");

    let first = f.load(Freshness::Cached).unwrap();
    assert_eq!((server.hits(&inrelease), server.hits(&packages)), (1, 1));

    // Cached: no request at all.
    let again = f.load(Freshness::Cached).unwrap();
    assert_eq!((server.hits(&inrelease), server.hits(&packages)), (1, 1));
    assert!(again.records().eq(first.records()));

    // Refresh: a conditional request answered 304, the Packages file not
    // asked for again.
    let bodies = server.bodies_served();
    f.load(Freshness::Refresh).unwrap();
    assert_eq!((server.hits(&inrelease), server.hits(&packages)), (2, 1));
    assert_eq!(server.bodies_served(), bodies, "{:?}", server.log());
    assert!(server.log()[2].contains("inm=Some"), "{:?}", server.log());

    // The warm load reads the stored index, not the Packages text: it still
    // works with the downloaded Packages file gone from the cache.
    let blobs = cache.path().join("blobs");
    std::fs::remove_dir_all(&blobs).unwrap();
    let warm = f.load(Freshness::Offline).unwrap();
    assert!(warm.records().eq(first.records()));

    // A changed repository is noticed on refresh and parsed again.
    let more = PACKAGES.replace("Version: 2.10-3", "Version: 2.10-4");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    f.repo.publish(&more, &ReleaseOptions::default());
    let fresh = f.load(Freshness::Refresh).unwrap();
    assert_eq!(
        fresh.by_name("hello").next().unwrap().version.to_string(),
        "2.10-4"
    );
    assert_eq!(server.hits(&packages), 2);
}

#[test]
fn offline_without_cache_says_what_is_missing() {
    let f = Fixture::good();
    let e = f.load(Freshness::Offline).unwrap_err();
    assert!(matches!(e, Error::NotCached { .. }), "{e}");
    assert_eq!(f.server.log().len(), 0);
}

#[test]
fn a_cached_release_naming_a_dropped_index_is_refreshed() {
    let f = Fixture::good();
    let cache = &f.cache;
    f.load(Freshness::Cached).unwrap();
    // The mirror moves on: new Packages, new Release; the cached Release
    // names a file that is gone, and the parsed index no longer matches
    // because the cached blob is dropped too.
    std::fs::remove_dir_all(cache.path().join("blobs")).unwrap();
    std::fs::remove_dir_all(cache.path().join("debian/index")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    f.repo.publish(
        &PACKAGES.replace("Version: 2.10-3", "Version: 2.10-5"),
        &ReleaseOptions::default(),
    );
    let index = f.load(Freshness::Cached).unwrap();
    assert_eq!(
        index.by_name("hello").next().unwrap().version.to_string(),
        "2.10-5"
    );
}

#[test]
fn building_an_index_is_the_metadata_stage() {
    let f = Fixture::good();
    let source = f.source();
    let rec = f.load_recorded(&source, f.cache.path());
    let size = std::fs::metadata(f.repo.dists().join("main/binary-amd64/Packages.xz"))
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
    let rec = f.load_recorded(&source, f.cache.path());
    assert_eq!(rec.events(), []);
}

#[test]
fn what_is_used_against_its_checks_is_a_warning() {
    let f = Fixture::expired();
    let mut source = f.source();
    source.check_valid_until = false;
    let rec = f.load_recorded(&source, f.cache.path());
    let warnings = rec.messages(Level::Warning);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("expired on") && warnings[0].contains("used anyway"),
        "{warnings:?}"
    );

    std::fs::copy(
        f.repo.dists().join("Release"),
        f.repo.dists().join("InRelease"),
    )
    .unwrap();
    source.trusted_without_signature = true;
    let fresh = tempfile::tempdir().unwrap();
    let rec = f.load_recorded(&source, fresh.path());
    let warnings = rec.messages(Level::Warning);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("trusted WITHOUT checking its signature")),
        "{warnings:?}"
    );
}
