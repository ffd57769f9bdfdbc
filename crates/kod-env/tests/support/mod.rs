//! Test support: the kod binary, a Debian root tarball made by mmdebstrap,
//! an unprivileged user made for the test, and a snapshot of the host to
//! prove kod changed nothing outside its own directories.

#![allow(dead_code)] // Each test file uses its own part of this module.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// A directory under /var/tmp every test user can enter (tempfile makes
/// 0700 directories).
pub fn shared_tempdir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("kod-env-test-")
        .tempdir_in("/var/tmp")
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// The kod binary, built from this workspace (or `KOD_BIN`), copied to
/// `/var/tmp/kod-env-test-bin/kod` where any user can run it (the build
/// directory may be private); replaced atomically on each test run.
pub fn kod_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let built = match std::env::var_os("KOD_BIN") {
            Some(p) => PathBuf::from(p),
            None => {
                let exe = std::env::current_exe().unwrap();
                let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
                let target = profile_dir.parent().unwrap();
                let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
                let mut c = Command::new(cargo);
                c.args(["build", "-q", "-p", "kod", "--bin", "kod", "--target-dir"])
                    .arg(target)
                    .current_dir(env!("CARGO_MANIFEST_DIR"));
                if profile_dir.file_name().is_some_and(|n| n == "release") {
                    c.arg("--release");
                }
                let st = c.status().expect("running cargo to build kod");
                assert!(st.success(), "building kod failed");
                profile_dir.join("kod")
            }
        };
        let dir = Path::new("/var/tmp/kod-env-test-bin");
        std::fs::create_dir_all(dir).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let partial = dir.join(format!("kod.{}", std::process::id()));
        let _ = std::fs::remove_file(&partial);
        if std::fs::hard_link(&built, &partial).is_err() {
            std::fs::copy(&built, &partial).unwrap();
        }
        let dest = dir.join("kod");
        std::fs::rename(&partial, &dest).unwrap();
        dest
    })
    .clone()
}

/// A root tarball of Debian sid (minbase) with hello and jq, made by
/// mmdebstrap from the host's apt mirror; cached for a week beside the
/// build (`target/kod-env-fixtures/`), rebuilt atomically.
pub fn sid_tarball() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap();
    let dir = target.join("kod-env-fixtures");
    std::fs::create_dir_all(&dir).unwrap();
    let tarball = dir.join("sid-minbase-hello-jq.tar");
    let fresh = std::fs::metadata(&tarball)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age < Duration::from_secs(7 * 86_400));
    if !fresh {
        let mirror = kod_repo::debian::find_mirror(None, None)
            .expect("a Debian mirror in the host's apt sources")
            .url;
        let partial = dir.join(format!("sid.{}.tar", std::process::id()));
        // (mmdebstrap comes with `apt-get install mmdebstrap`.)
        kod_testkit::debs::run(
            Command::new("mmdebstrap")
                .args([
                    "--quiet",
                    "--variant=minbase",
                    "--include=hello,jq",
                    // Snapshot mirrors serve Release files past their
                    // Valid-Until.
                    "--aptopt=Acquire::Check-Valid-Until \"false\"",
                    "sid",
                ])
                .arg(&partial)
                .arg(&mirror),
        );
        std::fs::rename(&partial, &tarball).unwrap();
    }
    tarball
}

/// An unprivileged user made for one test and removed (with its home)
/// when dropped, even after a failure.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

impl TestUser {
    pub fn new(tag: &str) -> TestUser {
        let name = format!("kod{tag}{}", std::process::id());
        let st = Command::new("useradd")
            .args(["--create-home", "--shell", "/bin/sh"])
            .arg(&name)
            .status()
            .unwrap();
        assert!(st.success(), "useradd {name} failed");
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").arg(flag).arg(&name).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        TestUser {
            home: PathBuf::from(format!("/home/{name}")),
            name,
            uid,
            gid,
        }
    }

    /// `args` run as this user (through setpriv, which execs, so the child
    /// is kod itself), in `dir`, with a small login-like environment.
    pub fn command(&self, program: &Path, dir: &Path) -> Command {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg(program)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name)
            .env("SHELL", "/bin/sh")
            .env("LANG", "C.UTF-8")
            .current_dir(dir)
            .stdin(Stdio::null());
        c
    }

    /// The first subordinate uid /etc/subuid grants this user.
    pub fn first_subuid(&self) -> u32 {
        self.first_subid("/etc/subuid")
    }

    /// The first subordinate gid /etc/subgid grants this user.
    pub fn first_subgid(&self) -> u32 {
        self.first_subid("/etc/subgid")
    }

    fn first_subid(&self, file: &str) -> u32 {
        let text = std::fs::read_to_string(file).unwrap();
        text.lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f[0] == self.name).then(|| f[1].parse().unwrap())
            })
            .unwrap_or_else(|| panic!("useradd gave the user no subordinate ids in {file}"))
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel")
            .args(["--remove", "--force"])
            .arg(&self.name)
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs `c`, returning its output; panics with the output when its exit
/// status is not `code`.
pub fn expect(c: &mut Command, code: i32) -> Output {
    let out = c.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{c:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What the host looks like outside kod's own directories: the file lists
/// of /etc and /usr/local, the homes of users other than `except`, the top
/// level of /tmp (without the temporary files of processes running beside
/// this one: see `made_beside`), and the mount table.
#[derive(Debug, PartialEq, Eq)]
pub struct HostSnapshot {
    files: BTreeSet<PathBuf>,
    mounts: Vec<String>,
}

fn walk(dir: &Path, out: &mut BTreeSet<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        out.insert(p.clone());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&p, out);
        }
    }
}

/// Entries of /tmp that processes running beside the test make and
/// remove: tempfile's `.tmpXXXXXX` and the compiler's `ccXXXXXX.*` (builds
/// of other crates on the same machine).
fn made_beside(name: &str) -> bool {
    let gcc = name.len() > 9
        && name.starts_with("cc")
        && name.as_bytes()[8] == b'.'
        && name.as_bytes()[2..8].iter().all(u8::is_ascii_alphanumeric);
    name.starts_with(".tmp") || gcc
}

impl HostSnapshot {
    pub fn take(except: &TestUser) -> HostSnapshot {
        let mut files = BTreeSet::new();
        walk(Path::new("/etc"), &mut files);
        walk(Path::new("/usr/local"), &mut files);
        for e in std::fs::read_dir("/home").unwrap().flatten() {
            if e.path() != except.home {
                files.insert(e.path());
                walk(&e.path(), &mut files);
            }
        }
        for e in std::fs::read_dir("/tmp").unwrap().flatten() {
            if !made_beside(&e.file_name().to_string_lossy()) {
                files.insert(e.path());
            }
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        HostSnapshot { files, mounts }
    }

    pub fn assert_unchanged(&self, now: &HostSnapshot) {
        let added: Vec<_> = now.files.difference(&self.files).collect();
        let removed: Vec<_> = self.files.difference(&now.files).collect();
        assert!(
            added.is_empty() && removed.is_empty(),
            "the host changed outside kod's directories: added {added:?}, removed {removed:?}"
        );
        assert_eq!(self.mounts, now.mounts, "the host's mount table changed");
    }
}
