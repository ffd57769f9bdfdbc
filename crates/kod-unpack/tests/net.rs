//! Real packages from the Debian archive (through the host's apt sources,
//! `apt-get download`), unpacked with kod-unpack and with the real
//! `dpkg-deb -x` / `tar`, compared path by path: types, modes, owners,
//! mtimes, symlink targets, contents, hard links; and the `.list` against
//! the member list and the host's own dpkg database.
//!
//! Needs the network and root (owners): `KOD_TEST_NET=1 KOD_TEST_ROOT=1`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_same_tree, reference_list, run, snapshot};
use kod_testkit::Tier;
use kod_unpack::{Conffiles, UnpackOptions, merged_usr_dirs, setup_merged_usr, unpack_all};

/// base-files, coreutils, libc6, dpkg, tzdata; setuid programs (mount,
/// passwd with setgid shadow, login); hard links (gzip, perl-base).
const PACKAGES: &[&str] = &[
    "base-files",
    "coreutils",
    "libc6",
    "dpkg",
    "tzdata",
    "mount",
    "passwd",
    "login",
    "gzip",
    "perl-base",
];

fn download(dir: &Path, packages: &[&str]) -> Vec<PathBuf> {
    run(Command::new("apt-get")
        .arg("download")
        .arg("-q")
        .args(packages)
        .current_dir(dir));
    let mut debs: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    debs.sort();
    assert_eq!(debs.len(), packages.len(), "apt-get download got {debs:?}");
    debs
}

/// For the tests that need the network and root: a temporary directory
/// holding the .deb files of `packages`, downloaded by apt; None unless
/// both tiers are on.
fn downloaded(packages: &[&str]) -> Option<(tempfile::TempDir, Vec<PathBuf>)> {
    if !kod_testkit::tiers(&[Tier::Net, Tier::Root]) {
        return None;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let debs = download(tmp.path(), packages);
    Some((tmp, debs))
}

fn options() -> UnpackOptions {
    UnpackOptions {
        conffiles: Conffiles::Install,
        ..UnpackOptions::default()
    }
}

#[test]
fn net_real_packages_match_dpkg_deb_x() {
    let Some((tmp, debs)) = downloaded(PACKAGES) else {
        return;
    };
    let mut host_compared = 0;
    for (i, deb) in debs.iter().enumerate() {
        let ours = tmp.path().join(format!("ours{i}"));
        let theirs = tmp.path().join(format!("theirs{i}"));
        fs::create_dir(&ours).expect("ours");
        let u = unpack_all(&[deb], &ours, &options())
            .unwrap_or_else(|e| panic!("{e}"))
            .remove(0);
        run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&theirs));
        let what = deb.file_name().expect("name").to_string_lossy();
        // Directory mtimes: GNU tar (under dpkg-deb -x) creates symlinks
        // last, after restoring directory times, so directories holding
        // symlinks get the current time there; kod-unpack keeps the
        // archive's. Not compared.
        assert_same_tree(&snapshot(&ours, false), &snapshot(&theirs, false), &what);
        assert_eq!(u.list, reference_list(deb), "{what}: list");
        // The host's dpkg database, where it has the same version.
        let pkg = u.package();
        let version = u.meta.control.get("Version").expect("version");
        let installed = Command::new("dpkg-query")
            .args(["-W", "-f", "${Version}", pkg])
            .output()
            .expect("dpkg-query");
        if String::from_utf8_lossy(&installed.stdout) == version {
            let arch = u.meta.control.get("Architecture").unwrap_or("all");
            let info = Path::new("/var/lib/dpkg/info");
            let list = [format!("{pkg}.list"), format!("{pkg}:{arch}.list")]
                .iter()
                .map(|n| info.join(n))
                .find(|p| p.exists())
                .expect("host .list");
            assert_eq!(
                String::from_utf8_lossy(&u.list_file()),
                fs::read_to_string(&list).expect("read .list"),
                "{what}: .list differs from the host's {}",
                list.display()
            );
            host_compared += 1;
        }
    }
    assert!(
        host_compared > 0,
        "no package had the host's installed version"
    );
}

#[test]
fn net_batch_into_merged_usr_root_matches_tar_keep_directory_symlink() {
    let Some((tmp, debs)) = downloaded(PACKAGES) else {
        return;
    };
    let ours = tmp.path().join("ours");
    let theirs = tmp.path().join("theirs");
    for r in [&ours, &theirs] {
        fs::create_dir(r).expect("root");
        setup_merged_usr(r, &merged_usr_dirs("amd64")).expect("merged /usr");
    }
    let unpacked = unpack_all(&debs, &ours, &options()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(unpacked.len(), debs.len());
    // What mmdebstrap's extract phase runs for each package.
    for deb in &debs {
        let status = Command::new("sh")
            .arg("-c")
            .arg("dpkg-deb --fsys-tarfile \"$1\" | tar -C \"$2\" --keep-directory-symlink -xf -")
            .arg("sh")
            .arg(deb)
            .arg(&theirs)
            .status()
            .expect("sh");
        assert!(status.success(), "extracting {deb:?} with tar");
    }
    // Directory mtimes depend on the order files are added: not compared.
    assert_same_tree(&snapshot(&ours, false), &snapshot(&theirs, false), "batch");
    let files: u64 = unpacked.iter().map(|u| u.files).sum();
    assert!(files > 1000, "only {files} files");
}

#[test]
fn net_repacked_gzip_zstd_and_uncompressed_match_the_original() {
    let Some((tmp, debs)) = downloaded(&["coreutils"]) else {
        return;
    };
    let original = &debs[0];
    let reference = tmp.path().join("reference");
    run(Command::new("dpkg-deb")
        .arg("-x")
        .arg(original)
        .arg(&reference));
    let expected = snapshot(&reference, false);
    let tree = tmp.path().join("tree");
    run(Command::new("dpkg-deb").arg("-R").arg(original).arg(&tree));
    for z in ["gzip", "zstd", "none"] {
        let deb = tmp.path().join(format!("coreutils-{z}.deb"));
        run(Command::new("dpkg-deb")
            .arg(format!("-Z{z}"))
            .arg("--build")
            .arg(&tree)
            .arg(&deb));
        let members = String::from_utf8(run(Command::new("ar").arg("t").arg(&deb))).expect("ar t");
        let want = match z {
            "gzip" => "data.tar.gz",
            "zstd" => "data.tar.zst",
            _ => "data.tar\n",
        };
        assert!(members.contains(want), "{z}: members {members}");
        let root = tmp.path().join(format!("root-{z}"));
        fs::create_dir(&root).expect("root");
        let u = unpack_all(&[&deb], &root, &options())
            .unwrap_or_else(|e| panic!("{e}"))
            .remove(0);
        assert_same_tree(&snapshot(&root, false), &expected, z);
        assert_eq!(u.list, reference_list(original), "{z}: list");
    }
}
