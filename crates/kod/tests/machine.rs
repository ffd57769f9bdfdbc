//! `kod install --target TOP` end to end (root and net tiers): generation 0
//! of a configuration of the tests' own, without a kernel, on a
//! loop-mounted Btrfs; every setting read back from the target.

use std::path::Path;
use std::process::Command as Process;

mod common;

use common::machine::{dpkg_lines, in_root, install_args, lock_lines, manifest, new_machine, text};
use common::{kod, kod_ok, run_ok};
use kod_testkit::{Tier, tiers};

/// The clear password of the test user: it must appear nowhere.
const CLEAR: &str = "correct-horse-battery-staple-41";

/// A configuration with users (clear and hashed passwords, groups that do
/// not exist yet, an ssh key), two locales with an extra setting, a keymap,
/// a timezone, one enabled service with settings, two switched off (one of
/// a package not installed, one of a package the base has, whose unit its
/// package enables), and an install-stage `configs.mount`.
fn configuration() -> String {
    format!(
        r#"local repos = require("repos")
local configs = require("configs")
return {{
  repos = {{ official = repos.debian_repo({{ suite = "bookworm", components = {{ "main" }} }}) }},
  boot = {{ kernel = {{ package = false }} }},
  locale = {{
    locale = {{
      default = "en_US.UTF-8 UTF-8",
      extra_generate = {{ "de_DE.UTF-8 UTF-8" }},
      extra_settings = {{ LC_TIME = "de_DE.UTF-8" }},
    }},
    keymap = "de-latin1",
    timezone = "Europe/Berlin",
  }},
  network = {{ hostname = "kod-test" }},
  users = {{
    ann = {{
      name = "Ann Example",
      password = "{CLEAR}",
      shell = "/bin/bash",
      extra_groups = {{ "wheel", "kodtesters" }},
      ssh_authorized = {{ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKodTestKeyOnlyForTests ann@test" }},
    }},
    bob = {{ hashed_password = "$6$kodsalt$0HaucfEgSj9tgRFdmzl1rIeiM5KJ8yK/gMKfthfPRBKLPCKMOyIeC2gPiuSMPEF3nXGY4kX3ugwk2NvZ0x1Su/" }},
  }},
  packages = {{ "less" }},
  services = {{
    ssh = {{
      enable = true,
      package = "openssh-server",
      settings = {{ PermitRootLogin = false, PasswordAuthentication = false }},
    }},
    cron = {{ enable = false }},
    apt_timer = {{ enable = false, service_name = "apt-daily.timer" }},
    systemd_mount = {{ services = {{
      data = configs.mount({{ name = "mnt-data", type = "tmpfs", what = "tmpfs",
                              where = "/mnt/data", automount = true }}),
    }} }},
  }},
}}
"#
    )
}

#[test]
fn net_root_install_target_makes_generation_0_as_configured() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let (fs, cache) = new_machine(2 << 30);
    let top = fs.path();
    let config = tempfile::tempdir().unwrap();
    std::fs::write(config.path().join("configuration.lua"), configuration()).unwrap();
    let c = config.path().to_str().unwrap();
    let t = top.to_str().unwrap();

    // A dry run lists what it would do and changes nothing.
    let before = (manifest(top), fs.subvolumes());
    let dry = kod_ok(
        cache.path(),
        ["-c", c, "install", "--target", t, "--dry-run"],
    );
    assert!(dry.contains("openssh-server"), "{dry}");
    assert!(dry.contains("write /etc/fstab"), "{dry}");
    assert!(dry.contains("set locale.timezone = Europe/Berlin"), "{dry}");
    assert_eq!(
        (manifest(top), fs.subvolumes()),
        before,
        "the dry run changed the target"
    );

    kod_ok(cache.path(), ["-c", c, "install", "--target", t]);
    let root = top.join("generations/0/rootfs");
    let record = top.join("generations/0");

    // The layout, the default pointer and the generation's own number.
    assert!(fs.subvolumes().iter().any(|s| s == "generations/0/rootfs"));
    assert!(fs.subvolumes().iter().any(|s| s == "store/home"));
    assert_eq!(text(&root, ".generation"), "0\n");
    let fstab = text(&root, "etc/fstab");
    assert!(fstab.contains("subvol=generations/0/rootfs"), "{fstab}");
    assert!(
        fstab.contains("/kod/store/var/log /var/log none bind"),
        "{fstab}"
    );

    // Accounts: groups made, the clear password hashed, the hash kept.
    let ann = in_root(&root, &["getent", "passwd", "ann"]);
    assert!(
        ann.contains("Ann Example") && ann.ends_with(":/home/ann:/bin/bash\n"),
        "{ann}"
    );
    let groups = in_root(&root, &["id", "-nG", "ann"]);
    for g in ["wheel", "kodtesters"] {
        assert!(groups.split_whitespace().any(|x| x == g), "{groups}");
    }
    let shadow = in_root(&root, &["getent", "shadow", "bob"]);
    assert!(shadow.starts_with("bob:$6$kodsalt$0Hauc"), "{shadow}");
    // Homes are in the shared store (`/home` at boot), not in the root;
    // so are root's files and the logs.
    let keys = text(fs.path(), "store/home/ann/.ssh/authorized_keys");
    assert!(keys.contains("ann@test"), "{keys}");
    let owner = std::fs::metadata(fs.path().join("store/home/ann/.ssh/authorized_keys")).unwrap();
    let ann_uid: u32 = ann.split(':').nth(2).unwrap().parse().unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&owner), ann_uid);
    for empty in ["home", "root", "var/log"] {
        let left: Vec<_> = std::fs::read_dir(root.join(empty)).unwrap().collect();
        assert!(
            left.is_empty(),
            "/{empty} of the root is not empty: {left:?}"
        );
    }
    assert!(fs.path().join("store/var/log/dpkg.log").is_file());

    // Locales, keymap, timezone, hostname.
    let locales = in_root(&root, &["locale", "-a"]);
    for l in ["en_US.utf8", "de_DE.utf8"] {
        assert!(locales.lines().any(|x| x == l), "{locales}");
    }
    let conf = text(&root, "etc/locale.conf");
    assert!(conf.contains("LC_TIME=de_DE.UTF-8"), "{conf}");
    let vconsole = text(&root, "etc/vconsole.conf");
    assert!(vconsole.contains("KEYMAP=de-latin1"), "{vconsole}");
    let zone = std::fs::read_link(root.join("etc/localtime")).unwrap();
    assert!(zone.ends_with("Europe/Berlin"), "{}", zone.display());
    assert_eq!(text(&root, "etc/hostname"), "kod-test\n");

    // Services: ssh enabled with its drop-in; cron neither installed nor
    // enabled.
    let drop_in = text(&root, "etc/ssh/sshd_config.d/kod.conf");
    assert!(drop_in.contains("PermitRootLogin no"), "{drop_in}");
    assert!(
        std::fs::symlink_metadata(
            root.join("etc/systemd/system/multi-user.target.wants/ssh.service")
        )
        .is_ok()
    );
    assert!(!root.join("lib/systemd/system/cron.service").exists());
    let status = text(&root, "var/lib/dpkg/status");
    assert!(!status.contains("\nPackage: cron\n"));
    // apt enables its timer; the configuration switched it off.
    let apt_timer = root.join("etc/systemd/system/timers.target.wants/apt-daily.timer");
    assert!(root.join("lib/systemd/system/apt-daily.timer").exists());
    assert!(
        std::fs::symlink_metadata(&apt_timer).is_err(),
        "apt-daily.timer is enabled"
    );
    // The install-stage mount helper: its units written, the automount enabled.
    let unit = text(&root, "etc/systemd/system/mnt-data.mount");
    assert!(
        unit.contains("What=tmpfs") && unit.contains("Where=/mnt/data"),
        "{unit}"
    );
    let wants = run_ok(
        Process::new("find")
            .arg(root.join("etc/systemd/system"))
            .args(["-name", "mnt-data.automount", "-path", "*.wants/*"]),
    );
    assert_eq!(
        wants.lines().count(),
        1,
        "the automount is not enabled: {wants:?}"
    );

    // The record: packages.lock is the root's dpkg database, the services
    // and packages those of the plan.
    assert_eq!(lock_lines(&record), dpkg_lines(&root));
    let services = text(&record, "enabled_services");
    // The plan's `ssh`, by its unit's full name.
    assert_eq!(services, "ssh.service\n");
    let installed: serde_json::Value =
        serde_json::from_str(&text(&record, "installed_packages")).unwrap();
    let official = installed["official"].as_array().unwrap();
    assert!(
        official.iter().any(|p| p == "openssh-server"),
        "{installed}"
    );
    assert!(official.iter().all(|p| p != "cron"), "{installed}");

    // The system works inside.
    assert_eq!(in_root(&root, &["dpkg", "--audit"]), "");
    in_root(&root, &["apt-get", "check"]);
    assert!(root.join("usr/local/bin/kod").is_file());
    let copy = text(&root, "etc/kod/configuration.lua");
    assert!(copy.contains("hashed_password = \"$6$"), "{copy}");

    // No clear password anywhere: not in the tree, not on the disk.
    let grep = Process::new("grep")
        .args(["-r", "-F", "-l", "-s", CLEAR])
        .arg(top)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&grep.stdout),
        "",
        "the clear password is in these files"
    );
    run_ok(&mut Process::new("sync"));
    let image = Process::new("grep")
        .args(["-c", "-a", "-F", CLEAR])
        .arg(fs.image())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&image.stdout).trim(), "0");

    // A second install on the same machine is refused, changing nothing.
    let before = manifest(top);
    let again = kod(cache.path(), ["-c", c, "install", "--target", t]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("kod rebuild"));
    assert_eq!(manifest(top), before);
}

/// `boot.kernel.initramfs = "dracut"`: dracut instead of initramfs-tools
/// (they conflict), a generic image with the configured modules in it.
#[test]
fn net_root_install_target_with_dracut_builds_its_initramfs() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let (fs, cache) = new_machine(6 << 30);
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/debian-vm");
    for f in ["configuration.lua", "tools.lua"] {
        std::fs::copy(example.join(f), dir.path().join(f)).unwrap();
    }
    let file = dir.path().join("configuration.lua");
    let lua = std::fs::read_to_string(&file).unwrap().replace(
        "package = \"linux-image-amd64\",",
        "package = \"linux-image-amd64\",\n            initramfs = \"dracut\",",
    );
    assert!(lua.contains("initramfs = \"dracut\""));
    std::fs::write(&file, lua).unwrap();
    kod_ok(cache.path(), install_args(dir.path(), fs.path()));
    let root = fs.path().join("generations/0/rootfs");
    let packages = in_root(&root, &["dpkg-query", "-W", "-f", "${Package}\\n"]);
    assert!(packages.lines().any(|p| p == "dracut"), "{packages}");
    assert!(
        !packages.lines().any(|p| p == "initramfs-tools"),
        "{packages}"
    );
    let conf = text(&root, "etc/dracut.conf.d/90-kod.conf");
    assert!(conf.contains("hostonly=\"no\""), "{conf}");
    assert!(
        conf.contains("add_drivers+=\" virtio_pci virtio_blk virtio_scsi btrfs \""),
        "{conf}"
    );
    // dracut's own listing of the image it built: the modules are in it.
    let listing = in_root(&root, &["sh", "-c", "lsinitrd /boot/initrd.img-*"]);
    for m in ["virtio_blk.ko", "btrfs.ko"] {
        assert!(listing.contains(m), "{m} missing from the initramfs");
    }
    let inputs = in_root(&root, &["sh", "-c", "cat /boot/.kod-initramfs-*"]);
    assert!(inputs.starts_with("tool dracut\n"), "{inputs}");
}

/// The one test with a kernel: the example CI boots later, installed with
/// its kernel and initramfs.
#[test]
fn net_root_install_target_of_the_debian_vm_example_with_its_kernel() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let (fs, cache) = new_machine(6 << 30);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/debian-vm");
    kod_ok(cache.path(), install_args(&example, fs.path()));
    let record = fs.path().join("generations/0");
    let root = record.join("rootfs");
    let boot: Vec<String> = std::fs::read_dir(root.join("boot"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(boot.iter().any(|f| f.starts_with("vmlinuz-")), "{boot:?}");
    let initrds: Vec<&String> = boot
        .iter()
        .filter(|f| f.starts_with("initrd.img-"))
        .collect();
    assert_eq!(initrds.len(), 1, "{boot:?}");
    // Compressed with zstd (kod installs it for initramfs-tools), with
    // the configured modules in its list.
    let image = std::fs::read(root.join("boot").join(initrds[0])).unwrap();
    assert_eq!(&image[..4], &[0x28, 0xb5, 0x2f, 0xfd], "not zstd");
    let wanted = "virtio_pci\nvirtio_blk\nvirtio_scsi\nbtrfs\n";
    assert!(
        text(&root, "etc/initramfs-tools/modules").ends_with(wanted),
        "{}",
        text(&root, "etc/initramfs-tools/modules")
    );
    let unpacked = in_root(
        &root,
        &[
            "sh",
            "-c",
            "d=$(mktemp -d) && unmkinitramfs /boot/initrd.img-* $d && cat $d/conf/modules && rm -rf $d",
        ],
    );
    // mkinitramfs writes each as `NAME ARGS`: compared by name.
    let listed: Vec<&str> = unpacked.lines().map(str::trim).collect();
    assert!(
        listed.ends_with(&["virtio_pci", "virtio_blk", "virtio_scsi", "btrfs"]),
        "{unpacked}"
    );
    assert_eq!(lock_lines(&record), dpkg_lines(&root));
    let installed: serde_json::Value =
        serde_json::from_str(&text(&record, "installed_packages")).unwrap();
    assert_eq!(installed["kernel"], "linux-image-amd64");
    assert_eq!(
        text(&record, "enabled_services"),
        "systemd-networkd.service\n"
    );
    assert_eq!(in_root(&root, &["dpkg", "--audit"]), "");
    let release = text(&root, "etc/os-release");
    assert!(
        release.contains("ID=debian") && release.contains("VARIANT_ID=kod"),
        "{release}"
    );
    assert!(release.contains("IMAGE_VERSION=0"), "{release}");
    assert!(
        std::fs::symlink_metadata(
            root.join("etc/systemd/system/multi-user.target.wants/systemd-networkd.service")
        )
        .is_ok()
    );
}

/// A failure after packages are in (settling: a time zone the root does not
/// have) leaves no generation and no default, and says what was wrong.
#[test]
fn net_root_a_failed_install_leaves_no_generation() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let (fs, cache) = new_machine(2 << 30);
    let config = tempfile::tempdir().unwrap();
    std::fs::write(
        config.path().join("configuration.lua"),
        r#"local repos = require("repos")
return {
  repos = { official = repos.debian_repo({ suite = "bookworm", components = { "main" } }) },
  boot = { kernel = { package = false } },
  locale = { timezone = "Mars/Olympus_Mons" },
}
"#,
    )
    .unwrap();
    let out = kod(cache.path(), install_args(config.path(), fs.path()));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Mars/Olympus_Mons"), "{err}");
    let generations: Vec<String> = std::fs::read_dir(fs.path().join("generations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        // The number kept, and the machine lock's file (it stays, empty
        // of holders, like any lock file).
        .filter(|n| !n.starts_with(".highest") && n != ".lock")
        .collect();
    assert_eq!(generations, Vec::<String>::new(), "left behind");
    assert!(
        !fs.subvolumes()
            .iter()
            .any(|s| s.starts_with("generations/")),
        "{:?}",
        fs.subvolumes()
    );
    assert!(!fs.path().join("generations/default").exists());

    // Fixed, the same machine gets its generation 0.
    let fixed = std::fs::read_to_string(config.path().join("configuration.lua"))
        .unwrap()
        .replace("Mars/Olympus_Mons", "Europe/Berlin");
    std::fs::write(config.path().join("configuration.lua"), fixed).unwrap();
    // A debug run prints what it would run and leaves nothing either.
    let mut debug = vec!["-d".into()];
    debug.extend(install_args(config.path(), fs.path()));
    let out = kod(cache.path(), &debug);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("debug run"));
    assert!(!fs.path().join("generations/0").exists());
    assert!(!fs.path().join("generations/default").exists());
    kod_ok(cache.path(), install_args(config.path(), fs.path()));
    assert_eq!(
        std::fs::read_to_string(fs.path().join("generations/0/rootfs/.generation")).unwrap(),
        "0\n"
    );
}
