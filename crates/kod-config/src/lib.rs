//! Evaluates a kod configuration: a Lua file that `return`s a table
//! describing a whole machine, compatible with KodOS's configuration files.
//!
//! The file runs in a sandbox ([`EvalOptions`] bounds it), may `require`
//! modules next to it and kod's built-in helper modules (`disk`, `repos`,
//! `configs`, `dotfile_manager`, `utils`), and its result is checked key by
//! key into a typed [`Config`]. Every error names the file and line where
//! kod can find them, the key, and what to do.
#![deny(missing_docs)]

mod action;
mod decode;
mod error;
pub mod model;
mod node;
mod path;
mod sandbox;
mod sanitize;

use std::path::{Path, PathBuf};

pub use error::{ConfigError, Location};
pub use model::*;
pub use path::KeyPath;
pub use sandbox::{EvalOptions, SourceFile};
pub use sanitize::sanitized;

use decode::Decoder;
use node::Node;
use sandbox::Sandbox;

/// Where kod looks when no `-c` is given, in order.
pub const DEFAULT_LOCATIONS: [&str; 2] = ["/etc/kod", "/etc/kodos"];

/// The configuration file `arg` means: a file as is, a directory's
/// `configuration.lua`; without `arg`, the first of [`DEFAULT_LOCATIONS`]
/// that exists.
pub fn locate(arg: Option<&Path>) -> Result<PathBuf, ConfigError> {
    let candidates: Vec<PathBuf> = match arg {
        Some(p) => vec![p.to_path_buf()],
        None => DEFAULT_LOCATIONS.iter().map(PathBuf::from).collect(),
    };
    let mut tried = Vec::new();
    for c in candidates {
        let file = if c.is_dir() {
            c.join("configuration.lua")
        } else {
            c.clone()
        };
        if file.is_file() {
            return Ok(file);
        }
        tried.push(file);
    }
    Err(ConfigError::NotFound { tried })
}

/// Evaluates the configuration file at `file` (see [`locate`]).
pub fn load(file: &Path, opts: &EvalOptions) -> Result<Config, ConfigError> {
    Ok(load_files(file, opts)?.0)
}

/// [`load`], with the source files it read (the main file first, then the
/// modules in the order they were required).
pub fn load_files(
    file: &Path,
    opts: &EvalOptions,
) -> Result<(Config, Vec<SourceFile>), ConfigError> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let sandbox = Sandbox::new(&dir, opts)?;
    match evaluate(&sandbox, file, &dir) {
        Ok(config) => Ok((config, sandbox.sources())),
        Err(e) => Err(locate_key(e, &sandbox.sources())),
    }
}

fn evaluate(sandbox: &Sandbox, file: &Path, dir: &Path) -> Result<Config, ConfigError> {
    let value = sandbox.eval_file(file)?;
    let root = Node::from_lua(value, &KeyPath::root())?.ok_or_else(|| ConfigError::Runtime {
        location: Some(Location {
            file: file.to_path_buf(),
            line: None,
        }),
        message: "the configuration returned nothing; it must end with `return { ... }`"
            .to_string(),
    })?;
    let decoder = Decoder {
        sandbox,
        config_dir: dir.to_path_buf(),
    };
    decoder.config(&root, file)
}

/// Gives an `Invalid` error the file and line where its key is written:
/// the path's keys are searched in order, each at or after the line of the
/// one before, in the main file first and then in the modules.
fn locate_key(err: ConfigError, sources: &[SourceFile]) -> ConfigError {
    if let ConfigError::Several(all) = err {
        let mut all: Vec<ConfigError> = all.into_iter().map(|e| locate_key(e, sources)).collect();
        // In the order of the files and lines (stable: unlocated ones keep
        // their order, last).
        all.sort_by_key(|e| {
            e.location()
                .map(|l| (0, l.file.clone(), l.line))
                .unwrap_or((1, PathBuf::new(), None))
        });
        return ConfigError::Several(all);
    }
    let ConfigError::Invalid {
        location: None,
        key,
        message,
    } = err
    else {
        return err;
    };
    let segments = key_segments(&key);
    // The whole path first; then shorter tails of it (two keys at least,
    // so a lone common key does not point at the wrong place), for a key
    // written in a module that holds a part of the tree
    // (`users = require(...)`).
    let location = (0..segments.len().saturating_sub(1).max(1)).find_map(|skip| {
        sources
            .iter()
            .find_map(|src| find_path(src, &segments[skip..]))
    });
    ConfigError::Invalid {
        location,
        key,
        message,
    }
}

/// Where `segments` are assigned in `src`, each at or after the line of
/// the one before: the line of the last.
fn find_path(src: &SourceFile, segments: &[String]) -> Option<Location> {
    let lines: Vec<&str> = src.text.lines().collect();
    let mut from = 0usize;
    let mut found = None;
    for seg in segments {
        let hit = (from..lines.len()).find(|&i| mentions_key(lines[i], seg))?;
        found = Some(hit);
        from = hit;
    }
    found.map(|i| Location {
        file: src.path.clone(),
        line: Some(i as u32 + 1),
    })
}

/// `users["demo-user"].programs[2]` -> ["users", "demo-user", "programs"].
fn key_segments(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = key;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("[\"") {
            let end = r.find("\"]").unwrap_or(r.len());
            out.push(r[..end].to_string());
            rest = r.get(end + 2..).unwrap_or("");
        } else if let Some(r) = rest.strip_prefix('[') {
            rest = r.split_once(']').map(|(_, t)| t).unwrap_or("");
        } else if let Some(r) = rest.strip_prefix('.') {
            rest = r;
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    out
}

/// Whether a source line assigns `key` (`key =` or `["key"] =`).
fn mentions_key(line: &str, key: &str) -> bool {
    let code = line.split("--").next().unwrap_or("");
    if code.contains(&format!("[\"{key}\"]")) || code.contains(&format!("['{key}']")) {
        return true;
    }
    code.match_indices(key).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        let after = code[i + key.len()..].trim_start();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            && after.starts_with('=')
            && !after.starts_with("==")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_segments_follow_lua_syntax() {
        assert_eq!(
            key_segments("users[\"demo-user\"].programs[2].enable"),
            ["users", "demo-user", "programs", "enable"]
        );
    }

    #[test]
    fn mentions_key_needs_an_assignment() {
        assert!(mentions_key("    setings = {", "setings"));
        assert!(mentions_key("  [\"demo-user\"] = {", "demo-user"));
        assert!(!mentions_key("  my_setings = {", "setings"));
        assert!(!mentions_key("  if setings == 1 then", "setings"));
        assert!(!mentions_key("  -- setings = {", "setings"));
    }
}
