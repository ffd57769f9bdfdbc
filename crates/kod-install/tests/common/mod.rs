//! Shared test support: real tools (`dpkg-deb`, `dpkg`, `mmdebstrap`,
//! `apt-get`), tree snapshots, mount and leftover checks, a download cache.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// For the tests that need root and the network: a temporary directory in
/// /var/tmp (room for minbase roots); None, and the test returns, unless
/// both tiers are on.
pub fn net_tmp() -> Option<tempfile::TempDir> {
    kod_testkit::tiers(&[kod_testkit::Tier::Root, kod_testkit::Tier::Net])
        .then(|| tempfile::tempdir_in("/var/tmp").expect("tmp"))
}

/// For the tests that need root only: a temporary directory; None, and
/// the test returns, unless the root tier is on.
pub fn root_tmp() -> Option<tempfile::TempDir> {
    kod_testkit::tier(kod_testkit::Tier::Root).then(|| tempfile::tempdir().expect("tmp"))
}

/// Panics unless `out` is a success, naming `what` ran, with its status
/// and output.
#[track_caller]
pub fn assert_success(out: &Output, what: impl std::fmt::Display) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a command, panicking with its output if it fails; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert_success(&out, format_args!("{cmd:?}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `sh -c SCRIPT` chrooted into `root` with /proc, /sys and /dev
/// mounted in a private mount namespace (gone when it exits).
pub fn in_root(root: &Path, script: &str) -> Output {
    Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            "mount -t proc proc \"$0/proc\" && mount -t sysfs sysfs \"$0/sys\" && \
             mount --rbind /dev \"$0/dev\" && exec chroot \"$0\" /usr/bin/env -i \
             PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
             /bin/sh -c \"$1\"",
        )
        .arg(root)
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .expect("run unshare")
}

/// [`in_root`], asserting success; returns stdout.
pub fn in_root_ok(root: &Path, script: &str) -> String {
    let out = in_root(root, script);
    assert_success(&out, format_args!("`{script}` in {}", root.display()));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub use kod_testkit::tree::Node;

/// Every path below `root` (not crossing into other file systems).
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    let options = kod_testkit::tree::Options {
        one_file_system: true,
        ..Default::default()
    };
    kod_testkit::tree::snapshot(root, options)
}

/// Asserts two snapshots are equal, listing differences.
pub fn assert_same_tree(
    before: &BTreeMap<PathBuf, Node>,
    after: &BTreeMap<PathBuf, Node>,
    what: &str,
) {
    kod_testkit::tree::assert_same(before, after, ("the first", "the second"), what);
}

/// Mount points at or below `path` in this process's mount namespace.
pub fn mounts_under(path: &Path) -> Vec<String> {
    let text = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let p = path.to_string_lossy().into_owned();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| *m == p || m.starts_with(&format!("{p}/")))
        .map(str::to_string)
        .collect()
}

/// Processes whose root directory is `path`.
pub fn processes_in(path: &Path) -> Vec<u32> {
    let Ok(target) = fs::metadata(path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(m) = fs::metadata(format!("/proc/{pid}/root"))
            && m.dev() == target.dev()
            && m.ino() == target.ino()
        {
            out.push(pid);
        }
    }
    out
}

/// What kod-install leaves next to (or inside) a root while a transaction
/// runs: staging and overlay directories.
pub fn leftovers(root: &Path) -> Vec<PathBuf> {
    let name = root
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let parent = root.parent().expect("parent");
    let mut out: Vec<PathBuf> = fs::read_dir(parent)
        .expect("read parent")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().expect("name").to_string_lossy().into_owned();
            n.starts_with(&format!(".{name}.kod-tmp-"))
                || n.starts_with(&format!(".{name}.kod-txn-"))
        })
        .collect();
    if root.is_dir() {
        out.extend(
            fs::read_dir(root)
                .expect("read root")
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .expect("name")
                        .to_string_lossy()
                        .starts_with(".kod-tmp-")
                }),
        );
    }
    out
}

/// A fixture package built with the real `dpkg-deb --build`.
pub struct Fixture<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub arch: &'a str,
    /// Extra control fields, each a full line.
    pub control: &'a str,
    /// (path, content) of regular files, paths absolute.
    pub files: &'a [(&'a str, &'a str)],
    /// (member name, content) of control members: scripts (made
    /// executable), conffiles, triggers, md5sums, ...
    pub members: &'a [(&'a str, &'a str)],
}

impl Fixture<'_> {
    pub fn new(name: &str) -> Fixture<'_> {
        Fixture {
            name,
            version: "1.0-1",
            arch: "all",
            control: "",
            files: &[],
            members: &[],
        }
    }

    /// Builds `DIR/NAME_VERSION_ARCH.deb`.
    pub fn build(&self, dir: &Path) -> PathBuf {
        let tree = dir.join(format!("{}-{}.tree", self.name, self.version));
        let _ = fs::remove_dir_all(&tree);
        fs::create_dir_all(tree.join("DEBIAN")).expect("mkdir DEBIAN");
        let control = format!(
            "Package: {}\nVersion: {}\nArchitecture: {}\nMaintainer: kod tests <kod@example.org>\n{}Description: kod-install test fixture\n",
            self.name, self.version, self.arch, self.control
        );
        fs::write(tree.join("DEBIAN/control"), control).expect("write control");
        for (name, content) in self.members {
            let p = tree.join("DEBIAN").join(name);
            fs::write(&p, content).expect("write member");
            let script = matches!(
                *name,
                "preinst" | "postinst" | "prerm" | "postrm" | "config"
            );
            fs::set_permissions(
                &p,
                fs::Permissions::from_mode(if script { 0o755 } else { 0o644 }),
            )
            .expect("chmod member");
        }
        for (path, content) in self.files {
            let p = tree.join(path.trim_start_matches('/'));
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(&p, content).expect("write file");
        }
        let deb = dir.join(format!("{}_{}_{}.deb", self.name, self.version, self.arch));
        run(Command::new("dpkg-deb")
            .arg("--root-owner-group")
            .arg("-Zxz")
            .arg("--build")
            .arg(&tree)
            .arg(&deb));
        deb
    }
}

/// The host's Debian release code name (the tests use the host's apt
/// sources, which name it).
pub fn codename() -> String {
    let text = fs::read_to_string("/etc/os-release").expect("os-release");
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
        .expect("VERSION_CODENAME in /etc/os-release")
}

/// The host's apt source files (deb822 `.sources` and one-line `.list`),
/// which name the mirror: passed to mmdebstrap and copied into roots.
pub fn host_sources() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if Path::new("/etc/apt/sources.list").is_file() {
        out.push(PathBuf::from("/etc/apt/sources.list"));
    }
    if let Ok(d) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut v: Vec<PathBuf> = d
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "sources" || e == "list"))
            .collect();
        v.sort();
        out.extend(v);
    }
    assert!(!out.is_empty(), "the host has no apt sources");
    out
}

/// Copies the host's apt sources (and resolv.conf) into `root`.
pub fn copy_sources(root: &Path) {
    for s in host_sources() {
        let dest = if s.ends_with("sources.list") {
            root.join("etc/apt/sources.list")
        } else {
            root.join("etc/apt/sources.list.d")
                .join(s.file_name().expect("name"))
        };
        fs::copy(&s, &dest).unwrap_or_else(|e| panic!("copy {s:?}: {e}"));
    }
    let _ = fs::remove_file(root.join("etc/resolv.conf"));
    fs::copy("/etc/resolv.conf", root.join("etc/resolv.conf")).expect("copy resolv.conf");
}

/// A directory shared by the tests of this crate for downloads, locked
/// while it is filled.
fn cache_dir(what: &str) -> PathBuf {
    let base = std::env::var_os("KOD_INSTALL_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/kod-install-tests"));
    let d = base.join(what);
    fs::create_dir_all(&d).expect("cache dir");
    d
}

fn debs_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read cache")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    v.sort();
    v
}

/// Runs `fill` to populate `what` once (flock-protected); returns the .deb
/// files in it.
fn cached(what: &str, fill: impl FnOnce(&Path)) -> Vec<PathBuf> {
    let dir = cache_dir(what);
    let lock = fs::File::create(dir.join(".lock")).expect("lock file");
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).expect("flock");
    if !dir.join(".complete").exists() {
        for d in debs_in(&dir) {
            fs::remove_file(d).expect("clear cache");
        }
        fill(&dir);
        fs::write(dir.join(".complete"), "").expect("mark complete");
    }
    debs_in(&dir)
}

/// Builds a minbase root with mmdebstrap at `root` (the host's release and
/// apt sources), keeping the downloaded .deb files; returns them (moved
/// out of the root into `debs`).
pub fn mmdebstrap_minbase(root: &Path, debs: &Path) -> Vec<PathBuf> {
    run(Command::new("mmdebstrap")
        .args([
            "--variant=minbase",
            "--mode=root",
            "--skip=cleanup/apt/cache",
            "--skip=essential/unlink",
            "-q",
        ])
        .arg(codename())
        .arg(root)
        .args(host_sources()));
    fs::create_dir_all(debs).expect("debs dir");
    let archives = root.join("var/cache/apt/archives");
    for d in debs_in(&archives) {
        fs::rename(&d, debs.join(d.file_name().expect("name"))).expect("move deb");
    }
    debs_in(debs)
}

/// The .deb files of the host release's minbase set, downloaded once per
/// cache (by mmdebstrap, into a throwaway root).
pub fn minbase_debs() -> Vec<PathBuf> {
    cached(&format!("minbase-{}", codename()), |dir| {
        let tmp = tempfile::tempdir_in("/var/tmp").expect("tmp");
        mmdebstrap_minbase(&tmp.path().join("root"), dir);
    })
}

/// The .deb files `apt-get install git` would install into a minbase root
/// (computed and downloaded by apt inside `root`, a configured minbase
/// root with apt sources), cached once.
pub fn git_debs(root: &Path) -> Vec<PathBuf> {
    cached(&format!("git-{}", codename()), |dir| {
        in_root_ok(root, "apt-get update -q >/dev/null");
        let names = in_root_ok(
            root,
            "apt-get install -s -q git | sed -n 's/^Inst \\([^ ]*\\) .*/\\1/p'",
        );
        let names: Vec<&str> = names.lines().collect();
        assert!(
            names.contains(&"git"),
            "apt would not install git: {names:?}"
        );
        fs::create_dir_all(root.join("tmp/kod-debs")).expect("mkdir");
        in_root_ok(
            root,
            &format!(
                "cd /tmp/kod-debs && apt-get download -q {} >/dev/null 2>&1",
                names.join(" ")
            ),
        );
        for d in debs_in(&root.join("tmp/kod-debs")) {
            fs::copy(&d, dir.join(d.file_name().expect("name"))).expect("copy deb");
            fs::remove_file(&d).expect("rm deb");
        }
        fs::remove_dir(root.join("tmp/kod-debs")).expect("rmdir");
    })
}

/// Paths below `root` carrying overlayfs's own extended attributes
/// (`trusted.overlay.*`, or `user.overlay.*` from an overlay mounted in a
/// user namespace), which must not leak from a transaction's overlay into
/// the root.
pub fn overlay_xattrs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in snapshot(root).into_keys() {
        let full = root.join(&p);
        let mut buf = vec![0u8; 4096];
        let Ok(n) = rustix::fs::llistxattr(full.as_path(), &mut buf) else {
            continue;
        };
        if buf[..n]
            .split(|b| *b == 0)
            .any(|x| x.starts_with(b"trusted.overlay.") || x.starts_with(b"user.overlay."))
        {
            out.push(p);
        }
    }
    out
}

/// The host's dpkg architecture.
pub fn arch() -> String {
    run(Command::new("dpkg").arg("--print-architecture"))
        .trim()
        .to_string()
}

/// A fresh minbase root built by kod in `dir/name` from the cached set.
pub fn minbase_root(dir: &Path, name: &str) -> PathBuf {
    let root = dir.join(name);
    kod_install::bootstrap_into(
        &root,
        &minbase_debs(),
        &kod_install::BootstrapOptions::new(&arch()),
        &kod_install::Options::default(),
    )
    .expect("bootstrap minbase");
    root
}

/// `name -> "status version"` from the root's dpkg.
pub fn packages(root: &Path) -> BTreeMap<String, String> {
    in_root_ok(
        root,
        "dpkg-query -W -f '${Package} ${db:Status-Abbrev}${Version}\\n'",
    )
    .lines()
    .map(|l| {
        let (name, rest) = l.split_once(' ').expect("line");
        (name.to_string(), rest.to_string())
    })
    .collect()
}

/// `dpkg -L` of every package, as one text per package.
pub fn file_lists(root: &Path) -> BTreeMap<String, String> {
    packages(root)
        .into_keys()
        .map(|p| {
            let l = in_root_ok(root, &format!("dpkg -L {p}"));
            (p, l)
        })
        .collect()
}

/// The checks every kod-made root must pass.
pub fn healthy(root: &Path) {
    assert_eq!(in_root_ok(root, "dpkg --audit"), "", "dpkg --audit");
    for (name, state) in packages(root) {
        assert!(state.starts_with("ii "), "{name} is {state}");
    }
    in_root_ok(root, "apt-get check -q");
    let out = Command::new("chroot")
        .arg(root)
        .args(["/bin/sh", "-c", "true"])
        .status()
        .expect("chroot");
    assert!(out.success(), "chroot {} /bin/sh -c true", root.display());
    assert!(
        mounts_under(root).is_empty(),
        "mounts left under {}",
        root.display()
    );
    assert!(
        processes_in(root).is_empty(),
        "processes left in {}",
        root.display()
    );
    assert_eq!(leftovers(root), Vec::<PathBuf>::new());
    assert_eq!(
        overlay_xattrs(root),
        Vec::<PathBuf>::new(),
        "overlayfs attributes leaked"
    );
}

/// Installs `debs` into `root` in one transaction and commits it.
pub fn install(root: &Path, debs: &[PathBuf]) -> kod_install::InstallReport {
    let mut t =
        kod_install::Transaction::begin(root, &kod_install::Options::default()).expect("begin");
    let r = t.install(debs).expect("install");
    t.commit().expect("commit");
    r
}

/// A child process running this test binary's ignored helper test `name`
/// alone (from `exe`), handed `step`, `root` and `debs` through its
/// environment (read there by [`child_args`]): how tests run a step in a
/// process they kill, or in other namespaces.
pub fn child_test(exe: &Path, name: &str, step: &str, root: &Path, debs: &[PathBuf]) -> Command {
    let debs: Vec<String> = debs.iter().map(|d| d.display().to_string()).collect();
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", name, "--ignored", "--nocapture"])
        .env("KOD_CHILD_STEP", step)
        .env("KOD_CHILD_ROOT", root)
        .env("KOD_CHILD_DEBS", debs.join(":"));
    cmd
}

/// In a child started by [`child_test`]: its step, root and .deb files.
/// Panics with `otherwise` when the test runs any other way.
pub fn child_args(otherwise: &str) -> (String, PathBuf, Vec<PathBuf>) {
    let (Ok(step), Ok(root), Ok(debs)) = (
        std::env::var("KOD_CHILD_STEP"),
        std::env::var("KOD_CHILD_ROOT"),
        std::env::var("KOD_CHILD_DEBS"),
    ) else {
        panic!("{otherwise}");
    };
    let debs = debs
        .split(':')
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .collect();
    (step, PathBuf::from(root), debs)
}

/// The packages an installation unpacked besides `requested`: what apt
/// marks as automatically installed.
pub fn pulled_in<'a>(report: &'a kod_install::InstallReport, requested: &str) -> Vec<&'a str> {
    report
        .unpacked
        .iter()
        .map(|p| p.name.as_str())
        .filter(|n| *n != requested)
        .collect()
}
