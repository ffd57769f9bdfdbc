//! Modules next to the configuration, built-in helper modules, and the
//! KodOS globals.

mod common;

use common::*;
use kod_config::{Effect, EvalOptions, Stage};
use kod_report::{Event, Level, Recorder, Report};

#[test]
fn package_lists_from_modules_join_with_concat() {
    let (_dir, r) = eval_files(&[
        (
            "configuration.lua",
            &format!(
                r#"local cli = require("cli")
                local dev = require("lists.dev")
                local gnome = require("lists/gnome")
                return {{ {REPOS}
                    packages = list({{ "htop" }}) .. cli .. dev .. If(false, {{ "never" }}) .. gnome,
                }}"#
            ),
        ),
        ("cli.lua", r#"return list({ "ripgrep", "fd-find" })"#),
        // A plain table (no list metatable) still joins: the left side has one.
        ("lists/dev.lua", r#"return { "gcc", "make" }"#),
        (
            "lists/gnome.lua",
            r#"return IfElse(true, list({ "gnome-shell" }), list({}))"#,
        ),
    ]);
    let c = r.unwrap();
    assert_eq!(
        c.packages,
        ["htop", "ripgrep", "fd-find", "gcc", "make", "gnome-shell"]
    );
}

#[test]
fn joining_does_not_change_either_side() {
    let c = eval(&format!(
        r#"local a = list({{ "a" }})
        local b = a .. {{ "b" }}
        local c = a .. {{ "c" }}
        return {{ {REPOS} packages = a .. b .. c }}"#
    ))
    .unwrap();
    assert_eq!(c.packages, ["a", "a", "b", "a", "c"]);
}

#[test]
fn maps_merge_with_concat() {
    let c = eval(&format!(
        r#"local base = map({{ LC_TIME = "en_GB.UTF-8", LC_PAPER = "en_GB.UTF-8" }})
        return {{ {REPOS} locale = {{ locale = {{ extra_settings = base .. {{ LC_PAPER = "en_CA.UTF-8" }} }} }} }}"#
    ))
    .unwrap();
    let s = &c.locale.extra_settings;
    assert_eq!(s["LC_TIME"], "en_GB.UTF-8");
    assert_eq!(s["LC_PAPER"], "en_CA.UTF-8");
}

#[test]
fn modules_are_loaded_once() {
    let (_dir, r) = eval_files(&[
        (
            "configuration.lua",
            &format!(
                r#"local a = require("shared")
                table.insert(a, "added")
                local b = require("shared")
                return {{ {REPOS} packages = b }}"#
            ),
        ),
        ("shared.lua", r#"return { "first" }"#),
    ]);
    assert_eq!(r.unwrap().packages, ["first", "added"]);
}

#[test]
fn require_loops_are_reported() {
    let (_dir, r) = eval_files(&[
        (
            "configuration.lua",
            &format!("require('a')\nreturn {{ {REPOS} }}"),
        ),
        ("a.lua", "return require('b')"),
        ("b.lua", "return require('a')"),
    ]);
    let text = err_text(r);
    assert_contains(&text, "require loop: a -> b -> a");
}

#[test]
fn unknown_modules_say_where_kod_looked() {
    let text = err_text(eval(&format!("require('nowhere')\nreturn {{ {REPOS} }}")));
    assert_contains(&text, "no module \"nowhere\"");
    assert_contains(&text, "nowhere.lua");
}

#[test]
fn kodos_deb_repo_string_is_understood() {
    let c = eval(
        r#"local repos = require("repos")
        return { repos = { official = repos.deb_repo("http://mirror.invalid/debian trixie main contrib") } }"#,
    )
    .unwrap();
    let kod_config::Repo::Distribution(d) = &c.repos["official"] else {
        panic!("not a distribution repo")
    };
    assert_eq!(d.mirrors, ["http://mirror.invalid/debian"]);
    assert_eq!(d.release.as_deref(), Some("trixie"));
    assert_eq!(d.components, ["main", "contrib"]);
}

#[test]
fn disk_definition_builds_kodos_layout() {
    let c = eval(&format!(
        r#"local disk = require("disk")
        return {{ {REPOS} devices = {{ d = disk.disk_definition("/dev/vdb", "2GB") }} }}"#
    ))
    .unwrap();
    let d = &c.devices["d"];
    assert_eq!(d.device, "/dev/vdb");
    let names: Vec<&str> = d.partitions.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Boot", "Swap", "Root"]);
    assert_eq!(d.partitions[1].size, kod_config::Size::Bytes(2 << 30));
    assert!(d.partitions[1].resume_device);
    assert_eq!(d.partitions[2].size, kod_config::Size::Percent(100));
}

#[test]
fn git_helper_records_git_config_commands() {
    let c = eval(&format!(
        r#"local configs = require("configs")
        return {{ {REPOS} users = {{ ann = {{ programs = {{ git = {{ enable = true,
            config = configs.git({{ user_name = "Ann", init_defaultBranch = "main" }}) }} }} }} }} }}"#
    ))
    .unwrap();
    let action = c.users["ann"].programs["git"].config.as_ref().unwrap();
    assert_eq!(action.stages, [Stage::Install, Stage::RebuildUser]);
    assert_eq!(action.packages, ["git"]);
    let argvs: Vec<Vec<String>> = action
        .effects
        .iter()
        .map(|e| match e {
            Effect::Run { argv, user } => {
                assert_eq!(user, "ann");
                argv.clone()
            }
            other => panic!("unexpected effect {other:?}"),
        })
        .collect();
    assert_eq!(
        argvs,
        [
            ["git", "config", "--global", "init.defaultBranch", "main"],
            ["git", "config", "--global", "user.name", "Ann"],
        ]
    );
}

#[test]
fn mount_helper_writes_units_and_enables_the_automount() {
    let c = eval(&format!(
        r#"local configs = require("configs")
        return {{ {REPOS} services = {{ systemd_mount = {{ services = {{
            data = configs.mount({{ name = "mnt-data", type = "nfs", what = "nas.invalid:/data",
                                    where = "/mnt/data", automount = true,
                                    automount_config = "TimeoutIdleSec=600" }}),
        }} }} }} }}"#
    ))
    .unwrap();
    let action = &c.services["systemd_mount"].services["data"];
    assert_eq!(action.stages, [Stage::Install, Stage::Rebuild]);
    let paths: Vec<&str> = action
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::WriteFile { path, owner, .. } => {
                assert_eq!(owner, "root");
                Some(path.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        paths,
        [
            "/etc/systemd/system/mnt-data.mount",
            "/etc/systemd/system/mnt-data.automount"
        ]
    );
    let Effect::WriteFile { content, .. } = &action.effects[0] else {
        unreachable!()
    };
    assert_contains(content, "What=nas.invalid:/data\nWhere=/mnt/data\nType=nfs");
    assert!(action.effects.contains(&Effect::EnableUnit {
        unit: "mnt-data.automount".into(),
        user: None
    }));
}

#[test]
fn custom_helpers_record_what_their_command_asks() {
    let c = eval(&format!(
        r#"return {{ {REPOS} users = {{ ann = {{ programs = {{ foot = {{ enable = true,
            config = {{ name = "foot-theme", stages = {{ "rebuild-user" }}, config = {{ theme = "dark" }},
                command = function(ctx, config, program)
                    ctx:write_file("~/.config/" .. program .. "/theme", config.theme)
                    ctx:execute("echo done")
                end }} }} }} }} }} }}"#
    ))
    .unwrap();
    let action = c.users["ann"].programs["foot"].config.as_ref().unwrap();
    assert_eq!(action.helper, "foot-theme");
    assert_eq!(action.stages, [Stage::RebuildUser]);
    assert_eq!(
        action.effects,
        [
            Effect::WriteFile {
                path: "/home/ann/.config/foot/theme".into(),
                content: "dark".into(),
                mode: 0o644,
                owner: "ann".into()
            },
            Effect::Run {
                argv: vec!["sh".into(), "-c".into(), "echo done".into()],
                user: "ann".into()
            },
        ]
    );
}

#[test]
fn helpers_cannot_write_relative_paths() {
    let text = err_text(eval(&format!(
        r#"return {{ {REPOS} users = {{ ann = {{ programs = {{ x = {{ enable = true,
            config = {{ command = function(ctx) ctx:write_file("etc/x", "") end }} }} }} }} }} }}"#
    )));
    assert_contains(&text, "must be an absolute path or start with ~/");
}

#[test]
fn path_table_resolves_against_the_configuration_directory() {
    let (_dir, r) = eval_files(&[
        (
            "configuration.lua",
            &format!(
                r#"assert(path.is_file("extra.lua"))
                assert(path.is_dir("."))
                assert(not path.exists("missing"))
                return {{ {REPOS} }}"#
            ),
        ),
        ("extra.lua", "return {}"),
    ]);
    assert!(r.is_ok(), "{r:?}");
}

#[test]
fn print_goes_to_the_report_and_evaluation_continues() {
    let rec = Recorder::new(false);
    let (_dir, c) = eval_with(
        &[(
            "configuration.lua",
            &format!("print('hello from the config')\nprint(1, nil, true)\nreturn {{ {REPOS} }}"),
        )],
        &EvalOptions {
            report: Report::to(rec.clone()),
            ..EvalOptions::default()
        },
    );
    assert!(c.is_ok(), "{c:?}");
    assert_eq!(
        rec.events(),
        [
            Event::Message(Level::Output, "hello from the config".into()),
            Event::Message(Level::Output, "1\tnil\ttrue".into()),
        ]
    );
}
