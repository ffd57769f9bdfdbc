//! Packages dpkg already knows go through the root's own dpkg: a newer
//! version (upgrade: old version's scripts, files that disappear, conffiles
//! weighed), the same version (left alone), and a package removed with its
//! conffiles left (config-files). Root and network (the minbase root is
//! built from the cached minbase set): `KOD_TEST_ROOT=1 KOD_TEST_NET=1`.

mod common;

use std::path::{Path, PathBuf};

use common::{Fixture, in_root_ok, install, leftovers, minbase_root, net_tmp};
use kod_install::{Options, Transaction};

/// Version `version` of kod-up: a conffile holding `conf`, a file only
/// that version ships (`only_in`: path, content), and a postinst logging
/// its arguments.
fn kod_up(dir: &Path, version: &str, conf: &str, only_in: (&str, &str)) -> PathBuf {
    Fixture {
        version,
        files: &[("/etc/kod-up.conf", conf), only_in],
        members: &[
            ("conffiles", "/etc/kod-up.conf\n"),
            (
                "postinst",
                "#!/bin/sh\necho \"$1 $2\" >> /var/lib/kod-up.log\n",
            ),
        ],
        ..Fixture::new("kod-up")
    }
    .build(dir)
}

#[test]
fn net_upgrade_reinstall_and_config_files_go_through_dpkg() {
    let Some(tmp) = net_tmp() else { return };
    let root = minbase_root(tmp.path(), "root");
    let v1 = kod_up(
        tmp.path(),
        "1.0-1",
        "v1\n",
        ("/usr/share/kod-up/only-in-1", "1\n"),
    );
    let v2 = kod_up(
        tmp.path(),
        "2.0-1",
        "v2\n",
        ("/usr/share/kod-up/only-in-2", "2\n"),
    );

    let r = install(&root, std::slice::from_ref(&v1));
    assert_eq!(r.unpacked.len(), 1);
    let r = install(&root, std::slice::from_ref(&v1));
    assert_eq!((r.unpacked.len(), r.unchanged.len()), (0, 1), "{r:?}");
    let r = install(&root, std::slice::from_ref(&v2));
    assert_eq!((r.unpacked.len(), r.upgraded.len()), (0, 1), "{r:?}");
    assert_eq!(
        in_root_ok(
            &root,
            "dpkg-query -W -f '${Version} ${db:Status-Abbrev}' kod-up"
        ),
        "2.0-1 ii "
    );
    assert!(
        !root.join("usr/share/kod-up/only-in-1").exists(),
        "an old file stayed"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/kod-up.conf")).expect("conf"),
        "v2\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("var/lib/kod-up.log")).expect("log"),
        "configure \nconfigure 1.0-1\n",
        "postinst runs: fresh install, then upgrade from 1.0-1"
    );

    // Removed but not purged: its conffile stays, dpkg handles the return.
    let mut t = Transaction::begin(&root, &Options::default()).expect("begin");
    let plan = t.plan_removal(&["kod-up"], false, false).expect("plan");
    t.remove(&plan).expect("remove");
    t.commit().expect("commit");
    assert_eq!(
        in_root_ok(&root, "dpkg-query -W -f '${db:Status-Abbrev}' kod-up"),
        "rc "
    );
    std::fs::write(root.join("etc/kod-up.conf"), "edited\n").expect("edit conffile");
    let r = install(&root, std::slice::from_ref(&v2));
    assert_eq!(r.upgraded.len(), 1, "{r:?}");
    assert_eq!(
        in_root_ok(&root, "dpkg-query -W -f '${db:Status-Abbrev}' kod-up"),
        "ii "
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/kod-up.conf")).expect("conf"),
        "edited\n",
        "the edited conffile is kept (--force-confold)"
    );
    assert_eq!(in_root_ok(&root, "dpkg --audit"), "");
    assert_eq!(leftovers(&root), Vec::<PathBuf>::new());
    assert!(!root.join("var/cache/kod-install").exists());
}
