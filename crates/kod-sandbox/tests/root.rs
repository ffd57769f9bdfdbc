//! Running commands in a root, as root. The root is a temporary directory
//! that borrows the host's /usr through a bind (the host is merged-/usr),
//! so no network is needed. Every mount lives in the command's private
//! namespace: the tests check that the host's mount table is unchanged.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use kod_sandbox::{
    Bind, Overlay, OverlayMarks, Prepared, Sandbox, SandboxError, Workdir, exit_code,
};
use kod_testkit::{Tier, tier};
use tempfile::TempDir;

fn mountinfo() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A root with merged-/usr symlinks and empty mount points; `/usr` is bound
/// from the host when the sandbox is made with [`sandbox`].
fn make_root(dir: &Path) {
    for d in ["usr", "etc", "dev", "proc", "sys", "home", "tmp", "run"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    for l in ["bin", "lib", "lib64", "sbin"] {
        std::os::unix::fs::symlink(format!("usr/{l}"), dir.join(l)).unwrap();
    }
    std::fs::write(dir.join("marker"), "inside\n").unwrap();
}

/// A fresh root ([`make_root`]) in a temporary directory, if the root tier
/// runs.
fn root_tier() -> Option<TempDir> {
    if !tier(Tier::Root) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    make_root(dir.path());
    Some(dir)
}

/// Temporary directories `names` below one base, made empty, if the root
/// tier runs.
fn layers<const N: usize>(base_in: &Path, names: [&str; N]) -> Option<(TempDir, [PathBuf; N])> {
    if !tier(Tier::Root) {
        return None;
    }
    let base = tempfile::tempdir_in(base_in).unwrap();
    let dirs = names.map(|d| base.path().join(d));
    for d in &dirs {
        std::fs::create_dir(d).unwrap();
    }
    Some((base, dirs))
}

fn sandbox(root: &Path) -> Sandbox {
    Sandbox::new(root)
        .share_host_dirs()
        .bind(Bind::same("/usr"))
}

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(script);
    c
}

/// [`sandbox`] of `root`, prepared.
fn prepared(root: &Path) -> Prepared {
    sandbox(root).prepare().unwrap()
}

/// Runs `cmd` in `sandbox` with its stdout captured, and waits for it.
fn output(sandbox: Sandbox, mut cmd: Command) -> Output {
    cmd.stdout(Stdio::piped());
    sandbox
        .prepare()
        .unwrap()
        .spawn(cmd)
        .unwrap()
        .wait_with_output()
        .unwrap()
}

/// Its stdout, after checking it succeeded.
fn stdout_of(out: &Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn root_runs_in_the_root_as_the_caller_and_passes_the_status_on() {
    let Some(dir) = root_tier() else { return };
    let before = mountinfo();
    let mut cmd = sh(
        "pwd; id -u; cat /marker; test -e /dev/null && test -e /proc/1/stat && echo shared; exit 7",
    );
    cmd.stderr(Stdio::piped());
    // A working directory that exists on the host only (not under a path
    // the sandbox binds, as /tmp is, where a checkout of kod may live).
    let host_only = tempfile::tempdir_in("/var/tmp").unwrap();
    cmd.current_dir(host_only.path());
    let out = output(
        sandbox(dir.path()).workdir(Workdir::Inherit {
            home: Some("/nonexistent-home".into()),
        }),
        cmd,
    );
    assert_eq!(exit_code(out.status), 7);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "/\n0\ninside\nshared\n"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not exist in the environment; starting in /"),
        "{err}"
    );
    assert_eq!(mountinfo(), before, "the host's mounts changed");
}

#[test]
fn root_keeps_the_working_directory_when_the_root_has_it() {
    let Some(dir) = root_tier() else { return };
    // /tmp is shared, so a directory under it exists on both sides.
    let work = tempfile::tempdir_in("/tmp").unwrap();
    let mut cmd = sh("pwd");
    cmd.current_dir(work.path());
    let out = output(sandbox(dir.path()), cmd);
    assert_eq!(stdout_of(&out).trim(), work.path().to_str().unwrap());
}

#[test]
fn root_a_command_killed_by_a_signal_exits_128_plus_it() {
    let Some(dir) = root_tier() else { return };
    let status = prepared(dir.path()).run(sh("kill -TERM $$")).unwrap();
    assert_eq!(exit_code(status), 143);
}

#[test]
fn root_signals_sent_to_the_runner_reach_the_command() {
    let Some(dir) = root_tier() else { return };
    // SIGTERM aimed at this thread (which `run` blocks it in) the way kill(1)
    // aims one at kod: the command's trap must see it.
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() };
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        // SAFETY: the test thread is alive: it waits in `run` until the
        // command exits, which needs this signal.
        unsafe { libc::pthread_kill(me, libc::SIGTERM) };
    });
    let status = prepared(dir.path())
        .run(sh("trap 'exit 42' TERM; i=0; while [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; exit 3"))
        .unwrap();
    sender.join().unwrap();
    assert_eq!(exit_code(status), 42);
}

#[test]
fn root_the_root_is_nosuid_and_mounts_stay_private() {
    let Some(dir) = root_tier() else { return };
    let before = mountinfo();
    let mut cmd = Command::new("cat");
    cmd.arg("/proc/self/mountinfo");
    let inside = stdout_of(&output(sandbox(dir.path()), cmd));
    // Field 5 is the mount point as the reading process sees it.
    let root_line = inside
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some("/"))
        .expect("a mount at / inside");
    let options = root_line.split(' ').nth(5).unwrap();
    assert!(options.split(',').any(|o| o == "nosuid"), "{root_line}");
    for shared in ["/dev", "/proc", "/sys", "/tmp", "/run", "/usr"] {
        assert!(
            inside.lines().any(|l| l.split(' ').nth(4) == Some(shared)),
            "{shared} is not mounted inside:\n{inside}"
        );
    }
    assert_eq!(mountinfo(), before, "the host's mounts changed");
}

#[test]
fn root_volumes_are_bound_and_a_missing_required_one_is_an_error() {
    let Some(dir) = root_tier() else { return };
    let vol = tempfile::tempdir().unwrap();
    std::fs::write(vol.path().join("f"), "from the host\n").unwrap();
    let out = output(
        sandbox(dir.path()).bind(Bind {
            source: vol.path().to_path_buf(),
            target: "/data".into(),
            required: true,
        }),
        sh("cat /data/f; echo written > /data/g"),
    );
    assert_eq!(stdout_of(&out), "from the host\n");
    assert_eq!(
        std::fs::read_to_string(vol.path().join("g")).unwrap(),
        "written\n"
    );
    // The mount point was created in the root, and nothing leaked into it.
    assert!(dir.path().join("data").is_dir());
    assert!(!dir.path().join("data/g").exists());

    let err = sandbox(dir.path())
        .bind(Bind::same("/nonexistent-kod-volume"))
        .prepare()
        .unwrap_err();
    assert!(matches!(err, SandboxError::Target { .. }), "{err}");
    assert!(
        err.to_string().contains("does not exist on the host"),
        "{err}"
    );
}

#[test]
fn root_a_missing_program_is_reported_as_not_found() {
    let Some(dir) = root_tier() else { return };
    let err = prepared(dir.path())
        .spawn(Command::new("no-such-program-kod"))
        .unwrap_err();
    match &err {
        SandboxError::Exec { source, root, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            assert!(root.contains(dir.path().file_name().unwrap().to_str().unwrap()));
        }
        other => panic!("expected Exec, got {other}"),
    }
}

#[test]
fn root_setuid_programs_gain_nothing() {
    let Some(dir) = root_tier() else { return };
    // A setuid-root copy of `id` inside the root, run as nobody: with nosuid
    // its effective uid stays nobody's.
    let id = dir.path().join("suid-id");
    std::fs::copy("/usr/bin/id", &id).unwrap();
    std::fs::set_permissions(&id, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "/suid-id",
        "-u",
    ]);
    let out = output(sandbox(dir.path()), cmd);
    assert_eq!(stdout_of(&out).trim(), "65534");
}

#[test]
fn root_an_overlay_root_keeps_its_lower_layer_unchanged() {
    let Some((_base, [lower, upper, work, mnt])) =
        layers(&std::env::temp_dir(), ["lower", "upper", "work", "mnt"])
    else {
        return;
    };
    let before = mountinfo();
    make_root(&lower);
    let out = output(
        sandbox(&mnt).overlay(Overlay {
            lower: vec![lower.clone()],
            upper: upper.clone(),
            work,
            ..Overlay::default()
        }),
        sh("cat /marker; echo new > /created; rm /marker"),
    );
    assert_eq!(stdout_of(&out), "inside\n");
    assert_eq!(
        std::fs::read_to_string(upper.join("created")).unwrap(),
        "new\n"
    );
    assert!(lower.join("marker").exists(), "the lower layer was changed");
    assert!(!lower.join("created").exists());
    assert_eq!(std::fs::read_dir(&mnt).unwrap().count(), 0);
    assert_eq!(mountinfo(), before, "the host's mounts changed");
}

/// What a transaction on an existing root does with [`Overlay::mount_on`]:
/// a child mounts the overlay in a private mount namespace of its own from
/// its `pre_exec` (a plain upper layer, marks in `user.overlay.*`); the
/// child's writes land in the upper layer, a removed and remade directory
/// is marked opaque there with the user attribute, and the host never sees
/// the mount.
#[test]
fn root_an_overlay_mount_made_in_a_pre_exec_keeps_user_marks() {
    use std::os::unix::process::CommandExt;

    // Not under /tmp: its filesystem may lack user extended attributes.
    let Some((_base, [lower, upper, work, merged])) =
        layers(Path::new("/var/tmp"), ["lower", "upper", "work", "merged"])
    else {
        return;
    };
    let before = mountinfo();
    std::fs::create_dir(lower.join("dir")).unwrap();
    std::fs::write(lower.join("dir/old"), "old\n").unwrap();
    let mount = Overlay {
        lower: vec![lower.clone()],
        upper: upper.clone(),
        work,
        marks: OverlayMarks::User,
        plain_upper: true,
    }
    .mount_on(&merged)
    .unwrap();
    assert!(
        mount
            .data()
            .to_str()
            .unwrap()
            .ends_with(",userxattr,redirect_dir=nofollow,index=off,metacopy=off")
    );
    let mut cmd = sh("cd \"$1\" && cat dir/old && rm -r dir && mkdir dir && echo new > dir/new");
    cmd.arg("sh").arg(&merged);
    // SAFETY: the forked child has one thread; the mount allocates nothing.
    unsafe {
        cmd.pre_exec(move || mount.mount_in_private_namespace());
    }
    assert_eq!(stdout_of(&cmd.output().unwrap()), "old\n");
    assert_eq!(
        std::fs::read_to_string(upper.join("dir/new")).unwrap(),
        "new\n"
    );
    assert!(!upper.join("dir/old").exists());
    assert!(
        lower.join("dir/old").exists(),
        "the lower layer was changed"
    );
    let mut opaque = [0u8; 8];
    let n = rustix::fs::getxattr(upper.join("dir"), c"user.overlay.opaque", &mut opaque)
        .expect("the remade directory is opaque in user.overlay.*");
    assert_eq!(&opaque[..n], b"y");
    assert!(
        rustix::fs::getxattr(upper.join("dir"), c"trusted.overlay.opaque", &mut opaque).is_err()
    );
    assert_eq!(std::fs::read_dir(&merged).unwrap().count(), 0);
    assert_eq!(mountinfo(), before, "the host's mounts changed");
}

#[test]
fn root_what_the_command_starts_ends_with_it_in_its_pid_namespace() {
    let Some(dir) = root_tier() else { return };
    // The background sleep is pid 2 of the new namespace (its init is 1);
    // the command itself is the host's.
    let out = output(
        sandbox(dir.path()).pid_namespace(true),
        sh("sleep 30 >/dev/null 2>&1 & echo $!; grep ^NSpid: /proc/$!/status | wc -w"),
    );
    assert_eq!(exit_code(out.status), 0);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let bg: u32 = lines.next().unwrap().parse().unwrap();
    assert_eq!(
        lines.next(),
        Some("3"),
        "NSpid names two namespaces: {text}"
    );
    let t0 = std::time::Instant::now();
    while std::fs::read_to_string(format!("/proc/{bg}/cmdline"))
        .is_ok_and(|c| c.starts_with("sleep"))
    {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the background sleep outlived the command"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
