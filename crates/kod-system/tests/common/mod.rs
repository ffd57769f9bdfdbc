//! Shared test support: a small Debian-like root, configurations from
//! Lua text, a recording runner and a chroot runner.
#![allow(dead_code)]

use std::cell::RefCell;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kod_config::Config;
use kod_db::{Error, Ran, Runner};
use kod_plan::Plan;
use kod_root::Root;
use kod_system::{IdMap, Input, Settlement};

pub const REPOS: &str = r#"repos = { official = { type = "debian", suite = "bookworm" } },"#;

pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
";
pub const GROUP: &str = "root:x:0:
sudo:x:27:
shadow:x:42:
users:x:100:
nogroup:x:65534:
";
pub const SHADOW: &str = "root:*:19700:0:99999:7:::
daemon:*:19700:0:99999:7:::
nobody:*:19700:0:99999:7:::
";
pub const GSHADOW: &str = "root:*::
sudo:*::
shadow:*::
users:*::
nogroup:*::
";
pub const OS_RELEASE: &str = r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
"#;
pub const LOCALE_GEN: &str = "# This file lists locales that you wish to have built.
# de_DE.UTF-8 UTF-8
# en_GB.UTF-8 UTF-8
# en_US.UTF-8 UTF-8
";
pub const SSH_UNIT: &str = "[Unit]
Description=OpenBSD Secure Shell server

[Service]
ExecStart=/usr/sbin/sshd -D

[Install]
WantedBy=multi-user.target
Alias=sshd.service
";
pub const FOO_UNIT: &str = "[Unit]
Description=foo

[Service]
ExecStart=/bin/true

[Install]
WantedBy=multi-user.target
";

/// systemd 252's unit, as Debian ships it (its preset leaves it disabled).
pub const CHECK_UNIT: &str = "[Unit]
Description=Check if Any System Units Failed
DefaultDependencies=no
Requires=boot-complete.target
After=local-fs.target sysinit.target basic.target
Before=boot-complete.target shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/lib/systemd/systemd-boot-check-no-failures

[Install]
RequiredBy=boot-complete.target
";

fn put(root: &Path, rel: &str, text: &str, mode: u32) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, text).unwrap();
    fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

/// A root with the files settling reads on Debian: accounts, skel,
/// zoneinfo, os-release (and the /etc symlink to it), locale.gen, the
/// keyboard file, systemctl and locale-gen, the ssh unit enabled as its
/// package does, a `foo` unit enabled too, and systemd's no-failures check.
pub fn fixture_root(dir: &Path) -> PathBuf {
    let r = dir.to_path_buf();
    put(&r, "etc/passwd", PASSWD, 0o644);
    put(&r, "etc/group", GROUP, 0o644);
    put(&r, "etc/shadow", SHADOW, 0o640);
    put(&r, "etc/gshadow", GSHADOW, 0o640);
    put(&r, "etc/skel/.bashrc", "# bashrc\n", 0o644);
    put(&r, "etc/skel/.profile", "# profile\n", 0o644);
    put(
        &r,
        "usr/share/zoneinfo/Europe/Berlin",
        "TZif2 Berlin",
        0o644,
    );
    put(&r, "usr/share/zoneinfo/UTC", "TZif2 UTC", 0o644);
    put(&r, "usr/lib/os-release", OS_RELEASE, 0o644);
    symlink("../usr/lib/os-release", r.join("etc/os-release")).unwrap();
    put(&r, "etc/locale.gen", LOCALE_GEN, 0o644);
    put(
        &r,
        "etc/default/keyboard",
        "XKBMODEL=\"pc105\"\nXKBLAYOUT=\"us\"\nXKBVARIANT=\"\"\nXKBOPTIONS=\"\"\n",
        0o644,
    );
    put(&r, "etc/machine-id", "", 0o444);
    put(&r, "usr/bin/systemctl", "#!/bin/sh\n", 0o755);
    put(&r, "usr/sbin/locale-gen", "#!/bin/sh\n", 0o755);
    put(&r, "usr/sbin/runuser", "#!/bin/sh\n", 0o755);
    put(&r, "usr/lib/systemd/system/ssh.service", SSH_UNIT, 0o644);
    put(&r, "usr/lib/systemd/system/foo.service", FOO_UNIT, 0o644);
    put(
        &r,
        "lib/systemd/system/systemd-boot-check-no-failures.service",
        CHECK_UNIT,
        0o644,
    );
    fs::create_dir_all(r.join("etc/systemd/system/multi-user.target.wants")).unwrap();
    for (link, unit) in [
        (
            "etc/systemd/system/multi-user.target.wants/ssh.service",
            "ssh.service",
        ),
        ("etc/systemd/system/sshd.service", "ssh.service"),
        (
            "etc/systemd/system/multi-user.target.wants/foo.service",
            "foo.service",
        ),
    ] {
        symlink(format!("/usr/lib/systemd/system/{unit}"), r.join(link)).unwrap();
    }
    fs::create_dir_all(r.join("home")).unwrap();
    r
}

/// Evaluates `lua` (a configuration.lua) written into `dir`; its plan.
pub fn config(dir: &Path, lua: &str) -> (Config, Plan) {
    fs::create_dir_all(dir).unwrap();
    let file = dir.join("configuration.lua");
    fs::write(&file, lua).unwrap();
    let c = kod_config::load(&file, &kod_config::EvalOptions::default())
        .unwrap_or_else(|e| panic!("configuration: {e}"));
    let p = kod_plan::plan(&c).expect("plan");
    (c, p)
}

/// Plans settling `root` for `config`/`plan` at `generation`.
pub fn plan(root: &Root, c: &Config, p: &Plan, generation: u64, ids: &IdMap) -> Settlement {
    kod_system::plan(root, &Input::new(c, p, generation, ids))
        .unwrap_or_else(|e| panic!("plan: {e}"))
}

/// A runner that runs nothing and records each command.
#[derive(Default)]
pub struct Recorder {
    pub commands: RefCell<Vec<Vec<String>>>,
}

impl Runner for Recorder {
    fn run_watching(
        &self,
        _step: &str,
        argv: &[&str],
        _env: &[(&str, &str)],
        _on_line: &dyn Fn(&str),
    ) -> Result<Ran, Error> {
        self.commands
            .borrow_mut()
            .push(argv.iter().map(|s| s.to_string()).collect());
        Ok(Ran {
            success: true,
            status: "exited with status 0".into(),
            ..Ran::default()
        })
    }

    fn show(&self, argv: &[&str], _env: &[(&str, &str)]) -> String {
        argv.join(" ")
    }
}

/// Runs commands with `chroot ROOT argv` (the root tier), with /proc
/// mounted in a private mount namespace that ends with the command.
pub struct ChrootRunner {
    pub root: PathBuf,
}

impl Runner for ChrootRunner {
    fn run_watching(
        &self,
        step: &str,
        argv: &[&str],
        env: &[(&str, &str)],
        on_line: &dyn Fn(&str),
    ) -> Result<Ran, Error> {
        let out = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount -t proc proc \"$0/proc\" && exec chroot \"$0\" \"$@\"")
            .arg(&self.root)
            .args(argv)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C.UTF-8")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::Command {
                step: step.into(),
                command: self.show(argv, env),
                status: format!("could not start: {e}"),
                packages: Vec::new(),
                output: kod_db::Output::default(),
            })?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        for l in &lines {
            on_line(l);
        }
        Ok(Ran {
            success: out.status.success(),
            status: format!("{}", out.status),
            tail: lines.clone(),
            lines,
        })
    }

    fn show(&self, argv: &[&str], _env: &[(&str, &str)]) -> String {
        format!("chroot {} {}", self.root.display(), argv.join(" "))
    }
}

/// Every regular file below `dir` and its bytes.
pub fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                todo.push(e.path());
            } else if t.is_file() {
                out.push((e.path(), fs::read(e.path()).unwrap()));
            }
        }
    }
    out
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}
