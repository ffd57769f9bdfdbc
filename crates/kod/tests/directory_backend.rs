//! The directory backend end to end (root and net tiers): a machine whose
//! top level is a loop-mounted XFS (reflinks) or ext4 (none) file system,
//! generation 0 installed without a kernel, then `kod rebuild -n` and the
//! generation commands, read back from the disk: generation 1 has exactly
//! the configured changes, generation 0 is byte for byte as it was, and
//! the two roots share no inode (a copy, never hard links) while on XFS
//! they share their files' data (reflinks).

use std::ffi::OsString;
use std::path::Path;

mod common;

use common::backend::{RunningRoot, files, inodes_in_both, on_file_system_of, shared_extents};
use common::machine::{
    assert_same, dpkg_lines, full_manifest, in_root, install_args, lock_lines, manifest, text,
};
use common::{kod, kod_ok};
use kod_gen::{Backend, Top};
use kod_testkit::loopfs::{Kind, LoopFs};
use kod_testkit::{Tier, tiers};
use serde_json::{Value, json};

/// A small machine without a kernel: `packages` and `services` (Lua
/// table bodies).
fn configuration(packages: &str, services: &str) -> String {
    format!(
        r#"local repos = require("repos")
return {{
  repos = {{ official = repos.debian_repo({{ suite = "bookworm", components = {{ "main" }} }}) }},
  boot = {{ kernel = {{ package = false }} }},
  network = {{ hostname = "kod-directory" }},
  users = {{ root = {{ no_password = true }} }},
  packages = {{ {packages} }},
  services = {{ {services} }},
}}
"#
    )
}

const NETWORKD: &str =
    r#"networkd = { enable = true, package = "systemd", service_name = "systemd-networkd" },"#;

/// A machine on a file system of `kind`: the file system, kod's cache, and
/// the directory of its configurations.
struct Machine {
    fs: LoopFs,
    cache: tempfile::TempDir,
    configs: tempfile::TempDir,
    /// An empty directory as the running system's root, so that the
    /// host's own `/kod`, if any, never counts.
    no_root: tempfile::TempDir,
}

impl Machine {
    fn new(kind: Kind) -> Machine {
        Machine {
            fs: LoopFs::new(kind, 3 << 30),
            cache: tempfile::tempdir().unwrap(),
            configs: tempfile::tempdir().unwrap(),
            no_root: tempfile::tempdir().unwrap(),
        }
    }

    fn top(&self) -> &Path {
        self.fs.path()
    }

    fn rootfs(&self, n: u64) -> std::path::PathBuf {
        self.top().join(format!("generations/{n}/rootfs"))
    }

    /// Writes the configuration `name`.lua; its path.
    fn config(&self, name: &str, text: &str) -> std::path::PathBuf {
        let path = self.configs.path().join(format!("{name}.lua"));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `kod -c CONFIG rebuild -n --target TOP`, which must succeed.
    fn rebuild(&self, config: &Path) -> String {
        let args: Vec<OsString> = vec![
            "-c".into(),
            config.into(),
            "rebuild".into(),
            "-n".into(),
            "--target".into(),
            self.top().into(),
        ];
        kod_ok(self.cache.path(), args)
    }

    /// `kod generations ARGS --target TOP` with the running system at
    /// `running` (none by default).
    fn generations(&self, running: Option<&Path>, args: &[&str]) -> std::process::Output {
        assert_cmd::Command::cargo_bin("kod")
            .unwrap()
            .env("KOD_CACHE_DIR", self.cache.path())
            .env("KOD_RUNNING_ROOT", running.unwrap_or(self.no_root.path()))
            .arg("generations")
            .args(args)
            .arg("--target")
            .arg(self.top())
            .output()
            .unwrap()
    }

    /// `kod generations ARGS --target TOP`, which must succeed: stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.generations(None, args);
        assert!(
            out.status.success(),
            "kod generations {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The same, which must fail: stderr.
    fn fails(&self, running: Option<&Path>, args: &[&str]) -> String {
        let out = self.generations(running, args);
        assert!(
            !out.status.success(),
            "kod generations {args:?} succeeded:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// The committed generations' numbers and the default.
    fn listed(&self) -> Value {
        let listing = self.json(&["list"]);
        let numbers: Vec<u64> = listing["generations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["number"].as_u64().unwrap())
            .collect();
        json!({ "numbers": numbers, "default": listing["default"] })
    }

    /// Generation `n`'s directory, byte for byte (its root and record),
    /// but for the lock a transaction reading the root takes beside it and
    /// the directory's own line (whose mtime the lock moves).
    fn generation_manifest(&self, n: u64) -> String {
        full_manifest(&self.top().join(format!("generations/{n}")))
            .lines()
            .filter(|l| {
                let path = l.split_whitespace().next().unwrap_or("");
                !l.contains(".rootfs.kod-lock") && !path.is_empty()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The names in a `generations diff --json` package list.
fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

/// Install, rebuild (hello and cron added, less removed) and the
/// generation commands on a directory-backend machine on `kind`.
fn directory_machine(kind: Kind) {
    let m = Machine::new(kind);
    let first = m.config("first", &configuration(r#""less""#, NETWORKD));
    let out = kod(m.cache.path(), install_args(&first, m.top()));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("do not boot"), "install says so: {err}");
    assert!(
        m.ok(&["list"]).contains("do not boot"),
        "generations list says so"
    );
    let top = Top::open(m.top()).unwrap();
    assert_eq!(top.backend(), Backend::Directory, "{kind:?}");
    assert!(!top.boots());
    let (gen0, gen1) = (m.rootfs(0), m.rootfs(1));
    // Roots and the shared home are plain directories on the machine's
    // file system.
    for dir in [&gen0, &m.top().join("store/home")] {
        assert!(dir.is_dir() && on_file_system_of(dir, m.top()), "{dir:?}");
    }
    let fstab = text(&gen0, "etc/fstab");
    assert!(
        fstab.lines().all(|l| l.starts_with('#')) && fstab.contains("does not"),
        "{fstab}"
    );
    assert_eq!(text(&gen0, ".generation"), "0\n");
    assert!(dpkg_lines(&gen0).iter().any(|l| l.starts_with("less ")));
    let before = m.generation_manifest(0);

    // hello and cron (a service with its package) in, less out.
    let services = format!("{NETWORKD} cron = {{ enable = true }},");
    let second = m.config("second", &configuration(r#""hello""#, &services));
    m.rebuild(&second);

    // The shared store was bound in, never copied: its mount points in
    // the new root hold what the old root's do (looked at before anything
    // runs in the root without the store, as apt-get below does), and
    // nothing is mounted below the machine once kod is done.
    // (A directory's own line left out: its size on disk is its history's.)
    let below = |dir: &Path| -> Vec<String> {
        manifest(dir)
            .lines()
            .filter(|l| !l.starts_with(' '))
            .map(str::to_owned)
            .collect()
    };
    for (_, at) in kod_gen::STORE_BINDS
        .iter()
        .chain([&("store/home", "/home")])
    {
        let rel = at.trim_start_matches('/');
        assert_eq!(
            below(&gen1.join(rel)),
            below(&gen0.join(rel)),
            "{kind:?}: {at} in generation 1"
        );
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&m.top().join("generations").display().to_string()),
        "{kind:?}: a mount is left:\n{mounts}"
    );

    let listed = dpkg_lines(&gen1);
    let has = |name: &str| listed.iter().any(|l| l.starts_with(&format!("{name} ")));
    assert!(has("hello") && has("cron") && !has("less"), "{listed:?}");
    assert_eq!(lock_lines(&m.top().join("generations/1")), listed);
    let old = dpkg_lines(&gen0);
    let added: Vec<&String> = listed.iter().filter(|l| !old.contains(l)).collect();
    let removed: Vec<&String> = old.iter().filter(|l| !listed.contains(l)).collect();
    assert!(
        removed.iter().all(|l| l.starts_with("less ")) && removed.len() == 1,
        "{removed:?}"
    );
    assert!(
        added.iter().all(
            |l| ["hello ", "cron ", "cron-daemon-common ", "sensible-utils "]
                .iter()
                .any(|p| l.starts_with(p))
        ),
        "{added:?}"
    );
    assert!(
        std::fs::symlink_metadata(
            gen1.join("etc/systemd/system/multi-user.target.wants/cron.service")
        )
        .is_ok()
    );
    assert_eq!(
        text(&m.top().join("generations/1"), "enabled_services"),
        "cron.service\nsystemd-networkd.service\n"
    );
    assert_eq!(text(&gen1, ".generation"), "1\n");
    assert!(!text(&gen1, "etc/fstab").contains("subvol="));
    assert_eq!(in_root(&gen1, &["dpkg", "--audit"]), "");
    in_root(&gen1, &["apt-get", "check", "-q"]);
    assert!(gen1.is_dir() && on_file_system_of(&gen1, m.top()));

    // Generation 0, its root and its record, byte for byte as they were.
    assert_same(
        &format!("generation 0 on {kind:?}"),
        &before,
        &m.generation_manifest(0),
    );

    // A copy: what the rebuild did not change is the same in generation 1
    // (owner, mode, mtime, content) but shares no inode with generation
    // 0; on XFS the files' data is shared (reflinks), on ext4 copied.
    let (usr0, usr1) = (files(&gen0, "usr/bin"), files(&gen1, "usr/bin"));
    let gone: Vec<&String> = usr0
        .difference(&usr1)
        .filter(|l| !l.contains("less"))
        .collect();
    assert!(gone.is_empty(), "{kind:?}: changed in the copy: {gone:#?}");
    let both = inodes_in_both(&gen0, &gen1);
    assert!(
        both.is_empty(),
        "{kind:?}: hard links between generations: {both:?}"
    );
    let (same, shared) = shared_extents(&gen0, &gen1, "usr/bin");
    assert!(same > 20, "{kind:?}: {same} unchanged files in usr/bin");
    match kind {
        Kind::Xfs => assert_eq!(shared, same, "XFS: every unchanged file reflinked"),
        Kind::Ext4 => assert_eq!(shared, 0, "ext4: plain copies"),
    }

    // The generation commands: list, diff.
    assert_eq!(m.listed(), json!({ "numbers": [0, 1], "default": 1 }));
    let diff = m.json(&["diff", "0", "1"]);
    assert!(names(&diff["packages"]["added"]).contains(&"hello".to_string()));
    assert!(names(&diff["packages"]["added"]).contains(&"cron".to_string()));
    assert_eq!(names(&diff["packages"]["removed"]), ["less"]);
    assert_eq!(
        diff["services"]["enabled"],
        serde_json::json!(["cron.service"])
    );
    let human = m.ok(&["diff", "0", "1"]);
    assert!(human.contains("hello") && human.contains("less"), "{human}");

    // Rollback, and the protections of delete and gc.
    let out = m.ok(&["rollback"]);
    assert!(
        out.contains("generation 0 is the default now (was 1)"),
        "{out}"
    );
    let err = m.fails(None, &["delete", "0"]);
    assert!(
        err.contains("generation 0 is the default generation"),
        "{err}"
    );
    let plan = m.json(&["gc", "--keep", "1", "--dry-run"]);
    assert_eq!(plan["delete"], json!([]), "{plan}");
    let out = m.ok(&["rollback", "1"]);
    assert!(out.contains("generation 1 is the default now"), "{out}");
    let running = RunningRoot::new(m.top(), 0);
    let err = m.fails(Some(running.path()), &["delete", "0"]);
    assert!(
        err.contains("generation 0 is the booted generation"),
        "{err}"
    );
    drop(running);
    assert_same(
        &format!("generation 0 on {kind:?} after the refusals"),
        &before,
        &m.generation_manifest(0),
    );

    // gc deletes generation 0, and generation 1 stays whole.
    let kept = m.generation_manifest(1);
    let out = m.ok(&["gc", "--keep", "1"]);
    assert!(out.contains("deleted generation 0"), "{out}");
    assert!(!m.top().join("generations/0").exists());
    assert_eq!(m.listed(), json!({ "numbers": [1], "default": 1 }));
    assert_same(
        &format!("generation 1 on {kind:?} after deleting 0"),
        &kept,
        &m.generation_manifest(1),
    );
    assert_eq!(in_root(&gen1, &["dpkg", "--audit"]), "");

    // The same configuration again: nothing to do.
    let again = m.rebuild(&second);
    assert!(again.contains("nothing to do"), "{again}");
}

#[test]
fn root_net_directory_backend_on_xfs_reflinks_generations() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    directory_machine(Kind::Xfs);
}

#[test]
fn root_net_directory_backend_on_ext4_copies_generations() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    directory_machine(Kind::Ext4);
}

/// A rebuild that fails on the directory backend leaves the generations
/// as they were (its copy removed), like on Btrfs.
#[test]
fn root_net_a_failed_rebuild_on_the_directory_backend_leaves_no_copy() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let m = Machine::new(Kind::Ext4);
    let first = m.config("first", &configuration(r#""less""#, NETWORKD));
    kod_ok(m.cache.path(), install_args(&first, m.top()));
    let before = generations_state(m.top());
    let late = m.config(
        "late",
        &configuration(r#""less", "hello""#, NETWORKD).replace(
            "network = {",
            "locale = { timezone = \"Mars/Olympus\" },\n  network = {",
        ),
    );
    let out = kod(
        m.cache.path(),
        [
            OsString::from("-c"),
            late.into(),
            "rebuild".into(),
            "-n".into(),
            "--target".into(),
            m.top().into(),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Mars/Olympus"), "{err}");
    assert_eq!(m.listed(), json!({ "numbers": [0], "default": 0 }));
    assert!(!m.top().join("generations/1").exists());
    assert_same(
        "the generations after a failed rebuild",
        &before,
        &generations_state(m.top()),
    );
}

/// Every generation's files, byte for byte, but the locks (taken and left
/// by each run), the highest number used (a failed rebuild used one up)
/// and the directory's own line (its mtime moves with any entry).
fn generations_state(top: &Path) -> String {
    full_manifest(&top.join("generations"))
        .lines()
        .filter(|l| !l.contains("kod-lock") && !l.contains(".lock ") && !l.contains(".highest"))
        .filter(|l| !l.starts_with(' '))
        .collect::<Vec<_>>()
        .join("\n")
}
