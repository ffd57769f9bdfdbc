//! One run reports every mistake of a configuration, each with its file
//! and line, instead of stopping at the first.

mod common;

use common::*;
use kod_config::ConfigError;

/// The errors of the configuration `files`, which must fail with several,
/// as `(text, line)` pairs in the order reported.
fn all_errors(files: &[(&str, &str)]) -> Vec<(String, Option<u32>)> {
    match eval_files(files).1 {
        Err(ConfigError::Several(all)) => all
            .iter()
            .map(|e| (e.to_string(), e.location().and_then(|l| l.line)))
            .collect(),
        other => panic!("expected several errors, got {other:?}"),
    }
}

#[test]
fn a_missing_repos_section_does_not_hide_a_mistyped_key() {
    let errors = all_errors(&[(
        "configuration.lua",
        "return {\n  netwrok = { hostname = \"x\" },\n  packages = { \"htop\" },\n}",
    )]);
    assert_eq!(errors.len(), 2, "{errors:?}");
    let (typo, line) = &errors[0];
    assert_contains(typo, "unknown key `netwrok` at the top level");
    assert_contains(typo, "did you mean `network`?");
    assert_eq!(*line, Some(2), "{typo}");
    assert_contains(&errors[1].0, "no distribution repository is configured");
}

#[test]
fn unknown_keys_type_errors_and_bad_entries_of_every_section_are_listed_in_line_order() {
    let main = format!(
        "return {{\n  {REPOS}\n  users = {{\n    ann = {{ shel = \"/bin/bash\" }},\n    \
         bob = {{ extra_groups = \"wheel\" }},\n  }},\n  locale = {{ timezon = \"UTC\" }},\n  \
         services = {{ openssh = {{ enable = \"yes\" }} }},\n  pakages = {{ \"htop\" }},\n}}"
    );
    let errors = all_errors(&[("configuration.lua", &main)]);
    let texts: Vec<&str> = errors.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(errors.len(), 5, "{texts:#?}");
    assert_contains(texts[0], "unknown key `shel` in `users.ann`");
    assert_contains(
        texts[1],
        "users.bob.extra_groups: expected a list of strings",
    );
    assert_contains(texts[2], "unknown key `timezon` in `locale`");
    assert_contains(texts[3], "services.openssh.enable: expected a boolean");
    assert_contains(texts[4], "unknown key `pakages` at the top level");
    let lines: Vec<Option<u32>> = errors.iter().map(|(_, l)| *l).collect();
    assert_eq!(
        lines,
        [Some(4), Some(5), Some(7), Some(8), Some(9)],
        "{texts:#?}"
    );
}

#[test]
fn errors_in_a_module_and_the_main_file_come_together() {
    let errors = all_errors(&[
        (
            "configuration.lua",
            &format!("return {{\n  {REPOS}\n  users = require(\"people\"),\n  hostnam = 1,\n}}"),
        ),
        ("people.lua", "return {\n  ann = { sell = \"/bin/sh\" },\n}"),
    ]);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|(t, _)| t.contains("configuration.lua:4") && t.contains("unknown key `hostnam`")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|(t, _)| t.contains("people.lua:2") && t.contains("unknown key `sell`")),
        "{errors:?}"
    );
}

#[test]
fn one_mistake_is_reported_alone_as_before() {
    let err = eval_fields("pakages = { \"htop\" },").unwrap_err();
    assert!(matches!(err, ConfigError::Invalid { .. }), "{err:?}");
}
