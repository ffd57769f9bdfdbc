//! The vm tier (`KOD_TEST_VM=1`): real boots under OVMF of a tiny guest
//! that needs no kod image: the host's Debian kernel and an initramfs of
//! busybox, dash and the report script from `kod_vm::guest::FILES`, as
//! kod entries (made by kod-boot) on the ESP of a small GPT image with
//! systemd-boot. Its /init does what systemd and udev do for the report
//! in a kod generation: mounts, the check disk's by-label link, running
//! the script, powering off. Each boot is 20–40 s under TCG.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kod_boot::{Blob, Esp, EspState, Generation, MtoolsEsp, Roles, Settings};
use kod_testkit::{Tier, run_ok};
use kod_vm::{Boot, Ending, Firmware, Outcome, Request, Watch};

/// The guest's init: the minimum a generation's boot gives the report.
const INIT: &str = r#"#!/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
while read -r m; do insmod "$m" 2>/dev/null; done </modules
mount -t efivarfs efivarfs /sys/firmware/efi/efivars
[ -e /panic ] && echo c >/proc/sysrq-trigger
# Standing in for udev: the check disk's by-label link.
mkdir -p /dev/disk/by-label
n=0
while [ "$n" -lt 100 ]; do
    if dev=$(findfs LABEL=kodchecks 2>/dev/null); then
        ln -s "$dev" /dev/disk/by-label/kodchecks
        break
    fi
    sleep 0.1
    n=$((n + 1))
done
/usr/lib/kod/report
echo "report script exited $?"
# Standing in for `systemctl poweroff`, which the script asks for.
[ -e /run/kod-checks/poweroff ] && poweroff -f
exec sleep 100000
"#;

/// Busybox applets the init, the report script and the checks use.
const APPLETS: &[&str] = &[
    "mount", "umount", "mkdir", "sleep", "findfs", "ln", "insmod", "poweroff", "cat", "tail", "tr",
    "mktemp", "rm", "stty", "uname", "echo", "true", "false", "ls",
];

/// Modules the guest needs: virtio disks, ext2 (by ext4), efivarfs, pvpanic.
const MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "ext4",
    "efivarfs",
    "pvpanic_mmio",
];

/// The host's newest Debian kernel and its version.
fn kernel() -> (PathBuf, String) {
    let mut kernels: Vec<PathBuf> = fs::read_dir("/boot")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("vmlinuz-")
        })
        .collect();
    kernels.sort();
    let k = kernels
        .pop()
        .expect("no /boot/vmlinuz-*: install linux-image-amd64 (scripts/deps.sh)");
    let version = k.file_name().unwrap().to_string_lossy()["vmlinuz-".len()..].to_string();
    assert!(
        Path::new("/lib/modules").join(&version).is_dir(),
        "no /lib/modules/{version} for {}",
        k.display()
    );
    (k, version)
}

fn copy(from: &Path, root: &Path) {
    let to = root.join(from.strip_prefix("/").unwrap());
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
}

fn write(root: &Path, path: &str, text: &str, mode: u32) {
    let p = root.join(path.trim_start_matches('/'));
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, text).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

/// A gzip-compressed newc cpio archive of `dir`.
fn cpio(dir: &Path, out: &Path) {
    run_ok(Command::new("sh").current_dir(dir).arg("-c").arg(format!(
        "find . | cpio --quiet -o -H newc | gzip -1 > '{}'",
        out.display()
    )));
}

/// The shared initramfs: dash as /bin/sh, busybox, modules, init, the
/// guest's report files.
fn base_initramfs(work: &Path, kver: &str) -> PathBuf {
    let root = work.join("initramfs");
    for d in ["proc", "sys", "dev", "run", "tmp", "root", "bin"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    for f in ["/usr/bin/dash", "/bin/busybox"] {
        copy(Path::new(f), &root);
    }
    // dash's libraries, as ldd names them.
    let ldd = run_ok(Command::new("ldd").arg("/usr/bin/dash"));
    for lib in ldd.split_whitespace().filter(|w| w.starts_with('/')) {
        copy(Path::new(lib), &root);
    }
    std::os::unix::fs::symlink("/usr/bin/dash", root.join("bin/sh")).unwrap();
    for a in APPLETS {
        std::os::unix::fs::symlink("/bin/busybox", root.join("bin").join(a)).unwrap();
    }
    let deps = run_ok(
        Command::new("modprobe")
            .args(["-a", "-S", kver, "--show-depends"])
            .args(MODULES),
    );
    let mut modules: Vec<&str> = Vec::new();
    for m in deps.lines().filter_map(|l| l.strip_prefix("insmod ")) {
        let m = m.trim();
        if !modules.contains(&m) {
            copy(Path::new(m), &root);
            modules.push(m);
        }
    }
    write(&root, "/modules", &(modules.join("\n") + "\n"), 0o644);
    write(&root, "/init", INIT, 0o755);
    for (path, content, mode) in kod_vm::guest::FILES {
        write(&root, path, content, *mode);
    }
    let out = work.join("base.cpio.gz");
    cpio(&root, &out);
    out
}

/// Generation `n`'s initramfs: the base with its `/.generation` (and
/// `/panic`, which makes the kernel crash before reporting) appended.
fn generation_initramfs(work: &Path, base: &Path, n: u64, panic: bool) -> PathBuf {
    let extra = work.join(format!("extra-{n}"));
    write(&extra, "/.generation", &format!("{n}\n"), 0o644);
    if panic {
        write(&extra, "/panic", "", 0o644);
    }
    let tail = work.join(format!("extra-{n}.cpio.gz"));
    cpio(&extra, &tail);
    // Archives concatenated start on 4-byte boundaries (zeros between
    // them are skipped).
    let mut bytes = fs::read(base).unwrap();
    bytes.resize(bytes.len().next_multiple_of(4), 0);
    bytes.extend(fs::read(&tail).unwrap());
    let out = work.join(format!("initrd-{n}"));
    fs::write(&out, bytes).unwrap();
    out
}

/// A 64 MiB GPT image whose ESP has systemd-boot and kod entries for
/// generations 1 (good), 2 (good, the default) and 3 (panics).
fn image(work: &Path) -> PathBuf {
    let (kernel, kver) = kernel();
    let base = base_initramfs(work, &kver);
    let img = work.join("vm.img");
    fs::File::create(&img).unwrap().set_len(64 << 20).unwrap();
    let mut sfdisk = Command::new("sfdisk");
    sfdisk
        .arg("-q")
        .arg(&img)
        .stdin(std::process::Stdio::piped());
    let mut child = sfdisk.spawn().unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        b"label: gpt\nstart=2048, size=110592, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n",
    )
    .unwrap();
    assert!(child.wait().unwrap().success(), "sfdisk failed");
    run_ok(
        Command::new("mkfs.vfat")
            .args(["--offset", "2048"])
            .arg(&img)
            .arg("55296"),
    );
    let esp = MtoolsEsp::new(&img, kod_vm::esp_offset(&img).unwrap());
    assert_eq!(kod_vm::esp_offset(&img).unwrap(), 2048 * 512);
    let gens: Vec<Generation> = [(1, false), (2, false), (3, true)]
        .into_iter()
        .map(|(n, panic)| Generation {
            number: n,
            kernel_version: kver.clone(),
            kernel: Blob::hash(&kernel).unwrap(),
            initrd: Blob::hash(generation_initramfs(work, &base, n, panic)).unwrap(),
            root_uuid: "00000000-0000-0000-0000-000000000000".into(),
            options: vec!["console=ttyS0".into()],
            date: "2026-01-01 00:00".into(),
        })
        .collect();
    kod_boot::place_systemd_boot(&esp, Path::new("/")).unwrap();
    let roles = Roles {
        default: 2,
        booted: None,
        last_good: None,
    };
    let state = EspState::read(&esp).unwrap();
    kod_boot::plan(&state, &gens, &roles, &Settings::default())
        .unwrap()
        .apply(&esp)
        .unwrap();
    assert!(esp.list("/loader/entries").unwrap().len() >= 3);
    img
}

/// Prints the console to the test's output, for a failure's diagnosis.
struct Echo;

impl Watch for Echo {
    fn console(&self, line: &str) {
        eprintln!("console: {line}");
    }
}

fn boot(img: &Path, generation: Option<u64>, checks: &[&str], timeout: u64) -> Outcome {
    let firmware = Firmware::find().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let choice = kod_vm::choose(&firmware, dir.path()).unwrap();
    eprintln!("accelerator: {} ({})", choice.accel, choice.why);
    let request = Request {
        image: img.to_path_buf(),
        generation,
        checks: Some(checks.iter().map(|c| c.to_string()).collect()),
        accel: choice.accel,
    };
    let boot = Boot::prepare(&request, &firmware).unwrap();
    let outcome = boot.check(Duration::from_secs(timeout), &Echo).unwrap();
    eprintln!("{outcome:#?}");
    outcome
}

#[test]
fn vm_the_default_entry_boots_and_reports_its_checks() {
    if !kod_testkit::tier(Tier::Vm) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let img = image(work.path());
    let o = boot(
        &img,
        None,
        &[
            "echo hello; echo to stderr >&2",
            "uname -s; pwd; id -u 2>/dev/null || echo no id",
        ],
        300,
    );
    assert_eq!(
        (o.ending, o.exit_code()),
        (Ending::Booted, 0),
        "{:?}",
        o.reason
    );
    let r = &o.report;
    assert_eq!((r.version, r.generation), (Some(1), Some(2)));
    // systemd-boot chose it (the default, by rank) and said so.
    assert!(
        r.entry.as_deref().unwrap_or_default().starts_with("kod-2_"),
        "{r:?}"
    );
    // No systemd-bless-boot in this guest.
    assert_eq!(r.bless.as_deref(), Some("unknown"));
    assert!(r.failed.is_empty());
    assert_eq!(r.runs.len(), 2);
    assert_eq!(r.runs[0].output, ["hello", "to stderr"]);
    assert_eq!(r.runs[0].status, Some(0));
    assert_eq!(r.runs[1].output, ["Linux", "/root", "no id"]);
    // The image's variable store is kept beside it for the next boot.
    assert!(img.with_extension("img.efivars").is_file());
}

#[test]
fn vm_a_generation_boots_directly_and_a_failing_check_fails() {
    if !kod_testkit::tier(Tier::Vm) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let img = image(work.path());
    let o = boot(&img, Some(1), &["echo before; exit 7"], 300);
    assert_eq!((o.ending, o.exit_code()), (Ending::Failed, 1));
    assert_eq!(
        o.reason.as_deref(),
        Some("`echo before; exit 7` exited with status 7")
    );
    let r = &o.report;
    assert!(r.complete);
    assert_eq!(r.generation, Some(1));
    // A direct kernel boot: no loader entry was selected.
    assert_eq!(r.entry, None);
    assert_eq!(r.runs[0].output, ["before"]);
    assert_eq!(r.runs[0].status, Some(7));
    // A failed boot keeps its console log.
    assert!(o.console_log.is_file());
    assert!(
        o.console_tail
            .iter()
            .any(|l| l.contains("report script exited 0"))
    );
    fs::remove_dir_all(o.console_log.parent().unwrap()).unwrap();
}

#[test]
fn vm_a_panic_fails_the_boot() {
    if !kod_testkit::tier(Tier::Vm) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let img = image(work.path());
    let o = boot(&img, Some(3), &["true"], 300);
    assert_eq!((o.ending, o.exit_code()), (Ending::Failed, 1));
    let why = o.reason.clone().unwrap();
    assert!(why.contains("panic"), "{why}");
    assert!(!o.report.complete);
    fs::remove_dir_all(o.console_log.parent().unwrap()).unwrap();
}

#[test]
fn vm_no_report_in_time_is_a_timeout() {
    if !kod_testkit::tier(Tier::Vm) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let img = image(work.path());
    let o = boot(&img, None, &["true"], 2);
    assert_eq!((o.ending, o.exit_code()), (Ending::Timeout, 3));
    assert!(o.reason.unwrap().contains("within 2 s"));
    assert!(o.seconds < 10.0, "{}", o.seconds);
    fs::remove_dir_all(o.console_log.parent().unwrap()).unwrap();
}
