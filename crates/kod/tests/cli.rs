//! The `kod` binary as a user runs it.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use kod_testkit::assert_contains;

fn kod() -> Command {
    Command::cargo_bin("kod").unwrap()
}

fn example(name: &str) -> PathBuf {
    kod_testkit::fixtures::examples_dir().join(name)
}

const SUBCOMMANDS: [&str; 14] = [
    "plan",
    "install",
    "rebuild",
    "rebuild-user",
    "shell",
    "generations",
    "bootstrap",
    "pkg",
    "env",
    "run",
    "snapshot",
    "switch-os",
    "os-status",
    "vm",
];

#[test]
fn help_lists_every_subcommand_and_global_flag() {
    let out = kod().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for sub in SUBCOMMANDS {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(&format!("{sub} "))),
            "{sub} missing from --help:\n{text}"
        );
    }
    for flag in ["--verbose", "--debug", "--config"] {
        assert!(text.contains(flag), "{flag} missing:\n{text}");
    }
}

#[test]
fn every_subcommand_has_real_help() {
    for sub in SUBCOMMANDS {
        let out = kod().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success(), "{sub} --help failed");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.lines().count() > 3,
            "{sub} --help is too thin:\n{text}"
        );
    }
}

/// Each of `commands`, asked for `--help`, lists `flag`.
fn each_help_lists(commands: &[&[&str]], flag: &str) {
    for args in commands {
        let out = kod().args(*args).arg("--help").output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains(flag), "{args:?} has no {flag}");
    }
}

#[test]
fn changing_commands_take_dry_run_and_listing_commands_json() {
    each_help_lists(
        &[
            &["install"],
            &["rebuild"],
            &["rebuild-user"],
            &["bootstrap"],
            &["pkg", "install"],
            &["pkg", "remove"],
            &["env", "create"],
            &["env", "sync"],
            &["switch-os"],
            &["generations", "rollback"],
            &["generations", "delete"],
            &["generations", "gc"],
        ],
        "--dry-run",
    );
    each_help_lists(
        &[
            &["plan"],
            &["generations"],
            &["generations", "list"],
            &["generations", "diff"],
            &["pkg", "search"],
            &["env", "list"],
            &["env", "status"],
            &["os-status"],
        ],
        "--json",
    );
}

#[test]
fn unbuilt_commands_exit_2_without_panicking() {
    for args in [
        &["rebuild-user"][..],
        &["snapshot", "list"],
        &["switch-os", "other"],
        &["os-status"],
    ] {
        let out = kod().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("not implemented yet"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn vm_of_a_missing_image_names_it() {
    let out = kod()
        .args(["vm", "/nonexistent/vm.img", "--check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_contains(&err, "/nonexistent/vm.img");
    assert!(!err.contains("booting"), "{err}");
}

#[test]
fn rebuild_off_a_kod_machine_says_to_name_one() {
    // Only where this host is no kod machine (CI's is not).
    if Path::new("/kod").exists() {
        return;
    }
    let out = kod().args(["rebuild", "--dry-run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("no kod top level at /kod"), "{err}");
    assert!(err.contains("--target TOP"), "{err}");
}

#[test]
fn plan_json_of_a_directory() {
    let out = kod()
        .args(["plan", "--json", "-c"])
        .arg(example("debian-vm"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let install = plan["packages"]["official"]["install"].as_array().unwrap();
    assert!(install.iter().any(|p| p == "systemd-sysv"));
    assert_eq!(plan["base_distribution"], "debian");
    assert_eq!(plan["users"]["kod"]["password"], "hashed");
}

#[test]
fn plan_output_for_people() {
    let out = kod()
        .current_dir(example("kodos-readme"))
        .args(["plan", "-c", "configuration.lua"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    insta::assert_snapshot!(String::from_utf8(out.stdout).unwrap());
}

#[test]
fn missing_configuration_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = kod()
        .arg("-c")
        .arg(dir.path())
        .arg("plan")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_contains(&err, "no configuration found");
    assert_contains(&err, "configuration.lua");
}

#[test]
fn syntax_errors_reach_the_user_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let (file, line) = kod_testkit::fixtures::kodos_readme_unfixed(dir.path());
    let out = kod().arg("-c").arg(&file).arg("plan").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_contains(&err, &format!("configuration.lua:{line}: syntax error"));
    assert_contains(&err, "[\"demo-user\"]");
}

#[test]
fn config_print_does_not_pollute_json() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("configuration.lua"),
        "print('evaluating')\nreturn { repos = { official = { type = 'debian', suite = 'bookworm' } } }",
    )
    .unwrap();
    let out = kod()
        .arg("-c")
        .arg(dir.path())
        .args(["plan", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("stdout is pure JSON");
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("evaluating")
    );
}

#[test]
fn a_grub_machine_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("grub.lua");
    std::fs::write(
        &config,
        "local repos = require(\"repos\")\nreturn { repos = { official = \
         repos.debian_repo({ suite = \"bookworm\" }) }, boot = { loader = { type = \"grub\" } } }\n",
    )
    .unwrap();
    let top = dir.path().join("top");
    std::fs::create_dir(&top).unwrap();
    let out = kod()
        .arg("-c")
        .arg(&config)
        .args(["install", "--dry-run", "--target"])
        .arg(&top)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("boot.loader.type") && err.contains("systemd-boot"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(&top).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn shell_refuses_backends_and_environments_it_does_not_have_yet() {
    for (args, says) in [
        (
            &["shell", "-p", "hello", "-p", "aur:yay"][..],
            "aur:yay: the aur backend is not available yet",
        ),
        (
            &["shell", "-p", "flatpak:org.gnome.Maps"],
            "the flatpak backend is not available yet",
        ),
        (
            &["shell", "--env", "mine", "-p", "cowsay"],
            "--env mine: shells on environments are not available yet",
        ),
    ] {
        let out = kod().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
