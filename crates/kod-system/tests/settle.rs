//! Settling a small Debian-like root in a temporary directory: each step's
//! files read back, planning again changes nothing, ids stay stable, no
//! clear password is written, bad input is refused.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;
use kod_report::Report;
use kod_root::Root;
use kod_system::{Action, IdMap};
use sha_crypt::{PasswordVerifier, ShaCrypt};

const CLEAR: &str = "correct horse battery staple";
const BOB_HASH: &str = "$6$kodsalt$0HaucfEgSj9tgRFdmzl1rIeiM5KJ8yK/gMKfthfPRBKLPCKMOyIeC2gPiuSMPEF3nXGY4kX3ugwk2NvZ0x1Su/";

fn rich_config(users_extra: &str) -> String {
    format!(
        r#"local configs = require("configs")
return {{ {REPOS}
  locale = {{
    locale = {{ default = "de_DE.UTF-8 UTF-8", extra_generate = {{ "en_US.UTF-8 UTF-8" }},
               extra_settings = {{ LC_TIME = "en_GB.UTF-8" }} }},
    keymap = "de-latin1",
    timezone = "Europe/Berlin",
  }},
  network = {{ hostname = "box", ipv4 = {{ address = "192.168.1.10/24", gateway = "192.168.1.1",
               dns = {{ "192.168.1.1" }} }}, ipv6 = false }},
  users = {{
    {users_extra}
    root = {{ no_password = true }},
    ann = {{ name = "Ann Example", password = "{CLEAR}", shell = "/bin/bash",
            extra_groups = {{ "sudo", "media" }}, ssh_authorized = {{ "ssh-ed25519 AAAAC3 ann@laptop" }} }},
    bob = {{ hashed_password = "{BOB_HASH}", extra_groups = {{ "media" }} }},
  }},
  services = {{
    openssh = {{ enable = true, service_name = "ssh", package = "openssh-server",
                settings = {{ PermitRootLogin = false, PasswordAuthentication = true,
                             AllowUsers = {{ "ann", "bob" }}, MaxAuthTries = 3 }} }},
    foo = {{ enable = false }},
    systemd_mount = {{ services = {{
      data = configs.mount({{ name = "mnt-data", type = "nfs", what = "nas.invalid:/data",
                              where = "/mnt/data" }}),
    }} }},
  }},
}}"#
    )
}

fn read(root: &Path, rel: &str) -> String {
    fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o7777
}

fn runs(changes: &[kod_system::Change]) -> Vec<Vec<String>> {
    changes
        .iter()
        .filter_map(|c| match &c.action {
            Action::Run { argv, .. } => Some(argv.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn settles_a_debian_root_and_planning_again_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture_root(&tmp.path().join("root"));
    let (c, p) = config(&tmp.path().join("conf"), &rich_config(""));
    let root = Root::open(&dir).unwrap();
    let s = plan(&root, &c, &p, 3, &IdMap::default());
    assert_eq!(s.enabled_services, ["ssh.service"]);
    let keys: Vec<&str> = s.changes.iter().map(|c| c.key.as_str()).collect();
    assert!(keys.contains(&"locale.keymap"), "{keys:?}");
    let runner = Recorder::default();
    kod_system::apply(&root, &runner, &s.changes, &Report::quiet()).unwrap();
    // ssh is enabled by its package already; foo is switched off; the
    // mount helper's unit is new; locale.gen changed.
    assert_eq!(
        *runner.commands.borrow(),
        [
            vec!["/usr/sbin/locale-gen"],
            vec!["/usr/bin/systemctl", "disable", "foo.service"],
            vec!["/usr/bin/systemctl", "enable", "mnt-data.mount"],
        ]
    );

    // timezone
    assert_eq!(
        fs::read_link(dir.join("etc/localtime")).unwrap(),
        Path::new("/usr/share/zoneinfo/Europe/Berlin")
    );
    assert_eq!(read(&dir, "etc/timezone"), "Europe/Berlin\n");
    // locales
    assert_eq!(
        read(&dir, "etc/locale.gen"),
        "# This file lists locales that you wish to have built.\nde_DE.UTF-8 UTF-8\n\
         # en_GB.UTF-8 UTF-8\nen_US.UTF-8 UTF-8\n"
    );
    let locale = "LANG=de_DE.UTF-8\nLC_TIME=en_GB.UTF-8\n";
    assert_eq!(read(&dir, "etc/default/locale"), locale);
    assert_eq!(read(&dir, "etc/locale.conf"), locale);
    // keymap
    assert_eq!(read(&dir, "etc/vconsole.conf"), "KEYMAP=de-latin1\n");
    assert_eq!(
        read(&dir, "etc/default/keyboard"),
        "XKBMODEL=\"pc105\"\nXKBLAYOUT=\"de\"\nXKBVARIANT=\"\"\nXKBOPTIONS=\"\"\n"
    );
    // host
    assert_eq!(read(&dir, "etc/hostname"), "box\n");
    let hosts = read(&dir, "etc/hosts");
    assert!(
        hosts.starts_with("127.0.0.1\tlocalhost\n127.0.1.1\tbox\n"),
        "{hosts}"
    );
    assert!(
        hosts.contains("::1\tlocalhost ip6-localhost ip6-loopback\n"),
        "{hosts}"
    );
    let net = read(&dir, "etc/systemd/network/50-kod-ethernet.network");
    assert!(net.contains("[Match]\nType=ether\n"), "{net}");
    for l in [
        "DHCP=no",
        "IPv6AcceptRA=no",
        "Address=192.168.1.10/24",
        "Gateway=192.168.1.1",
        "DNS=192.168.1.1",
    ] {
        assert!(net.lines().any(|x| x == l), "{l} in {net}");
    }
    // os-release: a file in /etc, the distribution's fields kept
    assert!(
        fs::symlink_metadata(dir.join("etc/os-release"))
            .unwrap()
            .is_file()
    );
    let os = read(&dir, "etc/os-release");
    assert!(
        os.contains("ID=debian\n") && os.contains("VERSION_CODENAME=bookworm\n"),
        "{os}"
    );
    assert!(os.ends_with("VARIANT_ID=kod\nIMAGE_VERSION=3\n"), "{os}");
    assert_eq!(read(&dir, "usr/lib/os-release"), OS_RELEASE);
    // machine-id: a fresh one
    let id = read(&dir, "etc/machine-id");
    assert!(kod_system::release::valid_machine_id(&id), "{id:?}");
    // sshd drop-in
    assert_eq!(
        read(&dir, "etc/ssh/sshd_config.d/kod.conf"),
        "# Written by kod from the configuration's services settings.\nAllowUsers ann bob\n\
         MaxAuthTries 3\nPasswordAuthentication yes\nPermitRootLogin no\n"
    );
    // the mount helper's unit
    assert!(read(&dir, "etc/systemd/system/mnt-data.mount").contains("What=nas.invalid:/data"));

    // Planning again: only the commands whose effect the recorder did not
    // make; once their effect is there, nothing.
    let again = plan(&root, &c, &p, 3, &s.ids);
    assert_eq!(
        runs(&again.changes),
        [
            vec!["/usr/sbin/locale-gen"],
            vec!["/usr/bin/systemctl", "disable", "foo.service"],
            vec!["/usr/bin/systemctl", "enable", "mnt-data.mount"],
        ],
        "{:#?}",
        again.changes
    );
    assert_eq!(
        runs(&again.changes).len(),
        again.changes.len(),
        "{:#?}",
        again.changes
    );
    // What locale-gen and systemctl would have done:
    fs::create_dir_all(dir.join("usr/lib/locale")).unwrap();
    fs::write(dir.join("usr/lib/locale/locale-archive"), "").unwrap();
    fs::remove_file(dir.join("etc/systemd/system/multi-user.target.wants/foo.service")).unwrap();
    std::os::unix::fs::symlink(
        "/etc/systemd/system/mnt-data.mount",
        dir.join("etc/systemd/system/multi-user.target.wants/mnt-data.mount"),
    )
    .unwrap();
    let settled = plan(&root, &c, &p, 3, &s.ids);
    assert!(settled.changes.is_empty(), "{:#?}", settled.changes);
    assert_eq!(settled.ids, s.ids);
}

fn entry(text: &str, name: &str) -> Vec<String> {
    text.lines()
        .find(|l| l.split(':').next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .split(':')
        .map(str::to_string)
        .collect()
}

#[test]
fn users_and_groups_are_written_as_debian_has_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture_root(&tmp.path().join("root"));
    let (c, p) = config(&tmp.path().join("conf"), &rich_config(""));
    let root = Root::open(&dir).unwrap();
    let s = plan(&root, &c, &p, 0, &IdMap::default());
    kod_system::apply(&root, &Recorder::default(), &s.changes, &Report::quiet()).unwrap();

    let passwd = read(&dir, "etc/passwd");
    // Existing entries and their order kept; new ones appended.
    assert!(passwd.starts_with(PASSWD), "{passwd}");
    assert_eq!(
        entry(&passwd, "ann"),
        [
            "ann",
            "x",
            "1000",
            "1001",
            "Ann Example",
            "/home/ann",
            "/bin/bash"
        ]
    );
    assert_eq!(entry(&passwd, "bob")[..4], ["bob", "x", "1001", "1002"]);
    let group = read(&dir, "etc/group");
    assert!(group.starts_with("root:x:0:\nsudo:x:27:ann\n"), "{group}");
    // media did not exist: created first, from 1000.
    assert_eq!(entry(&group, "media"), ["media", "x", "1000", "ann,bob"]);
    assert_eq!(entry(&group, "ann"), ["ann", "x", "1001", ""]);
    let gshadow = read(&dir, "etc/gshadow");
    assert_eq!(entry(&gshadow, "sudo"), ["sudo", "*", "", "ann"]);
    assert_eq!(entry(&gshadow, "media"), ["media", "!", "", "ann,bob"]);
    let shadow = read(&dir, "etc/shadow");
    assert_eq!(entry(&shadow, "root")[1], "");
    assert_eq!(entry(&shadow, "bob")[1], BOB_HASH);
    let ann_hash = entry(&shadow, "ann")[1].clone();
    assert!(ann_hash.starts_with("$6$"), "{ann_hash}");
    ShaCrypt::default()
        .verify_password(CLEAR.as_bytes(), ann_hash.as_str())
        .expect("the hash verifies against the clear text");
    assert!(
        ShaCrypt::default()
            .verify_password(b"wrong", ann_hash.as_str())
            .is_err()
    );

    for (rel, mode, gid) in [
        ("etc/passwd", 0o644, 0),
        ("etc/group", 0o644, 0),
        ("etc/shadow", 0o640, 42),
        ("etc/gshadow", 0o640, 42),
    ] {
        let m = fs::metadata(dir.join(rel)).unwrap();
        assert_eq!(
            (m.mode() & 0o7777, m.uid(), m.gid()),
            (mode, 0, gid),
            "{rel}"
        );
    }
    // Home from skel, owned by the user; ssh keys.
    let owner = |rel: &str| {
        let m = fs::symlink_metadata(dir.join(rel)).unwrap();
        (m.mode() & 0o7777, m.uid(), m.gid())
    };
    assert_eq!(owner("home/ann"), (0o700, 1000, 1001));
    assert_eq!(owner("home/ann/.bashrc"), (0o644, 1000, 1001));
    assert_eq!(read(&dir, "home/ann/.profile"), "# profile\n");
    assert_eq!(owner("home/ann/.ssh"), (0o700, 1000, 1001));
    assert_eq!(owner("home/ann/.ssh/authorized_keys"), (0o600, 1000, 1001));
    assert_eq!(
        read(&dir, "home/ann/.ssh/authorized_keys"),
        "ssh-ed25519 AAAAC3 ann@laptop\n"
    );
    assert_eq!(owner("home/bob"), (0o700, 1001, 1002));
    assert!(!dir.join("home/bob/.ssh").exists());

    assert_eq!(s.ids.users.get("ann"), Some(&1000));
    assert_eq!(s.ids.groups.get("media"), Some(&1000));
}

#[test]
fn a_clear_password_is_written_nowhere() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture_root(&tmp.path().join("root"));
    let (c, p) = config(&tmp.path().join("conf"), &rich_config(""));
    let root = Root::open(&dir).unwrap();
    let s = plan(&root, &c, &p, 0, &IdMap::default());
    let debug = format!("{s:?} {:#?}", s.changes);
    let shown: String = s.changes.iter().map(|c| format!("{c}\n")).collect();
    assert!(!debug.contains(CLEAR) && !shown.contains(CLEAR));
    assert!(debug.contains("$6$"), "the hash is there, not the password");
    kod_system::apply(&root, &Recorder::default(), &s.changes, &Report::quiet()).unwrap();
    let files = all_files(&dir);
    assert!(files.len() > 20, "{}", files.len());
    for (path, bytes) in files {
        assert!(
            !contains(&bytes, CLEAR),
            "the clear password is in {}",
            path.display()
        );
    }
    // Planned again with a different salt nothing changes: the hash in the
    // root still verifies.
    let again = plan(&root, &c, &p, 0, &s.ids);
    assert!(
        !again.changes.iter().any(|c| c.key == "users"),
        "{:#?}",
        again.changes
    );
}

#[test]
fn ids_stay_the_same_in_the_next_generation() {
    let tmp = tempfile::tempdir().unwrap();
    let first = fixture_root(&tmp.path().join("gen0"));
    let (c, p) = config(&tmp.path().join("conf0"), &rich_config(""));
    let root = Root::open(&first).unwrap();
    let s = plan(&root, &c, &p, 0, &IdMap::default());
    kod_system::apply(&root, &Recorder::default(), &s.changes, &Report::quiet()).unwrap();
    let map = tmp.path().join("ids.json");
    s.ids.save(&map).unwrap();

    // The next generation is a fresh root, and a user sorting before ann
    // appears: without the map aaron would take ann's uid.
    let second = fixture_root(&tmp.path().join("gen1"));
    let (c, p) = config(
        &tmp.path().join("conf1"),
        &rich_config(r#"aaron = { extra_groups = { "video" } },"#),
    );
    let loaded = IdMap::load(&map).unwrap();
    assert_eq!(loaded, s.ids);
    let root = Root::open(&second).unwrap();
    let s2 = plan(&root, &c, &p, 1, &loaded);
    kod_system::apply(&root, &Recorder::default(), &s2.changes, &Report::quiet()).unwrap();
    let passwd = read(&second, "etc/passwd");
    let group = read(&second, "etc/group");
    for name in ["ann", "bob"] {
        assert_eq!(
            entry(&passwd, name),
            entry(&read(&first, "etc/passwd"), name)
        );
    }
    assert_eq!(
        entry(&group, "media"),
        entry(&read(&first, "etc/group"), "media")
    );
    let aaron = entry(&passwd, "aaron");
    // uids 1000 and 1001 (ann, bob) and gids 1000 to 1002 (media, ann,
    // bob) stay theirs.
    let uid: u32 = aaron[2].parse().unwrap();
    let gid: u32 = aaron[3].parse().unwrap();
    assert_eq!(uid, 1002, "{aaron:?}");
    assert!(!(1000..=1002).contains(&gid), "{aaron:?}");
    let video: u32 = entry(&group, "video")[2].parse().unwrap();
    assert!(!(1000..=1002).contains(&video) && video != gid);
    assert_eq!(s2.ids.users["aaron"], uid);
}

#[test]
fn unknown_timezones_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture_root(&tmp.path().join("root"));
    let root = Root::open(&dir).unwrap();
    for zone in ["Mars/Olympus_Mons", "../../etc/passwd", "/etc/passwd", ""] {
        let (c, p) = config(
            &tmp.path().join("conf"),
            &format!("return {{ {REPOS} locale = {{ timezone = {zone:?} }} }}"),
        );
        let e = kod_system::plan(&root, &kod_system::Input::new(&c, &p, 0, &IdMap::default()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("locale.timezone: unknown timezone"), "{e}");
        assert!(e.contains("tzdata"), "{e}");
    }
}

#[test]
fn settings_without_a_known_place_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture_root(&tmp.path().join("root"));
    let root = Root::open(&dir).unwrap();
    let (c, p) = config(
        &tmp.path().join("conf"),
        &format!(
            "return {{ {REPOS} services = {{ nginx = {{ enable = true, settings = {{ workers = 4 }} }} }} }}"
        ),
    );
    let e = kod_system::plan(&root, &kod_system::Input::new(&c, &p, 0, &IdMap::default()))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("services.nginx.settings.workers:"), "{e}");
    assert!(e.contains("does not know where the settings"), "{e}");
}

#[test]
fn a_unit_that_is_not_installed_cannot_be_enabled_but_can_stay_off() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture_root(&tmp.path().join("root"));
    let root = Root::open(&dir).unwrap();
    let (c, p) = config(
        &tmp.path().join("conf"),
        &format!("return {{ {REPOS} services = {{ nosuch = {{ enable = true }} }} }}"),
    );
    let e = kod_system::plan(&root, &kod_system::Input::new(&c, &p, 0, &IdMap::default()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unit nosuch.service is not in the target"),
        "{e}"
    );
    let (c, p) = config(
        &tmp.path().join("conf2"),
        &format!(
            "return {{ {REPOS} services = {{ nosuch = {{ enable = false }}, ssh = {{ enable = false }} }} }}"
        ),
    );
    let s = plan(&root, &c, &p, 0, &IdMap::default());
    // ssh (enabled by its package) is disabled; the missing unit is left.
    assert_eq!(
        runs(&s.changes),
        [vec!["/usr/bin/systemctl", "disable", "ssh.service"]]
    );
    assert!(s.enabled_services.is_empty());
}

#[test]
fn automatic_network_and_a_keymap_without_keyboard_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture_root(&tmp.path().join("root"));
    fs::remove_file(dir.join("etc/default/keyboard")).unwrap();
    let root = Root::open(&dir).unwrap();
    let (c, p) = config(
        &tmp.path().join("conf"),
        &format!(
            "return {{ {REPOS} locale = {{ keymap = \"uk\" }}, network = {{ hostname = \"a.example.org\" }} }}"
        ),
    );
    let s = plan(&root, &c, &p, 0, &IdMap::default());
    kod_system::apply(&root, &Recorder::default(), &s.changes, &Report::quiet()).unwrap();
    let net = read(&dir, "etc/systemd/network/50-kod-ethernet.network");
    assert!(net.contains("DHCP=ipv4\nIPv6AcceptRA=yes\n"), "{net}");
    assert!(!net.contains("Address="), "{net}");
    assert!(read(&dir, "etc/default/keyboard").contains("XKBLAYOUT=\"gb\"\n"));
    assert!(read(&dir, "etc/hosts").contains("127.0.1.1\ta.example.org a\n"));
    // No locale configured: locale.gen untouched, no locale-gen.
    assert_eq!(read(&dir, "etc/locale.gen"), LOCALE_GEN);
    assert!(runs(&s.changes).is_empty());
    // A valid machine id is kept in the next plan.
    let id = read(&dir, "etc/machine-id");
    let again = plan(&root, &c, &p, 0, &s.ids);
    assert!(again.changes.is_empty(), "{:#?}", again.changes);
    assert_eq!(read(&dir, "etc/machine-id"), id);
}

#[test]
fn bad_values_name_their_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture_root(&tmp.path().join("root"));
    let root = Root::open(&dir).unwrap();
    for (lua, expect) in [
        ("network = { hostname = \"bad_name\" }", "network.hostname"),
        (
            "network = { ipv4 = { address = \"300.1.1.1/24\" } }",
            "network.ipv4.address",
        ),
        (
            "locale = { locale = { default = \"de_DE\" } }",
            "locale.locale.default",
        ),
        (
            "locale = { locale = { extra_settings = { LC_BOGUS = \"x\" } } }",
            "LC_BOGUS",
        ),
    ] {
        let (c, p) = config(
            &tmp.path().join("conf"),
            &format!("return {{ {REPOS} {lua} }}"),
        );
        let e = kod_system::plan(&root, &kod_system::Input::new(&c, &p, 0, &IdMap::default()))
            .unwrap_err()
            .to_string();
        assert!(e.contains(expect), "{lua}: {e}");
    }
}

#[test]
fn copy_file_helpers_are_read_from_the_host_and_written_into_the_root() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture_root(&tmp.path().join("root"));
    let conf = tmp.path().join("conf");
    fs::create_dir_all(&conf).unwrap();
    fs::write(conf.join("motd"), "welcome to kod\n").unwrap();
    let (c, p) = config(
        &conf,
        &format!(
            r#"local configs = require("configs")
return {{ {REPOS} services = {{ files = {{ services = {{
  motd = configs.copy_file("motd", "/etc/kod-motd/motd"),
}} }} }} }}"#
        ),
    );
    let root = Root::open(&dir).unwrap();
    let s = plan(&root, &c, &p, 0, &IdMap::default());
    assert!(
        s.changes
            .iter()
            .any(|c| c.key == "services.files.services.motd"),
        "{:#?}",
        s.changes
    );
    kod_system::apply(&root, &Recorder::default(), &s.changes, &Report::quiet()).unwrap();
    assert_eq!(read(&dir, "etc/kod-motd/motd"), "welcome to kod\n");
    let m = fs::metadata(dir.join("etc/kod-motd/motd")).unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 0));
    let again = plan(&root, &c, &p, 0, &s.ids);
    assert!(again.changes.is_empty(), "{:#?}", again.changes);
}

#[test]
fn the_targets_boot_loader_automation_stays_off_the_esp_and_boot_counting_is_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture_root(&tmp.path().join("root"));
    let root = Root::open(&dir).unwrap();
    let settle = |lua: &str| {
        let (c, p) = config(&tmp.path().join("conf"), lua);
        let s = plan(&root, &c, &p, 0, &IdMap::default());
        kod_system::apply(&root, &Recorder::default(), &s.changes, &Report::quiet()).unwrap();
        plan(&root, &c, &p, 0, &IdMap::default()).changes.len()
    };
    let check = dir.join(kod_system::loader::CHECK_LINK.trim_start_matches('/'));
    assert_eq!(settle(&format!("return {{ {REPOS} }}")), 0, "settled twice");
    assert_eq!(
        read(&dir, "etc/kernel/install.conf"),
        kod_system::loader::INSTALL_CONF_TEXT
    );
    assert!(
        read(&dir, "etc/kernel/install.conf")
            .lines()
            .any(|l| l == "layout=other")
    );
    assert_eq!(
        fs::read_link(dir.join("etc/systemd/system/systemd-boot-update.service")).unwrap(),
        Path::new("/dev/null")
    );
    assert_eq!(
        fs::read_link(&check).unwrap(),
        Path::new("/lib/systemd/system/systemd-boot-check-no-failures.service")
    );

    // kod vm's boot report: its files as kod-vm has them, enabled.
    for (path, content, mode) in kod_vm::guest::FILES {
        let rel = path.trim_start_matches('/');
        assert_eq!(read(&dir, rel), *content, "{path}");
        assert_eq!(mode_of(&dir.join(rel)), *mode, "{path}");
    }
    assert_eq!(
        fs::read_link(dir.join("etc/systemd/system/multi-user.target.wants/kod-report.service"))
            .unwrap(),
        Path::new("/usr/lib/systemd/system/kod-report.service")
    );

    // Counting turned off: the check is unlinked, the rest stays.
    let off = format!("return {{ {REPOS} boot = {{ loader = {{ tries = 0 }} }} }}");
    assert_eq!(settle(&off), 0);
    assert!(
        fs::symlink_metadata(&check).is_err(),
        "the check is unlinked"
    );
    assert!(dir.join("etc/kernel/install.conf").exists());

    // A machine without a kernel boots no loader: nothing of this.
    let dir = fixture_root(&tmp.path().join("bare"));
    let root = Root::open(&dir).unwrap();
    let (c, p) = config(
        &tmp.path().join("conf"),
        &format!("return {{ {REPOS} boot = {{ kernel = {{ package = false }} }} }}"),
    );
    let s = plan(&root, &c, &p, 0, &IdMap::default());
    assert!(
        s.changes.iter().all(|c| !c.key.starts_with("boot.loader")),
        "{:?}",
        s.changes
    );
}
