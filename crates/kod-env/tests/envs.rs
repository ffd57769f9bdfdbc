//! Environments end to end, through the kod binary: a Debian sid root with
//! hello and jq created by kod as root and run by an unprivileged user made
//! by the test; one made by mmdebstrap from the host's mirror, imported as
//! root or by that user, run, exported, viewed and synced; trixie roots built by kod's own engine, as root and, in the
//! user's own store, by the user without root (then packages installed
//! and removed there). Each test checks that the host is unchanged outside
//! kod's own directories.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use kod_testkit::{Tier, tiers};
use support::{HostSnapshot, TestUser, expect, kod_bin, shared_tempdir, sid_tarball, stdout};

fn on() -> bool {
    tiers(&[Tier::Root, Tier::Net])
}

/// A kod command as root with `KOD_ENVS_DIR` set to `store`.
fn kod_root(store: &Path) -> Command {
    let mut c = Command::new(kod_bin());
    c.env("KOD_ENVS_DIR", store).stdin(Stdio::null());
    c
}

/// A kod command as root on the system-wide store (`KOD_ENVS_DIR` unset).
fn kod_system() -> Command {
    let mut c = Command::new(kod_bin());
    c.env_remove("KOD_ENVS_DIR");
    c
}

/// `kod ARGS` as `user`, in their home.
fn kod_as(user: &TestUser, args: &[&str]) -> Command {
    let mut c = user.command(&kod_bin(), &user.home);
    c.args(args);
    c
}

/// `kod run ENV -- sh -c SCRIPT` as root against `store`.
fn sh_in(store: &Path, env: &str, script: &str) -> Command {
    let mut c = kod_root(store);
    c.args(["run", env, "--", "sh", "-c", script]);
    c
}

/// Asserts that `out`'s standard output contains `text`, showing it if not.
#[track_caller]
fn assert_stdout_has(out: &Output, text: &str) {
    let s = stdout(out);
    assert!(s.contains(text), "{s}");
}

/// A command's standard output, parsed as JSON (`--json`).
fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The launcher script the view holds for `program`.
fn launcher(view_bin: &Path, program: &str) -> String {
    std::fs::read_to_string(view_bin.join(program)).unwrap()
}

/// The root of `user`'s personal environment `name`, once checked that
/// `out` (of the command that made it) names it and that its files are
/// the user's.
#[track_caller]
fn personal_root(user: &TestUser, name: &str, out: &Output) -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    let root = user.home.join(format!(".local/share/kod/envs/{name}/root"));
    assert_stdout_has(out, root.to_str().unwrap());
    assert_eq!(
        std::fs::metadata(root.join("usr/bin/hello")).unwrap().uid(),
        user.uid
    );
    root
}

/// What the store tests start from: a test user, the host as it was before
/// the test, and an empty store in a directory every user can enter.
/// (Fields drop in this order: the directory before the user, as locals
/// made after the user did.)
struct Setup {
    dir: tempfile::TempDir,
    store: PathBuf,
    user: TestUser,
    before: HostSnapshot,
}

impl Setup {
    fn new(tag: &str) -> Setup {
        let user = TestUser::new(tag);
        let before = HostSnapshot::take(&user);
        let dir = shared_tempdir();
        let store = dir.path().join("envs");
        Setup {
            dir,
            store,
            user,
            before,
        }
    }

    fn assert_host_unchanged(&self) {
        HostSnapshot::take(&self.user).assert_unchanged(&self.before);
    }
}

/// Deletes a system-wide environment when dropped.
struct SystemEnv(String);

impl Drop for SystemEnv {
    fn drop(&mut self) {
        let _ = kod_system().args(["env", "delete", &self.0]).output();
    }
}

#[test]
fn net_a_user_runs_a_system_environment_as_themself() {
    if !on() {
        return;
    }
    let kod = kod_bin();
    let user = TestUser::new("run");
    let before = HostSnapshot::take(&user);
    let name = format!("sid-{}", std::process::id());
    let _cleanup = SystemEnv(name.clone());
    // Root makes it with kod's engine, in the system-wide store. The host's
    // mirror may be a snapshot whose sid Release is past its Valid-Until
    // (sid's is a week ahead, snapshots are refreshed less often).
    let out = expect(
        kod_system()
            .env("KOD_CHECK_VALID_UNTIL", "no")
            .args(["env", "create", &name, "--distro", "debian:sid"])
            .args(["--packages", "hello,jq"]),
        0,
    );
    assert_stdout_has(&out, "/var/lib/kod/envs/");

    let work = user.home.join("work");
    let as_user = |dir: &Path| {
        let mut c = user.command(&kod, dir);
        c.arg("run").arg(&name).arg("--");
        c
    };
    std::fs::create_dir(&work).unwrap();
    std::os::unix::fs::chown(&work, Some(user.uid), Some(user.gid)).unwrap();

    let out = expect(as_user(&work).arg("hello"), 0);
    assert_eq!(stdout(&out), "Hello, world!\n");

    let out = expect(as_user(&work).args(["sh", "-c", "pwd; id -u; exit 7"]), 7);
    assert_eq!(stdout(&out), format!("{}\n{}\n", work.display(), user.uid));

    // Piped stdin reaches the program.
    let mut child = as_user(&work)
        .args(["jq", "-c", "."])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{ \"a\": [1, 2],\n \"b\": \"x\" }\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(stdout(&out), "{\"a\":[1,2],\"b\":\"x\"}\n");

    // Under a real terminal the program sees it.
    let line = format!("{} run {name} -- tty", kod.display());
    let mut c = user.command(Path::new("/usr/bin/script"), &work);
    c.args(["-qec", &line, "/dev/null"]);
    let out = expect(&mut c, 0);
    assert!(stdout(&out).starts_with("/dev/pts/"), "{:?}", stdout(&out));

    // Arguments that are not UTF-8 pass through as bytes.
    let latin1 = std::os::unix::ffi::OsStrExt::from_bytes(b"caf\xe9");
    let out = expect(
        as_user(&work)
            .args([std::ffi::OsStr::new("printf"), std::ffi::OsStr::new("%s")])
            .arg::<&std::ffi::OsStr>(latin1),
        0,
    );
    assert_eq!(out.stdout, b"caf\xe9");

    // A command killed by a signal, one that does not exist.
    expect(as_user(&work).args(["sh", "-c", "kill -TERM $$"]), 143);
    let out = expect(as_user(&work).arg("no-such-program"), 127);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-program"));

    // SIGTERM sent to kod reaches the command, whose status comes back.
    let mut child = as_user(&work)
        .args([
            "sh",
            "-c",
            "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready, "ready\n");
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(42));

    // A directory that does not exist in the environment falls back.
    let out = expect(as_user(Path::new("/var/tmp")).arg("pwd"), 0);
    assert_eq!(
        stdout(&out),
        "/var/tmp\n",
        "/var/tmp exists in the root too"
    );
    let nowhere = shared_tempdir();
    let out = expect(as_user(nowhere.path()).arg("pwd"), 0);
    assert_eq!(stdout(&out), format!("{}\n", user.home.display()));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist in the environment"));

    expect(kod_system().args(["env", "delete", &name]), 0);
    HostSnapshot::take(&user).assert_unchanged(&before);
}

#[test]
fn net_a_user_imports_a_personal_environment_without_root() {
    if !on() {
        return;
    }
    let setup = Setup::new("own");
    let copy = setup.dir.path().join("sid.tar");
    std::fs::copy(sid_tarball(), &copy).unwrap();
    let user = &setup.user;

    let out = expect(
        kod_as(user, &["env", "import", "mine"])
            .arg(&copy)
            .args(["--distro", "debian:sid"]),
        0,
    );
    // Root's files are the user's; _apt's (uid 42) are in the user's
    // subordinate range, as newuidmap mapped them.
    let root = personal_root(user, "mine", &out);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(root.join("var/cache/apt/archives/partial"))
            .unwrap()
            .uid(),
        user.first_subuid() + 41
    );
    let out = expect(&mut kod_as(user, &["run", "mine", "--", "hello"]), 0);
    assert_eq!(stdout(&out), "Hello, world!\n");
    // The user's passwd line was copied, so ids have names inside.
    let out = expect(&mut kod_as(user, &["run", "mine", "--", "id", "-un"]), 0);
    assert_eq!(stdout(&out).trim(), user.name);

    let out = expect(&mut kod_as(user, &["env", "list", "--json"]), 0);
    let list = json(&out);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "mine" && e["scope"] == "personal"),
        "{list}"
    );

    expect(&mut kod_as(user, &["env", "delete", "mine"]), 0);
    assert!(!root.exists());
    setup.assert_host_unchanged();
}

fn import(store: &Path, name: &str, tarball: &Path) {
    expect(
        kod_root(store)
            .args(["env", "import", name])
            .arg(tarball)
            .args(["--distro", "debian:sid"]),
        0,
    );
}

#[test]
fn net_exports_views_and_conflicts() {
    if !on() {
        return;
    }
    let setup = Setup::new("view");
    let (store, user) = (&setup.store, &setup.user);
    let tarball = sid_tarball();
    import(store, "a", &tarball);
    import(store, "b", &tarball);

    let out = expect(
        kod_root(store).args(["env", "export", "a", "jq", "hello"]),
        0,
    );
    let path_line = format!("export PATH=\"{}/.view/bin:$PATH\"", store.display());
    assert_stdout_has(&out, &path_line);
    let out = expect(kod_root(store).args(["env", "export", "b", "jq"]), 0);
    assert_stdout_has(&out, "conflict: jq is exported by a, b; a wins");

    // The launcher on the printed PATH runs the environment's jq, for the
    // user too.
    let view_bin = store.join(".view/bin");
    let mut c = user.command(&view_bin.join("jq"), &user.home);
    c.args(["-n", "-c", "[1, 2] | map(. * 3)"]);
    assert_eq!(stdout(&expect(&mut c, 0)), "[3,6]\n");
    assert!(launcher(&view_bin, "jq").contains("run 'a' -- '/usr/bin/jq'"));

    // Status lists the conflict; JSON too.
    let out = expect(kod_root(store).args(["env", "status", "b"]), 0);
    assert_stdout_has(&out, "conflict:  jq is exported by a, b; a wins");
    let st = json(&expect(
        kod_root(store).args(["env", "status", "a", "--json"]),
        0,
    ));
    assert_eq!(st[0]["conflicts"][0]["winner"], "a");
    assert_eq!(st[0]["exports"], serde_json::json!(["hello", "jq"]));
    assert!(
        st[0]["installed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "jq")
    );

    // A priority makes b win; an unknown name in it changes nothing.
    let out = expect(
        kod_root(store).args(["env", "view", "unified", "--priority", "b,nope"]),
        1,
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nope"),
        "{:?}",
        out
    );
    let out = expect(
        kod_root(store).args(["env", "view", "unified", "--priority", "b"]),
        0,
    );
    assert_stdout_has(&out, "b wins");
    let out = expect(kod_root(store).args(["env", "view", "unified"]), 0);
    assert!(stdout(&out).contains("b wins"), "kept: {}", stdout(&out));
    assert!(launcher(&view_bin, "jq").contains("run 'b'"));
    assert!(view_bin.join("hello").exists());

    // Isolated: one environment's exports at the stable path.
    let out = expect(kod_root(store).args(["env", "view", "isolated"]), 0);
    assert_stdout_has(&out, "isolated, showing b");
    assert!(stdout(&out).contains(&path_line));
    assert!(!view_bin.join("hello").exists());
    expect(kod_root(store).args(["env", "switch", "a"]), 0);
    assert!(view_bin.join("hello").exists());
    assert!(launcher(&view_bin, "jq").contains("run 'a'"));
    let mut c = Command::new(view_bin.join("hello"));
    assert_eq!(stdout(&expect(&mut c, 0)), "Hello, world!\n");

    // A desktop application: rewritten to run through kod.
    let apps = store.join("a/root/usr/share/applications");
    std::fs::create_dir_all(&apps).unwrap();
    std::fs::write(
        apps.join("org.kod.Hello.desktop"),
        "[Desktop Entry]\nType=Application\nName=Hello\nTryExec=hello\nExec=hello\nIcon=hello\n",
    )
    .unwrap();
    expect(
        kod_root(store).args(["env", "export", "a", "--app", "org.kod.Hello"]),
        0,
    );
    let desktop = store.join(".view/share/applications/kod-a-org.kod.Hello.desktop");
    let text = std::fs::read_to_string(&desktop).unwrap();
    assert!(text.contains("Name=Hello (a)\n"), "{text}");
    assert!(!text.contains("TryExec"), "{text}");
    let exec = text
        .lines()
        .find_map(|l| l.strip_prefix("Exec="))
        .unwrap()
        .replace('"', "");
    let words: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(
        &words[2..],
        [kod_bin().to_str().unwrap(), "run", "a", "--", "hello"]
    );
    let mut c = Command::new(words[0]);
    c.args(&words[1..]);
    assert_eq!(stdout(&expect(&mut c, 0)), "Hello, world!\n");
    expect(
        kod_root(store).args(["env", "unexport", "a", "--app", "org.kod.Hello", "jq"]),
        0,
    );
    assert!(!desktop.exists());
    let out = expect(kod_root(store).args(["env", "status", "b"]), 0);
    assert!(!stdout(&out).contains("conflict"), "{}", stdout(&out));

    setup.assert_host_unchanged();
}

fn write_config(dir: &Path, envs: &str) -> PathBuf {
    let file = dir.join("configuration.lua");
    std::fs::write(
        &file,
        format!(
            "local repos = require(\"repos\")\nreturn {{\n  repos = {{ official = repos.debian_repo({{ suite = \"bookworm\" }}) }},\n  environments = {{ {envs} }},\n}}\n"
        ),
    )
    .unwrap();
    file
}

#[test]
fn net_sync_keeps_undeclared_environments_unless_pruning() {
    if !on() {
        return;
    }
    let setup = Setup::new("sync");
    let store = &setup.store;
    let tarball = sid_tarball();
    import(store, "keep", &tarball);
    import(store, "dropped", &tarball);
    let conf = write_config(
        setup.dir.path(),
        "keep = { distro = \"debian:sid\", packages = { \"hello\", \"jq\" }, exports = { \"jq\" }, volumes = { \"/srv\" } }",
    );
    let sync = |extra: &[&str]| {
        let mut c = kod_root(store);
        c.arg("-c").arg(&conf).args(["env", "sync"]).args(extra);
        c
    };
    let out = expect(&mut sync(&[]), 0);
    let text = stdout(&out);
    assert!(text.contains("export from keep: jq"), "{text}");
    assert!(text.contains("keep dropped"), "{text}");
    assert!(store.join("dropped/env.json").exists());
    assert!(store.join(".view/bin/jq").exists());

    let out = expect(&mut sync(&["--prune", "--dry-run"]), 0);
    assert_stdout_has(&out, "would delete dropped");
    assert!(store.join("dropped/env.json").exists());

    expect(&mut sync(&["--prune"]), 0);
    assert!(!store.join("dropped").exists());
    assert!(store.join("keep/env.json").exists());
    // In line now: nothing more to do.
    let out = expect(&mut sync(&[]), 0);
    assert_stdout_has(&out, "in line");
    // The declared volume is bound on every run.
    let out = expect(&mut sh_in(store, "keep", "test -d /srv && echo bound"), 0);
    assert_eq!(stdout(&out), "bound\n");

    setup.assert_host_unchanged();
}

#[test]
fn net_import_tarballs_made_by_the_test_in_every_compression() {
    if !on() {
        return;
    }
    let tarball = sid_tarball();
    let dir = shared_tempdir();
    let store = dir.path().join("envs");
    for (ext, tool) in [
        ("tar.gz", &["gzip", "-1", "-c"][..]),
        ("tar.xz", &["xz", "-0", "-T0", "-c"]),
        ("tar.zst", &["zstd", "-1", "-q", "-c"]),
    ] {
        let made = dir.path().join(format!("sid.{ext}"));
        let out = std::fs::File::create(&made).unwrap();
        let st = Command::new(tool[0])
            .args(&tool[1..])
            .arg(&tarball)
            .stdout(out)
            .status()
            .unwrap();
        assert!(st.success(), "{tool:?}");
        let name = ext.replace('.', "-");
        import(&store, &name, &made);
        let out = expect(
            &mut sh_in(&store, &name, "hello && cat /etc/debian_chroot"),
            0,
        );
        assert_eq!(stdout(&out), format!("Hello, world!\n{name}\n"));
    }
    // A root directory is adopted in place, and left there on delete.
    let adopted = dir.path().join("adopted");
    std::fs::create_dir(&adopted).unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&tarball)
        .arg("-C")
        .arg(&adopted)
        .status()
        .unwrap();
    assert!(st.success());
    import(&store, "dir", &adopted);
    let out = expect(
        kod_root(&store).args(["run", "dir", "--", "jq", "-n", "1+1"]),
        0,
    );
    assert_eq!(stdout(&out), "2\n");
    expect(kod_root(&store).args(["env", "delete", "dir"]), 0);
    assert!(adopted.join("usr/bin/jq").exists());
}

#[test]
fn net_create_and_sync_build_environments_with_kods_engine() {
    if !on() {
        return;
    }
    let setup = Setup::new("make");
    let create_tx = |extra: &[&str]| {
        let mut c = kod_root(&setup.store);
        c.args(["env", "create", "tx", "--distro", "debian:trixie"])
            .args(["--packages", "hello,jq"])
            .args(extra);
        c
    };
    let out = expect(&mut create_tx(&["--dry-run"]), 0);
    assert!(
        stdout(&out).starts_with("would create tx"),
        "{}",
        stdout(&out)
    );
    assert!(!setup.store.join("tx").exists());
    expect(&mut create_tx(&[]), 0);
    let out = expect(&mut sh_in(&setup.store, "tx", "hello; jq -n 6*7"), 0);
    assert_eq!(stdout(&out), "Hello, world!\n42\n");
    let st = json(&expect(
        kod_root(&setup.store).args(["env", "status", "tx", "--json"]),
        0,
    ));
    assert_eq!(st[0]["requested"], serde_json::json!(["hello", "jq"]));
    assert_eq!(st[0]["origin"], "create");

    // A declared environment that does not exist is built by sync.
    let conf = write_config(
        setup.dir.path(),
        "tx = { distro = \"debian:trixie\", packages = { \"hello\", \"jq\" } }, \
         made = { distro = \"debian:trixie\", packages = { \"hello\" }, exports = { \"hello\" } }",
    );
    expect(
        kod_root(&setup.store)
            .arg("-c")
            .arg(&conf)
            .args(["env", "sync"]),
        0,
    );
    let mut c = setup
        .user
        .command(&setup.store.join(".view/bin/hello"), &setup.user.home);
    assert_eq!(stdout(&expect(&mut c, 0)), "Hello, world!\n");
    setup.assert_host_unchanged();
}

#[test]
fn net_a_user_creates_changes_and_runs_a_personal_environment_without_root() {
    if !on() {
        return;
    }
    let user = TestUser::new("mine");
    let before = HostSnapshot::take(&user);
    let as_user = |args: &[&str]| kod_as(&user, args);
    let run = |cmd: &str| {
        stdout(&expect(
            &mut as_user(&["run", "mine", "--", "sh", "-c", cmd]),
            0,
        ))
    };

    // Built by kod's engine as root of the user's namespace, into their
    // own store. Root's files are the user's.
    let out = expect(
        &mut as_user(&[
            "env",
            "create",
            "mine",
            "--distro",
            "debian:trixie",
            "--packages",
            "hello",
        ]),
        0,
    );
    let root = personal_root(&user, "mine", &out);
    assert_eq!(run("hello"), "Hello, world!\n");
    // Group shadow (42) is in the user's subordinate range: dpkg could
    // chown.
    use std::os::unix::fs::MetadataExt;
    let shadow = std::fs::metadata(root.join("etc/shadow")).unwrap();
    assert_eq!(
        (shadow.uid(), shadow.gid()),
        (user.uid, user.first_subgid() + 41)
    );
    assert_eq!(
        run("dpkg --audit; dpkg-query -W -f '${db:Status-Abbrev}\\n' hello"),
        "ii \n"
    );

    // Packages in and out, through transactions in the user's namespace.
    expect(&mut as_user(&["env", "install", "mine", "jq"]), 0);
    assert_eq!(run("jq -n 6*7"), "42\n");
    let out = expect(
        &mut as_user(&["env", "remove", "mine", "libjq1", "--dry-run"]),
        1,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("would break jq") && err.contains("--with-dependents"),
        "{err}"
    );
    let out = expect(
        &mut as_user(&["env", "remove", "mine", "jq", "--dry-run"]),
        0,
    );
    assert_eq!(stdout(&out), "would remove jq\n");
    assert_eq!(run("jq -n 1+1"), "2\n", "a dry run removes nothing");
    expect(&mut as_user(&["env", "remove", "mine", "jq"]), 0);
    assert_eq!(run("command -v jq || echo gone"), "gone\n");
    assert_eq!(run("dpkg --audit; echo audited"), "audited\n");
    let st = json(&expect(
        &mut as_user(&["env", "status", "mine", "--json"]),
        0,
    ));
    assert_eq!(st[0]["requested"], serde_json::json!(["hello"]));
    assert_eq!(st[0]["scope"], "personal");

    // Nothing of a transaction is left beside the root.
    let left: Vec<String> = std::fs::read_dir(root.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".kod-txn-") || n.contains(".kod-tmp-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    expect(&mut as_user(&["env", "delete", "mine"]), 0);
    assert!(!root.exists());
    HostSnapshot::take(&user).assert_unchanged(&before);
}
