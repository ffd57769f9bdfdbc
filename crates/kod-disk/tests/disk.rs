//! Root tier: disks made on loop-attached image files, checked with the
//! standard tools (sfdisk, blkid, mtools, mount) rather than with kod's own
//! readers, and each safety refusal on a device really in that state.
//!
//! Every test makes its images in its own directory under /var/tmp, and
//! its fixtures release what they set up (mounts, swap, loop devices) when
//! dropped, also when the test fails; the last check of each test is that
//! no loop device reads its images any more.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use kod_config::Disk;
use kod_disk::{
    AllowList, Loop, ProvisionError, SafetyError, Target, attach_image, check_devices, create_image,
};
use kod_testkit::run_ok as run;
use kod_testkit::{Tier, assert_contains};
use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The disks of a configuration whose `devices` table is the Lua text
/// `devices`, through kod-config and kod-plan (which puts the ESP at /efi),
/// as the installer gets them.
fn devices(devices: &str) -> BTreeMap<String, Disk> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("configuration.lua");
    let lua = format!(
        "local disk = require(\"disk\")\n\
         local repos = require(\"repos\")\n\
         return {{\n\
           repos = {{ official = repos.debian_repo({{ suite = \"bookworm\" }}) }},\n\
           devices = {devices},\n\
         }}\n"
    );
    fs::write(&file, lua).unwrap();
    let config = kod_config::load(&file, &Default::default()).unwrap();
    let plan = kod_plan::plan(&config).unwrap();
    check_devices(&plan.devices).unwrap();
    plan.devices
}

/// A directory under /var/tmp for a test's images, removed at the end.
fn workdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("kod-disk-")
        .tempdir_in("/var/tmp")
        .unwrap()
}

/// A sparse image of `bytes` in `dir`, attached as a loop device.
fn image(dir: &Path, name: &str, bytes: u64) -> (PathBuf, Loop) {
    let path = dir.join(name);
    create_image(&path, bytes).unwrap();
    let lo = attach_image(&path).unwrap();
    (path, lo)
}

/// Every bound loop device's backing file, from `losetup`.
fn loop_backings() -> Vec<(String, String)> {
    run(Command::new("losetup").args(["-n", "-l", "-O", "NAME,BACK-FILE"]))
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.to_string(), f.next()?.to_string()))
        })
        .collect()
}

/// Fails if a loop device still reads `image` or the loop device `disk`
/// (a partition's loop device). The kernel detaches an autoclear device on
/// the last close; allow it a moment.
fn assert_released(image: &Path, disk: &Path) {
    let img = image.to_string_lossy().into_owned();
    let disk = disk.to_string_lossy().into_owned();
    let mut left = Vec::new();
    for _ in 0..50 {
        left = loop_backings()
            .into_iter()
            .filter(|(_, b)| b == &img || b == &disk)
            .collect();
        if left.is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("loop devices left behind: {left:?}");
}

/// `sfdisk --json` of an image file: the table, read by util-linux.
fn sfdisk(image: &Path) -> serde_json::Value {
    let out = run(Command::new("sfdisk").arg("--json").arg(image));
    serde_json::from_str::<serde_json::Value>(&out).unwrap()["partitiontable"].clone()
}

/// What `blkid -p` finds in the byte range of a partition of the image
/// file, read from the file itself, not through kod's loop devices.
fn blkid(image: &Path, start: u64, size: u64) -> BTreeMap<String, String> {
    run(Command::new("blkid")
        .args([
            "-p",
            "-o",
            "export",
            "-O",
            &start.to_string(),
            "-S",
            &size.to_string(),
        ])
        .arg(image))
    .lines()
    .filter_map(|l| {
        l.split_once('=')
            .map(|(k, v)| (k.to_string(), v.to_string()))
    })
    .collect()
}

/// A digest of an image file's contents that reads only its data: the
/// offsets of every data extent (SEEK_DATA/SEEK_HOLE) and their bytes. A
/// write anywhere changes it (a write into a hole makes a new extent), and
/// an 8 GiB sparse image is hashed in moments.
fn sha256(path: &Path) -> Vec<u8> {
    let mut f = fs::File::open(path).unwrap();
    let len = f.metadata().unwrap().len();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0;
    while pos < len {
        let data = match rustix::fs::seek(&f, rustix::fs::SeekFrom::Data(pos)) {
            Ok(d) => d,
            Err(rustix::io::Errno::NXIO) => break,
            Err(e) => panic!("SEEK_DATA: {e}"),
        };
        let hole = rustix::fs::seek(&f, rustix::fs::SeekFrom::Hole(data)).unwrap();
        h.update(data.to_le_bytes());
        h.update(hole.to_le_bytes());
        f.seek(SeekFrom::Start(data)).unwrap();
        let mut left = hole - data;
        while left > 0 {
            let n = f.read(&mut buf[..left.min(1 << 20) as usize]).unwrap();
            assert!(n > 0, "short read of {}", path.display());
            h.update(&buf[..n]);
            left -= n as u64;
        }
        pos = hole;
    }
    h.finalize().to_vec()
}

/// A mount made by a test, unmounted when dropped.
struct Mounted(PathBuf);

impl Mounted {
    fn new(dev: &Path, at: PathBuf) -> Mounted {
        Mounted::with(dev, at, "rw")
    }

    /// Read-only: a refusal test's device stays as it was.
    fn read_only(dev: &Path, at: PathBuf) -> Mounted {
        Mounted::with(dev, at, "ro")
    }

    fn with(dev: &Path, at: PathBuf, options: &str) -> Mounted {
        fs::create_dir_all(&at).unwrap();
        run(Command::new("mount")
            .args(["-o", options])
            .arg(dev)
            .arg(&at));
        Mounted(at)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if !Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success())
        {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// A swap turned on by a test, turned off when dropped.
struct SwapOn(PathBuf);

impl Drop for SwapOn {
    fn drop(&mut self) {
        let _ = Command::new("swapoff").arg(&self.0).status();
    }
}

/// A loop device made by the test with losetup (no autoclear), detached
/// when dropped.
struct Losetup(PathBuf);

impl Losetup {
    fn new(args: &[&str], backing: &Path) -> Losetup {
        let out = run(Command::new("losetup")
            .args(["-f", "--show"])
            .args(args)
            .arg(backing));
        Losetup(PathBuf::from(out.trim()))
    }
}

impl Drop for Losetup {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

const DEBIAN_VM_WITH_SWAP: &str = r#"{ disk0 = disk.disk_definition("/dev/vda", "512MB") }"#;

#[test]
fn root_debian_vm_layout_is_partitioned_formatted_and_mountable() {
    if !kod_testkit::tier(Tier::Root) {
        return;
    }
    let devices = devices(DEBIAN_VM_WITH_SWAP);
    let dir = workdir();
    let (img, lo) = image(dir.path(), "vm.img", 8 * GIB);
    let disk_node = lo.path().to_path_buf();
    let target = Target::open(&disk_node, &AllowList::new([&disk_node])).unwrap();
    let layout = target.layout("disk0", &devices["disk0"]).unwrap();
    let disk = target.provision(&layout).unwrap();

    // The table, as sfdisk reads it from the image file: 1 MiB aligned,
    // 1 GiB ESP, 512 MiB swap, the root to the last MiB before the backup
    // GPT.
    let t = sfdisk(&img);
    assert_eq!(t["label"], "gpt");
    assert_eq!(t["id"].as_str().unwrap().to_lowercase(), disk.disk_id);
    let parts = t["partitions"].as_array().unwrap();
    let sectors = 8 * GIB / 512;
    let expected = [
        (
            2048,
            GIB / 512,
            "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
            "Boot",
        ),
        (
            2048 + GIB / 512,
            512 * MIB / 512,
            "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F",
            "Swap",
        ),
        (
            2048 + (GIB + 512 * MIB) / 512,
            sectors - 2048 - (2048 + (GIB + 512 * MIB) / 512),
            "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
            "Root",
        ),
    ];
    assert_eq!(parts.len(), 3);
    for (p, (start, size, ty, name)) in parts.iter().zip(expected) {
        assert_eq!(p["start"], start, "{p}");
        assert_eq!(p["size"], size, "{p}");
        if cfg!(target_arch = "x86_64") || name != "Root" {
            assert_eq!(p["type"], ty, "{p}");
        }
        assert_eq!(p["name"], name, "{p}");
    }
    // sgdisk's verification finds nothing wrong with the GPT.
    assert_contains(
        &run(Command::new("sgdisk").arg("-v").arg(&img)),
        "No problems found",
    );

    // The filesystems, as blkid finds them in the image file.
    for (p, (want_type, want_label)) in
        disk.partitions
            .iter()
            .zip([("vfat", "Boot"), ("swap", "Swap"), ("btrfs", "Root")])
    {
        let sf = &parts[p.number as usize - 1];
        assert_eq!(sf["uuid"].as_str().unwrap().to_lowercase(), p.partuuid);
        assert_eq!(p.start, sf["start"].as_u64().unwrap() * 512);
        let b = blkid(&img, p.start, p.size);
        assert_eq!(b["TYPE"], want_type, "{b:?}");
        assert_eq!(b["LABEL"], want_label, "{b:?}");
        assert_eq!(b["UUID"], p.uuid, "{b:?}");
    }
    assert_eq!(disk.resume().map(|p| p.number), Some(2));
    let [esp, swap, root]: [kod_disk::ProvisionedPartition; 3] = disk
        .partitions
        .clone()
        .try_into()
        .expect("three partitions");
    assert_eq!(
        disk.fstab_lines(),
        [
            format!("UUID={} /efi vfat umask=0077 0 2", esp.uuid),
            format!("UUID={} none swap defaults 0 0", swap.uuid),
        ]
    );

    // The root mounts, and what is written there lands in the image.
    assert_eq!(disk.root(), Some(&root));
    {
        let m = Mounted::new(&root.node, dir.path().join("root"));
        fs::write(m.0.join("hello"), "from kod-disk\n").unwrap();
        run(Command::new("btrfs")
            .args(["subvolume", "create"])
            .arg(m.0.join("generations")));
    }

    // The ESP, filled without mounting, read back with mtools.
    let esp = disk.esp().unwrap();
    let efi_binary: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    esp.write_file("/EFI/BOOT/BOOTX64.EFI", &efi_binary)
        .unwrap();
    esp.write_file("/loader/loader.conf", b"timeout 3\n")
        .unwrap();
    esp.write_file("/loader/loader.conf", b"timeout 5\n")
        .unwrap();
    let tree = dir.path().join("tree");
    fs::create_dir_all(tree.join("entries")).unwrap();
    fs::write(tree.join("entries/gen-0.conf"), "title gen 0\n").unwrap();
    esp.copy_dir(&tree, "/loader").unwrap();
    assert_eq!(esp.read_file("/EFI/BOOT/BOOTX64.EFI").unwrap(), efi_binary);

    let loops = disk
        .loop_devices()
        .iter()
        .map(|p| p.to_path_buf())
        .collect::<Vec<_>>();
    assert_eq!(loops.len(), 3);
    disk.release();
    drop(lo);
    assert_released(&img, &disk_node);

    // After release, everything is in the image file itself.
    let at = |offset: u64| format!("{}@@{offset}", img.display());
    let mtype = |path: &str| {
        let out = Command::new("mtype")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-i", &at(MIB), path])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    assert_eq!(mtype("::/EFI/BOOT/BOOTX64.EFI"), efi_binary);
    assert_eq!(mtype("::/loader/loader.conf"), b"timeout 5\n");
    assert_eq!(mtype("::/loader/entries/gen-0.conf"), b"title gen 0\n");
    let listing = run(Command::new("mdir").env("MTOOLS_SKIP_CHECK", "1").args([
        "-b",
        "-i",
        &at(MIB),
        "::/EFI/BOOT",
    ]));
    assert_contains(&listing, "BOOTX64.EFI");

    let lo = Losetup::new(
        &[
            "-o",
            &root.start.to_string(),
            "--sizelimit",
            &root.size.to_string(),
        ],
        &img,
    );
    {
        let m = Mounted::new(&lo.0, dir.path().join("again"));
        assert_eq!(
            fs::read_to_string(m.0.join("hello")).unwrap(),
            "from kod-disk\n"
        );
    }
    drop(lo);
    assert!(
        loops
            .iter()
            .all(|l| !loop_backings().iter().any(|(n, _)| Path::new(n) == l))
    );
}

#[test]
fn root_the_example_debian_vm_gets_an_esp_and_a_btrfs_root() {
    if !kod_testkit::tier(Tier::Root) {
        return;
    }
    let file = kod_testkit::fixtures::examples_dir().join("debian-vm/configuration.lua");
    let config = kod_config::load(&file, &Default::default()).unwrap();
    let plan = kod_plan::plan(&config).unwrap();
    let dir = workdir();
    let (img, lo) = image(dir.path(), "vm.img", 4 * GIB);
    let disk_node = lo.path().to_path_buf();
    let target = Target::open(&disk_node, &AllowList::new([&disk_node])).unwrap();
    let layout = target.layout("disk0", &plan.devices["disk0"]).unwrap();
    let disk = target.provision(&layout).unwrap();
    let parts = sfdisk(&img)["partitions"].as_array().unwrap().clone();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["size"], GIB / 512);
    assert_eq!(parts[1]["start"], (GIB + MIB) / 512);
    assert_eq!(parts[1]["size"], (4 * GIB - GIB - 2 * MIB) / 512);
    let root = disk.root().unwrap();
    assert_eq!(blkid(&img, root.start, root.size)["TYPE"], "btrfs");
    assert_eq!(disk.fstab_lines().len(), 1);
    drop(disk);
    drop(lo);
    assert_released(&img, &disk_node);
}

const TWO_DISKS: &str = r#"{
        disk0 = { device = "/dev/vda", type = "gpt", wipe = true, partitions = {
            { name = "ESP", size = "256MB", type = "esp", mountpoint = "/boot" },
            { name = "root", size = "100%", type = "btrfs", mountpoint = "/" },
        } },
        disk1 = { device = "/dev/vdb", type = "gpt", wipe = true, partitions = {
            { name = "srv", size = "60%", type = "xfs", mountpoint = "/srv" },
            { name = "data", size = "40%", type = "ext4", mountpoint = "/data" },
        } },
    }"#;

#[test]
fn root_two_disks_are_both_partitioned_and_formatted() {
    if !kod_testkit::tier(Tier::Root) {
        return;
    }
    let devices = devices(TWO_DISKS);
    let dir = workdir();
    let (img0, lo0) = image(dir.path(), "disk0.img", 2 * GIB);
    let (img1, lo1) = image(dir.path(), "disk1.img", GIB);
    let (n0, n1) = (lo0.path().to_path_buf(), lo1.path().to_path_buf());
    let allow = AllowList::new([&n0, &n1]);
    let mut provisioned = Vec::new();
    for (key, node) in [("disk0", &n0), ("disk1", &n1)] {
        let target = Target::open(node, &allow).unwrap();
        let layout = target.layout(key, &devices[key]).unwrap();
        provisioned.push(target.provision(&layout).unwrap());
    }
    // disk1: 1 GiB - 2 MiB usable from 1 MiB; 60% of 1022 MiB rounded down
    // to a MiB is 613 MiB, and the 40% that completes 100 takes the rest.
    let t1 = sfdisk(&img1);
    let p1 = t1["partitions"].as_array().unwrap();
    assert_eq!(p1[0]["size"], 613 * MIB / 512);
    assert_eq!(p1[1]["start"], (MIB + 613 * MIB) / 512);
    assert_eq!(p1[1]["size"], (1022 - 613) * MIB / 512);
    for p in p1 {
        assert_eq!(p["type"], "0FC63DAF-8483-4772-8E79-3D69D8477DE4");
    }
    let p0 = sfdisk(&img0)["partitions"].as_array().unwrap().clone();
    assert_eq!(p0[0]["type"], "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");

    let mut fstab = Vec::new();
    for (d, img, kinds) in [
        (&provisioned[0], &img0, ["vfat", "btrfs"]),
        (&provisioned[1], &img1, ["xfs", "ext4"]),
    ] {
        for (p, kind) in d.partitions.iter().zip(kinds) {
            let b = blkid(img, p.start, p.size);
            assert_eq!(b["TYPE"], kind);
            assert_eq!(b["UUID"], p.uuid);
            assert_eq!(b["LABEL"], p.name);
        }
        fstab.extend(d.fstab_lines());
    }
    let u = |d: usize, p: usize| provisioned[d].partitions[p].uuid.clone();
    assert_eq!(
        fstab,
        [
            format!("UUID={} /efi vfat umask=0077 0 2", u(0, 0)),
            format!("UUID={} /srv xfs defaults 0 2", u(1, 0)),
            format!("UUID={} /data ext4 defaults 0 2", u(1, 1)),
        ]
    );
    // The data disk's filesystems mount.
    for p in &provisioned[1].partitions {
        let m = Mounted::new(&p.node, dir.path().join(&p.name));
        fs::write(m.0.join("x"), "x").unwrap();
    }
    drop(provisioned);
    drop((lo0, lo1));
    assert_released(&img0, &n0);
    assert_released(&img1, &n1);
}

#[test]
fn root_an_msdos_disk_gets_type_bytes_and_its_filesystems() {
    if !kod_testkit::tier(Tier::Root) {
        return;
    }
    let devices = devices(
        r#"{ disk0 = { device = "/dev/sda", type = "msdos", wipe = true, partitions = {
            { name = "ESP", size = "128MB", type = "esp", mountpoint = "/boot/efi" },
            { name = "swap", size = "64MB", type = "linux-swap" },
            { name = "share", size = "64MB", type = "vfat", mountpoint = "/share" },
            { name = "root", size = "100%", type = "btrfs", mountpoint = "/" },
        } } }"#,
    );
    let dir = workdir();
    let (img, lo) = image(dir.path(), "dos.img", GIB);
    let node = lo.path().to_path_buf();
    let target = Target::open(&node, &AllowList::new([&node])).unwrap();
    let layout = target.layout("disk0", &devices["disk0"]).unwrap();
    let disk = target.provision(&layout).unwrap();
    let t = sfdisk(&img);
    assert_eq!(t["label"], "dos");
    assert_eq!(t["id"], format!("0x{}", disk.disk_id));
    let parts = t["partitions"].as_array().unwrap();
    let want = [
        ("ef", 2048, 128 * MIB / 512),
        ("82", 2048 + 128 * MIB / 512, 64 * MIB / 512),
        ("c", 2048 + 192 * MIB / 512, 64 * MIB / 512),
        // An msdos table has no backup at the end: the root ends with the
        // disk.
        ("83", 2048 + 256 * MIB / 512, (GIB - 257 * MIB) / 512),
    ];
    for (p, (ty, start, size)) in parts.iter().zip(want) {
        assert_eq!(
            (
                p["type"].as_str().unwrap(),
                p["start"].as_u64().unwrap(),
                p["size"].as_u64().unwrap()
            ),
            (ty, start, size)
        );
    }
    for (p, kind) in disk
        .partitions
        .iter()
        .zip(["vfat", "swap", "vfat", "btrfs"])
    {
        let b = blkid(&img, p.start, p.size);
        assert_eq!((b["TYPE"].as_str(), &b["UUID"]), (kind, &p.uuid));
        // blkid reads PARTUUID from the table when it probes the whole image.
        assert_eq!(p.partuuid, format!("{}-{:02x}", disk.disk_id, p.number));
    }
    let parts_json = run(Command::new("blkid").args(["-p", "-o", "export"]).arg(&img));
    assert_contains(&parts_json, &format!("PTUUID={}", disk.disk_id));
    drop(disk);
    drop(lo);
    assert_released(&img, &node);
}

#[test]
fn root_format_false_keeps_the_filesystem_and_reports_its_uuid() {
    if !kod_testkit::tier(Tier::Root) {
        return;
    }
    let lua = |format: bool| {
        format!(
            r#"{{ disk0 = {{ device = "/dev/vda", wipe = true, partitions = {{
                {{ name = "ESP", size = "64MB", type = "esp" }},
                {{ name = "home", size = "100%", type = "ext4", mountpoint = "/home", format = {format} }},
            }} }} }}"#
        )
    };
    let dir = workdir();
    let (img, lo) = image(dir.path(), "keep.img", 512 * MIB);
    let node = lo.path().to_path_buf();
    let allow = AllowList::new([&node]);

    // format = false on a partition with no filesystem yet is refused.
    let target = Target::open(&node, &allow).unwrap();
    let layout = target
        .layout("disk0", &devices(&lua(false))["disk0"])
        .unwrap();
    let e = target.provision(&layout).unwrap_err();
    assert!(matches!(e, ProvisionError::NoFilesystem { .. }), "{e}");
    assert_contains(
        &e.to_string(),
        "devices.disk0.partitions[2] has `format = false`",
    );
    // The partitions' loop devices made before the failure are gone.
    let disk_name = node.to_string_lossy().into_owned();
    assert!(
        !loop_backings().iter().any(|(_, b)| b == &disk_name),
        "{:?}",
        loop_backings()
    );

    let target = Target::open(&node, &allow).unwrap();
    let layout = target
        .layout("disk0", &devices(&lua(true))["disk0"])
        .unwrap();
    let first = target.provision(&layout).unwrap();
    let home = first.partitions[1].clone();
    {
        let m = Mounted::new(&home.node, dir.path().join("home"));
        fs::write(m.0.join("kept"), "yes").unwrap();
    }
    let esp_uuid = first.partitions[0].uuid.clone();
    drop(first);

    let target = Target::open(&node, &allow).unwrap();
    let layout = target
        .layout("disk0", &devices(&lua(false))["disk0"])
        .unwrap();
    let second = target.provision(&layout).unwrap();
    assert_eq!(second.partitions[1].uuid, home.uuid);
    assert!(!second.partitions[1].formatted);
    assert_ne!(second.partitions[0].uuid, esp_uuid, "the ESP is made anew");
    assert_eq!(blkid(&img, home.start, home.size)["UUID"], home.uuid);
    {
        let m = Mounted::new(&second.partitions[1].node, dir.path().join("home2"));
        assert_eq!(fs::read_to_string(m.0.join("kept")).unwrap(), "yes");
    }
    drop(second);
    drop(lo);
    assert_released(&img, &node);
}

#[test]
fn root_dry_run_describes_the_plan_and_leaves_the_device_unchanged() {
    if !kod_testkit::tier(Tier::Root) {
        return;
    }
    let devices = devices(DEBIAN_VM_WITH_SWAP);
    let dir = workdir();
    let img = dir.path().join("dry.img");
    create_image(&img, 4 * GIB).unwrap();
    // Recognisable bytes where a table and filesystems would go.
    {
        let mut f = fs::OpenOptions::new().write(true).open(&img).unwrap();
        for off in [0, 512, MIB, GIB + MIB, 4 * GIB - 4096] {
            f.seek(SeekFrom::Start(off)).unwrap();
            f.write_all(&[0xa5; 4096]).unwrap();
        }
    }
    let before = sha256(&img);
    let lo = attach_image(&img).unwrap();
    let node = lo.path().to_path_buf();
    let target = Target::open(&node, &AllowList::new([&node])).unwrap();
    let layout = target.layout("disk0", &devices["disk0"]).unwrap();
    let text = target.describe(&layout).to_string();
    let json = serde_json::to_value(target.describe(&layout)).unwrap();
    drop(target);
    drop(lo);
    assert_released(&img, &node);
    assert_eq!(sha256(&img), before, "the dry run changed the device");

    assert_contains(&text, &format!("devices.disk0: {} (", node.display()));
    assert_contains(&text, "4 GiB, model unknown");
    assert_contains(&text, &format!("a loop device on {}", img.display()));
    assert_contains(&text, "new gpt partition table with 3 partitions");
    for row in [
        [
            "1", "(loop)", "Boot", "esp", "1 MiB", "1 GiB", "new vfat", "/efi",
        ],
        [
            "2",
            "(loop)",
            "Swap",
            "linux-swap",
            "1025 MiB",
            "512 MiB",
            "new swap",
            "swap (resume)",
        ],
        [
            "3",
            "(loop)",
            "Root",
            "btrfs",
            "1537 MiB",
            "2558 MiB",
            "new btrfs",
            "/",
        ],
    ] {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(row[0]))
            .unwrap_or_else(|| panic!("no row {} in:\n{text}", row[0]));
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells.join(" "), row.join(" "), "{text}");
    }
    assert_eq!(
        json["layout"]["partitions"][2]["part_type"]
            .as_str()
            .unwrap()
            .len(),
        36
    );
    assert_eq!(json["device"]["size"], 4 * GIB);
    assert!(json["image"].is_null());
}

#[test]
fn root_refuses_a_device_with_a_mounted_filesystem() {
    if !kod_testkit::tier(Tier::Root) {
        return;
    }
    let dir = workdir();
    let (img, lo) = image(dir.path(), "mounted.img", 256 * MIB);
    let node = lo.path().to_path_buf();
    run(Command::new("mkfs.btrfs").arg("-q").arg(&node));
    let before = sha256(&img);
    {
        let m = Mounted::read_only(&node, dir.path().join("mnt"));
        let e = Target::open(&node, &AllowList::new([&node])).unwrap_err();
        assert!(matches!(e, SafetyError::Mounted { .. }), "{e}");
        assert_contains(
            &e.to_string(),
            &format!(
                "{} is in use: {} is mounted at {}",
                node.display(),
                node.display(),
                m.0.display()
            ),
        );
        assert_contains(&e.to_string(), "umount");
    }
    assert_eq!(sha256(&img), before);
    drop(lo);
    assert_released(&img, &node);
}

#[test]
fn root_refuses_a_device_whose_partition_is_mounted_through_a_loop_device() {
    if !kod_testkit::tier(Tier::Root) {
        return;
    }
    let dir = workdir();
    let (img, lo) = image(dir.path(), "part.img", 512 * MIB);
    let node = lo.path().to_path_buf();
    let allow = AllowList::new([&node]);
    // A "partition" at 1 MiB of the same image, as a loop device of its
    // own with an offset, mounted.
    {
        let part = Losetup::new(
            &[
                "-o",
                &MIB.to_string(),
                "--sizelimit",
                &(300 * MIB).to_string(),
            ],
            &img,
        );
        run(Command::new("mkfs.btrfs").arg("-q").arg(&part.0));
        let m = Mounted::new(&part.0, dir.path().join("p1"));
        let e = Target::open(&node, &allow).unwrap_err();
        assert!(matches!(e, SafetyError::Mounted { .. }), "{e}");
        assert_contains(
            &e.to_string(),
            &format!("{} (a loop device on {}", part.0.display(), img.display()),
        );
        assert_contains(&e.to_string(), &format!("mounted at {}", m.0.display()));
    }
    // The same through a loop device on the disk's loop device.
    {
        let part = Losetup::new(
            &[
                "-o",
                &MIB.to_string(),
                "--sizelimit",
                &(300 * MIB).to_string(),
            ],
            &node,
        );
        let m = Mounted::new(&part.0, dir.path().join("p2"));
        let e = Target::open(&node, &allow).unwrap_err();
        assert!(matches!(e, SafetyError::Mounted { .. }), "{e}");
        assert_contains(
            &e.to_string(),
            &format!("{} (a loop device on {})", part.0.display(), node.display()),
        );
        drop(m);
    }
    // Unmounted, the device may be written.
    assert!(Target::open(&node, &allow).is_ok());
    drop(lo);
    assert_released(&img, &node);
}

#[test]
fn root_refuses_a_device_that_is_an_active_swap() {
    if !kod_testkit::tier(Tier::Root) {
        return;
    }
    let dir = workdir();
    let (img, lo) = image(dir.path(), "swap.img", 64 * MIB);
    let node = lo.path().to_path_buf();
    run(Command::new("mkswap").arg(&node));
    {
        run(Command::new("swapon").arg(&node));
        let _swap = SwapOn(node.clone());
        let e = Target::open(&node, &AllowList::new([&node])).unwrap_err();
        assert!(matches!(e, SafetyError::ActiveSwap { .. }), "{e}");
        assert_contains(
            &e.to_string(),
            &format!(
                "{} is an active swap; turn it off (`swapoff {}`)",
                node.display(),
                node.display()
            ),
        );
    }
    drop(lo);
    assert_released(&img, &node);
}

#[test]
fn root_refuses_a_device_not_on_the_allow_list_and_a_second_claim() {
    if !kod_testkit::tier(Tier::Root) {
        return;
    }
    let dir = workdir();
    let (img_a, a) = image(dir.path(), "a.img", 64 * MIB);
    let (img_b, b) = image(dir.path(), "b.img", 64 * MIB);
    let before = sha256(&img_b);
    let e = Target::open(b.path(), &AllowList::new([a.path()])).unwrap_err();
    assert!(matches!(e, SafetyError::NotAllowed { .. }), "{e}");
    assert_contains(
        &e.to_string(),
        &format!(
            "{} is not among the devices this run may write ({})",
            b.path().display(),
            a.path().display()
        ),
    );
    // An image file itself is not a device: it is attached first.
    let e = Target::open(&img_a, &AllowList::new([&img_a])).unwrap_err();
    assert!(matches!(e, SafetyError::NotBlockDevice { .. }), "{e}");
    // Two configured disks naming one device: the second claim fails.
    let allow = AllowList::new([a.path()]);
    let first = Target::open(a.path(), &allow).unwrap();
    let e = Target::open(a.path(), &allow).unwrap_err();
    assert!(matches!(e, SafetyError::Busy { .. }), "{e}");
    drop(first);
    assert_eq!(sha256(&img_b), before);
    let (na, nb) = (a.path().to_path_buf(), b.path().to_path_buf());
    drop((a, b));
    assert_released(&img_a, &na);
    assert_released(&img_b, &nb);
}

#[test]
fn root_refuses_keys_it_does_not_carry_out_before_writing() {
    if !kod_testkit::tier(Tier::Root) {
        return;
    }
    let dir = workdir();
    let (img, lo) = image(dir.path(), "keys.img", 512 * MIB);
    let node = lo.path().to_path_buf();
    let before = sha256(&img);
    let target = Target::open(&node, &AllowList::new([&node])).unwrap();
    for (lua, key) in [
        (
            r#"{ device = "/dev/vda", partitions = { { name = "root", size = "100%", type = "btrfs", mountpoint = "/" } } }"#,
            "devices.disk0.wipe = false is not implemented",
        ),
        (
            r#"{ device = "/dev/vda", wipe = true, efi = false, partitions = { { name = "root", size = "100%", type = "btrfs", mountpoint = "/" } } }"#,
            "devices.disk0.efi = false is not implemented",
        ),
        (
            r#"{ device = "/dev/vda", wipe = true, partitions = { { name = "root", size = "100%", type = "btrfs", mountpoint = "/", resume_device = true } } }"#,
            "devices.disk0.partitions[1].resume_device = true is not implemented",
        ),
    ] {
        let d = devices(&format!("{{ disk0 = {lua} }}"));
        let e = target.layout("disk0", &d["disk0"]).unwrap_err();
        assert_contains(&e.to_string(), key);
    }
    drop(target);
    drop(lo);
    assert_released(&img, &node);
    assert_eq!(sha256(&img), before);
}

#[test]
fn root_the_running_root_is_refused() {
    if !kod_testkit::tier(Tier::Root) {
        return;
    }
    let root = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.get(4) == Some(&"/"))
                .then(|| l.split(" - ").nth(1)?.split(' ').nth(1).map(str::to_string))?
        })
        .unwrap();
    use std::os::unix::fs::FileTypeExt;
    if !fs::metadata(&root).is_ok_and(|m| m.file_type().is_block_device()) {
        // A container's root (overlay, tmpfs) is no device to refuse.
        eprintln!("the root {root} is not a block device: nothing to check");
        return;
    }
    let e = Target::open(Path::new(&root), &AllowList::new([&root])).unwrap_err();
    assert!(matches!(e, SafetyError::HoldsRunningRoot { .. }), "{e}");
    assert_contains(&e.to_string(), "holds the running system's root");
}

/// The child's side of the next test: provisions the image it is given,
/// says which loop device the disk is, and waits to be killed.
const CHILD: &str = "KOD_DISK_TEST_KILLED_CHILD";

#[test]
fn root_a_killed_process_leaves_no_loop_device_behind() {
    if !kod_testkit::tier(Tier::Root) {
        return;
    }
    if let Ok(img) = std::env::var(CHILD) {
        let lo = attach_image(Path::new(&img)).unwrap();
        let target = Target::open(lo.path(), &AllowList::new([lo.path()])).unwrap();
        let layout = target
            .layout("disk0", &devices(DEBIAN_VM_WITH_SWAP)["disk0"])
            .unwrap();
        let disk = target.provision(&layout).unwrap();
        println!("child-ready {}", lo.path().display());
        std::io::stdout().flush().unwrap();
        std::thread::sleep(std::time::Duration::from_secs(120));
        drop(disk);
        return;
    }
    let dir = workdir();
    let img = dir.path().join("killed.img");
    create_image(&img, 2 * GIB).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "root_a_killed_process_leaves_no_loop_device_behind",
            "--nocapture",
        ])
        .env(CHILD, &img)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let node = loop {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut out, &mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("the child ended before provisioning: {:?}", child.wait());
        }
        if let Some(n) = line.trim().strip_prefix("child-ready ") {
            break PathBuf::from(n);
        }
    };
    let disk_name = node.to_string_lossy().into_owned();
    let partition_loops = loop_backings()
        .iter()
        .filter(|(_, b)| b == &disk_name)
        .count();
    assert_eq!(partition_loops, 3, "{:?}", loop_backings());
    child.kill().unwrap();
    child.wait().unwrap();
    assert_released(&img, &node);
}
