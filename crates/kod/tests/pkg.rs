//! `kod pkg update|search|show` against the real Debian archive (net tier).

mod common;

use common::{kod, kod_ok};
use kod_testkit::{Tier, tier};

#[test]
fn net_pkg_update_search_show() {
    if !tier(Tier::Net) {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let c = cache.path();
    let out = kod(c, ["pkg", "update", "--distro", "debian:bookworm"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("(bookworm, bookworm-updates, bookworm-security)"),
        "{err}"
    );

    let out = kod_ok(
        c,
        [
            "pkg",
            "search",
            "--distro",
            "debian:bookworm",
            "--json",
            "^ripgrep$",
        ],
    );
    let hits: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(hits.as_array().unwrap().len(), 1, "{hits}");
    assert_eq!(hits[0]["name"], "ripgrep");

    let out = kod_ok(
        c,
        [
            "pkg",
            "show",
            "--distro",
            "debian:bookworm",
            "--json",
            "git",
        ],
    );
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    let first = &shown[0];
    assert_eq!(first["package"], "git");
    assert!(
        first["depends"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d.as_str().unwrap().starts_with("libc6 (>= "))
    );
    assert_eq!(first["sha256"].as_str().unwrap().len(), 64);
    assert!(first["url"].as_str().unwrap().ends_with(".deb"));

    let out = kod(c, ["pkg", "show", "--distro", "debian:bookworm", "gti"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("no package named \"gti\"; did you mean git"),
        "{err}"
    );
}
