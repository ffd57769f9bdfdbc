//! Registration against the real dpkg, without a network: fixture
//! packages (built with `dpkg-deb --build`) registered by kod-install into
//! one root and unpacked by the host's `dpkg --root --unpack` into another
//! must give the same status stanzas, info files, trigger interests and
//! files; then the host's `dpkg --configure -a` must accept kod's root,
//! process the triggers kod left for it, and end with the same database.
//! Also: the lock, rollback of a dropped transaction, and a new root's
//! skeleton.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    Fixture, Node, arch, assert_same_tree, leftovers, mounts_under, processes_in, root_tmp, run,
    snapshot,
};
use kod_install::{BootstrapOptions, Error, Options, Transaction};

/// An empty dpkg root: what dpkg needs to run with `--root`.
fn dpkg_root(root: &Path) {
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
    ] {
        fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    fs::write(root.join("var/lib/dpkg/status"), "").expect("status");
    fs::write(root.join("var/lib/dpkg/arch"), format!("{}\n", arch())).expect("arch");
}

/// The host's dpkg working on `root` (scripts would run without chroot:
/// the fixtures have none that dpkg runs here).
fn dpkg(root: &Path, args: &[&str]) -> String {
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["--log=/dev/null", "--force-script-chrootless"])
        .args(args))
}

fn md5(data: &str) -> String {
    let out = run(Command::new("sh")
        .arg("-c")
        .arg("printf %s \"$1\" | md5sum")
        .arg("sh")
        .arg(data));
    out.split_whitespace().next().expect("md5").to_string()
}

struct Fixtures {
    watcher: PathBuf,
    batch: Vec<PathBuf>,
}

fn fixtures(dir: &Path) -> Fixtures {
    let arch = arch();
    let lib_path = "/usr/lib/kod-test/libkod.so.1";
    let lib_sums = format!("{}  {}\n", md5("lib\n"), lib_path.trim_start_matches('/'));
    let watcher = Fixture {
        members: &[(
            "triggers",
            "interest kod-trig\ninterest-noawait /usr/share/kod-watched\n",
        )],
        ..Fixture::new("kod-watch")
    }
    .build(dir);
    let conf = Fixture {
        control: "Priority: Optional\nSection: admin\nEssential: no\nMulti-Arch: no\n\
                  Depends: kod-lib(>=0:1.0) |kod-other , kod-watch (<< 2)\n\
                  Provides: kod-virtual (= 1.0)\nReplaces: kod-old (<< 0.9)\n\
                  Homepage: https://example.org/kod\nX-Kod-Custom: yes\n",
        files: &[
            ("/etc/kod-conf.conf", "setting = 1\n"),
            ("/usr/share/doc/kod-conf/README", "doc\n"),
        ],
        members: &[
            (
                "conffiles",
                "/etc/kod-conf.conf\nremove-on-upgrade /etc/kod-gone.conf\n",
            ),
            ("prerm", "#!/bin/sh\nexit 0\n"),
            ("postrm", "#!/bin/sh\nexit 0\n"),
        ],
        ..Fixture::new("kod-conf")
    }
    .build(dir);
    let lib_control = "Multi-Arch: same\nSection: libs\n";
    let lib = Fixture {
        arch: &arch,
        control: lib_control,
        files: &[(lib_path, "lib\n")],
        members: &[
            ("triggers", "activate-noawait kod-trig\n"),
            ("md5sums", &lib_sums),
            ("shlibs", "libkod 1 kod-lib (>= 1.0)\n"),
        ],
        ..Fixture::new("kod-lib")
    }
    .build(dir);
    let shipper = Fixture {
        version: "0:2.0",
        files: &[("/usr/share/kod-watched/data", "watched\n")],
        ..Fixture::new("kod-shipper")
    }
    .build(dir);
    Fixtures {
        watcher,
        batch: vec![conf, lib, shipper],
    }
}

/// The stanzas of the status file of `root`, by package name.
fn stanzas(root: &Path) -> BTreeMap<String, String> {
    let text = fs::read_to_string(root.join("var/lib/dpkg/status")).expect("status");
    text.split("\n\n")
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let name = s
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("Package: "))
                .expect("Package first");
            (name.to_string(), format!("{}\n", s.trim_end()))
        })
        .collect()
}

/// The dpkg database files that matter (info, triggers), without dpkg's
/// locks and journal.
fn db_files(root: &Path) -> BTreeMap<PathBuf, Node> {
    snapshot(&root.join("var/lib/dpkg"))
        .into_iter()
        .filter(|(p, _)| {
            let s = p.to_string_lossy();
            !(s == "status"
                || s == "status-old"
                || s.starts_with("lock")
                || s == "triggers/Lock"
                || s.starts_with("updates"))
        })
        .collect()
}

/// Everything outside the dpkg database.
fn files(root: &Path) -> BTreeMap<PathBuf, Node> {
    snapshot(root)
        .into_iter()
        .filter(|(p, _)| !p.starts_with("var/lib/dpkg"))
        .collect()
}

#[test]
fn root_registration_matches_dpkg_unpack_and_dpkg_configures_it() {
    let Some(tmp) = root_tmp() else { return };
    let fx = fixtures(tmp.path());
    let theirs = tmp.path().join("dpkg-root");
    let ours = tmp.path().join("kod-root");
    for r in [&theirs, &ours] {
        dpkg_root(r);
        dpkg(r, &["--install", fx.watcher.to_str().expect("utf-8")]);
    }
    let before = snapshot(&ours);
    let batch: Vec<&str> = fx
        .batch
        .iter()
        .map(|p| p.to_str().expect("utf-8"))
        .collect();
    let mut args = vec!["--unpack"];
    args.extend(&batch);
    dpkg(&theirs, &args);

    let mut t = Transaction::begin(&ours, &Options::default()).expect("begin");
    let report = t.install(&fx.batch).expect("install");
    assert_eq!(report.unpacked.len(), 3);
    let view = t.view().to_path_buf();

    // Right after unpacking: the new packages' stanzas, byte for byte.
    let (a, b) = (stanzas(&theirs), stanzas(&view));
    for name in ["kod-conf", "kod-lib", "kod-shipper"] {
        assert!(a.contains_key(name), "dpkg did not register {name}");
        assert_eq!(b.get(name), a.get(name), "status stanza of {name}");
    }
    // dpkg's normalisations, which kod must have made too.
    assert!(
        a["kod-conf"].contains("\nDepends: kod-lib (>= 1.0) | kod-other, kod-watch (<< 2)\n"),
        "{}",
        a["kod-conf"]
    );
    assert!(
        a["kod-conf"].contains("\nPriority: optional\n") && !a["kod-conf"].contains("Essential")
    );
    assert!(a["kod-conf"].contains("Conffiles:\n /etc/kod-conf.conf newconffile\n /etc/kod-gone.conf newconffile remove-on-upgrade\n"), "{}", a["kod-conf"]);
    assert!(a["kod-shipper"].contains("Version: 2.0\n"));
    // info files (list, md5sums generated or shipped, scripts and their
    // modes, M-A: same naming), trigger interests; dpkg recorded the
    // activations in the status file at once, kod left them in
    // triggers/Unincorp for dpkg: compared after configuring.
    let (mut da, mut db) = (db_files(&theirs), db_files(&view));
    let unincorp =
        fs::read_to_string(view.join("var/lib/dpkg/triggers/Unincorp")).expect("Unincorp");
    assert!(unincorp.contains("kod-trig -\n"), "{unincorp}");
    assert!(
        unincorp.contains("/usr/share/kod-watched kod-shipper\n"),
        "{unincorp}"
    );
    da.remove(Path::new("triggers/Unincorp"));
    db.remove(Path::new("triggers/Unincorp"));
    assert_same_tree(&da, &db, "dpkg database after unpacking");
    assert!(db.contains_key(Path::new(&format!("info/kod-lib:{}.list", arch()))));
    assert_eq!(db[Path::new("info/kod-conf.prerm")].mode, 0o755);
    assert_same_tree(&files(&theirs), &files(&view), "unpacked files");
    assert!(view.join("etc/kod-conf.conf.dpkg-new").is_file());

    // dpkg configures kod's registration and runs the triggers kod left.
    let out_a = dpkg(&theirs, &["--configure", "-a"]);
    let out_b = dpkg(&view, &["--configure", "-a"]);
    for out in [&out_a, &out_b] {
        assert!(out.contains("Processing triggers for kod-watch"), "{out}");
    }
    assert_eq!(
        fs::read_to_string(view.join("var/lib/dpkg/status")).expect("status"),
        fs::read_to_string(theirs.join("var/lib/dpkg/status")).expect("status"),
        "status after dpkg --configure -a"
    );
    assert_same_tree(
        &db_files(&theirs),
        &db_files(&view),
        "dpkg database after configuring",
    );
    assert_same_tree(&files(&theirs), &files(&view), "files after configuring");
    let audit = run(Command::new("dpkg")
        .arg(format!("--root={}", view.display()))
        .arg("--audit"));
    assert_eq!(audit, "");

    // Dropped without commit: the root is as it was, nothing left.
    drop(t);
    assert_same_tree(&before, &snapshot(&ours), "root after rollback");
    assert_eq!(leftovers(&ours), Vec::<PathBuf>::new());
    assert!(mounts_under(tmp.path()).is_empty());
}

/// A transaction making a new root at `root` for the host's architecture.
fn bootstrap(root: &Path, options: &Options) -> Result<Transaction, Error> {
    Transaction::bootstrap(root, &BootstrapOptions::new(&arch()), options)
}

/// What a new root holds before any package: an empty dpkg status and the
/// merged-/usr links.
fn assert_empty_skeleton(root: &Path) {
    assert_eq!(
        fs::read_to_string(root.join("var/lib/dpkg/status")).expect("status"),
        ""
    );
    assert_eq!(
        fs::read_link(root.join("bin")).expect("bin"),
        Path::new("usr/bin")
    );
}

/// Options for a transaction that fails at once when its root is busy.
fn no_wait() -> Options {
    Options {
        no_wait: true,
        ..Options::default()
    }
}

/// Drops `held` (a lock, or what keeps one) from another thread after
/// 800 ms: what [`waited`] waits for.
fn drop_later<T: Send + 'static>(held: T) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(800));
        drop(held);
    })
}

/// `begin()`, asserting that it waited (for [`drop_later`]).
#[track_caller]
fn waited<T>(begin: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let t = begin();
    assert!(
        start.elapsed() >= Duration::from_millis(700),
        "did not wait"
    );
    t
}

#[test]
fn root_second_transaction_waits_or_fails_clearly() {
    let Some(tmp) = root_tmp() else { return };
    let root = tmp.path().join("new-root");
    let first = bootstrap(&root, &Options::default()).expect("first");
    match bootstrap(&root, &no_wait()) {
        Err(e @ Error::Locked { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("pid {}", std::process::id())),
                "{msg}"
            );
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    // A waiting one gets the root once the first is done.
    let holder = drop_later(first);
    let second = waited(|| bootstrap(&root, &Options::default()).expect("second waits"));
    holder.join().expect("holder");
    drop(second);
    assert!(!root.exists());
    assert_eq!(leftovers(&root), Vec::<PathBuf>::new());
}

/// apt or dpkg working in a root holds its dpkg frontend lock (an `fcntl`
/// lock): a transaction on the root must fail clearly with --no-wait, or
/// wait until the lock is released.
#[test]
fn root_dpkg_in_use_in_the_root_is_refused_or_waited_for() {
    let Some(tmp) = root_tmp() else { return };
    let root = tmp.path().join("root");
    dpkg_root(&root);
    let lock_file = root.join("var/lib/dpkg/lock-frontend");
    fs::write(&lock_file, "").expect("lock file, as dpkg leaves it");
    let before = snapshot(&root);
    // The holder: another process (fcntl locks of one process never
    // conflict with each other), holding the lock until its stdin closes.
    let mut holder = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "dpkg_frontend_lock_holder",
            "--ignored",
            "--nocapture",
        ])
        .env("KOD_LOCK_HOLDER_FILE", &lock_file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the lock holder");
    let mut out = std::io::BufReader::new(holder.stdout.take().expect("stdout"));
    let mut line = String::new();
    while !line.starts_with("locked") {
        line.clear();
        let n = std::io::BufRead::read_line(&mut out, &mut line).expect("read the holder");
        assert!(n > 0, "the lock holder ended without taking the lock");
    }
    match Transaction::begin(&root, &no_wait()) {
        Err(e @ Error::Db(kod_db::Error::DpkgLocked { .. })) => {
            let msg = e.to_string();
            assert!(msg.contains("apt or dpkg"), "{msg}");
            assert!(msg.contains(&lock_file.display().to_string()), "{msg}");
        }
        other => panic!("expected DpkgLocked, got {other:?}"),
    }
    assert_same_tree(
        &before,
        &snapshot(&root),
        "root after the refused transaction",
    );
    // A waiting transaction begins once the holder lets go.
    let release = drop_later(holder.stdin.take().expect("stdin"));
    let t = waited(|| Transaction::begin(&root, &Options::default()).expect("waits, then begins"));
    release.join().expect("release");
    assert!(holder.wait().expect("holder").success());
    drop(t);
    assert_same_tree(
        &before,
        &snapshot(&root),
        "root after the dropped transaction",
    );
    assert_eq!(leftovers(&root), Vec::<PathBuf>::new());
}

#[test]
#[ignore = "helper: run as a child process by root_dpkg_in_use_in_the_root_is_refused_or_waited_for"]
fn dpkg_frontend_lock_holder() {
    let path = std::env::var_os("KOD_LOCK_HOLDER_FILE").expect("run by the lock test only");
    let file = fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open the lock file");
    rustix::fs::fcntl_lock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .expect("lock");
    println!("locked");
    // Holds the lock until the test closes our stdin.
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
}

#[test]
fn root_new_root_skeleton_and_debug_leave_nothing() {
    let Some(tmp) = root_tmp() else { return };
    let root = tmp.path().join("r");
    let t = bootstrap(&root, &Options::default()).expect("bootstrap");
    let view = t.view().to_path_buf();
    assert!(view.starts_with(tmp.path()) && view != root);
    assert_eq!(
        fs::read_to_string(view.join("var/lib/dpkg/arch")).expect("arch"),
        format!("{}\n", arch())
    );
    assert_empty_skeleton(&view);
    let null = fs::symlink_metadata(view.join("dev/null")).expect("dev/null");
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    assert_eq!(null.mode() & 0o7777, 0o666);
    assert_eq!(
        fs::metadata(view.join("tmp")).expect("tmp").mode() & 0o7777,
        0o1777
    );
    // Nothing but the lock next to the root while it runs.
    assert!(!root.exists());
    drop(t);
    assert!(!root.exists());
    assert_eq!(leftovers(&root), Vec::<PathBuf>::new());

    // debug: commands printed, not run; commit leaves the root absent.
    let debug = Options {
        debug: true,
        ..Options::default()
    };
    let t = bootstrap(&root, &debug).expect("bootstrap");
    let report = t.commit().expect("commit");
    assert!(!report.committed);
    assert!(!root.exists());
    assert_eq!(leftovers(&root), Vec::<PathBuf>::new());
    assert!(processes_in(tmp.path()).is_empty());
}

#[test]
fn root_interrupted_commit_is_completed_and_unmarked_work_thrown_away() {
    let Some(tmp) = root_tmp() else { return };
    let root = tmp.path().join("r");
    dpkg_root(&root);
    fs::create_dir_all(root.join("etc/old")).expect("mkdir");
    fs::write(root.join("etc/gone"), "gone").expect("gone");
    fs::write(root.join("etc/old/kept"), "kept").expect("kept");
    fs::write(root.join("etc/changed"), "before").expect("changed");
    // What a kod killed half-way through moving its overlay's upper layer
    // onto the root leaves: the upper layer (a whiteout for etc/gone, a
    // changed file, a new directory) and the commit marker.
    let txn = tmp.path().join(".r.kod-txn-4242");
    let upper = txn.join("upper");
    fs::create_dir_all(upper.join("etc/new")).expect("mkdir");
    fs::write(upper.join("etc/changed"), "after").expect("changed");
    fs::write(upper.join("etc/new/file"), "new").expect("new");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        upper.join("etc/gone").as_path(),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0),
        0,
    )
    .expect("whiteout");
    fs::write(txn.join(".kod-commit"), "").expect("marker");
    // And a transaction killed before committing: thrown away.
    let stale = tmp.path().join(".r.kod-txn-4343");
    fs::create_dir_all(stale.join("upper/etc")).expect("mkdir");
    fs::write(stale.join("upper/etc/never"), "never").expect("never");

    let t = Transaction::begin(&root, &Options::default()).expect("begin");
    drop(t);
    for (path, content) in [
        ("etc/changed", "after"),
        ("etc/new/file", "new"),
        ("etc/old/kept", "kept"),
    ] {
        assert_eq!(fs::read_to_string(root.join(path)).expect(path), content);
    }
    assert!(!root.join("etc/gone").exists());
    assert!(!root.join("etc/never").exists());
    assert!(!txn.exists() && !stale.exists());
    assert_eq!(leftovers(&root), Vec::<PathBuf>::new());
}

/// Unmounts on drop (also when the test fails).
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(self.0.as_path(), rustix::mount::UnmountFlags::DETACH);
    }
}

#[test]
fn root_new_root_on_an_empty_mount_point_is_built_inside_it() {
    let Some(tmp) = root_tmp() else { return };
    let root = tmp.path().join("mnt");
    fs::create_dir(&root).expect("mkdir");
    rustix::mount::mount(
        c"tmpfs",
        root.as_path(),
        c"tmpfs",
        rustix::mount::MountFlags::empty(),
        None,
    )
    .expect("mount tmpfs");
    let _guard = Mounted(root.clone());
    let t = bootstrap(&root, &Options::default()).expect("bootstrap");
    // Built on the mount point's own file system, inside it.
    assert!(t.view().starts_with(&root), "{}", t.view().display());
    let report = t.commit().expect("commit");
    assert!(report.committed && report.moved > 0);
    assert_empty_skeleton(&root);
    assert_eq!(leftovers(&root), Vec::<PathBuf>::new());
    assert_eq!(
        mounts_under(&root),
        vec![root.display().to_string()],
        "only the test's tmpfs"
    );
}

#[test]
fn root_existing_root_that_is_not_debian_is_refused() {
    let Some(tmp) = root_tmp() else { return };
    let root = tmp.path().join("r");
    fs::create_dir(&root).expect("mkdir");
    fs::write(root.join("x"), "x").expect("x");
    match Transaction::begin(&root, &Options::default()) {
        Err(e @ Error::Target { .. }) => {
            assert!(e.to_string().contains("not a Debian root"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    match Transaction::bootstrap(&root, &BootstrapOptions::new("amd64"), &Options::default()) {
        Err(e @ Error::Target { .. }) => assert!(e.to_string().contains("not empty"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(leftovers(&root), Vec::<PathBuf>::new());
}
