//! `kod env cleanup`: cached packages that no environment has installed go
//! (with the data kept for them), those some environment has stay, and
//! cached files that are not packages are left alone.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use kod_fetch::Cache;
use kod_testkit::debs::{control_for, dpkg_deb_build, run};
use kod_testkit::{Tier, tiers};
use support::{expect, kod_bin, stdout};

/// Builds a package and puts it into the cache under its SHA256, as a
/// download would; returns its path there.
fn cached_deb(cache: &Cache, work: &Path, name: &str, version: &str) -> PathBuf {
    let tree = work.join(format!("{name}-tree"));
    fs::create_dir_all(tree.join("DEBIAN")).unwrap();
    fs::create_dir_all(tree.join("usr/share/doc").join(name)).unwrap();
    fs::write(tree.join("usr/share/doc").join(name).join("README"), name).unwrap();
    let control =
        control_for(name, "").replace("Version: 1.0-1\n", &format!("Version: {version}\n"));
    assert!(
        control.contains(&format!("Version: {version}\n")),
        "{control}"
    );
    fs::write(tree.join("DEBIAN/control"), control).unwrap();
    let deb = dpkg_deb_build(&tree, &work.join(format!("{name}.deb")), "xz");
    let sum = String::from_utf8(run(Command::new("sha256sum").arg(&deb))).unwrap();
    let mut sha = [0u8; 32];
    for (i, b) in sha.iter_mut().enumerate() {
        *b = u8::from_str_radix(&sum[2 * i..2 * i + 2], 16).unwrap();
    }
    let path = cache.path_of(&sha);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::copy(&deb, &path).unwrap();
    path
}

#[test]
fn root_cleanup_removes_cached_packages_no_environment_has() {
    if !tiers(&[Tier::Root]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let cache_dir = work.path().join("cache");
    let cache = Cache::open(&cache_dir).unwrap();
    let used = cached_deb(&cache, work.path(), "kod-used", "1.0");
    let old = cached_deb(&cache, work.path(), "kod-used", "0.9");
    let unused = cached_deb(&cache, work.path(), "kod-unused", "2.0");
    // Not a package (repository metadata, say): not cleanup's to judge.
    let other = cache.path_of(&[7; 32]);
    fs::create_dir_all(other.parent().unwrap()).unwrap();
    fs::write(&other, "Packages\n").unwrap();
    // Data kept for the unused package goes with it.
    let kept = kod_fetch::kept_data_dir(&cache_dir);
    fs::create_dir_all(&kept).unwrap();
    let unused_hex = format!(
        "{}{}",
        unused
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy(),
        unused.file_name().unwrap().to_string_lossy()
    );
    fs::write(kept.join(format!("{unused_hex}.tar")), vec![0u8; 10_240]).unwrap();

    // One environment, with kod-used 1.0 installed.
    let root = work.path().join("root");
    fs::create_dir_all(root.join("var/lib/dpkg")).unwrap();
    fs::write(
        root.join("var/lib/dpkg/status"),
        "Package: kod-used\nStatus: install ok installed\nArchitecture: all\nVersion: 1.0\n\n",
    )
    .unwrap();
    let kod = |args: &[&str]| {
        let mut c = Command::new(kod_bin());
        c.env("KOD_ENVS_DIR", work.path().join("envs"))
            .env("KOD_CACHE_DIR", &cache_dir)
            .args(args);
        c
    };
    expect(
        kod(&["env", "import", "e1"])
            .arg(&root)
            .args(["--distro", "debian:test"]),
        0,
    );

    let out = expect(&mut kod(&["env", "cleanup", "--dry-run"]), 0);
    let text = stdout(&out);
    assert!(text.contains("kod-used 0.9 ("), "{text}");
    assert!(text.contains("kod-unused 2.0 ("), "{text}");
    assert!(!text.contains("kod-used 1.0"), "{text}");
    assert!(
        text.contains("2 cached package(s) unused, would free"),
        "{text}"
    );
    assert!(text.contains("; 1 in use"), "{text}");
    let out = expect(&mut kod(&["env", "cleanup", "--dry-run", "--json"]), 0);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["in_use"], 1, "{plan}");
    let mut names: Vec<String> = plan["unused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            format!(
                "{} {}",
                u["name"].as_str().unwrap(),
                u["version"].as_str().unwrap()
            )
        })
        .collect();
    names.sort();
    assert_eq!(names, ["kod-unused 2.0", "kod-used 0.9"]);
    // -d (print instead of doing) is a dry run here; actions without a
    // dry run refuse it.
    let out = expect(&mut kod(&["-d", "env", "cleanup"]), 0);
    assert!(
        stdout(&out).contains("2 cached package(s) unused, would free"),
        "{}",
        stdout(&out)
    );
    let out = expect(&mut kod(&["-d", "env", "view", "unified"]), 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("leave out -d"), "{err}");
    for p in [&used, &old, &unused, &other] {
        assert!(p.exists(), "a dry run removes nothing: {p:?}");
    }

    let out = expect(&mut kod(&["env", "cleanup"]), 0);
    assert!(stdout(&out).contains("2 cached package(s) unused, freed"));
    assert!(used.exists(), "installed in an environment");
    assert!(other.exists(), "not a package");
    assert!(!old.exists() && !unused.exists());
    assert_eq!(fs::read_dir(&kept).unwrap().count(), 0, "kept data removed");

    // Without environments, nothing is in use.
    expect(&mut kod(&["env", "delete", "e1"]), 0);
    let out = expect(&mut kod(&["env", "cleanup"]), 0);
    assert!(stdout(&out).contains("1 cached package(s) unused, freed"));
    assert!(!used.exists());
    assert!(other.exists());
}
