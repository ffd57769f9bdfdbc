//! Bad configurations get errors that name the file, line, key and fix.

mod common;

use common::*;
use kod_config::ConfigError;

#[test]
fn unfixed_kodos_readme_example_fails_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let (file, line) = kod_testkit::fixtures::kodos_readme_unfixed(dir.path());
    let err = kod_config::load(&file, &Default::default()).unwrap_err();
    match &err {
        ConfigError::Syntax { location, hint, .. } => {
            assert_eq!(location.file, file);
            assert_eq!(location.line, Some(line));
            let hint = hint.as_deref().expect("kod recognises the dashed key");
            assert_contains(hint, "[\"demo-user\"]");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    let text = err.to_string();
    assert_contains(&text, &format!("configuration.lua:{line}: syntax error"));
}

#[test]
fn fixed_kodos_readme_example_evaluates() {
    let c = kod_config::load(
        &examples().join("kodos-readme/configuration.lua"),
        &Default::default(),
    )
    .unwrap();
    assert!(c.users.contains_key("demo-user"));
    assert_eq!(c.default_repo, "arch");
}

/// The error of the one-file configuration `main`, which must fail, as
/// text, and the line it points at.
fn error_and_line(main: &str) -> (String, Option<u32>) {
    let err = eval(main).unwrap_err();
    (err.to_string(), err.location().and_then(|l| l.line))
}

#[test]
fn typo_at_top_level_suggests_the_key_and_points_at_the_line() {
    let (text, line) = error_and_line(&format!(
        "return {{\n  {REPOS}\n  pakages = {{ \"htop\" }},\n}}"
    ));
    assert_contains(&text, "unknown key `pakages` at the top level");
    assert_contains(&text, "did you mean `packages`?");
    assert_eq!(line, Some(3), "{text}");
}

#[test]
fn nested_typo_names_the_place() {
    let (text, line) = error_and_line(&format!(
        "return {{\n  {REPOS}\n  services = {{\n    openssh = {{\n      enable = true,\n      setings = {{ PermitRootLogin = false }},\n    }},\n  }},\n}}"
    ));
    assert_contains(
        &text,
        "unknown key `setings` in `services.openssh`; did you mean `settings`?",
    );
    assert_eq!(line, Some(6), "{text}");
}

#[test]
fn wrong_types_name_the_expected_type() {
    let text = error_of("network = { hostname = 42 }");
    assert_contains(
        &text,
        "network.hostname: expected a string, found the number 42",
    );
    let text = error_of("services = { cups = { enable = \"yes\" } }");
    assert_contains(
        &text,
        "services.cups.enable: expected a boolean (true or false), found the string \"yes\"",
    );
    let text = error_of("packages = \"htop\"");
    assert_contains(&text, "packages: expected a list of strings");
}

#[test]
fn tables_mixing_list_items_and_keys_are_refused() {
    assert_error_of(
        "packages = { \"htop\", extra = \"git\" }",
        &["mixes list items with named keys"],
    );
}

#[test]
fn lua_runtime_errors_keep_their_line() {
    let err = eval("local x = nil\nlocal y = x.field\nreturn {}").unwrap_err();
    assert_eq!(err.location().and_then(|l| l.line), Some(2), "{err}");
    assert!(
        err.to_string().contains("attempt to index a nil value"),
        "{err}"
    );
}

#[test]
fn a_configuration_must_return_a_table() {
    assert_fails_with("local x = 1", &["must end with `return { ... }`"]);
}

#[test]
fn missing_configuration_lists_where_kod_looked() {
    let dir = tempfile::tempdir().unwrap();
    let err = kod_config::locate(Some(dir.path())).unwrap_err();
    let text = err.to_string();
    assert_contains(&text, "no configuration found");
    assert_contains(
        &text,
        &dir.path().join("configuration.lua").display().to_string(),
    );
}

#[test]
fn locate_takes_a_directory_or_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("configuration.lua");
    std::fs::write(&file, "return {}").unwrap();
    assert_eq!(kod_config::locate(Some(dir.path())).unwrap(), file);
    assert_eq!(kod_config::locate(Some(&file)).unwrap(), file);
}

#[test]
fn two_distribution_repositories_need_an_official_one() {
    assert_fails_with(
        r#"return { repos = {
            bookworm = { type = "debian", suite = "bookworm" },
            sid = { type = "debian", suite = "sid" },
        } }"#,
        &["(bookworm, sid)", "keyed `official`"],
    );
}

#[test]
fn no_repository_is_an_error() {
    assert_fails_with(
        "return { packages = { \"htop\" } }",
        &["no distribution repository is configured"],
    );
}

#[test]
fn the_single_distribution_repository_is_the_default_whatever_its_key() {
    let c = eval(
        r#"local repos = require("repos")
        return { repos = { arch = repos.arch_repo("https://mirror.invalid/archlinux"),
                           flatpak = repos.flatpak_repo("flathub") } }"#,
    )
    .unwrap();
    assert_eq!(c.default_repo, "arch");
    assert_eq!(c.base_distribution, kod_config::Distribution::Arch);
}

#[test]
fn base_distribution_must_agree_with_the_default_repository() {
    let text = error_of("base_distribution = \"arch\"");
    assert_contains(&text, "base_distribution is \"arch\"");
    let text = error_of("base_distribution = \"gentoo\"");
    assert_contains(&text, "unknown distribution \"gentoo\"");
}

#[test]
fn base_distribution_follows_the_default_repository_when_absent() {
    let c = eval(&format!("return {{ {REPOS} }}")).unwrap();
    assert_eq!(c.base_distribution, kod_config::Distribution::Debian);
    let c = eval_fields("base_distribution = \"debian\"").unwrap();
    assert_eq!(c.base_distribution, kod_config::Distribution::Debian);
}

#[test]
fn prefixed_packages_need_their_repository() {
    assert_error_of(
        "packages = { \"aur:yay\" }",
        &["packages[1]", "add repos.aur = repos.aur_repo"],
    );
}

#[test]
fn only_one_password_setting() {
    assert_error_of(
        "users = { ann = { password = \"a\", hashed_password = \"$6$x\" } }",
        &["set only one of `password`, `hashed_password`"],
    );
}

#[test]
fn passwords_never_show_in_debug_output() {
    let c = eval_fields("users = { ann = { password = \"hunter2\" } }").unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert_contains(&debug, "Password(plain)");
}

#[test]
fn invalid_login_names_are_refused() {
    assert_error_of(
        "users = { [\"Bad Name\"] = {} }",
        &["not a valid login name"],
    );
}

#[test]
fn bad_partition_sizes_and_types_are_explained() {
    let text = error_of(
        "devices = { d = { device = \"/dev/vda\", partitions = { \
         { name = \"x\", size = \"3 parsecs\", type = \"btrfs\" } } } }",
    );
    assert_contains(&text, "devices.d.partitions[1].size");
    assert_contains(&text, "is not a size");
    let text = error_of(
        "devices = { d = { device = \"/dev/vda\", partitions = { \
         { name = \"x\", size = \"1GB\", type = \"zfs\" } } } }",
    );
    assert_contains(&text, "unknown partition type \"zfs\"");
}

#[test]
fn environments_are_validated() {
    let c = eval_fields("environments = { sid = { distro = \"debian:sid\", packages = { \"hello\" }, exports = { \"hello\" } } }")
    .unwrap();
    assert_eq!(c.environments["sid"].distro, "debian:sid");
    let text = error_of("environments = { sid = { distro = \"sid\" } }");
    assert_contains(&text, "is not DISTRO:RELEASE");
}

#[test]
fn helper_tables_need_a_command() {
    let text = error_of(
        "users = { ann = { programs = { git = { enable = true, config = { name = \"git\" } } } } }",
    );
    assert_contains(&text, "needs a `command` function");
}

#[test]
fn boot_counting_entries_and_kernel_options_are_read_and_checked() {
    let c = eval(&format!(
        "return {{ {REPOS} boot = {{ kernel = {{ options = {{ \"console=ttyS0,115200\", \"quiet\" }} }},\n\
         loader = {{ tries = 1, max_entries = 2 }} }} }}"
    ))
    .unwrap();
    assert_eq!(c.boot.kernel.options, ["console=ttyS0,115200", "quiet"]);
    assert_eq!((c.boot.loader.tries, c.boot.loader.max_entries), (1, 2));
    let d = eval(&format!("return {{ {REPOS} }}")).unwrap();
    assert_eq!((d.boot.loader.tries, d.boot.loader.max_entries), (3, 10));

    let (text, _) = error_and_line(&format!(
        "return {{ {REPOS} boot = {{ kernel = {{ options = {{ \"quiet splash\" }} }} }} }}"
    ));
    assert_contains(&text, "boot.kernel.options");
    assert_contains(
        &text,
        "\"quiet splash\" is not one kernel command-line option",
    );
    let (text, _) = error_and_line(&format!(
        "return {{ {REPOS} boot = {{ loader = {{ max_entries = 0 }} }} }}"
    ));
    assert_contains(&text, "boot.loader.max_entries");
    assert_contains(&text, "must be at least 1");
}
