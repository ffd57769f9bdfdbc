//! `kod rebuild -n --target TOP` end to end (root and net tiers): a
//! generation 0 without a kernel on a loop-mounted Btrfs, then the next
//! generations from changed configurations, read back from the target.

use std::path::Path;

mod common;

use common::machine::{
    assert_same, dpkg_lines, full_manifest, in_root, install_args, lock_lines, manifest,
    new_machine, text,
};
use common::{kod, kod_ok};
use kod_testkit::{Tier, tiers};

/// A small machine: `packages` and `services` (Lua table bodies).
fn configuration(packages: &str, services: &str) -> String {
    with_users(packages, services, "")
}

/// [`configuration`] with more `users` (a Lua table body) beside root.
fn with_users(packages: &str, services: &str, users: &str) -> String {
    format!(
        r#"local repos = require("repos")
return {{
  repos = {{ official = repos.debian_repo({{ suite = "bookworm", components = {{ "main" }} }}) }},
  boot = {{ kernel = {{ package = false }} }},
  network = {{ hostname = "kod-rebuild" }},
  users = {{ root = {{ no_password = true }}, {users} }},
  packages = {{ {packages} }},
  services = {{ {services} }},
}}
"#
    )
}

const NETWORKD: &str =
    r#"networkd = { enable = true, package = "systemd", service_name = "systemd-networkd" },"#;

/// Writes `text` as the configuration `name`.lua in `dir`; its path.
fn write_config(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A machine (a fresh Btrfs of `size` bytes) with generation 0 of the
/// configuration `first` (less and networkd), its cache, and the
/// directory of its configurations.
fn generation_0(
    size: u64,
) -> (
    kod_testkit::btrfs::Btrfs,
    tempfile::TempDir,
    tempfile::TempDir,
    std::path::PathBuf,
) {
    let (fs, cache) = new_machine(size);
    let dir = tempfile::tempdir().unwrap();
    let first = write_config(dir.path(), "first", &configuration(r#""less""#, NETWORKD));
    kod_ok(cache.path(), install_args(&first, fs.path()));
    (fs, cache, dir, first)
}

fn rebuild_args(config: &Path, top: &Path, more: &[&str]) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "-c".into(),
        config.into(),
        "rebuild".into(),
        "-n".into(),
        "--target".into(),
        top.into(),
    ];
    args.extend(more.iter().map(Into::into));
    args
}

/// The numbers of the committed generations and the default.
fn generations(top: &Path, cache: &Path) -> serde_json::Value {
    let listing: serde_json::Value = serde_json::from_str(&kod_ok(
        cache,
        ["generations", "list", "--json", "--target"]
            .iter()
            .map(std::ffi::OsString::from)
            .chain([top.into()]),
    ))
    .unwrap();
    let numbers: Vec<u64> = listing["generations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["number"].as_u64().unwrap())
        .collect();
    serde_json::json!({ "numbers": numbers, "default": listing["default"] })
}

/// The record of generation `n`: every file of `generations/N/` but its
/// root (compared apart) and the lock a transaction that reads the root
/// takes beside it (`.rootfs.kod-lock`).
fn record_manifest(top: &Path, n: u64) -> String {
    full_manifest(&top.join(format!("generations/{n}")))
        .lines()
        .filter(|l| {
            let path = l.split_whitespace().next().unwrap_or("");
            !l.contains(".rootfs.kod-lock")
                && !l.contains("./rootfs/")
                && !path.starts_with("rootfs")
                && !path.is_empty()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn net_root_rebuild_makes_the_next_generation_with_exactly_the_changes() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let (fs, cache, dir, _) = generation_0(3 << 30);
    let top = fs.path();
    let gen0 = top.join("generations/0/rootfs");
    let before = full_manifest(&gen0);
    let record0 = record_manifest(top, 0);

    // Add hello and cron (a service with its package), take less out.
    let services = format!("{NETWORKD} cron = {{ enable = true }},");
    let dora = r#"dora = { no_password = true, extra_groups = { "kodtest" } },"#;
    let second = write_config(
        dir.path(),
        "second",
        &with_users(r#""hello""#, &services, dora),
    );

    // A dry run says so and changes nothing.
    let tree = manifest(top);
    let dry: serde_json::Value = serde_json::from_str(&kod_ok(
        cache.path(),
        rebuild_args(&second, top, &["--dry-run", "--json"]),
    ))
    .unwrap();
    assert_eq!(dry["from"], 0);
    assert_eq!(dry["unchanged"], false);
    let action = |name: &str| {
        dry["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["action"].as_str().unwrap().to_string())
    };
    assert_eq!(action("hello").as_deref(), Some("install"));
    assert_eq!(action("cron").as_deref(), Some("install"));
    assert_eq!(action("less").as_deref(), Some("remove"));
    assert_eq!(
        dry["diff"]["services"]["enabled"],
        serde_json::json!(["cron.service"])
    );
    assert_eq!(manifest(top), tree);

    let out = kod(cache.path(), rebuild_args(&second, top, &[]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gen1 = top.join("generations/1/rootfs");
    let listed = dpkg_lines(&gen1);
    let has = |name: &str| listed.iter().any(|l| l.starts_with(&format!("{name} ")));
    assert!(has("hello") && has("cron"), "{listed:?}");
    assert!(!has("less"), "{listed:?}");
    assert_eq!(lock_lines(&top.join("generations/1")), listed);
    // Exactly those packages changed.
    let old = dpkg_lines(&gen0);
    let added: Vec<&String> = listed.iter().filter(|l| !old.contains(l)).collect();
    let removed: Vec<&String> = old.iter().filter(|l| !listed.contains(l)).collect();
    assert!(
        removed.iter().all(|l| l.starts_with("less ")),
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
        text(&top.join("generations/1"), "enabled_services"),
        "cron.service\nsystemd-networkd.service\n"
    );
    assert_eq!(text(&gen1, ".generation"), "1\n");
    assert!(text(&gen1, "etc/fstab").contains("subvol=generations/1/rootfs"));
    assert!(text(&gen1, "etc/os-release").contains("IMAGE_VERSION=1"));
    assert_eq!(in_root(&gen1, &["dpkg", "--audit"]), "");
    in_root(&gen1, &["apt-get", "check", "-q"]);
    assert_eq!(generations(top, cache.path())["default"], 1);

    // Generation 0, its root and its record, byte for byte as they were.
    assert_same("generation 0's root", &before, &full_manifest(&gen0));
    assert_same("generation 0's record", &record0, &record_manifest(top, 0));

    // generations diff shows it.
    let diff: serde_json::Value = serde_json::from_str(&kod_ok(
        cache.path(),
        ["generations", "diff", "0", "1", "--json", "--target"]
            .iter()
            .map(std::ffi::OsString::from)
            .chain([top.into()]),
    ))
    .unwrap();
    let names = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(names(&diff["packages"]["added"]).contains(&"hello".to_string()));
    assert_eq!(names(&diff["packages"]["removed"]), ["less"]);
    assert_eq!(
        diff["services"]["enabled"],
        serde_json::json!(["cron.service"])
    );

    // The same configuration again: nothing to do, no generation.
    let again = kod_ok(cache.path(), rebuild_args(&second, top, &[]));
    assert!(again.contains("nothing to do"), "{again}");
    assert_eq!(
        generations(top, cache.path()),
        serde_json::json!({ "numbers": [0, 1], "default": 1 })
    );

    let dora_line = in_root(&gen1, &["getent", "passwd", "dora"]);
    assert!(dora_line.starts_with("dora:"), "{dora_line}");
    assert!(
        in_root(&gen1, &["getent", "group", "kodtest"])
            .trim_end()
            .ends_with(":dora")
    );

    // cron and dora taken out again: the unit is no longer enabled, the
    // package goes, the account goes (its home stays in the shared /home).
    let third = write_config(dir.path(), "third", &configuration(r#""hello""#, NETWORKD));
    kod_ok(cache.path(), rebuild_args(&third, top, &[]));
    let gen2 = top.join("generations/2/rootfs");
    assert!(!dpkg_lines(&gen2).iter().any(|l| l.starts_with("cron ")));
    assert_eq!(
        text(&top.join("generations/2"), "enabled_services"),
        "systemd-networkd.service\n"
    );
    let passwd = text(&gen2, "etc/passwd");
    assert!(!passwd.lines().any(|l| l.starts_with("dora:")), "{passwd}");
    let group = text(&gen2, "etc/group");
    assert!(!group.lines().any(|l| l.starts_with("dora:")), "{group}");
    let kodtest = group.lines().find(|l| l.starts_with("kodtest:")).unwrap();
    assert!(kodtest.ends_with(':'), "{kodtest}");
    assert!(
        !text(&gen2, "etc/shadow")
            .lines()
            .any(|l| l.starts_with("dora:"))
    );
    assert!(top.join("store/home/dora").is_dir());
    // Generation 1 still has her.
    assert!(
        text(&gen1, "etc/passwd")
            .lines()
            .any(|l| l.starts_with("dora:"))
    );
}

#[test]
fn net_root_a_failed_rebuild_leaves_the_generations_as_they_were() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let (fs, cache, dir, _) = generation_0(3 << 30);
    let top = fs.path();
    let tree = manifest(top);

    // An unknown package: named with close matches, nothing made.
    let bad = write_config(
        dir.path(),
        "bad",
        &configuration(r#""less", "helo""#, NETWORKD),
    );
    let out = kod(cache.path(), rebuild_args(&bad, top, &[]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("helo") && err.contains("hello"), "{err}");
    assert_eq!(manifest(top), tree);

    // A time zone the root does not have fails while settling, after the
    // packages are in: no generation 1, the default still 0.
    let late = write_config(
        dir.path(),
        "late",
        &configuration(r#""less", "hello""#, NETWORKD).replace(
            "network = {",
            "locale = { timezone = \"Mars/Olympus\" },\n  network = {",
        ),
    );
    let out = kod(cache.path(), rebuild_args(&late, top, &[]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Mars/Olympus"), "{err}");
    assert_eq!(
        generations(top, cache.path()),
        serde_json::json!({ "numbers": [0], "default": 0 })
    );
    assert!(!top.join("generations/1").exists());
    // Too little room, found before anything is written.
    let filler = fill_leaving(top, 24 << 20);
    let tree = manifest(&top.join("generations"));
    let good = write_config(
        dir.path(),
        "good",
        &configuration(r#""less", "hello""#, NETWORKD),
    );
    let out = kod(cache.path(), rebuild_args(&good, top, &[]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not enough free space") && err.contains("gc --keep"),
        "{err}"
    );
    assert_eq!(manifest(&top.join("generations")), tree);
    std::fs::remove_file(&filler).unwrap();
    common::run_ok(
        std::process::Command::new("btrfs")
            .args(["filesystem", "sync"])
            .arg(top),
    );

    // The next rebuild works, under a new number: numbers are never used
    // twice, not even one no generation was committed under.
    kod_ok(cache.path(), rebuild_args(&good, top, &[]));
    assert_eq!(
        generations(top, cache.path()),
        serde_json::json!({ "numbers": [0, 2], "default": 2 })
    );
}

/// The bytes free on the file system of `top`, as df says.
fn free_bytes(top: &Path) -> u64 {
    common::run_ok(
        std::process::Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(top),
    )
    .lines()
    .nth(1)
    .unwrap()
    .trim()
    .parse()
    .unwrap()
}

/// Takes all but `room` bytes of `top`'s file system with one allocated
/// file, `top/filler`; its path.
fn fill_leaving(top: &Path, room: u64) -> std::path::PathBuf {
    let filler = top.join("filler");
    common::run_ok(
        std::process::Command::new("fallocate")
            .args(["-l", &(free_bytes(top) - room).to_string()])
            .arg(&filler),
    );
    filler
}

/// The state a stopped rebuild must leave: every generation's files but
/// the locks (taken and left by each run) and the highest number used
/// (a stopped rebuild used one up).
fn generations_state(top: &Path) -> String {
    full_manifest(&top.join("generations"))
        .lines()
        .filter(|l| !l.contains("kod-lock") && !l.contains(".lock ") && !l.contains(".highest"))
        // The directory itself (its mtime moves with any entry).
        .filter(|l| !l.starts_with(' '))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn net_root_a_rebuild_stopped_at_any_point_leaves_the_generations_as_they_were() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let (fs, cache, dir, first) = generation_0(3 << 30);
    let top = fs.path();
    let more = write_config(
        dir.path(),
        "more",
        &configuration(r#""less", "hello""#, NETWORKD),
    );
    let before = generations_state(top);
    for point in [
        "allocated",
        "snapshot",
        "installed",
        "configured",
        "settled",
        "committed",
        "recorded",
    ] {
        let out = assert_cmd::Command::cargo_bin("kod")
            .unwrap()
            .env("KOD_CACHE_DIR", cache.path())
            .env("KOD_TEST_FAULT", point)
            .args(rebuild_args(&more, top, &[]))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(137),
            "{point}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.contains(&top.join("generations").display().to_string()),
            "{point}: a mount is left:\n{mounts}"
        );
        // The next run (the configuration of generation 0: nothing to do)
        // removes what the stopped one left.
        let next = kod_ok(cache.path(), rebuild_args(&first, top, &[]));
        assert!(next.contains("nothing to do"), "{point}: {next}");
        assert_same(
            &format!("the generations after a stop at {point}"),
            &before,
            &generations_state(top),
        );
    }
    // Stopped once the pointer moved: the generation is whole.
    let out = assert_cmd::Command::cargo_bin("kod")
        .unwrap()
        .env("KOD_CACHE_DIR", cache.path())
        .env("KOD_TEST_FAULT", "defaulted")
        .args(rebuild_args(&more, top, &[]))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(137));
    let listing = generations(top, cache.path());
    let n = listing["default"].as_u64().unwrap();
    assert_ne!(n, 0);
    kod_ok(cache.path(), rebuild_args(&more, top, &[]));
    assert!(
        !top.join(format!("generations/{n}/.kod-making-default"))
            .exists()
    );
    assert_eq!(generations(top, cache.path())["default"], n);
}

#[test]
fn net_root_a_second_rebuild_waits_for_the_first_or_fails_clearly() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let (fs, cache, dir, _) = generation_0(3 << 30);
    let top = fs.path();
    let more = write_config(
        dir.path(),
        "more",
        &configuration(r#""less", "hello""#, NETWORKD),
    );
    // Another holder of the machine lock (as a running rebuild holds it).
    let mut holder = std::process::Command::new("flock")
        .arg(top.join("generations/.lock"))
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut args = vec![std::ffi::OsString::from("--no-wait")];
    args.extend(rebuild_args(&more, top, &[]));
    let out = kod(cache.path(), args);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("generations/.lock"), "{err}");
    assert_eq!(
        generations(top, cache.path()),
        serde_json::json!({ "numbers": [0], "default": 0 })
    );
    // Without --no-wait it waits, then builds once the holder is gone.
    let waiter = std::thread::spawn({
        let (cache, more, top) = (cache.path().to_path_buf(), more.clone(), top.to_path_buf());
        move || kod(&cache, rebuild_args(&more, &top, &[]))
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(!waiter.is_finished(), "the second rebuild did not wait");
    holder.kill().unwrap();
    holder.wait().unwrap();
    let out = waiter.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("waiting for"));
    assert_eq!(generations(top, cache.path())["default"], 1);
}

/// The one rebuild with a kernel: generation 0 has none, generation 1 the
/// configured one with its initramfs (made once, for the new kernel).
#[test]
fn net_root_a_rebuild_that_adds_the_kernel_makes_its_initramfs() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let (fs, cache, dir, _) = generation_0(4 << 30);
    let top = fs.path();
    let kernel = write_config(
        dir.path(),
        "kernel",
        &configuration(r#""less""#, NETWORKD).replace(
            "kernel = { package = false }",
            r#"kernel = { package = "linux-image-amd64", modules = { "virtio_blk" } }"#,
        ),
    );
    let out = kod(cache.path(), {
        let mut a = vec![std::ffi::OsString::from("-v")];
        a.extend(rebuild_args(&kernel, top, &[]));
        a
    });
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        err.matches("update-initramfs: Generating").count(),
        1,
        "{err}"
    );
    let boot = |n: u64| -> Vec<String> {
        std::fs::read_dir(top.join(format!("generations/{n}/rootfs/boot")))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(
        !boot(0).iter().any(|f| f.starts_with("vmlinuz-")),
        "{:?}",
        boot(0)
    );
    let b1 = boot(1);
    assert!(b1.iter().any(|f| f.starts_with("vmlinuz-")), "{b1:?}");
    assert!(b1.iter().any(|f| f.starts_with("initrd.img-")), "{b1:?}");
    let listed = dpkg_lines(&top.join("generations/1/rootfs"));
    assert!(listed.iter().any(|l| l.starts_with("linux-image-amd64 ")));
    assert_eq!(lock_lines(&top.join("generations/1")), listed);
}

/// The Btrfs subvolume id of the root at `path`, as btrfs-progs says.
fn subvolume_id(path: &Path) -> u64 {
    common::run_ok(
        std::process::Command::new("btrfs")
            .args(["inspect-internal", "rootid"])
            .arg(path),
    )
    .trim()
    .parse()
    .unwrap()
}

/// `-c CONFIG rebuild` in place (no `-n`) with `more` arguments.
fn in_place_args(config: &Path, more: &[&std::ffi::OsStr]) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["-c".into(), config.into(), "rebuild".into()];
    args.extend(more.iter().map(|a| a.to_os_string()));
    args
}

#[test]
fn net_root_an_in_place_rebuild_changes_the_running_root_and_keeps_the_state_before() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let (fs, cache, dir, _) = generation_0(3 << 30);
    let top = fs.path();
    let gen0 = top.join("generations/0/rootfs");
    let live_id = subvolume_id(&gen0);
    let before = full_manifest(&gen0);
    let record0 = record_manifest(top, 0);
    let second = write_config(
        dir.path(),
        "second",
        &configuration(r#""less", "cowsay""#, NETWORKD),
    );

    // The machine as it runs: generation 0's root at / (here a directory
    // of a private mount namespace, kod's KOD_RUNNING_ROOT) with the top
    // level at /kod. kod changes it in place, and the running root shows
    // the change at once.
    let running = tempfile::tempdir().unwrap();
    let r = running.path().display().to_string();
    let script = format!(
        "set -e; mount --bind '{gen0}' '{r}'; mount --bind '{top}' '{r}/kod'; \
         KOD_RUNNING_ROOT='{r}' \"$KOD\" -c '{config}' rebuild; \
         echo generation=$(cat '{r}/.generation'); test -x '{r}/usr/games/cowsay' && echo cowsay-runs",
        gen0 = gen0.display(),
        top = top.display(),
        config = second.display(),
    );
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .env("KOD", assert_cmd::cargo::cargo_bin("kod"))
        .env("KOD_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("generation=1"), "{stdout}\n{stderr}");
    assert!(stdout.contains("cowsay-runs"), "{stdout}\n{stderr}");
    assert!(stderr.contains("changed in place"), "{stderr}");

    // Generation 0 is the state before, byte for byte, with its record;
    // generation 1 is the root that ran (the same subvolume), changed.
    assert_same("generation 0's root", &before, &full_manifest(&gen0));
    // The files of the record; the directory's own time moves with the
    // swap of its `rootfs` entry.
    let files = |m: &str| {
        m.lines()
            .filter(|l| !l.starts_with(' '))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_same(
        "generation 0's record",
        &files(&record0),
        &files(&record_manifest(top, 0)),
    );
    assert_ne!(subvolume_id(&gen0), live_id);
    let gen1 = top.join("generations/1/rootfs");
    assert_eq!(
        subvolume_id(&gen1),
        live_id,
        "the running root is generation 1"
    );
    assert!(gen1.join("usr/games/cowsay").exists());
    assert!(!gen0.join("usr/games/cowsay").exists());
    assert_eq!(text(&gen1, ".generation").trim(), "1");
    assert!(text(&gen1, "etc/fstab").contains("subvol=generations/1/rootfs"));
    assert_eq!(
        dpkg_lines(&gen1),
        lock_lines(&top.join("generations/1")),
        "generation 1's record lists what its root has"
    );
    assert!(
        lock_lines(&top.join("generations/1"))
            .iter()
            .any(|l| l.starts_with("cowsay "))
    );
    assert_eq!(
        generations(top, cache.path()),
        serde_json::json!({ "numbers": [0, 1], "default": 1 })
    );
    for gone in ["generations/0/.kod-kept", "generations/1/.kod-in-place"] {
        assert!(!top.join(gone).exists(), "{gone} is left");
    }
}

#[test]
fn net_root_an_in_place_rebuild_stopped_at_any_point_is_finished_or_undone() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let (fs, cache, dir, _) = generation_0(3 << 30);
    let top = fs.path().to_path_buf();
    let target = [std::ffi::OsStr::new("--target"), top.as_os_str()];
    // Each stop from the default generation `from` to `from + 1`, adding
    // one package: stopped before its root changed (`kept`), the change is
    // undone (what `-n` leaves); after (`synced`, `swapped`), finished.
    for (from, point, package, finished) in [
        (0u64, "kept", "cowsay", false),
        (1, "synced", "hello", true),
        (2, "swapped", "bc", true),
    ] {
        let root = top.join(format!("generations/{from}/rootfs"));
        let live_id = subvolume_id(&root);
        let before = full_manifest(&root);
        let packages =
            ["\"less\"", "\"cowsay\"", "\"hello\"", "\"bc\""][..from as usize + 2].join(", ");
        let config = write_config(dir.path(), point, &configuration(&packages, NETWORKD));
        let out = assert_cmd::Command::cargo_bin("kod")
            .unwrap()
            .env("KOD_CACHE_DIR", cache.path())
            .env("KOD_TEST_FAULT", point)
            .args(in_place_args(&config, &target))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(137),
            "{point}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The next kod that takes the machine lock mends it; then the same
        // configuration has nothing to do.
        let next = kod_ok(cache.path(), in_place_args(&config, &target));
        assert!(next.contains("nothing to do"), "{point}: {next}");
        let to = from + 1;
        let new_root = top.join(format!("generations/{to}/rootfs"));
        assert_same(
            &format!("{point}: generation {from}"),
            &before,
            &full_manifest(&root),
        );
        assert!(
            new_root.join(format!("usr/share/doc/{package}")).exists(),
            "{point}"
        );
        assert_eq!(
            dpkg_lines(&new_root),
            lock_lines(&top.join(format!("generations/{to}")))
        );
        if finished {
            assert_eq!(
                subvolume_id(&new_root),
                live_id,
                "{point}: the changed root is {to}"
            );
        } else {
            assert_ne!(
                subvolume_id(&new_root),
                live_id,
                "{point}: {to} is the root built beside {from}"
            );
        }
        assert_eq!(generations(&top, cache.path())["default"], to, "{point}");
        for gone in [
            format!("generations/{from}/.kod-kept"),
            format!("generations/{to}/.kod-in-place"),
        ] {
            assert!(!top.join(&gone).exists(), "{point}: {gone} is left");
        }
    }
}

/// Adds version `version` of the package `name` (a file saying its
/// version, and `postinst` as its maintainer script) to `repo` and
/// publishes the repository with every package added so far
/// (`paragraphs`).
fn publish_fixture(
    repo: &kod_testkit::debrepo::DebRepo,
    work: &Path,
    paragraphs: &mut String,
    (name, version, postinst): (&str, &str, Option<&str>),
) {
    let tree = work.join(format!("{name}-{version}"));
    std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(tree.join(format!("usr/share/{name}"))).unwrap();
    std::fs::write(tree.join(format!("usr/share/{name}/version")), version).unwrap();
    std::fs::write(
        tree.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: all\n\
             Maintainer: kod tests <kod@example.org>\nDescription: a rebuild test's package\n"
        ),
    )
    .unwrap();
    if let Some(script) = postinst {
        use std::os::unix::fs::PermissionsExt;
        let path = tree.join("DEBIAN/postinst");
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let deb = kod_testkit::debs::dpkg_deb_build(
        &tree,
        &work.join(format!("{name}_{version}_all.deb")),
        "xz",
    );
    paragraphs.push_str(&repo.add_deb(&deb));
    paragraphs.push('\n');
    repo.publish(paragraphs, &kod_testkit::debrepo::ReleaseOptions::default());
}

/// A configuration of `packages` that also reads the fixture repository
/// `repo` served at `url`.
fn with_fixture(
    repo: &kod_testkit::debrepo::DebRepo,
    url: &str,
    suite: &str,
    packages: &str,
) -> String {
    configuration(packages, NETWORKD).replace(
        "repos = {",
        &format!(
            "repos = {{ fixture = repos.debian_repo({{ mirror = {url:?}, suite = {suite:?}, \
             signed_by = {:?} }}),",
            repo.keyring().display()
        ),
    )
}

#[test]
fn net_root_a_rebuild_whose_script_fails_or_fills_the_disk_leaves_the_generations_as_they_were() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    const SUITE: &str = "kodfail";
    let repo = kod_testkit::debrepo::DebRepo::new(SUITE);
    let work = tempfile::tempdir().unwrap();
    let mut paragraphs = String::new();
    publish_fixture(
        &repo,
        work.path(),
        &mut paragraphs,
        (
            "kodtest-fails",
            "1",
            Some("echo kodtest-fails refuses >&2; exit 3"),
        ),
    );
    // Small on the disk and in the index; its script fills the disk.
    let fill = "head -c 2000M /dev/zero > /var/lib/kodtest-fill || exit 1";
    publish_fixture(
        &repo,
        work.path(),
        &mut paragraphs,
        ("kodtest-fills", "1", Some(fill)),
    );
    let server = kod_testkit::http::FileServer::start(repo.serve_dir());
    let url = format!("{}/repo", server.url());
    let (fs, cache, dir, first) = generation_0(3 << 30);
    let top = fs.path();
    let before = generations_state(top);

    // A maintainer script that fails.
    let fails = write_config(
        dir.path(),
        "fails",
        &with_fixture(&repo, &url, SUITE, r#""less", "kodtest-fails""#),
    );
    let out = kod(cache.path(), rebuild_args(&fails, top, &[]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kodtest-fails"), "{err}");
    kod_ok(cache.path(), rebuild_args(&first, top, &[]));
    assert_same(
        "the generations after a failing script",
        &before,
        &generations_state(top),
    );

    // The file system fills up while the rebuild runs (after the
    // free-space check passed): a clear error, nothing left, the room
    // given back.
    let filler = fill_leaving(top, 400 << 20);
    let fills = write_config(
        dir.path(),
        "fills",
        &with_fixture(&repo, &url, SUITE, r#""less", "kodtest-fills""#),
    );
    let out = kod(cache.path(), rebuild_args(&fills, top, &[]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kodtest-fills"), "{err}");
    // Btrfs gives a deleted subvolume's room back in the background.
    common::run_ok(
        std::process::Command::new("btrfs")
            .args(["subvolume", "sync"])
            .arg(top),
    );
    kod_ok(cache.path(), rebuild_args(&first, top, &[]));
    assert_same(
        "the generations after a full disk",
        &before,
        &generations_state(top),
    );
    common::run_ok(
        std::process::Command::new("btrfs")
            .args(["filesystem", "sync"])
            .arg(top),
    );
    assert!(
        free_bytes(top) > 300 << 20,
        "the room the rebuild took is given back: {}",
        free_bytes(top)
    );
    std::fs::remove_file(&filler).unwrap();
    // And the machine rebuilds fine afterwards.
    let good = write_config(
        dir.path(),
        "good",
        &configuration(r#""less", "hello""#, NETWORKD),
    );
    kod_ok(cache.path(), rebuild_args(&good, top, &[]));
}

#[test]
fn net_root_rebuild_u_upgrades_to_what_the_repository_gained_in_either_mode() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    const SUITE: &str = "kodup";
    let repo = kod_testkit::debrepo::DebRepo::new(SUITE);
    let work = tempfile::tempdir().unwrap();
    let mut paragraphs = String::new();
    let up = |v| ("kodtest-up", v, None);
    publish_fixture(&repo, work.path(), &mut paragraphs, up("1"));
    let server = kod_testkit::http::FileServer::start(repo.serve_dir());
    let url = format!("{}/repo", server.url());

    let (fs, cache) = new_machine(3 << 30);
    let top = fs.path();
    let config = write_config(
        work.path(),
        "up",
        &with_fixture(&repo, &url, SUITE, r#""less", "kodtest-up""#),
    );
    kod_ok(cache.path(), install_args(&config, top));
    let version = |n: u64| {
        text(
            top,
            &format!("generations/{n}/rootfs/usr/share/kodtest-up/version"),
        )
    };
    assert_eq!(version(0), "1");

    // The repository gains version 2: without -u the machine keeps 1.
    publish_fixture(&repo, work.path(), &mut paragraphs, up("2"));
    let kept = kod_ok(cache.path(), rebuild_args(&config, top, &[]));
    assert!(kept.contains("nothing to do"), "{kept}");

    // -u refreshes the repositories and upgrades: a dry run says so, then
    // a new generation has it.
    let dry = kod_ok(
        cache.path(),
        rebuild_args(&config, top, &["-u", "--dry-run"]),
    );
    assert!(
        dry.lines()
            .any(|l| l.starts_with("upgrade") && l.contains("kodtest-up") && l.contains("1 -> 2")),
        "{dry}"
    );
    kod_ok(cache.path(), rebuild_args(&config, top, &["-u"]));
    assert_eq!(version(1), "2");
    assert_eq!(version(0), "1");
    assert!(
        lock_lines(&top.join("generations/1")).contains(&"kodtest-up 2 all".to_string()),
        "{:?}",
        lock_lines(&top.join("generations/1"))
    );

    // In place too: version 3 reaches generation 1's root, which becomes
    // 2; generation 1 keeps version 2.
    publish_fixture(&repo, work.path(), &mut paragraphs, up("3"));
    let target = [
        std::ffi::OsStr::new("-u"),
        std::ffi::OsStr::new("--target"),
        top.as_os_str(),
    ];
    kod_ok(cache.path(), in_place_args(&config, &target));
    assert_eq!(version(2), "3");
    assert_eq!(version(1), "2");
    assert_eq!(
        dpkg_lines(&top.join("generations/2/rootfs")),
        lock_lines(&top.join("generations/2"))
    );
}

#[test]
fn net_root_a_file_of_a_helper_that_left_the_configuration_leaves_the_next_generation() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let (fs, cache) = new_machine(3 << 30);
    let top = fs.path();
    let dir = tempfile::tempdir().unwrap();
    let helper = r#"dora = { no_password = true, programs = { kodtest = { enable = true, package = "less", config = {
        name = "kodtest", stages = { "install" },
        command = function(ctx) ctx:write_file("/etc/kodtest-helper.conf", "written by a helper\n") end } } } },"#;
    let with = write_config(
        dir.path(),
        "with",
        &with_users(r#""less""#, NETWORKD, helper),
    );
    kod_ok(cache.path(), install_args(&with, top));
    let gen0 = top.join("generations/0/rootfs");
    assert_eq!(
        text(&gen0, "etc/kodtest-helper.conf"),
        "written by a helper\n"
    );

    let without = write_config(
        dir.path(),
        "without",
        &with_users(r#""less""#, NETWORKD, "dora = { no_password = true },"),
    );
    let dry = kod_ok(cache.path(), rebuild_args(&without, top, &["--dry-run"]));
    assert!(
        dry.lines()
            .any(|l| l.contains("remove /etc/kodtest-helper.conf")),
        "{dry}"
    );
    kod_ok(cache.path(), rebuild_args(&without, top, &[]));
    assert!(
        !top.join("generations/1/rootfs/etc/kodtest-helper.conf")
            .exists()
    );
    assert_eq!(
        text(&gen0, "etc/kodtest-helper.conf"),
        "written by a helper\n"
    );
    // Nothing left to remove: the same configuration again changes nothing.
    let again = kod_ok(cache.path(), rebuild_args(&without, top, &[]));
    assert!(again.contains("nothing to do"), "{again}");
}
