//! Each target strategy of the transaction core, driven through a small
//! transaction (a fixture package installed into a real minbase root):
//! success, failure (a postinst that exits 1) and the cleanup of what a
//! killed transaction left. The overlay on an existing root and the new
//! root beside its place are the strategies of `minbase.rs`,
//! `failures.rs` and `registration.rs`; here: snapshots (Btrfs subvolume,
//! reflink copy, plain copy), throwaway overlays, the running system's
//! `/`, and the journal that finds leftovers of other roots.
//!
//! Needs root (loop devices, Btrfs, overlays) and, for the minbase set,
//! the network: `KOD_TEST_ROOT=1 KOD_TEST_NET=1`.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    Fixture, assert_same_tree, healthy, in_root_ok, leftovers, minbase_root, mounts_under, net_tmp,
    root_tmp, run, snapshot,
};
use kod_install::{Dpkg, Error, Options, Transaction};
use kod_testkit::Tier;

/// A Btrfs file system in an image file, mounted (loop device set to clear
/// itself) for the test's life; unmounted when dropped, also on failure.
struct Btrfs {
    _dir: tempfile::TempDir,
    mnt: PathBuf,
}

impl Btrfs {
    fn new() -> Btrfs {
        let dir = tempfile::tempdir_in("/var/tmp").expect("tmp");
        let image = dir.path().join("btrfs.img");
        fs::File::create(&image)
            .and_then(|f| f.set_len(2 << 30))
            .expect("image");
        run(Command::new("mkfs.btrfs").arg("-q").arg(&image));
        let mnt = dir.path().join("mnt");
        fs::create_dir(&mnt).expect("mnt");
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mnt));
        Btrfs { _dir: dir, mnt }
    }

    fn subvolume(&self, name: &str) -> PathBuf {
        let p = self.mnt.join(name);
        run(Command::new("btrfs")
            .args(["-q", "subvolume", "create"])
            .arg(&p));
        p
    }
}

impl Drop for Btrfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

fn is_subvolume(p: &Path) -> bool {
    fs::metadata(p).expect("stat").ino() == 256
        && Command::new("btrfs")
            .args(["subvolume", "show"])
            .arg(p)
            .output()
            .expect("btrfs")
            .status
            .success()
}

/// The fixtures: one that installs a file, one whose postinst fails.
fn fixtures(dir: &Path) -> (PathBuf, PathBuf) {
    let good = Fixture {
        files: &[("/usr/share/kod-good/hello", "hello\n")],
        ..Fixture::new("kod-good")
    }
    .build(dir);
    let bad = Fixture {
        members: &[("postinst", "#!/bin/sh\necho failing >&2\nexit 1\n")],
        files: &[("/usr/share/kod-bad/file", "bad\n")],
        ..Fixture::new("kod-bad")
    }
    .build(dir);
    (good, bad)
}

fn status_of(root: &Path, package: &str) -> String {
    in_root_ok(
        root,
        &format!("dpkg-query -W -f '${{Status}}' {package} 2>/dev/null || true"),
    )
}

/// Options that keep the transactions' journal in `journal`.
fn journaled(journal: &Path) -> Options {
    Options {
        journal: Some(journal.to_path_buf()),
        ..Options::default()
    }
}

/// Leaves in `journal` the record of a killed transaction (pid 999999,
/// gone) naming `path` as its `what` (`work` or `root`).
fn killed_record(journal: &Path, what: &str, path: &Path) {
    fs::create_dir_all(journal).expect("journal");
    fs::write(
        journal.join("999999-0.txn"),
        format!("pid 999999\n{what} {}\n", path.display()),
    )
    .expect("record");
}

/// Installs `good` into a snapshot of `from` at `to` and commits; then a
/// snapshot with `bad` fails and leaves nothing; `from` never changes.
fn snapshot_round(from: &Path, to: &Path, good: &Path, bad: &Path) {
    let before = snapshot(from);
    let mut t = Transaction::<Dpkg>::snapshot(from, to, &Options::default()).expect("snapshot");
    assert!(!to.exists(), "the new root appears only at commit");
    t.install(&[good]).expect("install");
    assert!(t.view().join("usr/share/kod-good/hello").is_file());
    assert!(t.commit().expect("commit").committed);
    assert_eq!(status_of(to, "kod-good"), "install ok installed");
    assert!(!from.join("usr/share/kod-good").exists());
    healthy(to);
    assert_same_tree(&before, &snapshot(from), "the snapshot's source");

    let failed = to.with_file_name("failed");
    let mut t =
        Transaction::<Dpkg>::snapshot(from, &failed, &Options::default()).expect("snapshot");
    t.install(&[bad]).expect("unpack");
    let e = t.commit().expect_err("the postinst fails");
    assert!(e.to_string().contains("kod-bad"), "{e}");
    assert!(!failed.exists());
    assert_eq!(leftovers(&failed), Vec::<PathBuf>::new());
    assert_same_tree(&before, &snapshot(from), "the source after a failure");
}

#[test]
fn net_root_snapshot_of_a_btrfs_subvolume_is_a_subvolume() {
    if !kod_testkit::tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let fs = Btrfs::new();
    // An empty subvolume is an empty mount point (its own st_dev): the new
    // root is built inside it.
    let gen1 = fs.subvolume("gen1");
    assert_eq!(minbase_root(&fs.mnt, "gen1"), gen1);
    assert!(is_subvolume(&gen1));
    let (good, bad) = fixtures(&fs.mnt);
    let gen2 = fs.mnt.join("gen2");
    snapshot_round(&gen1, &gen2, &good, &bad);
    assert!(is_subvolume(&gen2), "a Btrfs snapshot, not a copy");
    let subvolumes = run(Command::new("btrfs")
        .args(["subvolume", "list"])
        .arg(&fs.mnt));
    assert!(
        !subvolumes.contains("kod-tmp"),
        "a failed snapshot left its subvolume:\n{subvolumes}"
    );

    // What a killed snapshot leaves (a subvolume beside the new root, no
    // marker) is deleted by the next transaction on that root.
    let gen3 = fs.mnt.join("gen3");
    let stale = fs.mnt.join(".gen3.kod-tmp-999999");
    run(Command::new("btrfs")
        .args(["-q", "subvolume", "snapshot"])
        .arg(&gen1)
        .arg(&stale));
    let t = Transaction::<Dpkg>::snapshot(&gen1, &gen3, &Options::default()).expect("snapshot");
    assert!(!stale.exists());
    drop(t);
    assert!(!gen3.exists());
    let subvolumes = run(Command::new("btrfs")
        .args(["subvolume", "list"])
        .arg(&fs.mnt));
    assert_eq!(
        subvolumes.lines().count(),
        2,
        "gen1 and gen2 only:\n{subvolumes}"
    );
}

#[test]
fn net_root_snapshot_elsewhere_is_a_copy_reflinked_where_possible() {
    if !kod_testkit::tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    // A plain directory on Btrfs: copied, file data shared (reflinks).
    let btrfs = Btrfs::new();
    let from = minbase_root(&btrfs.mnt, "plain");
    assert!(!is_subvolume(&from));
    fs::write(from.join("etc/kod-attr"), "x").expect("write");
    rustix::fs::setxattr(
        from.join("etc/kod-attr"),
        "user.kod",
        b"kept",
        rustix::fs::XattrFlags::empty(),
    )
    .expect("setxattr");
    let (good, bad) = fixtures(&btrfs.mnt);
    let to = btrfs.mnt.join("copy");
    snapshot_round(&from, &to, &good, &bad);
    assert!(!is_subvolume(&to));
    let mut value = [0u8; 16];
    let n = rustix::fs::getxattr(to.join("etc/kod-attr"), "user.kod", &mut value)
        .expect("the copy keeps extended attributes");
    assert_eq!(&value[..n], b"kept");
    let libc = fs::read_dir(to.join("usr/lib"))
        .expect("usr/lib")
        .flatten()
        .find(|e| e.file_name().to_string_lossy().contains("linux-gnu"))
        .map(|e| e.path())
        .expect("a multiarch directory");
    let lib = fs::read_dir(&libc)
        .expect("read")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_file() && !p.is_symlink() && fs::metadata(p).expect("stat").len() > 65536)
        .expect("a library");
    let frag = run(Command::new("filefrag").arg("-v").arg(&lib));
    assert!(frag.contains("shared"), "not reflinked:\n{frag}");
    let rel = lib.strip_prefix(&to).expect("in the copy");
    let (a, b) = (
        fs::metadata(&lib).expect("copy"),
        fs::metadata(from.join(rel)).expect("source"),
    );
    assert_ne!(a.ino(), b.ino(), "never a hard link to the source");

    // Another file system (no reflinks): a plain copy, same outcome.
    let tmp = tempfile::tempdir_in("/var/tmp").expect("tmp");
    let to = tmp.path().join("copy");
    snapshot_round(&from, &to, &good, &bad);
    assert_eq!(
        fs::read(to.join("etc/kod-attr")).expect("read"),
        b"x",
        "copied across file systems"
    );
}

#[test]
fn net_root_ephemeral_overlay_never_writes_its_lower_root() {
    let Some(tmp) = net_tmp() else { return };
    let lower = minbase_root(tmp.path(), "lower");
    let (good, bad) = fixtures(tmp.path());
    let before = snapshot(&lower);
    let shm = tempfile::tempdir_in("/dev/shm").expect("a tmpfs for the upper layer");
    let work = shm.path().join("work");
    let kept = shm.path().join("kept");
    let journal = tmp.path().join("journal");
    let options = journaled(&journal);

    // Committed with a kept layer: the layer has the package, the lower
    // root does not.
    let mut t =
        Transaction::<Dpkg>::ephemeral(&lower, &work, Some(&kept), &options).expect("overlay");
    t.install(&[&good]).expect("install");
    assert!(t.view().join("usr/share/kod-good/hello").is_file());
    assert!(t.lock_path().is_none(), "a throwaway overlay locks nothing");
    t.commit().expect("commit");
    assert_same_tree(&before, &snapshot(&lower), "the lower root");
    assert_eq!(
        fs::read_to_string(kept.join("usr/share/kod-good/hello")).expect("kept layer"),
        "hello\n"
    );
    let status = fs::read_to_string(kept.join("var/lib/dpkg/status")).expect("layer's status");
    assert!(status.contains("Package: kod-good\nStatus: install ok installed"));
    assert_eq!(fs::read_dir(&work).expect("work").count(), 0);
    assert!(mounts_under(&lower).is_empty());

    // Without a kept layer and dropped, or failing: nothing is left.
    let mut t = Transaction::<Dpkg>::ephemeral(&lower, &work, None, &options).expect("overlay");
    t.install(&[&good]).expect("install");
    drop(t);
    let mut t = Transaction::<Dpkg>::ephemeral(&lower, &work, None, &options).expect("overlay");
    t.install(&[&bad]).expect("unpack");
    let e = t.commit().expect_err("the postinst fails");
    assert!(e.to_string().contains("kod-bad"), "{e}");
    assert_eq!(fs::read_dir(&work).expect("work").count(), 0);
    assert_same_tree(&before, &snapshot(&lower), "the lower root after all");

    // A killed one: its record in the journal (a pid that is gone) names
    // its work directory, which the next transaction removes.
    let dead = work.join(".kod-ephemeral-999999-0");
    fs::create_dir_all(dead.join("upper/etc")).expect("mkdir");
    killed_record(&journal, "work", &dead);
    assert_eq!(kod_install::leftovers::list(&journal).len(), 1);
    let t = Transaction::<Dpkg>::ephemeral(&lower, &work, None, &options).expect("overlay");
    assert!(!dead.exists());
    assert!(kod_install::leftovers::list(&journal).is_empty());
    drop(t);
    assert_eq!(fs::read_dir(&journal).expect("journal").count(), 0);
}

#[test]
fn root_the_running_system_is_locked_apart_and_only_overlaid_here() {
    if !kod_testkit::tier(Tier::Root) {
        return;
    }
    // Changing / in place through an overlay is refused (file systems
    // mounted below it would be hidden), clearly.
    match Transaction::begin(Path::new("/"), &Options::default()) {
        Err(e @ Error::Target { .. }) => {
            assert!(e.to_string().contains("running system's /"), "{e}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A throwaway overlay on / works and never writes it.
    let shm = tempfile::tempdir_in("/dev/shm").expect("tmpfs");
    let t = Transaction::<Dpkg>::ephemeral(Path::new("/"), shm.path(), None, &Options::default())
        .expect("an overlay on /");
    let name = format!("kod-test-{}", std::process::id());
    t.fs()
        .write(format!("etc/{name}"), b"only in the overlay\n", 0o644)
        .expect("write into the overlay");
    assert!(t.view().join("etc").join(&name).is_file());
    assert!(!Path::new("/etc").join(&name).exists());
    assert!(!t.packages().is_empty(), "the host's dpkg database, read");
    drop(t);
    assert!(!Path::new("/etc").join(&name).exists());
    assert_eq!(fs::read_dir(shm.path()).expect("work").count(), 0);
}

#[test]
fn root_the_journal_cleans_leftovers_of_other_roots() {
    let Some(tmp) = root_tmp() else { return };
    let journal = tmp.path().join("journal");
    let options = journaled(&journal);
    // A killed bootstrap of `a` left its staging directory and its record.
    let a = tmp.path().join("a");
    let staging = tmp.path().join(".a.kod-tmp-999999");
    fs::create_dir_all(staging.join("usr/bin")).expect("mkdir");
    killed_record(&journal, "root", &a);
    // A live transaction's record is left alone.
    let live = format!("pid {}\nroot {}\n", std::process::id(), a.display());
    fs::write(journal.join("live.txn"), &live).expect("record");
    assert_eq!(kod_install::leftovers::list(&journal).len(), 1);

    // A transaction on another root, `b`, finds and removes them.
    let b = tmp.path().join("b");
    let t = Transaction::bootstrap(&b, &kod_install::BootstrapOptions::new("amd64"), &options)
        .expect("bootstrap b");
    assert!(!staging.exists(), "a's leftover removed by b's transaction");
    assert!(!journal.join("999999-0.txn").exists());
    assert_eq!(
        fs::read_to_string(journal.join("live.txn")).expect("live record"),
        live
    );
    drop(t);
    assert!(!b.exists());
    assert!(kod_install::leftovers::list(&journal).is_empty());
}
