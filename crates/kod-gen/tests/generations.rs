//! Generations on a real Btrfs top level (a loop-mounted image): the
//! layout, numbers, the default pointer, leftovers, the top-level check,
//! the file system's UUID. Root tier: `KOD_TEST_ROOT=1`.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use kod_gen::{BUILDING, Error, POINTER, RECORD_COMPLETE, Record, Top};
use kod_testkit::Tier;
use kod_testkit::btrfs::Btrfs;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A record that names its generation, so records can be told apart.
fn record(n: u64) -> Record {
    Record {
        enabled_services: vec![format!("gen{n}.service")],
        configuration: serde_json::json!({ "generation": n }),
        kod_version: "0.1.0".into(),
        config_files: vec![("configuration.lua".into(), b"return {}\n".to_vec())],
        ..Record::default()
    }
}

/// A committed generation with a file in its root.
fn commit(top: &Top) -> u64 {
    let n = top.allocate().expect("allocate");
    let root = top.create_rootfs(n).expect("rootfs");
    fs::write(root.join(".generation"), format!("{n}\n")).expect("root file");
    record(n).write(top, n).expect("record");
    n
}

/// Mode bits and kind of every directory of the layout, and the subvolumes.
fn layout(fs: &Btrfs) -> Vec<String> {
    let mut out = fs.subvolumes();
    for rel in [
        "generations",
        "store",
        "store/home",
        "store/root",
        "store/var",
        "store/var/log",
        "store/var/tmp",
        "store/var/cache",
        "store/var/kod",
    ] {
        let m = fs::symlink_metadata(fs.path().join(rel)).expect(rel);
        assert!(m.is_dir(), "{rel}");
        out.push(format!("{rel} {:o} ino {}", m.mode() & 0o7777, m.ino()));
    }
    out
}

#[test]
fn root_prepare_twice_gives_the_same_layout() {
    if !kod_testkit::tiers(&[Tier::Root]) {
        return;
    }
    let fs = Btrfs::new();
    let top = Top::open(fs.path()).expect("open");
    top.prepare().expect("prepare");
    let first = layout(&fs);
    assert_eq!(fs.subvolumes(), vec!["store/home".to_owned()]);
    let mode = |rel: &str| {
        fs::metadata(fs.path().join(rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("store/root"), 0o700);
    assert_eq!(mode("store/var/tmp"), 0o1777);
    assert_eq!(mode("store/var/kod"), 0o755);
    assert!(kod_root::btrfs::is_subvolume(&fs.path().join("store/home")));
    // A file in home survives a second prepare, and nothing changes.
    fs::write(fs.path().join("store/home/kept"), "x").unwrap();
    top.prepare().expect("prepare again");
    assert_eq!(layout(&fs), first);
    assert!(fs.path().join("store/home/kept").exists());
    // The wrong kind of thing where the layout wants a subvolume is refused.
    let other = Btrfs::new();
    fs::create_dir_all(other.path().join("store/home")).unwrap();
    let e = Top::open(other.path()).unwrap().prepare().unwrap_err();
    assert!(matches!(e, Error::Layout { .. }), "{e}");
    assert!(e.to_string().contains("store/home"), "{e}");
}

#[test]
fn root_numbers_are_never_reused_after_deleting_the_highest() {
    if !kod_testkit::tiers(&[Tier::Root]) {
        return;
    }
    let fs = Btrfs::new();
    let top = Top::open(fs.path()).expect("open");
    top.prepare().expect("prepare");
    assert_eq!(top.highest().unwrap(), None);
    assert_eq!(commit(&top), 0);
    assert_eq!(commit(&top), 1);
    assert_eq!(commit(&top), 2);
    top.set_default(0).unwrap();
    assert_eq!(top.generations().unwrap(), vec![0, 1, 2]);
    top.delete(2).expect("delete 2");
    assert!(!top.generation_dir(2).exists());
    assert_eq!(top.generations().unwrap(), vec![0, 1]);
    assert!(!fs.subvolumes().contains(&"generations/2/rootfs".to_owned()));
    assert_eq!(commit(&top), 3, "2 was used once: never again");
    // Deleting every generation above the default still does not reuse.
    top.delete(3).unwrap();
    top.delete(1).unwrap();
    assert_eq!(top.generations().unwrap(), vec![0]);
    assert_eq!(top.allocate().unwrap(), 4);
    // The default is not deleted.
    let e = top.delete(0).unwrap_err();
    assert!(matches!(e, Error::IsDefault { generation: 0 }), "{e}");
    assert!(top.is_committed(0));
    // The record of a generation reads back as written.
    assert_eq!(Record::read(&top, 0).unwrap(), record(0));
    // A lost .highest still never goes below the directories there.
    fs::remove_file(fs.path().join(kod_gen::HIGHEST)).unwrap();
    assert_eq!(top.allocate().unwrap(), 5);
}

#[test]
fn root_the_default_pointer_moves_atomically_and_keeps_history() {
    if !kod_testkit::tiers(&[Tier::Root]) {
        return;
    }
    let fs = Btrfs::new();
    let top = Top::open(fs.path()).expect("open");
    top.prepare().expect("prepare");
    assert_eq!(top.default().unwrap(), None);
    assert_eq!(top.previous_default().unwrap(), None);
    for _ in 0..4 {
        let n = commit(&top);
        top.set_default(n).unwrap();
    }
    assert_eq!(top.default().unwrap(), Some(3));
    assert_eq!(top.previous_default().unwrap(), Some(2));
    assert_eq!(top.pointer().unwrap().unwrap().previous, vec![2, 1, 0]);
    let text = fs::read_to_string(fs.path().join(POINTER)).unwrap();
    assert!(
        text.contains("default 3\nprevious 2\nprevious 1\nprevious 0\n"),
        "{text}"
    );

    // A reader never sees a partial pointer while it is replaced 300 times.
    let path = fs.path().join(POINTER);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut reads = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = fs::read_to_string(&path).expect("the pointer is always there");
                let p = kod_gen::Pointer::parse(&t)
                    .unwrap_or_else(|e| panic!("a partial pointer {t:?}: {e}"));
                assert!(p.default <= 3);
                reads += 1;
            }
            reads
        });
        for i in 0..300u64 {
            top.set_default(i % 4).unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    });
    // 299 % 4 == 3; the history never repeats a number.
    let p = top.pointer().unwrap().unwrap();
    assert_eq!(p.default, 3);
    assert_eq!(p.previous, vec![2, 1, 0]);
    let names: Vec<String> = fs::read_dir(top.generations_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!names.iter().any(|n| n.contains("kod-tmp")), "{names:?}");

    // Rollback walks the history and skips a deleted generation.
    top.delete(2).unwrap();
    assert_eq!(top.previous_default().unwrap(), Some(1));
    assert_eq!(top.roll_back_default().unwrap(), 1);
    assert_eq!(top.default().unwrap(), Some(1));
    assert_eq!(top.roll_back_default().unwrap(), 0);
    let e = top.roll_back_default().unwrap_err();
    assert!(matches!(e, Error::NoPrevious), "{e}");
    assert_eq!(top.default().unwrap(), Some(0));
}

/// What a kod killed while writing generation `n`'s record leaves: its
/// root (with a nested subvolume, as systemd makes) and part of a record.
#[test]
fn root_a_machine_whose_first_install_failed_starts_at_0_again() {
    if !kod_testkit::tiers(&[Tier::Root]) {
        return;
    }
    let fs = Btrfs::new();
    let top = Top::open(fs.path()).expect("open");
    top.prepare().expect("prepare");
    // A first install that failed: its number given, its directory gone.
    assert_eq!(killed(&top), 0);
    assert!(
        !top.forget_unused_numbers().unwrap(),
        "0 is still being built"
    );
    top.remove_leftovers().unwrap();
    assert!(top.forget_unused_numbers().unwrap());
    assert_eq!(commit(&top), 0);
    top.set_default(0).unwrap();
    // Once a generation exists, numbers are never forgotten.
    assert!(!top.forget_unused_numbers().unwrap());
    assert_eq!(killed(&top), 1);
    top.remove_leftovers().unwrap();
    assert!(!top.forget_unused_numbers().unwrap());
    assert_eq!(commit(&top), 2);
}

fn killed(top: &Top) -> u64 {
    let n = top.allocate().unwrap();
    let root = top.create_rootfs(n).unwrap();
    fs::create_dir_all(root.join("var/lib")).unwrap();
    kod_root::btrfs::create(&root.join("var/lib/machines")).unwrap();
    fs::write(top.generation_dir(n).join("installed_packages"), "{\"offi").unwrap();
    n
}

#[test]
fn root_set_default_refuses_an_incomplete_generation() {
    if !kod_testkit::tiers(&[Tier::Root]) {
        return;
    }
    let fs = Btrfs::new();
    let top = Top::open(fs.path()).expect("open");
    top.prepare().expect("prepare");
    let good = commit(&top);
    top.set_default(good).unwrap();
    let before = fs::read(fs.path().join(POINTER)).unwrap();
    let n = killed(&top);
    let e = top.set_default(n).unwrap_err();
    assert!(
        matches!(e, Error::Incomplete { generation, .. } if generation == n),
        "{e}"
    );
    assert!(e.to_string().contains(RECORD_COMPLETE), "{e}");
    let e = Record::read(&top, n).unwrap_err();
    assert!(matches!(e, Error::Incomplete { .. }), "{e}");
    let e = top.set_default(99).unwrap_err();
    assert!(
        matches!(e, Error::NoGeneration { generation: 99, .. }),
        "{e}"
    );
    assert_eq!(fs::read(fs.path().join(POINTER)).unwrap(), before);
    assert_eq!(top.generations().unwrap(), vec![good]);
    // A committed generation's record is never rewritten.
    let e = record(good).write(&top, good).unwrap_err();
    assert!(matches!(e, Error::Committed { .. }), "{e}");
}

#[test]
fn root_a_killed_write_is_removed_by_remove_leftovers_and_nothing_else() {
    if !kod_testkit::tiers(&[Tier::Root]) {
        return;
    }
    let fs = Btrfs::new();
    let top = Top::open(fs.path()).expect("open");
    top.prepare().expect("prepare");
    let zero = commit(&top);
    let one = commit(&top);
    top.set_default(one).unwrap();
    let two = killed(&top);
    // A kod killed inside allocate leaves a temporary directory; one
    // killed before its record leaves a bare allocated generation.
    let temp = top.generations_dir().join(".9.kod-tmp-999999");
    fs::create_dir(&temp).unwrap();
    fs::write(temp.join(BUILDING), "").unwrap();
    let three = top.allocate().unwrap();
    // A numbered directory kod did not make (a KodOS generation) is not
    // kod's to remove.
    let foreign = top.generation_dir(40);
    fs::create_dir(&foreign).unwrap();
    fs::write(foreign.join("installed_packages"), "{}").unwrap();
    fs::write(fs.path().join("store/var/kod/kept"), "x").unwrap();

    assert_eq!(top.leftovers().unwrap(), vec![two, three]);
    assert_eq!(top.generations().unwrap(), vec![zero, one]);
    let before: Vec<String> = fs.subvolumes();
    assert!(before.contains(&format!("generations/{two}/rootfs/var/lib/machines")));

    let removed = top.remove_leftovers().expect("remove leftovers");
    assert_eq!(removed.len(), 3, "{removed:?}");
    assert!(!top.generation_dir(two).exists());
    assert!(!top.generation_dir(three).exists());
    assert!(!temp.exists());
    assert!(foreign.join("installed_packages").exists());
    assert!(fs.path().join("store/var/kod/kept").exists());
    assert_eq!(
        fs.subvolumes(),
        vec![
            "generations/0/rootfs".to_owned(),
            "generations/1/rootfs".to_owned(),
            "store/home".to_owned()
        ]
    );
    for n in [zero, one] {
        assert_eq!(Record::read(&top, n).unwrap(), record(n));
        assert_eq!(
            fs::read_to_string(top.rootfs(n).join(".generation")).unwrap(),
            format!("{n}\n")
        );
    }
    assert_eq!(top.default().unwrap(), Some(one));
    assert_eq!(top.leftovers().unwrap(), Vec::<u64>::new());
    assert_eq!(
        top.remove_leftovers().unwrap(),
        Vec::<std::path::PathBuf>::new()
    );
    // Numbers are not reused after a leftover either.
    assert_eq!(top.allocate().unwrap(), 41);

    // A leftover with a mount inside is left, and the error says why.
    let four = killed(&top);
    let inside = top.rootfs(four).join("proc");
    fs::create_dir(&inside).unwrap();
    run(Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&inside));
    let e = top.remove_leftovers().unwrap_err();
    let _ = Command::new("umount").arg(&inside).status();
    assert!(matches!(e, Error::Mounted { .. }), "{e}");
    assert!(top.rootfs(four).exists());
    top.remove_leftovers().unwrap();
    assert!(!top.generation_dir(four).exists());
}

/// On Btrfs only the top level is a machine's: a directory or subvolume
/// below it is refused, not taken for the directory backend (the
/// directory backend is for file systems that are not Btrfs:
/// `directory.rs`).
#[test]
fn root_open_refuses_a_non_top_level_btrfs_path() {
    if !kod_testkit::tiers(&[Tier::Root]) {
        return;
    }
    let fs = Btrfs::new();
    let top = Top::open(fs.path()).expect("the top level opens");
    assert_eq!(top.backend(), kod_gen::Backend::Btrfs);
    assert!(top.boots());
    top.prepare().unwrap();
    // A directory inside the top level.
    let e = Top::open(fs.path().join("generations")).unwrap_err();
    assert!(matches!(e, Error::NotTopLevel { .. }), "{e}");
    assert!(e.to_string().contains("subvolid=5"), "{e}");
    // A subvolume reached through the top level.
    let e = Top::open(fs.path().join("store/home")).unwrap_err();
    assert!(matches!(e, Error::NotTopLevel { .. }), "{e}");
    // The file system mounted with subvol=: a subvolume, not the top.
    let sub = fs.mount_subvolume("store/home");
    let e = Top::open(&sub).unwrap_err();
    assert!(matches!(e, Error::NotTopLevel { .. }), "{e}");
    assert!(e.to_string().contains("subvolume 256"), "{e}");
    assert!(e.to_string().contains(&sub.display().to_string()), "{e}");
}

#[test]
fn root_fs_uuid_is_what_blkid_says() {
    if !kod_testkit::tiers(&[Tier::Root]) {
        return;
    }
    let fs = Btrfs::new();
    let blkid = run(Command::new("blkid")
        .args(["-s", "UUID", "-o", "value"])
        .arg(fs.device()));
    let uuid = kod_root::btrfs::fs_uuid(fs.path()).expect("fs_uuid");
    assert_eq!(uuid, blkid.trim());
    assert_eq!(uuid.len(), 36);
    // Any path on it has the same UUID.
    let top = Top::open(fs.path()).unwrap();
    top.prepare().unwrap();
    assert_eq!(
        kod_root::btrfs::fs_uuid(&fs.path().join("store/home")).unwrap(),
        uuid
    );
    assert_eq!(kod_root::btrfs::subvolume_id(fs.path()).unwrap(), 5);
    // Another file system has another UUID.
    let other = Btrfs::new();
    assert_ne!(kod_root::btrfs::fs_uuid(other.path()).unwrap(), uuid);
    // The fstab names it.
    let text = kod_gen::fstab(&uuid, 3, &[]);
    assert!(text.contains(&format!("UUID={uuid} / btrfs subvol=generations/3/rootfs")));
    // The machine's fstab is that one, with blkid's UUID.
    let text = top.fstab(3, &[]).unwrap();
    assert!(text.contains(&format!(
        "UUID={} / btrfs subvol=generations/3/rootfs",
        blkid.trim()
    )));
}

#[test]
fn root_the_machine_lock_waits_for_another_process_and_names_it() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    use std::time::Duration;

    if !kod_testkit::tiers(&[Tier::Root]) {
        return;
    }
    let fs = Btrfs::new();
    let top = Top::open(fs.path()).expect("open");
    // No layout yet: the lock makes generations/ and its file.
    let lock = top.lock_path();
    assert_eq!(lock, fs.path().join(kod_gen::LOCK));
    drop(top.try_lock("test").expect("a free lock"));
    assert!(lock.is_file());

    // Another process holds it (flock(1)), and names itself as kod does.
    let mut child = Command::new("flock")
        .arg(&lock)
        .args([
            "sh",
            "-c",
            r#"printf '4242 rebuild\n' > "$0"; echo held; read x"#,
        ])
        .arg(&lock)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("flock");
    let mut held = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut held)
        .unwrap();
    assert_eq!(held, "held\n");

    let e = top.try_lock("gc").unwrap_err();
    assert!(matches!(e, Error::Locked { .. }), "{e}");
    assert!(
        e.to_string().contains("held by kod pid 4242 (rebuild)"),
        "{e}"
    );

    let rec = kod_report::Recorder::new(false);
    let waiting = top.clone().with_report(kod_report::Report::to(rec.clone()));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(move || {
            let l = waiting.lock("delete").expect("the lock, after waiting");
            tx.send(()).unwrap();
            drop(l);
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(500)).is_err(),
            "took a lock another process holds"
        );
        child.stdin.take().unwrap().write_all(b"\n").unwrap();
        assert!(child.wait().unwrap().success());
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the lock once the other process let go");
    });
    assert_eq!(
        rec.messages(kod_report::Level::Note),
        [format!(
            "waiting for {}: held by kod pid 4242 (rebuild)",
            lock.display()
        )]
    );
    // Free again, and layout still prepares around the lock file.
    drop(top.try_lock("test").unwrap());
    top.prepare().expect("prepare after the lock");
}
