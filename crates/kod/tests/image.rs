//! `kod install --image` end to end (root and net tiers): generation 0 on
//! new disk images, every outcome read back from the image files with
//! util-linux, btrfs-progs and a mount of the test's own (in a mount
//! namespace of its own, so a failing test leaves nothing mounted), and
//! nothing of kod's left behind: no loop device on the images, no mount.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::run_ok;
use kod_testkit::{Tier, tiers};

/// GPT type GUIDs, as sfdisk prints them.
const ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const ROOT_X86_64: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
const SWAP: &str = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F";
const LINUX_FS: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

/// A configuration of the tests' own without a kernel: a root disk
/// (ESP, Btrfs root) and a data disk (swap, ext4 at /data).
const TWO_DISKS: &str = r#"local repos = require("repos")
return {
  repos = { official = repos.debian_repo({ suite = "bookworm", components = { "main" } }) },
  boot = { kernel = { package = false } },
  network = { hostname = "kod-image" },
  devices = {
    disk0 = { device = "/dev/vda", type = "gpt", efi = true, wipe = true, partitions = {
      { name = "Boot", size = "256MB", type = "esp", mountpoint = "/boot", format = true },
      { name = "Root", size = "100%", type = "btrfs", mountpoint = "/", format = true },
    } },
    data = { device = "/dev/vdb", type = "gpt", efi = false, wipe = true, partitions = {
      { name = "Swap", size = "128MB", type = "linux-swap" },
      { name = "Data", size = "100%", type = "ext4", mountpoint = "/data", format = true },
    } },
  },
  packages = { "less" },
}
"#;

/// The same machine on one disk.
const ONE_DISK: &str = r#"local repos = require("repos")
return {
  repos = { official = repos.debian_repo({ suite = "bookworm", components = { "main" } }) },
  boot = { kernel = { package = false } },
  network = { hostname = "kod-image" },
  devices = {
    disk0 = { device = "/dev/vda", type = "gpt", efi = true, wipe = true, partitions = {
      { name = "Boot", size = "256MB", type = "esp", mountpoint = "/boot", format = true },
      { name = "Swap", size = "128MB", type = "linux-swap" },
      { name = "Root", size = "100%", type = "btrfs", mountpoint = "/", format = true },
    } },
  },
  packages = { "less" },
}
"#;

/// A test's own directory (images, configuration, kod's cache and
/// temporary files), on the disk rather than a tmpfs: images are large.
struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new() -> Work {
        Work {
            dir: tempfile::Builder::new()
                .prefix("kod-image-test-")
                .tempdir_in("/var/tmp")
                .unwrap(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A configuration directory holding `text` as configuration.lua.
    fn config(&self, text: &str) -> PathBuf {
        let dir = self.path("config");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("configuration.lua"), text).unwrap();
        dir
    }

    /// `kod ARGS` with this directory's cache and TMPDIR (where kod's
    /// default mount point is made).
    fn kod_command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let tmp = self.path("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kod"));
        cmd.env("KOD_CACHE_DIR", self.path("cache"))
            .env("TMPDIR", tmp)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    fn kod<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.kod_command(args).output().unwrap()
    }

    fn kod_ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let out = self.kod(args);
        assert!(
            out.status.success(),
            "kod failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Fails unless no loop device reads `images` and no process's mount
    /// table mentions this directory (kod's mount points are in it),
    /// waiting a little: the kernel clears an autoclear loop device after
    /// its last user is gone.
    fn assert_released(&self, images: &[&Path]) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let loops: Vec<String> = images
                .iter()
                .map(|i| run_ok(Command::new("losetup").arg("-j").arg(i)))
                .filter(|s| !s.trim().is_empty())
                .collect();
            let mounts = mounts_under(self.dir.path());
            if loops.is_empty() && mounts.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                panic!("left behind: loop devices {loops:?}, mounts {mounts:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The lines of every process's mountinfo whose mount point is under
/// `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("mountinfo")) else {
            continue;
        };
        found.extend(
            text.lines()
                .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&*dir)))
                .map(|l| format!("{}: {l}", entry.file_name().to_string_lossy())),
        );
    }
    found
}

/// A partition as `sfdisk --json` reads it from an image file.
#[derive(Debug)]
struct Part {
    start: u64,
    sectors: u64,
    kind: String,
    name: String,
}

impl Part {
    fn offset(&self) -> u64 {
        self.start * 512
    }
}

/// The image's partition table: its label and partitions, by util-linux.
fn table(image: &Path) -> (String, Vec<Part>) {
    let out = run_ok(Command::new("sfdisk").arg("--json").arg(image));
    let t = serde_json::from_str::<serde_json::Value>(&out).unwrap()["partitiontable"].clone();
    let parts = t["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Part {
            start: p["start"].as_u64().unwrap(),
            sectors: p["size"].as_u64().unwrap(),
            kind: p["type"].as_str().unwrap().to_string(),
            name: p["name"].as_str().unwrap_or("").to_string(),
        })
        .collect();
    (t["label"].as_str().unwrap().to_string(), parts)
}

/// What `blkid -p` finds in a partition's byte range of the image file.
fn blkid(image: &Path, p: &Part) -> BTreeMap<String, String> {
    run_ok(
        Command::new("blkid")
            .args(["-p", "-o", "export", "-O", &p.offset().to_string()])
            .args(["-S", &(p.sectors * 512).to_string()])
            .arg(image),
    )
    .lines()
    .filter_map(|l| l.split_once('=').map(|(k, v)| (k.into(), v.into())))
    .collect()
}

/// Runs `script` (sh) with the Btrfs at `offset` of `image` mounted
/// read-only at `$d`, in a mount namespace of its own: the mount and its
/// loop device (autoclear) go when the script ends, however it ends.
fn in_btrfs(image: &Path, offset: u64, script: &str) -> String {
    let full = format!(
        "set -eu; d=$(mktemp -d); mount -o ro,loop,offset={offset} \"$1\" \"$d\"; {script}"
    );
    run_ok(
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &full, "sh"])
            .arg(image),
    )
}

/// The fstab lines that are not comments, each split into fields.
fn fstab_lines(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// Whether `fstab` has a line that starts with these fields.
fn has_line(fstab: &[Vec<String>], fields: &[&str]) -> bool {
    fstab
        .iter()
        .any(|l| l.len() >= fields.len() && l.iter().zip(fields).all(|(a, b)| a == b))
}

/// The image's sectors, from its size.
fn sectors(image: &Path) -> u64 {
    std::fs::metadata(image).unwrap().len() / 512
}

/// The one test with a kernel: `examples/debian-vm` on an image of the
/// default size.
#[test]
fn net_root_install_image_of_the_debian_vm_example() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let work = Work::new();
    let img = work.path("vm.img");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/debian-vm");
    work.kod_ok([
        "-c".as_ref(),
        example.as_os_str(),
        "install".as_ref(),
        "--image".as_ref(),
        img.as_os_str(),
        "--yes".as_ref(),
    ]);
    work.assert_released(&[&img]);
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 8 << 30);

    // The table: the example's `disk.disk_definition`: a 1 GB ESP at
    // 1 MiB, then the root to the end (less the backup GPT, 1 MiB
    // aligned).
    let (label, parts) = table(&img);
    assert_eq!(label, "gpt");
    assert_eq!(parts.len(), 2, "{parts:?}");
    let (esp, root) = (&parts[0], &parts[1]);
    assert_eq!((esp.start, esp.sectors), (2048, 2 << 20));
    assert_eq!((esp.kind.as_str(), esp.name.as_str()), (ESP, "Boot"));
    assert_eq!(root.start, 2048 + (2 << 20));
    assert_eq!(
        (root.kind.as_str(), root.name.as_str()),
        (ROOT_X86_64, "Root")
    );
    let end = root.start + root.sectors;
    assert!(
        end <= sectors(&img) - 33 && end + 2048 > sectors(&img) - 33,
        "{root:?}"
    );

    // The filesystems, as blkid finds them in the file.
    let esp_fs = blkid(&img, esp);
    let root_fs = blkid(&img, root);
    assert_eq!(esp_fs["TYPE"], "vfat", "{esp_fs:?}");
    assert_eq!(root_fs["TYPE"], "btrfs", "{root_fs:?}");
    assert_eq!(root_fs["LABEL"], "Root", "{root_fs:?}");

    // The Btrfs layout, fstab and generation 0, read through a mount of
    // the test's own.
    let out = in_btrfs(
        &img,
        root.offset(),
        r#"btrfs subvolume list "$d" | awk '{print "subvolume", $NF}'
        r=$d/generations/0/rootfs
        echo "generation $(cat "$r/.generation")"
        echo "complete $(test -f "$d/generations/0/record-complete" && echo yes)"
        sed 's/^/pointer /' "$d/generations/default"
        sed 's/^/fstab /' "$r/etc/fstab"
        ls "$r/boot" | sed 's/^/boot /'
        sort "$d/generations/0/packages.lock" | sed 's/^/lock /'
        chroot "$r" dpkg-query -W -f '${Package} ${Version} ${Architecture}\n' | sort | sed 's/^/dpkg /'"#,
    );
    let tagged = |tag: &str| -> Vec<String> {
        out.lines()
            .filter_map(|l| l.strip_prefix(&format!("{tag} ")))
            .map(str::to_string)
            .collect()
    };
    let subvolumes = tagged("subvolume");
    for s in ["generations/0/rootfs", "store/home"] {
        assert!(subvolumes.iter().any(|x| x == s), "{subvolumes:?}");
    }
    assert_eq!(tagged("generation"), ["0"]);
    assert_eq!(tagged("complete"), ["yes"]);
    assert!(tagged("pointer").iter().any(|l| l == "default 0"), "{out}");
    let fstab = fstab_lines(&tagged("fstab").join("\n"));
    let root_uuid = format!("UUID={}", root_fs["UUID"]);
    let esp_uuid = format!("UUID={}", esp_fs["UUID"]);
    assert!(
        has_line(
            &fstab,
            &[&root_uuid, "/", "btrfs", "subvol=generations/0/rootfs"]
        ),
        "{fstab:?}"
    );
    assert!(
        has_line(&fstab, &[&root_uuid, "/kod", "btrfs", "subvolid=5"]),
        "{fstab:?}"
    );
    assert!(
        has_line(&fstab, &[&esp_uuid, "/efi", "vfat", "umask=0077"]),
        "{fstab:?}"
    );
    let boot = tagged("boot");
    assert!(boot.iter().any(|f| f.starts_with("vmlinuz-")), "{boot:?}");
    assert!(
        boot.iter().any(|f| f.starts_with("initrd.img-")),
        "{boot:?}"
    );
    let lock = tagged("lock");
    assert!(
        lock.iter().any(|l| l.starts_with("linux-image-")),
        "{lock:?}"
    );
    assert_eq!(lock, tagged("dpkg"));
}

#[test]
fn net_root_install_two_images_partitions_both_disks_and_mounts_them_in_fstab() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let work = Work::new();
    let config = work.config(TWO_DISKS);
    let (img0, img1) = (work.path("root.img"), work.path("data.img"));
    let out = work.kod_ok([
        "-c".as_ref(),
        config.as_os_str(),
        "install".as_ref(),
        "--image".as_ref(),
        format!("disk0={}", img0.display()).as_ref(),
        "--image".as_ref(),
        format!("data={}", img1.display()).as_ref(),
        "--size".as_ref(),
        "2G".as_ref(),
        "--yes".as_ref(),
        "--json".as_ref(),
    ]);
    // JSON on stdout (the plans went to stderr).
    serde_json::from_str::<serde_json::Value>(&out).unwrap();
    work.assert_released(&[&img0, &img1]);

    let (label0, p0) = table(&img0);
    let (label1, p1) = table(&img1);
    assert_eq!((label0.as_str(), label1.as_str()), ("gpt", "gpt"));
    let kinds = |p: &[Part]| p.iter().map(|p| p.kind.clone()).collect::<Vec<_>>();
    assert_eq!(kinds(&p0), [ESP, ROOT_X86_64]);
    assert_eq!(kinds(&p1), [SWAP, LINUX_FS]);
    assert_eq!((p0[0].start, p0[0].sectors), (2048, 256 << 11));
    assert_eq!((p1[0].start, p1[0].sectors), (2048, 128 << 11));
    assert_eq!(p1[1].start, 2048 + (128 << 11));

    let esp = blkid(&img0, &p0[0]);
    let root = blkid(&img0, &p0[1]);
    let swap = blkid(&img1, &p1[0]);
    let data = blkid(&img1, &p1[1]);
    assert_eq!(
        [&esp, &root, &swap, &data].map(|b| b["TYPE"].clone()),
        ["vfat", "btrfs", "swap", "ext4"]
    );
    assert_eq!(data["LABEL"], "Data");

    let fstab = in_btrfs(
        &img0,
        p0[1].offset(),
        r#"cat "$d/generations/0/rootfs/etc/fstab""#,
    );
    let fstab = fstab_lines(&fstab);
    let uuid = |b: &BTreeMap<String, String>| format!("UUID={}", b["UUID"]);
    assert!(
        has_line(
            &fstab,
            &[&uuid(&root), "/", "btrfs", "subvol=generations/0/rootfs"]
        ),
        "{fstab:?}"
    );
    assert!(
        has_line(&fstab, &[&uuid(&esp), "/efi", "vfat", "umask=0077"]),
        "{fstab:?}"
    );
    assert!(
        has_line(&fstab, &[&uuid(&swap), "none", "swap"]),
        "{fstab:?}"
    );
    assert!(
        has_line(&fstab, &[&uuid(&data), "/data", "ext4"]),
        "{fstab:?}"
    );
    // The ESP is at /efi, not at the configuration's /boot.
    assert!(!fstab.iter().any(|l| l[1] == "/boot"), "{fstab:?}");
}

#[test]
fn net_root_install_image_dry_run_and_refusals_create_nothing() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let work = Work::new();
    let config = work.config(TWO_DISKS);
    let c = config.to_str().unwrap();
    let (img0, img1) = (work.path("root.img"), work.path("data.img"));
    let (i0, i1) = (
        format!("disk0={}", img0.display()),
        format!("data={}", img1.display()),
    );

    let dry = work.kod_ok([
        "-c",
        c,
        "install",
        "--image",
        &i0,
        "--image",
        &i1,
        "--size",
        "2G",
        "--dry-run",
    ]);
    assert!(
        dry.contains(&format!(
            "devices.disk0: a new image file {}",
            img0.display()
        )),
        "{dry}"
    );
    assert!(dry.contains("devices.data: a new image file"), "{dry}");
    assert!(dry.lines().any(|l| l.starts_with("less ")), "{dry}");
    let json = work.kod_ok([
        "-c",
        c,
        "install",
        "--image",
        &i0,
        "--image",
        &i1,
        "--dry-run",
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["disks"].as_array().unwrap().len(), 2, "{json}");
    assert!(!img0.exists() && !img1.exists(), "a dry run made an image");

    // One image for two disks, a disk left out, an unknown key: refused
    // before anything is read or made, each naming what to write.
    let refused = |args: &[&str], wanted: &str| {
        let mut all = vec!["-c", c, "install"];
        all.extend_from_slice(args);
        let out = work.kod(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(wanted),
            "{args:?}: {err}"
        );
    };
    let bare = img0.to_str().unwrap();
    refused(&["--image", bare, "--yes"], "--image KEY=FILE");
    refused(&["--image", &i0, "--yes"], "--image data=FILE");
    refused(&["--image", "dsk0=x.img", "--yes"], "no devices.dsk0");
    // Without a terminal and without --yes.
    refused(&["--image", &i0, "--image", &i1], "--yes");
    assert!(!img0.exists() && !img1.exists());

    // An existing file is not overwritten.
    std::fs::write(&img0, b"keep me").unwrap();
    refused(&["--image", &i0, "--image", &i1, "--yes"], "exists");
    assert_eq!(std::fs::read(&img0).unwrap(), b"keep me");
    assert!(!img1.exists());
    work.assert_released(&[&img0]);
}

#[test]
fn net_root_install_image_interrupted_by_sigint_releases_every_mount_and_loop_device() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let work = Work::new();
    let config = work.config(ONE_DISK);
    let img = work.path("vm.img");
    let mount_point = work.path("mnt");
    std::fs::create_dir(&mount_point).unwrap();
    let mut cmd = work.kod_command([
        "-c".as_ref(),
        config.as_os_str(),
        "install".as_ref(),
        "--image".as_ref(),
        img.as_os_str(),
        "--size".as_ref(),
        "2G".as_ref(),
        "-m".as_ref(),
        mount_point.as_os_str(),
        "--yes".as_ref(),
    ]);
    // Its own process group, which gets the SIGINT as a terminal's Ctrl-C
    // would send it to every process of the foreground group.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut kod = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let group = kod.id().to_string();

    // Wait until the image is attached and the root mounted (in kod's
    // namespace), then stop it while it installs.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let attached = !run_ok(Command::new("losetup").arg("-j").arg(&img))
            .trim()
            .is_empty();
        if attached && !mounts_under(&mount_point).is_empty() {
            break;
        }
        if let Some(status) = kod.try_wait().unwrap() {
            panic!("kod ended ({status}) before it mounted the image");
        }
        assert!(Instant::now() < deadline, "kod never mounted the image");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    run_ok(Command::new("kill").args(["-INT", "--", &format!("-{group}")]));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = kod.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "kod did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "{status}");
    work.assert_released(&[&img]);
    // No process of kod's is left (one in its namespace would hold the
    // mount).
    let left = Command::new("pgrep").args(["-g", &group]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&left.stdout), "", "processes left");
}

/// A loop device on an image file, made by the test (the stand-in for a
/// real disk); detached when dropped.
struct Losetup(String);

impl Losetup {
    fn new(image: &Path) -> Losetup {
        let out = run_ok(
            Command::new("losetup")
                .args(["--find", "--show"])
                .arg(image),
        );
        Losetup(out.trim().to_string())
    }
}

impl Drop for Losetup {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

/// The loop devices whose backing file is `backing` (a loop device kod
/// stacked partitions on).
fn loops_on(backing: &str) -> Vec<String> {
    let out = run_ok(Command::new("losetup").args(["--list", "--json", "-O", "NAME,BACK-FILE"]));
    let v: serde_json::Value = serde_json::from_str(if out.trim().is_empty() {
        r#"{"loopdevices":[]}"#
    } else {
        &out
    })
    .unwrap();
    v["loopdevices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["back-file"].as_str() == Some(backing))
        .map(|l| l["name"].as_str().unwrap().to_string())
        .collect()
}

fn sha256sum(path: &Path) -> String {
    run_ok(Command::new("sha256sum").arg(path))
}

#[test]
fn net_root_install_disk_dry_run_leaves_the_device_unchanged_and_the_install_fills_it() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let work = Work::new();
    let config = work.config(ONE_DISK);
    let img = work.path("disk.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    // Something on the disk that a dry run must leave there.
    run_ok(Command::new("sh").arg("-c").arg(format!(
        "printf 'old contents' | dd of='{}' bs=1 seek=1048576 conv=notrunc status=none",
        img.display()
    )));
    let dev = Losetup::new(&img);
    let before = sha256sum(&img);
    let args = |extra: &[&str]| {
        let mut a = vec![
            "-c".to_string(),
            config.display().to_string(),
            "install".into(),
            "--disk".into(),
            dev.0.clone(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let dry = work.kod_ok(args(&["--dry-run"]));
    assert!(dry.contains(&format!("devices.disk0: {}", dev.0)), "{dry}");
    assert!(dry.contains("everything on it is lost"), "{dry}");
    assert_eq!(sha256sum(&img), before, "the dry run wrote to the disk");
    assert!(loops_on(&dev.0).is_empty());

    work.kod_ok(args(&["--yes"]));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !loops_on(&dev.0).is_empty() {
        assert!(
            Instant::now() < deadline,
            "partition loop devices left: {:?}",
            loops_on(&dev.0)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(mounts_under(work.dir.path()).is_empty());
    // Read back from the file alone (util-linux refuses a loop device
    // overlapping the test's own).
    drop(dev);
    let (label, parts) = table(&img);
    assert_eq!(label, "gpt");
    assert_eq!(
        parts.iter().map(|p| p.kind.as_str()).collect::<Vec<_>>(),
        [ESP, SWAP, ROOT_X86_64]
    );
    let swap = blkid(&img, &parts[1]);
    let root = blkid(&img, &parts[2]);
    let out = in_btrfs(
        &img,
        parts[2].offset(),
        r#"cat "$d/generations/0/rootfs/etc/fstab"; cat "$d/generations/0/rootfs/.generation""#,
    );
    let fstab = fstab_lines(&out);
    let uuid = |b: &BTreeMap<String, String>| format!("UUID={}", b["UUID"]);
    assert!(has_line(&fstab, &[&uuid(&root), "/", "btrfs"]), "{out}");
    assert!(has_line(&fstab, &[&uuid(&swap), "none", "swap"]), "{out}");
    assert!(out.ends_with("\n0\n"), "{out}");
}

#[test]
fn net_root_install_image_not_confirmed_on_the_terminal_writes_nothing() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    use rustix::fs::{Mode, OFlags};
    let work = Work::new();
    let config = work.config(TWO_DISKS);
    let (img0, img1) = (work.path("root.img"), work.path("data.img"));
    // A terminal on stdin, on which the answer is typed before it is asked.
    let master =
        rustix::pty::openpt(rustix::pty::OpenptFlags::RDWR | rustix::pty::OpenptFlags::NOCTTY)
            .unwrap();
    rustix::pty::grantpt(&master).unwrap();
    rustix::pty::unlockpt(&master).unwrap();
    let name = rustix::pty::ptsname(&master, Vec::new()).unwrap();
    let side = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    rustix::io::write(&master, b"no\n").unwrap();
    let out = work
        .kod_command([
            "-c".as_ref(),
            config.as_os_str(),
            "install".as_ref(),
            "--image".as_ref(),
            format!("disk0={}", img0.display()).as_ref(),
            "--image".as_ref(),
            format!("data={}", img1.display()).as_ref(),
            "--size".as_ref(),
            "2G".as_ref(),
        ])
        .stdin(Stdio::from(side))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    // It showed both disks' plans and asked.
    assert!(
        err.contains("devices.disk0:") && err.contains("devices.data:"),
        "{err}"
    );
    assert!(err.contains("Type yes"), "{err}");
    assert!(err.contains("not confirmed"), "{err}");
    // Nothing is made before the answer: no image, no loop device.
    assert!(!img0.exists() && !img1.exists(), "{err}");
    work.assert_released(&[&img0, &img1]);
}

#[test]
fn net_root_rebuild_of_an_image_machine_keeps_the_disks_in_fstab() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let work = Work::new();
    let config = work.config(ONE_DISK);
    let img = work.path("vm.img");
    work.kod_ok([
        "-c".as_ref(),
        config.as_os_str(),
        "install".as_ref(),
        "--image".as_ref(),
        img.as_os_str(),
        "--size".as_ref(),
        "2G".as_ref(),
        "--yes".as_ref(),
    ]);
    work.assert_released(&[&img]);
    let (_, parts) = table(&img);
    let (esp, swap) = (blkid(&img, &parts[0]), blkid(&img, &parts[1]));
    // `kod rebuild -n` with one more package, on the machine's top level
    // mounted read-write in a namespace of the test's own.
    let more = work.path("more");
    std::fs::create_dir(&more).unwrap();
    std::fs::write(
        more.join("configuration.lua"),
        ONE_DISK.replace(r#"{ "less" }"#, r#"{ "less", "hello" }"#),
    )
    .unwrap();
    let script = format!(
        "set -eu; d=$(mktemp -d); mount -o loop,offset={} \"$1\" \"$d\"; \
         KOD_CACHE_DIR='{}' '{}' -c '{}' rebuild -n --target \"$d\" >&2; \
         cat \"$d/generations/1/rootfs/etc/fstab\"",
        parts[2].offset(),
        work.path("cache").display(),
        env!("CARGO_BIN_EXE_kod"),
        more.display(),
    );
    let out = run_ok(
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
            .arg(&img),
    );
    let fstab = fstab_lines(&out);
    assert!(
        fstab
            .iter()
            .any(|l| l.get(3).is_some_and(|o| o == "subvol=generations/1/rootfs")),
        "{out}"
    );
    let uuid = |b: &BTreeMap<String, String>| format!("UUID={}", b["UUID"]);
    assert!(
        has_line(&fstab, &[&uuid(&esp), "/efi", "vfat", "umask=0077"]),
        "{out}"
    );
    assert!(has_line(&fstab, &[&uuid(&swap), "none", "swap"]), "{out}");
    work.assert_released(&[&img]);
}
