//! Generations on the directory backend: a top level that is a plain
//! directory off Btrfs. Here on a tmpfs (`/dev/shm`), which needs no root
//! and is never Btrfs; the XFS and ext4 machines are
//! `crates/kod/tests/directory_backend.rs`.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use kod_gen::{BUILDING, Backend, Error, Record, Top};

fn machine() -> (tempfile::TempDir, Top) {
    let dir = tempfile::tempdir_in("/dev/shm").expect("a tmpfs at /dev/shm");
    let top = Top::open(dir.path()).expect("open");
    (dir, top)
}

/// A committed generation with a file in its root.
fn commit(top: &Top) -> u64 {
    let n = top.allocate().expect("allocate");
    let root = top.create_rootfs(n).expect("rootfs");
    fs::write(root.join(".generation"), format!("{n}\n")).expect("root file");
    let record = Record {
        kod_version: "0.1.0".into(),
        ..Record::default()
    };
    record.write(top, n).expect("record");
    n
}

fn mode(path: &std::path::Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn the_layout_is_plain_directories_with_the_store_s_modes() {
    let (dir, top) = machine();
    assert_eq!(top.backend(), Backend::Directory);
    assert!(!top.boots());
    top.prepare().expect("prepare");
    for (rel, want) in [
        ("generations", 0o755),
        ("store/home", 0o755),
        ("store/root", 0o700),
        ("store/var/log", 0o755),
        ("store/var/tmp", 0o1777),
        ("store/var/cache", 0o755),
        ("store/var/kod", 0o755),
    ] {
        let p = dir.path().join(rel);
        assert!(fs::symlink_metadata(&p).unwrap().is_dir(), "{rel}");
        assert_eq!(mode(&p), want, "{rel}");
    }
    // A second prepare keeps what is there.
    fs::write(dir.path().join("store/home/kept"), "x").unwrap();
    let ino = fs::metadata(dir.path().join("store/home")).unwrap().ino();
    top.prepare().expect("prepare again");
    assert_eq!(
        fs::metadata(dir.path().join("store/home")).unwrap().ino(),
        ino
    );
    assert!(dir.path().join("store/home/kept").exists());
    // A file where the layout wants a directory is refused.
    let (other, top2) = machine();
    fs::create_dir(other.path().join("store")).unwrap();
    fs::write(other.path().join("store/home"), "").unwrap();
    let e = top2.prepare().unwrap_err();
    assert!(matches!(e, Error::Layout { .. }), "{e}");
    assert!(e.to_string().contains("store/home"), "{e}");
}

#[test]
fn roots_are_directories_deleted_and_cleaned_as_trees() {
    let (_dir, top) = machine();
    top.prepare().unwrap();
    let zero = commit(&top);
    let root = top.rootfs(zero);
    let m = fs::symlink_metadata(&root).unwrap();
    assert!(m.is_dir());
    assert_eq!(m.mode() & 0o7777, 0o755);
    // On the parent's file system: a directory, not a mount point.
    assert_eq!(
        m.dev(),
        fs::metadata(top.generation_dir(zero)).unwrap().dev()
    );
    top.set_default(zero).unwrap();
    let one = commit(&top);
    fs::create_dir_all(top.rootfs(one).join("usr/share/deep/er")).unwrap();
    fs::write(top.rootfs(one).join("usr/share/deep/er/f"), "x").unwrap();
    top.delete(one).expect("delete");
    assert!(!top.generation_dir(one).exists());
    assert_eq!(top.generations().unwrap(), vec![zero]);
    let e = top.delete(zero).unwrap_err();
    assert!(matches!(e, Error::IsDefault { .. }), "{e}");

    // What a killed kod left: a generation being built, with its root and
    // a transaction's copy under a temporary name beside it.
    let two = top.allocate().unwrap();
    let root = top.create_rootfs(two).unwrap();
    fs::create_dir_all(root.join("var/lib/dpkg")).unwrap();
    let staging = top.generation_dir(two).join(".rootfs.kod-tmp-999999");
    fs::create_dir_all(staging.join("etc")).unwrap();
    assert!(top.generation_dir(two).join(BUILDING).exists());
    assert_eq!(top.leftovers().unwrap(), vec![two]);
    let removed = top.remove_leftovers().unwrap();
    assert_eq!(removed, vec![top.generation_dir(two)]);
    assert!(!top.generation_dir(two).exists());
    assert_eq!(
        fs::read_to_string(top.rootfs(zero).join(".generation")).unwrap(),
        "0\n"
    );
    assert_eq!(top.allocate().unwrap(), 3, "numbers are never reused");
}

#[test]
fn the_fstab_of_a_directory_generation_mounts_nothing() {
    let (_dir, top) = machine();
    let text = top.fstab(2, &[]).unwrap();
    assert!(text.lines().all(|l| l.starts_with('#')), "{text}");
    assert!(text.contains("does not"), "{text}");
    assert!(!text.contains("subvol="), "{text}");
}

#[test]
fn boot_marks_decide_the_last_good_and_bad_generations() {
    let (_dir, top) = machine();
    top.prepare().expect("prepare");
    let (a, b, c) = (commit(&top), commit(&top), commit(&top));
    top.made_default(c).expect("default");
    // Without the entries read: the newest committed one.
    assert_eq!(top.last_good().unwrap(), Some(c));
    let top = top.with_boot_marks(kod_gen::BootMarks {
        blessed: vec![a, b, 41],
        bad: vec![c],
    });
    // The newest blessed one that exists; a mark of a deleted generation
    // (41) means nothing.
    assert_eq!(top.last_good().unwrap(), Some(b));
    let listing = top.list(&kod_gen::Running::none()).unwrap();
    assert_eq!(listing.last_good, Some(b));
    assert_eq!(listing.bad, [c]);
    let marks: Vec<Vec<&str>> = listing.generations.iter().map(|g| g.marks()).collect();
    assert_eq!(marks, [vec![], vec!["last good"], vec!["default", "bad"]]);
    // gc keeps the last good one.
    let plan = top.gc_plan(&kod_gen::Running::none(), 1).unwrap();
    assert!(!plan.delete.contains(&b), "{plan:?}");
}
