//! Booting what kod installs (vm tier, with the root and net tiers): the
//! golden image of `examples/debian-vm` (built once per run by
//! kod-testkit, copied per test) booted under qemu and OVMF by `kod vm
//! --check`, whose guest reports the generation, its blessing and the
//! `--run` commands' output on a serial port of its own. Each boot costs
//! about a minute under software emulation: these tests boot seven times
//! in all.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use kod_testkit::{Tier, golden, run_ok, tiers};
use serde_json::Value;

const KOD: &str = env!("CARGO_BIN_EXE_kod");

/// A test's directory on the disk (images are large) with its own copy
/// of the golden image.
struct Vm {
    dir: tempfile::TempDir,
    image: PathBuf,
}

impl Vm {
    fn new() -> Vm {
        let dir = tempfile::Builder::new()
            .prefix("kod-boot-test-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let image = golden::copy_to(Path::new(KOD), &dir.path().join("machine.img"));
        Vm { dir, image }
    }

    /// `kod ARGS` with the vm tests' shared cache; any outcome.
    fn kod<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Command::new(KOD)
            .env("KOD_CACHE_DIR", golden::cache())
            .env("TMPDIR", self.dir.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn kod_ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let out = self.kod(args);
        assert!(
            out.status.success(),
            "kod failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `kod vm IMAGE --check --json ARGS`: its exit status, its report
    /// and its stderr.
    fn check(&self, args: &[&str]) -> (i32, Value, String) {
        let mut all: Vec<OsString> = vec!["vm".into(), self.image.clone().into()];
        all.extend(["--check", "--json"].map(OsString::from));
        all.extend(args.iter().map(OsString::from));
        let out = self.kod(all);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "kod vm printed no JSON ({e}):\n{}\n{stderr}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        (out.status.code().unwrap_or(-1), report, stderr)
    }

    /// The example's configuration with `edit` applied, in a directory of
    /// this test's.
    fn config(&self, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for e in std::fs::read_dir(golden::example()).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
        let file = dir.join("configuration.lua");
        let text = std::fs::read_to_string(&file).unwrap();
        let edited = edit(text.clone());
        assert_ne!(edited, text, "the edit changed nothing");
        std::fs::write(&file, edited).unwrap();
        dir
    }

    fn rebuild(&self, config: &Path) -> String {
        let mut args: Vec<OsString> = vec!["-c".into(), config.into()];
        args.extend(["rebuild", "-n", "--image"].map(OsString::from));
        args.push(self.image.clone().into());
        let out = self.kod(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "rebuild failed:\n{stderr}");
        stderr
    }

    fn generations(&self) -> Value {
        let out = self.kod_ok([
            "generations".as_ref(),
            "list".as_ref(),
            "--json".as_ref(),
            "--image".as_ref(),
            self.image.as_os_str(),
        ]);
        serde_json::from_str(&out).unwrap()
    }
}

fn add_packages(text: String, extra: &str) -> String {
    text.replace(
        r#"list({ "systemd-sysv", "sudo" })"#,
        &format!(r#"list({{ "systemd-sysv", "sudo", {extra} }})"#),
    )
}

fn run_output(report: &Value, i: usize) -> String {
    let run = &report["runs"][i];
    match &run["output"] {
        Value::Array(lines) => lines
            .iter()
            .map(|l| l.as_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.as_str().unwrap_or_default().to_string(),
    }
}

#[test]
fn vm_the_example_boots_blessed_and_rebuilds_itself() {
    if !tiers(&[Tier::Root, Tier::Net, Tier::Vm]) {
        return;
    }
    let vm = Vm::new();
    // Before its first boot, generation 0's entry is counting: no last good.
    assert_eq!(vm.generations()["last_good"], Value::Null);
    let (code, report, stderr) = vm.check(&[
        "--run",
        "kod generations list",
        "--run",
        "bootctl list --no-pager",
        "--run",
        "/lib/systemd/systemd-networkd-wait-online --timeout=60",
        "--run",
        "kod rebuild -n --dry-run",
        "--run",
        "sed -i 's/\"sudo\" }/\"sudo\", \"hello\" }/' /etc/kod/configuration.lua && kod rebuild",
        "--run",
        "ls /efi/loader/entries && hello",
    ]);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(report["generation"], 0, "{report:#}");
    assert_eq!(report["blessed"], true, "{report:#}");
    assert_eq!(report["failed_units"], Value::Array(vec![]), "{report:#}");
    // systemd-boot booted generation 0's new entry, counting its tries.
    assert_eq!(report["entry"], "kod-0_1+3.conf", "{report:#}");
    // Inside, the machine knows its generations and its entries.
    let listing = run_output(&report, 0);
    assert!(
        listing.lines().any(|l| l.trim_start().starts_with("0 ")),
        "{listing}"
    );
    let entries = run_output(&report, 1);
    assert!(entries.contains("kod generation 0"), "{entries}");
    // It can rebuild itself from the configuration it keeps in /etc/kod
    // (through the host's network): nothing changed, nothing to do.
    assert_eq!(report["runs"][3]["status"], 0, "{report:#}");
    assert!(
        run_output(&report, 3).contains("nothing to do"),
        "{report:#}"
    );
    // And rebuild itself in place, on the running system, with its ESP
    // mounted at /efi: generation 1's entry is there, hello runs.
    assert_eq!(report["runs"][4]["status"], 0, "{report:#}");
    assert_eq!(report["runs"][5]["status"], 0, "{report:#}");
    let after = run_output(&report, 5);
    assert!(after.contains("kod-1_2+3.conf"), "{after}");
    assert!(after.contains("kod-0_1.conf"), "{after}");
    assert!(after.ends_with("Hello, world!"), "{after}");
    // The boot was blessed: generation 0 is the last good one now.
    assert_eq!(vm.generations()["last_good"], 0);
}

#[test]
fn vm_a_rebuilt_generation_boots_and_the_old_one_stays_bootable() {
    if !tiers(&[Tier::Root, Tier::Net, Tier::Vm]) {
        return;
    }
    let vm = Vm::new();
    let hello = vm.config("hello", |t| add_packages(t, r#""hello""#));
    let out = vm.rebuild(&hello);
    // Same kernel, modules and tool: the initramfs is generation 0's.
    assert!(!out.contains("initramfs:"), "{out}");

    let (code, report, stderr) = vm.check(&["--run", "hello"]);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(report["generation"], 1, "{report:#}");
    assert_eq!(report["runs"][0]["status"], 0, "{report:#}");
    assert_eq!(run_output(&report, 0), "Hello, world!", "{report:#}");

    // Generation 0 once: no hello there.
    let (code, report, stderr) = vm.check(&["--generation", "0", "--run", "hello"]);
    assert_eq!(code, 1, "{report:#}\n{stderr}");
    assert_eq!(report["generation"], 0, "{report:#}");
    assert_ne!(report["runs"][0]["status"], 0, "{report:#}");
    assert!(
        stderr.contains("hello"),
        "the failed command is named: {stderr}"
    );

    // Rolled back: a plain boot starts generation 0.
    vm.kod_ok([
        "generations".as_ref(),
        "rollback".as_ref(),
        "0".as_ref(),
        "--image".as_ref(),
        vm.image.as_os_str(),
    ]);
    let (code, report, stderr) = vm.check(&[]);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(report["generation"], 0, "{report:#}");
}

#[test]
fn vm_a_generation_that_fails_its_boot_falls_back_by_itself() {
    if !tiers(&[Tier::Root, Tier::Net, Tier::Vm]) {
        return;
    }
    let vm = Vm::new();
    // A mount of a filesystem type no kernel has: a unit that fails at
    // every boot, at once (no device to wait for), before
    // boot-complete.target; one try.
    let failing = vm.config("failing", |t| {
        t.replace(
            "local tools = require(\"tools\")",
            "local tools = require(\"tools\")\nlocal configs = require(\"configs\")",
        )
        .replace(
            "            timeout = 3,",
            "            timeout = 3,\n            tries = 1,",
        )
        .replace(
            "    services = {",
            "    services = {\n        broken = { services = { m = configs.mount({ name = \
             \"mnt-kodfail\", what = \"/nonexistent-kod-source\", where = \"/mnt/kodfail\", \
             type = \"kodnofs\" }) } },",
        )
    });
    vm.rebuild(&failing);

    let (code, report, stderr) = vm.check(&[]);
    assert_eq!(code, 1, "{report:#}\n{stderr}");
    assert_eq!(report["generation"], 1, "{report:#}");
    assert_ne!(report["blessed"], true, "{report:#}");
    let failed = report["failed_units"].to_string();
    assert!(failed.contains("mnt-kodfail.mount"), "{report:#}");
    assert!(stderr.contains("mnt-kodfail.mount"), "{stderr}");

    // The next boot of the same image: systemd-boot passes the bad entry.
    let (code, report, stderr) = vm.check(&[]);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(report["generation"], 0, "{report:#}");
    assert_eq!(report["blessed"], true, "{report:#}");

    let listing = vm.generations();
    assert_eq!(listing["bad"], serde_json::json!([1]), "{listing:#}");
    assert_eq!(listing["last_good"], 0, "{listing:#}");
    assert_eq!(listing["default"], 1, "{listing:#}");
}

/// The ESP's byte offset in `image`, as sfdisk finds it.
fn esp_offset(image: &Path) -> u64 {
    let table = run_ok(Command::new("sfdisk").arg("--json").arg(image));
    let t: Value = serde_json::from_str(&table).unwrap();
    let esp = t["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
        .expect("an ESP");
    esp["start"].as_u64().unwrap() * 512
}

/// The ESP's files (`mdir -b -/` through mtools), as `/path` lines.
fn esp_files(image: &Path) -> Vec<String> {
    let offset = esp_offset(image);
    run_ok(
        Command::new("mdir")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-b", "-/", "-i"])
            .arg(format!("{}@@{offset}", image.display()))
            .arg("::/"),
    )
    .lines()
    .filter(|l| !l.ends_with('/'))
    .map(|l| l.trim_start_matches("::").to_string())
    .collect()
}

#[test]
fn net_max_entries_keeps_the_newest_entries_extras_and_only_their_files() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let vm = Vm::new();
    let mut packages = String::new();
    for (i, p) in ["hello", "bc", "dc"].iter().enumerate() {
        packages.push_str(&format!("\"{p}\", "));
        let config = vm.config(&format!("c{i}"), |t| {
            add_packages(t, &packages).replace(
                "            timeout = 3,",
                "            timeout = 3,\n            max_entries = 2,\n            \
                 include = { \"memtest86+\" },",
            )
        });
        vm.rebuild(&config);
    }
    let files = esp_files(&vm.image);
    let entries: Vec<&String> = files
        .iter()
        .filter(|f| f.starts_with("/loader/entries/"))
        .collect();
    assert_eq!(entries.len(), 3, "{files:#?}");
    // memtest86+'s entry (boot.loader.include), not counted as kod's.
    assert!(
        entries.contains(&&"/loader/entries/kodextra-memtest86+.conf".to_string()),
        "{files:#?}"
    );
    // The default (3) and the one before it, both still counting.
    assert!(
        entries
            .iter()
            .any(|e| e.starts_with("/loader/entries/kod-3_")),
        "{files:#?}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e.starts_with("/loader/entries/kod-2_")),
        "{files:#?}"
    );
    // Exactly the kernel and initramfs the entries name: the rebuilds
    // changed no kernel input, so one of each.
    let esp = format!("{}@@{}", vm.image.display(), esp_offset(&vm.image));
    let named: Vec<String> = entries
        .iter()
        .flat_map(|e| {
            run_ok(
                Command::new("mtype")
                    .env("MTOOLS_SKIP_CHECK", "1")
                    .arg("-i")
                    .arg(&esp)
                    .arg(format!("::{e}")),
            )
            .lines()
            .filter_map(|l| {
                l.strip_prefix("linux ")
                    .or_else(|| l.strip_prefix("initrd "))
                    .or_else(|| l.strip_prefix("efi "))
                    .map(str::to_string)
            })
            .collect::<Vec<_>>()
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let boot_files: Vec<String> = files
        .iter()
        .filter(|f| f.starts_with("/kod/"))
        .cloned()
        .collect();
    assert_eq!(boot_files, named, "{files:#?}");
    assert_eq!(
        named.len(),
        3,
        "one kernel, one initramfs, memtest86+: {named:?}"
    );
    assert!(
        named
            .iter()
            .any(|f| f.starts_with("/kod/memtest86+/memtest86+-") && f.ends_with(".efi")),
        "{named:?}"
    );

    // Deleting generation 2 gives its room to the newest one left, 1.
    vm.kod_ok([
        "generations".as_ref(),
        "delete".as_ref(),
        "2".as_ref(),
        "--image".as_ref(),
        vm.image.as_os_str(),
    ]);
    let kod_entries: Vec<String> = esp_files(&vm.image)
        .into_iter()
        .filter(|f| f.starts_with("/loader/entries/kod-"))
        .collect();
    assert_eq!(kod_entries.len(), 2, "{kod_entries:?}");
    for (n, kept) in [(1, true), (2, false), (3, true)] {
        let prefix = format!("/loader/entries/kod-{n}_");
        assert_eq!(
            kod_entries.iter().any(|e| e.starts_with(&prefix)),
            kept,
            "generation {n}: {kod_entries:?}"
        );
    }
}
