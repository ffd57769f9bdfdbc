//! `kod generations` on a loop-mounted Btrfs (root tier): generations are
//! made directly through kod-gen (an empty root with one file, a record
//! with a few fake locked packages), so no package is installed.
//!
//! The running system is a root of the test's own (`KOD_RUNNING_ROOT`): a
//! directory holding `.generation` and the top level bind-mounted at
//! `kod/`, as a kod machine's `/` has it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Output, Stdio};
use std::time::Duration;

mod common;

use common::run_ok;
use kod_gen::{InstalledPackages, LockedPackage, Record, Top};
use kod_testkit::btrfs::Btrfs;
use kod_testkit::{Tier, tiers};
use serde_json::{Value, json};

/// A machine: a Btrfs top level with kod's layout, a cache, and an empty
/// directory as the running system's root (so the host's own `/kod`, if
/// any, never counts).
struct Machine {
    fs: Btrfs,
    cache: tempfile::TempDir,
    no_root: tempfile::TempDir,
}

/// What a generation's record holds, in brief.
#[derive(Clone, Default)]
struct Gen<'a> {
    packages: Vec<(&'a str, &'a str)>,
    kernel: Option<&'a str>,
    services: Vec<&'a str>,
    users: Value,
    files: Vec<(&'a str, &'a str)>,
}

impl Machine {
    fn new() -> Machine {
        let fs = Btrfs::new();
        Top::open(fs.path()).unwrap().prepare().unwrap();
        Machine {
            fs,
            cache: tempfile::tempdir().unwrap(),
            no_root: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.fs.path()
    }

    fn top(&self) -> Top {
        Top::open(self.fs.path()).unwrap()
    }

    /// A committed generation with `g`'s record and `/.generation` in its
    /// root, made the default.
    fn commit(&self, g: &Gen) -> u64 {
        let top = self.top();
        let n = top.allocate().unwrap();
        let root = top.create_rootfs(n).unwrap();
        std::fs::write(root.join(".generation"), format!("{n}\n")).unwrap();
        std::fs::create_dir(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/hostname"), "kod-test\n").unwrap();
        let record = Record {
            installed_packages: InstalledPackages {
                kernel: g.kernel.map(str::to_owned),
                sources: [("official".to_owned(), vec!["less".to_owned()])].into(),
            },
            enabled_services: g.services.iter().map(|s| s.to_string()).collect(),
            packages: g
                .packages
                .iter()
                .map(|(name, version)| LockedPackage {
                    name: name.to_string(),
                    version: version.to_string(),
                    arch: "amd64".into(),
                })
                .collect(),
            configuration: json!({ "source": "configuration.lua", "users": g.users }),
            kod_version: "0.1.0".into(),
            config_files: g
                .files
                .iter()
                .map(|(p, t)| (PathBuf::from(p), t.as_bytes().to_vec()))
                .collect(),
        };
        record.write(&top, n).unwrap();
        top.set_default(n).unwrap();
        n
    }

    /// `n` plain generations, each the default in turn.
    fn commit_plain(&self, n: usize) -> Vec<u64> {
        let g = Gen {
            packages: vec![("base-files", "12.4"), ("libc6", "2.36-9")],
            ..Gen::default()
        };
        (0..n).map(|_| self.commit(&g)).collect()
    }

    /// `kod ARGS` with the running system at `root` (default: none).
    fn kod_in(&self, root: Option<&Path>, args: &[&str]) -> Output {
        assert_cmd::Command::cargo_bin("kod")
            .unwrap()
            .env("KOD_CACHE_DIR", self.cache.path())
            .env("KOD_RUNNING_ROOT", root.unwrap_or(self.no_root.path()))
            .args(args)
            .output()
            .unwrap()
    }

    /// `kod generations ARGS --target TOP`, which must succeed: stdout.
    fn ok(&self, args: &[&str]) -> String {
        let mut all = vec!["generations"];
        all.extend_from_slice(args);
        all.extend(["--target", self.path().to_str().unwrap()]);
        succeeded(&all, self.kod_in(None, &all))
    }

    /// `kod generations ARGS --target TOP`, which must fail: stderr.
    fn fails(&self, args: &[&str]) -> String {
        let mut all = vec!["generations"];
        all.extend_from_slice(args);
        all.extend(["--target", self.path().to_str().unwrap()]);
        failed(&all, self.kod_in(None, &all))
    }

    /// `--json` output, parsed.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    fn default(&self) -> Option<u64> {
        self.top().default().unwrap()
    }

    fn history(&self) -> Vec<u64> {
        self.top().pointer().unwrap().unwrap().previous
    }

    /// Every path of the top level with kind, size, mode and mtime, and
    /// the subvolumes: what a dry run must leave as it was.
    fn manifest(&self) -> (String, Vec<String>) {
        let files = run_ok(
            Process::new("find")
                .arg(self.path())
                .args(["-printf", "%P %y %s %m %T@\n"]),
        );
        let mut lines: Vec<&str> = files.lines().collect();
        lines.sort();
        (lines.join("\n"), self.fs.subvolumes())
    }
}

fn succeeded(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "kod {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn failed(args: &[&str], out: Output) -> String {
    assert!(
        !out.status.success(),
        "kod {args:?} succeeded:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

/// A running system's root: `.generation` says `n`, and the machine's top
/// level is bind-mounted at `kod/` (unmounted when dropped, before the
/// machine is).
struct RunningRoot {
    dir: tempfile::TempDir,
}

impl RunningRoot {
    fn new(m: &Machine, n: u64) -> RunningRoot {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        std::fs::write(dir.path().join(".generation"), format!("{n}\n")).unwrap();
        let kod = dir.path().join("kod");
        std::fs::create_dir(&kod).unwrap();
        run_ok(Process::new("mount").arg("--bind").arg(m.path()).arg(&kod));
        RunningRoot { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for RunningRoot {
    fn drop(&mut self) {
        let kod = self.dir.path().join("kod");
        if !Process::new("umount")
            .arg(&kod)
            .status()
            .is_ok_and(|s| s.success())
        {
            let _ = Process::new("umount").arg("-l").arg(&kod).status();
        }
    }
}

fn user(groups: &[&str], shell: &str) -> Value {
    json!({"full_name": null, "password": "hashed", "home": "/home/x", "shell": shell,
           "groups": groups, "ssh_authorized": [], "services": []})
}

#[test]
fn root_list_shows_each_generation_with_its_marks_as_a_table_and_json() {
    if !tiers(&[Tier::Root]) {
        return;
    }
    let m = Machine::new();
    let g = Gen {
        packages: vec![
            ("base-files", "12.4"),
            ("libc6", "2.36-9"),
            ("linux-image-amd64", "6.1.129-1"),
        ],
        kernel: Some("linux-image-amd64"),
        ..Gen::default()
    };
    assert_eq!(m.commit(&g), 0);
    m.commit_plain(2);
    m.top().set_default(1).unwrap();

    // Not the running system's: no booted or current generation.
    let v = m.json(&["list"]);
    assert_eq!(v["top"], m.path().to_str().unwrap());
    assert_eq!(v["default"], 1);
    assert_eq!(v["last_good"], 2);
    assert_eq!(v["booted"], Value::Null);
    assert_eq!(v["current"], Value::Null);
    assert_eq!(v["previous_defaults"], json!([2, 0]));
    let gens = v["generations"].as_array().unwrap();
    assert_eq!(gens.len(), 3);
    let g0 = &gens[0];
    assert_eq!(g0["number"], 0);
    assert_eq!(g0["packages"], 3);
    assert_eq!(
        g0["kernel"],
        json!({"package": "linux-image-amd64", "version": "6.1.129-1"})
    );
    assert_eq!(g0["kod_version"], "0.1.0");
    let at = g0["committed_unix"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now - at < 600, "{at} vs {now}");
    assert_eq!(g0["committed"], kod_gen::utc(at));
    assert_eq!(gens[1]["kernel"], Value::Null);
    for (g, marks) in gens.iter().zip([
        [false, false, false, false],
        [false, false, true, false],
        [false, false, false, true],
    ]) {
        let got = ["booted", "current", "default", "last_good"].map(|k| g[k].as_bool().unwrap());
        assert_eq!(got, marks, "{g}");
    }
    // `list` is the default action, and --json may come first.
    let plain = m.ok(&[]);
    assert_eq!(m.ok(&["list"]), plain);
    let early: Value = serde_json::from_str(&m.ok(&["--json"])).unwrap();
    assert_eq!(early, v);
    let lines: Vec<&str> = plain.lines().collect();
    assert_eq!(lines.len(), 4, "{plain}");
    assert!(lines[0].starts_with("GEN  COMMITTED (UTC)"), "{plain}");
    assert!(
        lines[1].contains("linux-image-amd64 6.1.129-1") && lines[1].trim_start().starts_with("0 "),
        "{plain}"
    );
    assert!(lines[2].ends_with("  default"), "{plain}");
    assert!(lines[3].ends_with("  last good"), "{plain}");

    // The running system's top level at /kod, generation 0 running.
    let running = RunningRoot::new(&m, 0);
    let out = succeeded(
        &[],
        m.kod_in(Some(running.path()), &["generations", "--json"]),
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["booted"], 0);
    assert_eq!(v["current"], 0);
    assert_eq!(v["generations"][0]["booted"], true);
    assert_eq!(v["generations"][0]["current"], true);
    assert_eq!(v["generations"][1]["booted"], false);
    let table = succeeded(&[], m.kod_in(Some(running.path()), &["generations"]));
    assert!(
        table.lines().nth(1).unwrap().ends_with("  booted, current"),
        "{table}"
    );
    // --target naming the same machine sees the same running system.
    let out = succeeded(
        &[],
        m.kod_in(
            Some(running.path()),
            &[
                "generations",
                "--json",
                "--target",
                m.path().to_str().unwrap(),
            ],
        ),
    );
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["booted"], 0);

    // A running system without a kod top level at /kod: a clear error.
    let err = failed(&[], m.kod_in(None, &["generations"]));
    assert!(
        err.contains("no kod top level at") && err.contains("--target TOP"),
        "{err}"
    );
    // A Btrfs top level without kod's layout.
    let bare = Btrfs::new();
    let out = m.kod_in(
        None,
        &["generations", "--target", bare.path().to_str().unwrap()],
    );
    let err = failed(&[], out);
    assert!(err.contains("not a kod machine's"), "{err}");
}

#[test]
fn root_diff_shows_packages_services_users_and_files() {
    if !tiers(&[Tier::Root]) {
        return;
    }
    let m = Machine::new();
    let a = m.commit(&Gen {
        packages: vec![
            ("base-files", "12.4"),
            ("libc6", "2.36-9"),
            ("nano", "7.2-1"),
        ],
        services: vec!["cron.service", "ssh.service"],
        users: json!({"ann": user(&["wheel"], "/bin/bash"), "bob": user(&[], "/bin/sh")}),
        files: vec![
            ("configuration.lua", "return {}\n"),
            ("modules/old.lua", "x"),
        ],
        ..Gen::default()
    });
    let b = m.commit(&Gen {
        packages: vec![("base-files", "12.4"), ("libc6", "2.36-10"), ("vim", "2:9.0.1378-2")],
        services: vec!["ssh.service", "systemd-networkd.service"],
        users: json!({"ann": user(&["audio", "wheel"], "/bin/bash"), "carol": user(&[], "/bin/sh")}),
        files: vec![("configuration.lua", "return { x = 1 }\n"), ("modules/new.lua", "y")],
        ..Gen::default()
    });
    let (sa, sb) = (a.to_string(), b.to_string());
    let v = m.json(&["diff", &sa, &sb]);
    assert_eq!(
        v,
        json!({
            "from": a, "to": b,
            "packages": {
                "added": [{"name": "vim", "version": "2:9.0.1378-2", "arch": "amd64"}],
                "removed": [{"name": "nano", "version": "7.2-1", "arch": "amd64"}],
                "changed": [{"name": "libc6", "arch": "amd64", "from": "2.36-9", "to": "2.36-10"}],
            },
            "services": {"enabled": ["systemd-networkd.service"], "disabled": ["cron.service"]},
            "users": {"added": ["carol"], "removed": ["bob"],
                      "changed": [{"name": "ann", "fields": ["groups"]}]},
            "config_files": {"added": ["modules/new.lua"], "removed": ["modules/old.lua"],
                             "changed": ["configuration.lua"]},
        })
    );
    let text = m.ok(&["diff", &sa, &sb]);
    for line in [
        "from generation 0 to generation 1:",
        "packages: 1 added, 1 removed, 1 changed",
        "  + vim 2:9.0.1378-2 amd64",
        "  - nano 7.2-1 amd64",
        "  ~ libc6 amd64 2.36-9 -> 2.36-10",
        "  + systemd-networkd.service (enabled)",
        "  - cron.service (no longer enabled)",
        "  + carol",
        "  - bob",
        "  ~ ann: groups",
        "  ~ configuration.lua",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} in:\n{text}");
    }
    assert!(m.ok(&["diff", &sa, &sa]).contains("do not differ"));
    let err = m.fails(&["diff", &sa, "7"]);
    assert!(err.contains("generation 7 does not exist"), "{err}");
}

#[test]
fn root_rollback_with_and_without_n_walks_the_pointer_history() {
    if !tiers(&[Tier::Root]) {
        return;
    }
    let m = Machine::new();
    assert_eq!(m.commit_plain(3), [0, 1, 2]);
    assert_eq!(m.default(), Some(2));
    assert_eq!(m.history(), [1, 0]);

    // A dry run says where the default would go and changes nothing (it
    // does not even make the lock file).
    let before = m.manifest();
    let out = m.ok(&["rollback", "--dry-run"]);
    assert!(
        out.contains("would make generation 1 the default (now 2)"),
        "{out}"
    );
    let v = m.json(&["rollback", "0", "--dry-run"]);
    assert_eq!(
        v,
        json!({"was": 2, "default": 0, "previous_defaults": [2, 1], "dry_run": true})
    );
    assert_eq!(m.manifest(), before, "a dry run changed the machine");
    assert!(!m.top().lock_path().exists());

    // Without N: back through the history, never toggling.
    let out = m.ok(&["rollback"]);
    assert!(
        out.contains("generation 1 is the default now (was 2)"),
        "{out}"
    );
    assert_eq!((m.default(), m.history()), (Some(1), vec![0]));
    let v = m.json(&["rollback"]);
    assert_eq!(
        v,
        json!({"was": 1, "default": 0, "previous_defaults": [], "dry_run": false})
    );
    let err = m.fails(&["rollback"]);
    assert!(err.contains("no previous default"), "{err}");
    assert_eq!(m.default(), Some(0));

    // With N: that generation, the old default joining the history.
    let out = m.ok(&["rollback", "2"]);
    assert!(
        out.contains("generation 2 is the default now (was 0)"),
        "{out}"
    );
    assert_eq!((m.default(), m.history()), (Some(2), vec![0]));
    assert!(m.ok(&["rollback", "2"]).contains("already the default"));
    // A rollback without N skips a deleted generation.
    m.ok(&["rollback", "1"]);
    assert_eq!(m.history(), [2, 0]);
    m.ok(&["rollback", "0"]);
    assert_eq!(m.history(), [1, 2]);
    m.ok(&["delete", "1"]);
    m.ok(&["rollback"]);
    assert_eq!((m.default(), m.history()), (Some(2), vec![]));

    // Not a committed generation: refused, the pointer as it was.
    let pointer = std::fs::read(m.path().join(kod_gen::POINTER)).unwrap();
    let err = m.fails(&["rollback", "9"]);
    assert!(err.contains("generation 9 does not exist"), "{err}");
    let n = m.top().allocate().unwrap();
    let err = m.fails(&["rollback", &n.to_string()]);
    assert!(err.contains("not committed"), "{err}");
    assert_eq!(
        std::fs::read(m.path().join(kod_gen::POINTER)).unwrap(),
        pointer
    );

    // The running system stays what it booted, and is told so.
    let running = RunningRoot::new(&m, 2);
    let out = succeeded(
        &[],
        m.kod_in(Some(running.path()), &["generations", "rollback", "0"]),
    );
    assert!(
        out.contains("the running system stays generation 2 until it boots generation 0"),
        "{out}"
    );
}

#[test]
fn root_delete_refuses_the_default_and_the_booted_and_never_reuses_numbers() {
    if !tiers(&[Tier::Root]) {
        return;
    }
    let m = Machine::new();
    assert_eq!(m.commit_plain(4), [0, 1, 2, 3]);
    m.top().set_default(2).unwrap();

    // The default: refused, with what to do; nothing is deleted, also of
    // the others named with it.
    let err = m.fails(&["delete", "1", "2"]);
    assert!(
        err.contains("generation 2 is the default generation") && err.contains("roll back"),
        "{err}"
    );
    assert!(err.contains("nothing was deleted"), "{err}");
    assert_eq!(m.top().generations().unwrap(), [0, 1, 2, 3]);
    let err = m.fails(&["delete", "8"]);
    assert!(err.contains("generation 8 does not exist"), "{err}");

    // The booted generation of the running system: refused too.
    let running = RunningRoot::new(&m, 0);
    let out = m.kod_in(Some(running.path()), &["generations", "delete", "0"]);
    let err = failed(&[], out);
    assert!(
        err.contains("generation 0 is the booted generation") && err.contains("boot another"),
        "{err}"
    );
    drop(running);

    // A dry run says what it would delete and changes nothing.
    let before = m.manifest();
    let out = m.ok(&["delete", "3", "1", "--dry-run"]);
    assert!(out.contains("would delete generation 1"), "{out}");
    assert!(out.contains("would delete generation 3"), "{out}");
    assert_eq!(
        m.json(&["delete", "3", "1", "--dry-run"]),
        json!({"deleted": [1, 3], "dry_run": true})
    );
    assert_eq!(m.manifest(), before, "a dry run changed the machine");

    // Deleting: root subvolume and record gone; the highest too.
    let out = m.ok(&["delete", "1"]);
    assert_eq!(out, "deleted generation 1\n");
    assert_eq!(
        m.json(&["delete", "3"]),
        json!({"deleted": [3], "dry_run": false})
    );
    assert_eq!(m.top().generations().unwrap(), [0, 2]);
    assert!(!m.top().generation_dir(3).exists());
    let subvolumes = m.fs.subvolumes();
    assert!(
        !subvolumes
            .iter()
            .any(|s| s.starts_with("generations/1/") || s.starts_with("generations/3/")),
        "{subvolumes:?}"
    );
    // A new generation after deleting the highest gets highest + 1.
    assert_eq!(m.top().allocate().unwrap(), 4);
}

#[test]
fn root_gc_keeps_the_newest_and_the_default_and_last_good() {
    if !tiers(&[Tier::Root]) {
        return;
    }
    let m = Machine::new();
    assert_eq!(m.commit_plain(5), [0, 1, 2, 3, 4]);
    m.top().set_default(1).unwrap();

    // A dry run: the plan, and nothing changed.
    let before = m.manifest();
    let out = m.ok(&["gc", "--keep", "1", "--dry-run"]);
    assert_eq!(
        out,
        "keep generation 1 (default)\nkeep generation 4 (newest, last good)\n\
         would delete generation 0\nwould delete generation 2\nwould delete generation 3\n"
    );
    let plan = m.json(&["gc", "--keep", "1", "--dry-run"]);
    assert_eq!(
        plan,
        json!({"keep": 1, "dry_run": true, "delete": [0, 2, 3], "kept": [
            {"generation": 1, "why": ["default"]},
            {"generation": 4, "why": ["newest", "last-good"]},
        ]})
    );
    assert_eq!(m.manifest(), before, "a dry run changed the machine");

    // The booted generation is kept too, even beyond --keep.
    let running = RunningRoot::new(&m, 2);
    let out = succeeded(
        &[],
        m.kod_in(
            Some(running.path()),
            &["generations", "gc", "--keep", "1", "--json"],
        ),
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["delete"], json!([0, 3]));
    assert_eq!(
        v["kept"][1],
        json!({"generation": 2, "why": ["booted", "current"]})
    );
    drop(running);
    assert_eq!(m.top().generations().unwrap(), [1, 2, 4]);

    let out = m.ok(&["gc", "--keep", "1"]);
    assert!(out.contains("deleted generation 2"), "{out}");
    assert_eq!(m.top().generations().unwrap(), [1, 4]);
    assert_eq!(m.default(), Some(1));
    assert!(
        m.ok(&["gc", "--keep", "1"])
            .ends_with("nothing to delete\n")
    );
    // Numbers stay used.
    assert_eq!(m.top().allocate().unwrap(), 5);
}

#[test]
fn root_a_second_kod_waits_for_the_machine_lock() {
    if !tiers(&[Tier::Root]) {
        return;
    }
    let m = Machine::new();
    m.commit_plain(2);
    let top = m.top();
    let held = top.lock("test").unwrap();
    let lock = top.lock_path();
    let me = std::process::id();

    // --no-wait: fails at once, naming the holder.
    let err = m.fails(&["--no-wait", "rollback", "0"]);
    assert!(
        err.contains(&format!("held by kod pid {me} (test)")) && err.contains("without --no-wait"),
        "{err}"
    );
    assert_eq!(m.default(), Some(1));

    // Waiting: says so once, and goes on when the lock is released.
    let mut child = Process::new(assert_cmd::cargo::cargo_bin("kod"))
        .env("KOD_CACHE_DIR", m.cache.path())
        .env("KOD_RUNNING_ROOT", m.no_root.path())
        .args(["generations", "rollback", "0", "--target"])
        .arg(m.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert_eq!(
        line,
        format!(
            "kod: waiting for {}: held by kod pid {me} (test)\n",
            lock.display()
        )
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "it did not wait");
    assert_eq!(m.default(), Some(1));
    drop(held);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("generation 0 is the default now"));
    assert_eq!(m.default(), Some(0));
    // And the lock is free again.
    drop(top.try_lock("test").unwrap());
}
