//! Paths beneath a root never lead out of it: symlinks pointing out
//! (climbing with `../../..`, or absolute to `/etc`), `..` in the paths
//! given, symlinks at the last component, dangling links.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use kod_root::Root;

/// A root in `base/world/root`, with a canary directory beside it and
/// `etc/` inside.
fn world() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("world/root");
    let canary = base.path().join("world/canary");
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::create_dir_all(&canary).unwrap();
    fs::write(canary.join("victim"), "keep").unwrap();
    (base, root, canary)
}

/// A name that nothing on the host has in `/etc`.
fn unique(what: &str) -> String {
    format!("kod-root-test-{what}-{}", std::process::id())
}

#[test]
fn symlinks_pointing_out_of_the_root_resolve_inside_it() {
    let (_base, root, canary) = world();
    symlink("../../..", root.join("up")).unwrap();
    symlink("/etc", root.join("abs")).unwrap();
    symlink(&canary, root.join("canary")).unwrap();
    // The root has its own directory at the canary's path: an absolute
    // symlink to the canary leads there.
    let inner = root.join(canary.strip_prefix("/").unwrap());
    fs::create_dir_all(&inner).unwrap();
    let r = Root::open(&root).unwrap();
    let name = unique("abs");
    r.write(format!("abs/{name}"), b"inside\n", 0o644).unwrap();
    r.write("up/etc/hostname", b"x\n", 0o644).unwrap();
    r.create_dir_all(format!("canary/{name}"), 0o755).unwrap();
    r.write("canary/victim", b"pwned", 0o644).unwrap();
    assert!(!Path::new("/etc").join(&name).exists());
    assert_eq!(
        fs::read_to_string(root.join("etc").join(&name)).unwrap(),
        "inside\n"
    );
    assert_eq!(
        fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "x\n"
    );
    // The canary's path inside the root got the writes.
    assert_eq!(fs::read_to_string(inner.join("victim")).unwrap(), "pwned");
    assert!(inner.join(&name).is_dir());
    assert_eq!(fs::read_to_string(canary.join("victim")).unwrap(), "keep");
    assert_eq!(fs::read_dir(&canary).unwrap().count(), 1);
    // Reading follows the same rule: `abs/hostname` is the root's.
    assert_eq!(r.read("abs/hostname").unwrap().unwrap(), b"x\n");
    assert_eq!(r.read("up/up/up/etc/hostname").unwrap().unwrap(), b"x\n");
    let real = fs::canonicalize(&root).unwrap();
    for p in ["up", "abs", "up/up/etc", "canary"] {
        assert!(r.host_path(p).unwrap().starts_with(&real), "{p}");
    }
}

#[test]
fn dotdot_in_paths_stays_inside() {
    let (base, root, _canary) = world();
    let r = Root::open(&root).unwrap();
    r.write("../../../../etc/dotdot", b"1", 0o644).unwrap();
    r.create_dir_all("../../a/../b/c", 0o755).unwrap();
    r.make_dirs("/../../d").unwrap();
    assert_eq!(fs::read_to_string(root.join("etc/dotdot")).unwrap(), "1");
    assert!(root.join("b/c").is_dir());
    assert!(root.join("a").is_dir());
    assert!(root.join("d").is_dir());
    assert_eq!(
        r.host_path("../..").unwrap(),
        fs::canonicalize(&root).unwrap()
    );
    // Nothing appeared beside the root.
    let mut beside: Vec<String> = fs::read_dir(base.path().join("world"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    beside.sort();
    assert_eq!(beside, ["canary", "root"]);
}

#[test]
fn a_symlink_at_the_last_component_is_replaced_not_followed() {
    let (_base, root, canary) = world();
    let victim = canary.join("victim");
    symlink(&victim, root.join("etc/resolv.conf")).unwrap();
    symlink("../../canary/victim", root.join("etc/climbing")).unwrap();
    let r = Root::open(&root).unwrap();
    r.write("etc/resolv.conf", b"nameserver 1.1.1.1\n", 0o644)
        .unwrap();
    r.write("/etc/climbing", b"mine\n", 0o600).unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
    for (p, text, mode) in [
        ("etc/resolv.conf", "nameserver 1.1.1.1\n", 0o644),
        ("etc/climbing", "mine\n", 0o600),
    ] {
        let m = fs::symlink_metadata(root.join(p)).unwrap();
        assert!(m.file_type().is_file(), "{p}");
        assert_eq!(m.permissions().mode() & 0o7777, mode, "{p}");
        assert_eq!(fs::read_to_string(root.join(p)).unwrap(), text);
    }
    // Removing a symlink removes the link, not what it points at.
    symlink(&victim, root.join("etc/gone")).unwrap();
    r.remove_file("etc/gone").unwrap();
    assert!(victim.exists());
    assert!(!r.exists("etc/gone").unwrap());
    // No temporary is left beside the files written.
    let mut names: Vec<String> = fs::read_dir(root.join("etc"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["climbing", "resolv.conf"]);
}

#[test]
fn dangling_links_are_absent_for_stat_and_read_but_exist() {
    let (_base, root, _canary) = world();
    symlink("/nonexistent", root.join("etc/dangling")).unwrap();
    symlink("/nonexistent-dir", root.join("ddir")).unwrap();
    let r = Root::open(&root).unwrap();
    assert!(r.exists("etc/dangling").unwrap());
    let l = r.lstat("etc/dangling").unwrap().unwrap();
    assert_eq!(
        rustix::fs::FileType::from_raw_mode(l.st_mode),
        rustix::fs::FileType::Symlink
    );
    assert!(r.stat("etc/dangling").unwrap().is_none());
    assert!(r.read("etc/dangling").unwrap().is_none());
    assert!(r.lstat("nothing/here").unwrap().is_none());
    assert!(r.lstat("etc/dangling/below").unwrap().is_none());
    // A symlink is not created over it; a write replaces it.
    r.symlink("elsewhere", "etc/dangling").unwrap();
    assert_eq!(
        fs::read_link(root.join("etc/dangling")).unwrap(),
        Path::new("/nonexistent")
    );
    r.write("etc/dangling", b"now a file", 0o644).unwrap();
    assert_eq!(r.read("etc/dangling").unwrap().unwrap(), b"now a file");
    // A directory is not made through a dangling symlink, here or on the
    // host.
    assert!(r.make_dirs("ddir/sub").is_err());
    assert!(!Path::new("/nonexistent-dir").exists());
    assert!(!root.join("nonexistent-dir").exists());
}

#[test]
fn a_root_opened_beneath_refuses_paths_that_leave_it() {
    let (_base, root, canary) = world();
    symlink("../../..", root.join("up")).unwrap();
    symlink("/etc", root.join("abs")).unwrap();
    symlink("etc", root.join("rel")).unwrap();
    let r = Root::open_beneath(&root).unwrap();
    let xdev = Some(rustix::io::Errno::XDEV.raw_os_error());
    for p in ["abs/x", "up/etc/x", "../x"] {
        let e = r.write(p, b"x", 0o644).unwrap_err();
        assert_eq!(e.raw_os_error(), xdev, "{p}: {e}");
    }
    assert_eq!(
        r.open_at("up", rustix::fs::OFlags::PATH).unwrap_err(),
        rustix::io::Errno::XDEV
    );
    // Symlinks that stay inside are followed.
    r.write("rel/x", b"x", 0o644).unwrap();
    assert_eq!(fs::read_to_string(root.join("etc/x")).unwrap(), "x");
    assert_eq!(fs::read_dir(&canary).unwrap().count(), 1);
}

#[test]
fn directories_files_links_and_renames() {
    let (_base, root, _canary) = world();
    let r = Root::open(&root).unwrap();
    assert_eq!(r.path(), root);
    assert_eq!(r.show("/var/lib"), root.join("var/lib"));
    r.create_dir_all("tmp", 0o1777).unwrap();
    r.create_dir_all("var/lib/dpkg", 0o755).unwrap();
    let mode = |p: &str| fs::metadata(root.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("tmp"), 0o1777);
    assert_eq!(mode("var/lib"), 0o755);
    // Existing directories keep their mode.
    r.create_dir_all("tmp", 0o700).unwrap();
    assert_eq!(mode("tmp"), 0o1777);
    let mut made = Vec::new();
    r.make_dirs_with("usr/share/doc", 0o755, &mut |p| made.push(p.to_path_buf()))
        .unwrap();
    assert_eq!(
        made,
        [
            Path::new("usr"),
            Path::new("usr/share"),
            Path::new("usr/share/doc")
        ]
    );
    r.write("var/lib/dpkg/status", b"", 0o644).unwrap();
    assert!(r.write("no/such/dir/file", b"", 0o644).is_err());
    assert!(r.write("/", b"", 0o644).is_err());
    assert_eq!(r.read("var/lib/dpkg/status").unwrap().unwrap(), b"");
    assert!(r.read("var/lib/dpkg/nothing").unwrap().is_none());
    assert!(r.lstat("").unwrap().is_some());
    r.symlink("usr/share", "share").unwrap();
    assert_eq!(
        fs::read_link(root.join("share")).unwrap(),
        Path::new("usr/share")
    );
    r.write("a", b"a", 0o644).unwrap();
    r.write("b", b"b", 0o644).unwrap();
    let e = r.rename("a", "b", true).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
    r.rename("a", "share/doc/a", false).unwrap();
    assert_eq!(r.read("usr/share/doc/a").unwrap().unwrap(), b"a");
    r.remove_file("missing/parent/x").unwrap();
    r.remove_file("b").unwrap();
    r.remove_file("b").unwrap();
    assert!(!r.exists("b").unwrap());
}

#[test]
fn root_device_nodes_are_made_with_their_mode() {
    if !kod_testkit::tier(kod_testkit::Tier::Root) {
        return;
    }
    let (_base, root, _canary) = world();
    let r = Root::open(&root).unwrap();
    r.create_dir_all("dev", 0o755).unwrap();
    r.mknod("dev/null", true, 0o666, 1, 3).unwrap();
    r.mknod("dev/loop9", false, 0o660, 7, 9).unwrap();
    // Something there already is left alone.
    r.mknod("dev/null", true, 0o600, 1, 5).unwrap();
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let null = fs::symlink_metadata(root.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.permissions().mode() & 0o7777, 0o666);
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    let lp = fs::symlink_metadata(root.join("dev/loop9")).unwrap();
    assert!(lp.file_type().is_block_device());
    assert_eq!(lp.permissions().mode() & 0o7777, 0o660);
}
