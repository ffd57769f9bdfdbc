//! Helpers shared by kod-config's integration tests.
#![allow(dead_code)] // each test binary uses part of this module

use std::path::PathBuf;
use std::time::Duration;

use kod_config::{Config, ConfigError, EvalOptions};
pub use kod_testkit::assert_contains;

/// A minimal valid prefix: one Debian repository.
pub const REPOS: &str = r#"repos = { official = { type = "debian", suite = "bookworm" } },"#;

/// Writes `files` into a fresh directory and evaluates its configuration.lua.
pub fn eval_files(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<Config, ConfigError>) {
    eval_with(files, &EvalOptions::default())
}

/// Like [`eval_files`] with explicit bounds.
pub fn eval_with(
    files: &[(&str, &str)],
    opts: &EvalOptions,
) -> (tempfile::TempDir, Result<Config, ConfigError>) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
    }
    let result = kod_config::load(&dir.path().join("configuration.lua"), opts);
    (dir, result)
}

/// Evaluates a one-file configuration.
pub fn eval(main: &str) -> Result<Config, ConfigError> {
    eval_files(&[("configuration.lua", main)]).1
}

/// Bounds for tests that expect to be stopped.
pub fn tight() -> EvalOptions {
    EvalOptions {
        timeout: Duration::from_millis(300),
        memory_limit: 32 << 20,
        ..EvalOptions::default()
    }
}

/// Evaluates `return { REPOS <fields> }`: a configuration of `fields`
/// besides the minimal repository.
pub fn eval_fields(fields: &str) -> Result<Config, ConfigError> {
    eval(&format!("return {{ {REPOS} {fields} }}"))
}

/// The error of `return { REPOS <fields> }`, which must fail, as text.
pub fn error_of(fields: &str) -> String {
    err_text(eval_fields(fields))
}

/// Asserts that `return { REPOS <fields> }` fails with an error naming
/// every one of `needles`.
#[track_caller]
pub fn assert_error_of(fields: &str, needles: &[&str]) {
    assert_fails_with(&format!("return {{ {REPOS} {fields} }}"), needles);
}

/// Asserts that the one-file configuration `main` fails with an error
/// naming every one of `needles`.
#[track_caller]
pub fn assert_fails_with(main: &str, needles: &[&str]) {
    let text = err_text(eval(main));
    for needle in needles {
        assert_contains(&text, needle);
    }
}

/// The error of `<body>` followed by `return { REPOS }`, which must fail,
/// as text.
pub fn error_after(body: &str) -> String {
    err_text(eval(&format!("{body}\nreturn {{ {REPOS} }}")))
}

/// Asserts that `<body>` followed by `return { REPOS }` fails with an
/// error naming every one of `needles`.
#[track_caller]
pub fn assert_fails_after(body: &str, needles: &[&str]) {
    let text = error_after(body);
    for needle in needles {
        assert_contains(&text, needle);
    }
}

/// The error of an evaluation that must fail, as text.
pub fn err_text(r: Result<Config, ConfigError>) -> String {
    match r {
        Ok(c) => panic!("expected an error, got a configuration: {c:?}"),
        Err(e) => e.to_string(),
    }
}

/// The repository's examples directory.
pub fn examples() -> PathBuf {
    kod_testkit::fixtures::examples_dir()
}
