//! The atomic-write scheme across processes: two processes writing one
//! path many times always leave one complete version and no temporary;
//! temporaries of a killed process are removed by a later run, those of
//! a live one kept.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use kod_root::{AtomicFile, Root, remove_stale_temporaries, write_atomic};

const CHILD: &str = "KOD_ROOT_WRITER_CHILD";
const WRITES: u32 = 300;

/// Version `n` of writer `id`: a header, a body long enough that a torn
/// write would show, and a trailer.
fn version(id: &str, n: u32) -> Vec<u8> {
    let mut v = format!("{id} {n}\n").into_bytes();
    let line = format!("{id}:{n}:").repeat(64);
    for _ in 0..(2 + n % 7) * 64 {
        v.extend_from_slice(line.as_bytes());
        v.push(b'\n');
    }
    v.extend_from_slice(format!("end {id} {n}\n").as_bytes());
    v
}

/// Whether `data` is one whole version, as [`version`] writes them.
fn whole(data: &[u8]) -> Result<(), String> {
    let head = data
        .split(|&b| b == b'\n')
        .next()
        .and_then(|l| std::str::from_utf8(l).ok())
        .ok_or("no header")?;
    let (id, n) = head.split_once(' ').ok_or("bad header")?;
    let n: u32 = n.parse().map_err(|_| format!("bad header {head:?}"))?;
    if data == version(id, n) {
        Ok(())
    } else {
        Err(format!(
            "version {head:?} is not whole ({} bytes)",
            data.len()
        ))
    }
}

/// The child half: writes `WRITES` versions, through the host scheme or
/// through a [`Root`]. Ignored in normal runs: only the test below starts
/// it (with `--ignored`).
#[test]
#[ignore = "child process of concurrent_atomic_writes_from_two_processes_*"]
fn writer_child() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let mut parts = spec.splitn(3, '\n');
    let (how, id, path) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        PathBuf::from(parts.next().unwrap()),
    );
    let root = Root::open(path.parent().unwrap()).unwrap();
    let name = path.file_name().unwrap();
    for n in 0..WRITES {
        let data = version(id, n);
        match how {
            "host" => write_atomic(&path, &data).unwrap(),
            _ => root.write(name, &data, 0o644).unwrap(),
        }
    }
}

fn spawn(how: &str, id: &str, path: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "writer_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, format!("{how}\n{id}\n{}", path.display()))
        .spawn()
        .unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn concurrent_atomic_writes_from_two_processes_leave_one_whole_version() {
    for how in ["host", "root"] {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("record.json");
        write_atomic(&path, &version("start", 0)).unwrap();
        let mut children = [spawn(how, "a", &path), spawn(how, "b", &path)];
        let mut reads = 0u32;
        let start = Instant::now();
        loop {
            let data = fs::read(&path).unwrap();
            whole(&data).unwrap_or_else(|e| panic!("{how}: read {reads}: {e}"));
            reads += 1;
            let done: Vec<bool> = children
                .iter_mut()
                .map(|c| c.try_wait().unwrap().is_some())
                .collect();
            if done.iter().all(|d| *d) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "{how}: writers hang"
            );
        }
        for c in &mut children {
            assert!(c.wait().unwrap().success(), "{how}: a writer failed");
        }
        let last = fs::read(&path).unwrap();
        whole(&last).unwrap();
        assert!(
            last == version("a", WRITES - 1) || last == version("b", WRITES - 1),
            "{how}: the last write of one of them wins"
        );
        assert_eq!(names(d.path()), ["record.json"], "{how}: temporaries left");
        assert!(reads > 1, "{how}: the reader saw the writes");
    }
}

/// A process id that is not running: a child that has exited (and been
/// waited for).
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    c.wait().unwrap();
    c.id()
}

#[test]
fn temporaries_of_dead_processes_are_removed_and_live_ones_kept() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("cache");
    let canary = base.path().join("canary");
    fs::create_dir_all(&dir).unwrap();
    fs::create_dir_all(&canary).unwrap();
    fs::write(canary.join("keep"), "keep").unwrap();
    let dead = dead_pid();
    let mut live = Command::new("sleep").arg("60").spawn().unwrap();
    let live_pid = live.id();
    // A killed writer's file, and a killed build's directory tree (with
    // symlinks out that must not be followed).
    fs::write(dir.join(format!(".index.kod-tmp-{dead}-{dead}-3")), "part").unwrap();
    let tree = dir.join(format!(".sid.kod-tmp-{dead}"));
    fs::create_dir_all(tree.join("root/usr/bin")).unwrap();
    fs::write(tree.join("root/usr/bin/hello"), "x").unwrap();
    symlink(&canary, tree.join("root/out")).unwrap();
    symlink(canary.join("keep"), tree.join("root/keep")).unwrap();
    // Temporaries of live processes: another one's, and this one's.
    let theirs = format!(".index.kod-tmp-{live_pid}-{live_pid}-9");
    fs::write(dir.join(&theirs), "busy").unwrap();
    let mut ours = AtomicFile::create(&dir.join("blob")).unwrap();
    std::io::Write::write_all(&mut ours, b"being written").unwrap();
    // Not kod temporaries at all.
    for other in [".env.json.new", "blob.kod-tmp-1", "plain"] {
        fs::write(dir.join(other), "other").unwrap();
    }
    let mut removed = remove_stale_temporaries(&dir).unwrap();
    removed.sort();
    let mut expected = vec![
        dir.join(format!(".index.kod-tmp-{dead}-{dead}-3")),
        tree.clone(),
    ];
    expected.sort();
    assert_eq!(removed, expected);
    let left = names(&dir);
    assert_eq!(left.len(), 5, "{left:?}");
    assert!(left.contains(&theirs));
    assert!(left.iter().any(|n| n.starts_with(".blob.kod-tmp-")));
    assert_eq!(fs::read_to_string(canary.join("keep")).unwrap(), "keep");
    // The live writer finishes normally.
    ours.commit().unwrap();
    assert_eq!(
        fs::read_to_string(dir.join("blob")).unwrap(),
        "being written"
    );
    // Once the other process is gone too, its temporary goes.
    live.kill().unwrap();
    live.wait().unwrap();
    assert_eq!(remove_stale_temporaries(&dir).unwrap(), [dir.join(&theirs)]);
    assert_eq!(
        names(&dir),
        [".env.json.new", "blob", "blob.kod-tmp-1", "plain"]
    );
    // A directory that does not exist has nothing to clean.
    assert!(
        remove_stale_temporaries(&base.path().join("none"))
            .unwrap()
            .is_empty()
    );
}

/// A mount below a killed build's directory (a bind mount of a directory
/// on the same file system, the dangerous kind) is never entered: that
/// temporary is left, with an error saying why.
#[test]
fn root_stale_temporaries_with_a_mount_below_are_left() {
    if !kod_testkit::tier(kod_testkit::Tier::Root) {
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("store");
    let home = base.path().join("home");
    fs::create_dir_all(&home).unwrap();
    fs::write(home.join("precious"), "keep").unwrap();
    let tree = dir.join(format!(".env.kod-tmp-{}", dead_pid()));
    fs::create_dir_all(tree.join("root/home")).unwrap();
    let mounted = tree.join("root/home");
    let ok = Command::new("mount")
        .arg("--bind")
        .arg(&home)
        .arg(&mounted)
        .status()
        .unwrap();
    assert!(ok.success());
    let result = remove_stale_temporaries(&dir);
    let unmounted = Command::new("umount").arg(&mounted).status().unwrap();
    assert!(unmounted.success());
    let e = result.unwrap_err();
    assert!(e.to_string().contains("mounted"), "{e}");
    assert_eq!(fs::read_to_string(home.join("precious")).unwrap(), "keep");
    // Unmounted, it goes.
    assert_eq!(remove_stale_temporaries(&dir).unwrap(), [tree]);
}
