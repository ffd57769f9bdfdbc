//! Kept data parts are not writable by other users even when kod runs
//! with a permissive umask (root installs from them). A test binary of its
//! own: the umask is the process's.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use kod_testkit::debs::{control_for, dpkg_deb_build};
use kod_unpack::{Conffiles, Ownership, UnpackOptions, unpack_deb};

#[test]
fn kept_data_is_only_writable_by_its_owner_whatever_the_umask() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("pkg");
    fs::create_dir_all(tree.join("DEBIAN")).unwrap();
    fs::create_dir_all(tree.join("usr/share/pkg")).unwrap();
    fs::write(tree.join("DEBIAN/control"), control_for("pkg", "")).unwrap();
    fs::write(tree.join("usr/share/pkg/file"), "x\n").unwrap();
    let deb = dpkg_deb_build(&tree, &tmp.path().join("pkg.deb"), "xz");
    rustix::process::umask(rustix::fs::Mode::empty());
    let kept = tmp.path().join("cache/unpacked");
    let options = UnpackOptions {
        ownership: Ownership::SkipIfNotPermitted,
        conffiles: Conffiles::Install,
        data_cache: Some(kept.clone()),
        ..UnpackOptions::default()
    };
    for round in 0..3 {
        let root = tmp.path().join(format!("root{round}"));
        fs::create_dir(&root).unwrap();
        let u = unpack_deb(&deb, &root, &options).unwrap();
        assert_eq!(u.from_kept_data, round == 2);
    }
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let mut names = Vec::new();
    for d in [kept.parent().unwrap(), kept.as_path()] {
        assert_eq!(mode(d), 0o755, "{d:?}");
    }
    for e in fs::read_dir(&kept).unwrap() {
        let p = e.unwrap().path();
        assert_eq!(mode(&p), 0o644, "{p:?}");
        names.push(p.extension().unwrap().to_string_lossy().into_owned());
    }
    names.sort();
    assert_eq!(names, ["b3", "seen", "tar"]);
}
