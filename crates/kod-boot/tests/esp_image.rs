//! Root tier: a FAT filesystem made by `mkfs.vfat` inside an image file at
//! a partition's offset (never mounted: this kernel has no vfat driver),
//! two generations' entries written through the mtools ESP, and read back
//! with mtools' own `mdir` and `mtype`, `sha256sum` for the content names
//! and `fsck.fat` for the filesystem.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use kod_boot::{
    Blob, EspState, Generation, MtoolsEsp, Roles, SYSTEMD_BOOT, Settings, place_systemd_boot, plan,
};
use kod_testkit::run_ok as run;
use kod_testkit::{Tier, assert_contains};

const OFFSET_SECTORS: u64 = 2048;
// Enough clusters of one sector for FAT32 (at least 65525).
const FAT_KIB: u64 = 64 * 1024;

fn mtool(tool: &str, image: &Path) -> Command {
    let mut c = Command::new(tool);
    c.env("MTOOLS_SKIP_CHECK", "1").arg("-i").arg(format!(
        "{}@@{}",
        image.display(),
        OFFSET_SECTORS * 512
    ));
    c
}

/// `mdir -b` of `dir`: its names, directories with a trailing `/`.
fn mdir(image: &Path, dir: &str) -> Vec<String> {
    let out = run(mtool("mdir", image).arg("-b").arg(format!("::{dir}")));
    let mut names: Vec<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("::{dir}/")))
        .map(String::from)
        .collect();
    names.sort();
    names
}

fn mtype(image: &Path, path: &str) -> String {
    run(mtool("mtype", image).arg(format!("::{path}")))
}

fn sha256sum(file: &Path) -> String {
    run(Command::new("sha256sum").arg(file))
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Generation `n`'s root with a kernel and an initramfs, both text so
/// `mtype` shows them.
fn generation(top: &Path, n: u64, kernel: &str, initrd: &str) -> (Generation, PathBuf) {
    let root = top.join(format!("gen{n}"));
    let boot = root.join("boot");
    fs::create_dir_all(&boot).unwrap();
    let k = boot.join("vmlinuz-6.1.0-28-amd64");
    let i = boot.join("initrd.img-6.1.0-28-amd64");
    fs::write(&k, kernel).unwrap();
    fs::write(&i, initrd).unwrap();
    let g = Generation {
        number: n,
        kernel_version: "6.1.0-28-amd64".into(),
        kernel: Blob::hash(&k).unwrap(),
        initrd: Blob::hash(&i).unwrap(),
        root_uuid: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".into(),
        options: vec!["console=ttyS0".into()],
        date: "2026-12-04".into(),
    };
    (g, root)
}

#[test]
fn root_two_generations_through_mtools_read_back_with_mdir_and_mtype() {
    if !kod_testkit::tier(Tier::Root) {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("kod-boot-esp-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let image = dir.path().join("disk.img");
    let file = fs::File::create(&image).unwrap();
    file.set_len(OFFSET_SECTORS * 512 + FAT_KIB * 1024).unwrap();
    drop(file);
    run(Command::new("mkfs.vfat")
        .args(["-F", "32", "-s", "1", "--offset"])
        .arg(OFFSET_SECTORS.to_string())
        .arg(&image)
        .arg(FAT_KIB.to_string()));
    let esp = MtoolsEsp::new(&image, OFFSET_SECTORS * 512);

    let kernel = "kernel 6.1.0-28 ".repeat(4000);
    let (g0, root0) = generation(dir.path(), 0, &kernel, "initramfs of generation 0\n");
    let (g1, _) = generation(dir.path(), 1, &kernel, "initramfs of generation 1\n");
    let settings = Settings {
        timeout: Some(4),
        ..Settings::default()
    };

    // Generation 0, as install does, with systemd-boot from its root.
    let efi = root0.join(SYSTEMD_BOOT);
    fs::create_dir_all(efi.parent().unwrap()).unwrap();
    fs::write(&efi, "MZ systemd-boot 252.39\n").unwrap();
    let placed = place_systemd_boot(&esp, &root0).unwrap();
    assert_eq!(placed.len(), 2);
    let roles0 = Roles {
        default: 0,
        booted: None,
        last_good: None,
    };
    plan(
        &EspState::read(&esp).unwrap(),
        std::slice::from_ref(&g0),
        &roles0,
        &settings,
    )
    .unwrap()
    .apply(&esp)
    .unwrap();

    // Generation 1, as rebuild does after its commit.
    let gens = [g0.clone(), g1.clone()];
    let roles1 = Roles {
        default: 1,
        booted: None,
        last_good: None,
    };
    plan(&EspState::read(&esp).unwrap(), &gens, &roles1, &settings)
        .unwrap()
        .apply(&esp)
        .unwrap();

    // What mtools sees.
    assert_eq!(mdir(&image, ""), ["EFI/", "kod/", "loader/"]);
    assert_eq!(mdir(&image, "/EFI/BOOT"), ["BOOTX64.EFI"]);
    assert_eq!(
        mtype(&image, "/EFI/BOOT/BOOTX64.EFI"),
        "MZ systemd-boot 252.39\n"
    );
    assert_eq!(
        mtype(&image, "/EFI/systemd/systemd-bootx64.efi"),
        "MZ systemd-boot 252.39\n"
    );
    assert_eq!(mdir(&image, "/loader"), ["entries/", "loader.conf"]);
    assert_eq!(
        mdir(&image, "/loader/entries"),
        ["kod-0_1+3.conf", "kod-1_2+3.conf"]
    );
    let loader = mtype(&image, "/loader/loader.conf");
    assert!(loader.lines().any(|l| l == "timeout 4"), "{loader}");
    assert!(loader.lines().any(|l| l == "default kod-*"), "{loader}");

    // One kernel shared, one initramfs each, named by sha256sum's digest.
    let k = &sha256sum(&g0.kernel.source)[..16];
    let i0 = &sha256sum(&g0.initrd.source)[..16];
    let i1 = &sha256sum(&g1.initrd.source)[..16];
    let mut want = vec![
        format!("initrd-{i0}"),
        format!("initrd-{i1}"),
        format!("vmlinuz-{k}"),
    ];
    want.sort();
    assert_eq!(mdir(&image, "/kod"), ["6.1.0-28-amd64/"]);
    assert_eq!(mdir(&image, "/kod/6.1.0-28-amd64"), want);
    assert_eq!(
        mtype(&image, &format!("/kod/6.1.0-28-amd64/vmlinuz-{k}")),
        kernel
    );
    assert_eq!(
        mtype(&image, &format!("/kod/6.1.0-28-amd64/initrd-{i1}")),
        "initramfs of generation 1\n"
    );

    let e1 = mtype(&image, "/loader/entries/kod-1_2+3.conf");
    assert!(e1.lines().any(|l| l == "sort-key kod"), "{e1}");
    assert!(e1.lines().any(|l| l == "version 2.1"), "{e1}");
    assert!(
        e1.lines()
            .any(|l| l == format!("linux /kod/6.1.0-28-amd64/vmlinuz-{k}")),
        "{e1}"
    );
    assert!(
        e1.lines()
            .any(|l| l == format!("initrd /kod/6.1.0-28-amd64/initrd-{i1}")),
        "{e1}"
    );
    assert_contains(
        &e1,
        "options root=UUID=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 rw rootflags=subvol=generations/1/rootfs console=ttyS0\n",
    );
    let e0 = mtype(&image, "/loader/entries/kod-0_1+3.conf");
    assert_contains(&e0, "rootflags=subvol=generations/0/rootfs");
    assert_contains(&e0, &format!("initrd /kod/6.1.0-28-amd64/initrd-{i0}\n"));

    // Nothing left to do; systemd-boot already current.
    let state = EspState::read(&esp).unwrap();
    assert!(plan(&state, &gens, &roles1, &settings).unwrap().is_empty());
    assert!(place_systemd_boot(&esp, &root0).unwrap().is_empty());

    // Deleting generation 0 removes its entry and its initramfs only.
    plan(&state, std::slice::from_ref(&g1), &roles1, &settings)
        .unwrap()
        .apply(&esp)
        .unwrap();
    assert_eq!(mdir(&image, "/loader/entries"), ["kod-1_2+3.conf"]);
    let mut want = vec![format!("initrd-{i1}"), format!("vmlinuz-{k}")];
    want.sort();
    assert_eq!(mdir(&image, "/kod/6.1.0-28-amd64"), want);

    fsck(&image);
}

/// `fsck.fat -n` on the partition's bytes: the filesystem is consistent.
fn fsck(image: &Path) {
    let part = image.with_extension("fat");
    run(Command::new("dd")
        .arg(format!("if={}", image.display()))
        .arg(format!("of={}", part.display()))
        .arg(format!("skip={OFFSET_SECTORS}"))
        .arg("conv=sparse")
        .arg("status=none"));
    run(Command::new("fsck.fat").arg("-n").arg(&part));
    fs::remove_file(&part).unwrap();
}

/// Every kod entry's `linux` and `initrd` exist, by mtools alone; the
/// generations those entries boot.
fn bootable_generations(image: &Path) -> Vec<u64> {
    let mut gens = Vec::new();
    for name in mdir(image, "/loader/entries") {
        let Some(rest) = name.strip_prefix("kod-") else {
            continue;
        };
        if !name.ends_with(".conf") {
            continue;
        }
        let text = mtype(image, &format!("/loader/entries/{name}"));
        for key in ["linux ", "initrd "] {
            let path = text
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("{name} has no {key}line:\n{text}"));
            let (dir, file) = path.rsplit_once('/').unwrap();
            assert!(
                mdir(image, dir).iter().any(|n| n == file),
                "{name} names {path}, which is missing"
            );
        }
        gens.push(rest.split(['_', '+', '.']).next().unwrap().parse().unwrap());
    }
    gens
}

#[test]
fn root_a_rebuild_stopped_after_any_operation_leaves_the_fat_bootable() {
    if !kod_testkit::tier(Tier::Root) {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("kod-boot-stop-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let image = dir.path().join("disk.img");
    let file = fs::File::create(&image).unwrap();
    file.set_len(OFFSET_SECTORS * 512 + FAT_KIB * 1024).unwrap();
    drop(file);
    run(Command::new("mkfs.vfat")
        .args(["-F", "32", "-s", "1", "--offset"])
        .arg(OFFSET_SECTORS.to_string())
        .arg(&image)
        .arg(FAT_KIB.to_string()));
    let (g0, _) = generation(dir.path(), 0, "kernel 6.1.0-28\n", "initramfs 0\n");
    let settings = Settings::default();
    let roles = |default| Roles {
        default,
        booted: None,
        last_good: None,
    };
    let esp = MtoolsEsp::new(&image, OFFSET_SECTORS * 512);
    plan(
        &EspState::read(&esp).unwrap(),
        std::slice::from_ref(&g0),
        &roles(0),
        &settings,
    )
    .unwrap()
    .apply(&esp)
    .unwrap();

    // Generation 1 with another kernel, a limit of one entry: new files,
    // the entry, then generation 0's entry and files removed.
    let dir1 = dir.path().join("one");
    fs::create_dir(&dir1).unwrap();
    let (mut g1, _) = generation(&dir1, 1, "kernel 6.1.0-29\n", "initramfs 1\n");
    g1.kernel_version = "6.1.0-29-amd64".into();
    let gens = [g0, g1];
    let one = Settings {
        max_entries: 1,
        ..Settings::default()
    };
    let ops = plan(&EspState::read(&esp).unwrap(), &gens, &roles(1), &one)
        .unwrap()
        .ops;
    assert!(ops.len() >= 8, "{ops:#?}");
    for k in 0..=ops.len() {
        let copy = dir.path().join(format!("stop-{k}.img"));
        run(Command::new("cp")
            .arg("--sparse=always")
            .arg(&image)
            .arg(&copy));
        let esp = MtoolsEsp::new(&copy, OFFSET_SECTORS * 512);
        for op in &ops[..k] {
            op.apply(&esp).unwrap();
        }
        let gens_booting = bootable_generations(&copy);
        assert!(
            !gens_booting.is_empty(),
            "no entry after {k} operations ({:?})",
            ops.get(k.wrapping_sub(1))
        );
        fsck(&copy);
        fs::remove_file(&copy).unwrap();
    }
    for op in &ops {
        op.apply(&esp).unwrap();
    }
    assert_eq!(bootable_generations(&image), [1]);
    assert_eq!(mdir(&image, "/kod"), ["6.1.0-29-amd64/"]);
}
