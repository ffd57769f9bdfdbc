//! Fixture files derived from the repository's examples.

use std::path::{Path, PathBuf};

/// The repository's `examples/` directory.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Writes KodOS's README example as KodOS's README has it, with the user
/// key unquoted (`demo-user = {`, not valid Lua), into `dir`; returns the
/// file and the 1-based line of that key.
pub fn kodos_readme_unfixed(dir: &Path) -> (PathBuf, u32) {
    let fixed = std::fs::read_to_string(examples_dir().join("kodos-readme/configuration.lua"))
        .expect("examples/kodos-readme/configuration.lua");
    let quoted = "[\"demo-user\"] = {";
    let line = fixed
        .lines()
        .position(|l| l.trim_start().starts_with(quoted))
        .expect("the example quotes its user key") as u32
        + 1;
    let unfixed = fixed.replacen(quoted, "demo-user = {", 1);
    let file = dir.join("configuration.lua");
    std::fs::write(&file, unfixed).expect("write the unfixed example");
    (file, line)
}
