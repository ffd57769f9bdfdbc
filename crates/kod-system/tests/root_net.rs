//! Settling a real Debian minbase root (mmdebstrap from the host's
//! mirror) with commands run by `chroot`: what the target's own tools
//! read back. Root and net tiers.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use kod_report::Report;
use kod_root::Root;
use kod_system::IdMap;

const CLEAR: &str = "tier test pass phrase 7";

fn sh(root: &Path, script: &str) -> String {
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            "mount -t proc proc \"$0/proc\" && exec chroot \"$0\" /usr/bin/env -i \
             PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 /bin/sh -c \"$1\"",
        )
        .arg(root)
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .expect("run unshare");
    assert!(
        out.status.success(),
        "`{script}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether a symlink (or anything) is at `p`, not following it: the
/// links point into the target, not the host.
fn linked(p: &Path) -> bool {
    p.symlink_metadata().is_ok()
}

#[test]
fn root_net_settles_a_minbase_root() {
    if !kod_testkit::tiers(&[kod_testkit::Tier::Root, kod_testkit::Tier::Net]) {
        return;
    }
    let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
    let dir = tmp.path().join("root");
    let mirror = kod_repo::debian::find_mirror(None, None).expect("a Debian mirror");
    let st = Command::new("mmdebstrap")
        .args([
            "--variant=minbase",
            "--mode=root",
            "-q",
            "--include=locales,openssh-server,systemd,systemd-sysv,tzdata,cron",
            "bookworm",
        ])
        .arg(&dir)
        .arg(&mirror.url)
        .stdin(Stdio::null())
        .status()
        .expect("run mmdebstrap");
    assert!(st.success(), "mmdebstrap: {st}");

    let lua = format!(
        r#"local configs = require("configs")
return {{ {REPOS}
  locale = {{
    locale = {{ default = "de_DE.UTF-8 UTF-8", extra_generate = {{ "en_US.UTF-8 UTF-8" }},
               extra_settings = {{ LC_TIME = "en_US.UTF-8" }} }},
    keymap = "de-latin1",
    timezone = "Europe/Berlin",
  }},
  network = {{ hostname = "settled" }},
  users = {{
    ann = {{ name = "Ann", password = "{CLEAR}", extra_groups = {{ "sudo", "media" }},
            ssh_authorized = {{ "ssh-ed25519 AAAAC3Nza ann@laptop" }} }},
  }},
  services = {{
    openssh = {{ enable = true, service_name = "ssh", package = "openssh-server",
                settings = {{ PermitRootLogin = false, MaxAuthTries = 3 }} }},
    networkd = {{ enable = true, package = "systemd", service_name = "systemd-networkd" }},
    cron = {{ enable = false }},
    systemd_mount = {{ services = {{
      data = configs.mount({{ name = "mnt-data", type = "tmpfs", what = "tmpfs", where = "/mnt/data" }}),
    }} }},
  }},
}}"#
    );
    let (c, p) = config(&tmp.path().join("conf"), &lua);
    let root = Root::open(&dir).unwrap();
    // cron is enabled by its package before settling.
    let wants = dir.join("etc/systemd/system/multi-user.target.wants");
    assert!(linked(&wants.join("cron.service")));

    let s = plan(&root, &c, &p, 0, &IdMap::default());
    let runner = ChrootRunner { root: dir.clone() };
    kod_system::apply(&root, &runner, &s.changes, &Report::quiet())
        .unwrap_or_else(|e| panic!("apply: {e}"));
    assert_eq!(
        s.enabled_services,
        ["ssh.service", "systemd-networkd.service"]
    );

    // Accounts through NSS.
    let ann = sh(&dir, "getent passwd ann");
    assert_eq!(ann, "ann:x:1000:1001:Ann:/home/ann:/bin/bash\n");
    let media = sh(&dir, "getent group media");
    assert_eq!(media, "media:x:1000:ann\n");
    assert!(sh(&dir, "getent group sudo").trim_end().ends_with(":ann"));
    assert_eq!(sh(&dir, "id -nG ann"), "ann sudo media\n");
    // glibc's crypt in the target accepts kod's hash.
    let hash = sh(&dir, "getent shadow ann | cut -d: -f2");
    let check = sh(
        &dir,
        &format!(
            "perl -e 'print crypt($ARGV[0], $ARGV[1]) eq $ARGV[1] ? \"ok\" : \"bad\"' '{CLEAR}' '{}'",
            hash.trim()
        ),
    );
    assert_eq!(check, "ok");
    assert_eq!(
        sh(
            &dir,
            "stat -c '%U:%G %a' /home/ann /home/ann/.ssh /home/ann/.ssh/authorized_keys /home/ann/.bashrc"
        ),
        "ann:ann 700\nann:ann 700\nann:ann 600\nann:ann 644\n"
    );
    // Locales generated.
    let locales = sh(&dir, "locale -a");
    for l in ["de_DE.utf8", "en_US.utf8"] {
        assert!(locales.lines().any(|x| x == l), "{l} in {locales}");
    }
    assert_eq!(
        sh(&dir, ". /etc/default/locale; echo $LANG $LC_TIME"),
        "de_DE.UTF-8 en_US.UTF-8\n"
    );
    // Timezone as the target's date sees it.
    let zone = sh(
        &dir,
        "date -d 2024-01-15T12:00:00Z +%Z; date -d 2024-07-15T12:00:00Z +%Z",
    );
    assert_eq!(zone, "CET\nCEST\n");
    // sshd reads the drop-in.
    let sshd = sh(&dir, "mkdir -p /run/sshd && /usr/sbin/sshd -T");
    assert!(sshd.lines().any(|l| l == "permitrootlogin no"), "{sshd}");
    assert!(sshd.lines().any(|l| l == "maxauthtries 3"), "{sshd}");
    // Units: enabled ones linked, the switched-off one not.
    for unit in ["ssh.service", "systemd-networkd.service", "mnt-data.mount"] {
        assert!(linked(&wants.join(unit)), "{unit} enabled");
    }
    assert!(!linked(&wants.join("cron.service")), "cron disabled");
    assert_eq!(
        sh(&dir, "systemctl is-enabled cron.service || true"),
        "disabled\n"
    );
    // os-release.
    assert_eq!(
        sh(
            &dir,
            ". /etc/os-release; echo $ID $VARIANT_ID $IMAGE_VERSION"
        ),
        "debian kod 0\n"
    );
    // No clear password anywhere in the root.
    let grep = Command::new("grep")
        .args(["-rlF", "--exclude-dir=proc", CLEAR])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(
        grep.status.code(),
        Some(1),
        "found in {}",
        String::from_utf8_lossy(&grep.stdout)
    );

    // Settled: planning again changes nothing.
    let again = plan(&root, &c, &p, 0, &s.ids);
    assert!(again.changes.is_empty(), "{:#?}", again.changes);
}
