//! The stored copy of a configuration keeps no clear password, and still
//! evaluates to the same accounts (with the hashes).

mod common;

use std::collections::BTreeMap;

use common::*;
use kod_config::{Password, SourceFile};

const HASH: &str = "$6$saltsalt$hashhashhash";

fn write_and_load(
    files: &[(&str, &str)],
) -> (tempfile::TempDir, kod_config::Config, Vec<SourceFile>) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let (config, sources) =
        kod_config::load_files(&dir.path().join("configuration.lua"), &Default::default()).unwrap();
    (dir, config, sources)
}

#[test]
fn clear_passwords_become_their_hashes_in_every_file() {
    let (dir, config, sources) = write_and_load(&[
        (
            "configuration.lua",
            &format!("return {{\n  {REPOS}\n  users = require(\"people\"),\n}}\n"),
        ),
        (
            "people.lua",
            "return {\n  ann = { password = \"correct horse\" },\n  \
             bob = { hashed_password = \"$6$bob$bob\" },\n}\n",
        ),
    ]);
    assert_eq!(sources.len(), 2);
    let hashes = BTreeMap::from([("ann".to_string(), HASH.to_string())]);
    let clean = kod_config::sanitized(&sources, &config, &hashes).unwrap();
    for f in &clean {
        assert!(
            !f.text.contains("correct horse"),
            "{}: {}",
            f.path.display(),
            f.text
        );
    }
    // Written back, the copy evaluates to the same users, with the hash.
    for f in &clean {
        std::fs::write(&f.path, &f.text).unwrap();
    }
    let again =
        kod_config::load(&dir.path().join("configuration.lua"), &Default::default()).unwrap();
    assert_eq!(again.users["ann"].password, Password::Hashed(HASH.into()));
    assert_eq!(again.users["bob"].password, config.users["bob"].password);
}

#[test]
fn a_computed_clear_password_is_refused_pointing_to_hashed_password() {
    let (_dir, config, sources) = write_and_load(&[(
        "configuration.lua",
        &format!(
            "local pw = \"correct\" .. \" horse\"\nreturn {{\n  {REPOS}\n  \
             users = {{ ann = {{ password = pw }} }},\n}}\n"
        ),
    )]);
    let hashes = BTreeMap::from([("ann".to_string(), HASH.to_string())]);
    let err = kod_config::sanitized(&sources, &config, &hashes).unwrap_err();
    let text = err.to_string();
    assert_contains(&text, "users.ann.password");
    assert_contains(&text, "hashed_password");
}
