//! `kod pkg update|search|show` against the real Debian archive (net tier),
//! and the names `pkg show` and `pkg install` suggest, against a repository
//! served on 127.0.0.1.

mod common;

use std::ffi::OsStr;

use common::{kod, kod_ok};
use kod_testkit::assert_contains;
use kod_testkit::debrepo::{DebRepo, ReleaseOptions};
use kod_testkit::http::FileServer;
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
    assert_contains(&err, "(bookworm, bookworm-updates, bookworm-security)");

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
    assert_contains(&err, "no package named \"gti\"; did you mean git");
}

/// The text of "did you mean X, Y?" in an error, if there is one.
fn meant(err: &str) -> Option<&str> {
    let rest = err.split_once("did you mean ")?.1;
    Some(rest.split_once('?')?.0)
}

/// `kod pkg show NAME` (the binary's lookup) and `kod pkg install NAME`
/// (the solver) suggest the same names for one no repository has: both
/// come from `kod_solve::close_names`. The repository is served on
/// 127.0.0.1; the root is only its apt sources and an empty dpkg database.
#[test]
fn show_and_install_suggest_the_same_names() {
    const SUITE: &str = "kodsuggest";
    let repo = DebRepo::new(SUITE);
    let mut paragraphs = String::new();
    for (i, (name, extra)) in [
        ("git", ""),
        ("bti", ""),
        ("gitk", ""),
        ("vim", ""),
        ("exim4", "Provides: mail-transport-agent\n"),
    ]
    .into_iter()
    .enumerate()
    {
        paragraphs.push_str(&format!(
            "Package: {name}\nVersion: 1\nArchitecture: amd64\n{extra}\
             Filename: pool/main/{name}.deb\nSize: 1\nSHA256: {i:064x}\n\n"
        ));
    }
    repo.publish(&paragraphs, &ReleaseOptions::default());
    let server = FileServer::start(repo.serve_dir());
    let url = format!("{}/repo", server.url());

    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("configuration.lua");
    std::fs::write(
        &config,
        format!(
            "local repos = require(\"repos\")\nreturn {{ repos = {{ official = \
             repos.debian_repo({{ mirror = {url:?}, suite = {SUITE:?}, signed_by = {:?} }}) }} }}\n",
            repo.keyring().display()
        ),
    )
    .unwrap();
    let root = work.path().join("root");
    std::fs::create_dir_all(root.join("etc/apt")).unwrap();
    std::fs::create_dir_all(root.join("var/lib/dpkg")).unwrap();
    std::fs::copy(repo.keyring(), root.join("k.gpg")).unwrap();
    std::fs::write(
        root.join("etc/apt/sources.list"),
        format!("deb [signed-by=/k.gpg] {url} {SUITE} main\n"),
    )
    .unwrap();
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    std::fs::write(root.join("var/lib/dpkg/arch"), "amd64\n").unwrap();

    let cache = tempfile::tempdir().unwrap();
    let failure = |args: &[&OsStr]| {
        let out = kod(cache.path(), args);
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "kod {args:?}: {err}");
        err
    };
    for typo in ["gti", "mail-transport-agnt", "zzzzzz"] {
        let show = failure(&[
            "pkg".as_ref(),
            "show".as_ref(),
            "--config".as_ref(),
            config.as_ref(),
            typo.as_ref(),
        ]);
        let install = failure(&[
            "pkg".as_ref(),
            "install".as_ref(),
            "--dry-run".as_ref(),
            "--root".as_ref(),
            root.as_ref(),
            typo.as_ref(),
        ]);
        assert_eq!(meant(&show), meant(&install), "{typo}:\n{show}\n{install}");
        let expected = match typo {
            "gti" => Some("git, bti"),
            "mail-transport-agnt" => Some("exim4 (provides mail-transport-agent)"),
            _ => None,
        };
        assert_eq!(meant(&show), expected, "{typo}: {show}");
    }
}
