//! The reader every section decodes its table with: [`Fields`] remembers
//! the keys asked for, so the rest are unknown keys, reported with the
//! closest known one; and the readers of plain values (strings, lists,
//! named entries) with their type errors.

use std::collections::BTreeMap;

use super::Result;
use super::found::keep_going;
use super::repos::PackageCheck;
use crate::error::ConfigError;
use crate::node::Node;
use crate::path::KeyPath;

/// The keys of one table, read one by one.
pub(super) struct Fields<'a> {
    path: KeyPath,
    map: Option<&'a BTreeMap<String, Node>>,
    known: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    /// The fields of `node`, which must be a table of keys (or empty).
    pub(super) fn of(node: &'a Node, path: &KeyPath) -> Result<Fields<'a>> {
        let map = match node {
            Node::Map(m, _) => Some(m),
            Node::List(items) if items.is_empty() => None,
            other => {
                return Err(ConfigError::invalid(
                    path.to_string(),
                    format!(
                        "expected a table of keys {{ key = value, ... }}, found {}",
                        other.describe()
                    ),
                ));
            }
        };
        Ok(Fields {
            path: path.clone(),
            map,
            known: Vec::new(),
        })
    }

    pub(super) fn take(&mut self, key: &'static str) -> Option<(&'a Node, KeyPath)> {
        self.known.push(key);
        let node = self.map?.get(key)?;
        Some((node, self.path.key(key)))
    }

    pub(super) fn string(&mut self, key: &'static str) -> Result<Option<String>> {
        self.take(key).map(|(n, p)| string(n, &p)).transpose()
    }

    pub(super) fn required_string(&mut self, key: &'static str) -> Result<String> {
        self.string(key)?.ok_or_else(|| {
            ConfigError::invalid(
                self.path.to_string(),
                format!("the key `{key}` is required"),
            )
        })
    }

    pub(super) fn bool(&mut self, key: &'static str) -> Result<Option<bool>> {
        self.take(key)
            .map(|(n, p)| match n {
                Node::Bool(b) => Ok(*b),
                other => Err(type_error(&p, "a boolean (true or false)", other)),
            })
            .transpose()
    }

    pub(super) fn u32(&mut self, key: &'static str) -> Result<Option<u32>> {
        self.take(key)
            .map(|(n, p)| match n {
                Node::Int(i) if (0..=u32::MAX as i64).contains(i) => Ok(*i as u32),
                other => Err(type_error(&p, "a whole number of 0 or more", other)),
            })
            .transpose()
    }

    pub(super) fn strings(&mut self, key: &'static str) -> Result<Vec<String>> {
        self.take(key)
            .map(|(n, p)| strings(n, &p))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// A package reference, checked against the configured sources.
    pub(super) fn package(
        &mut self,
        key: &'static str,
        pkgs: &PackageCheck,
    ) -> Result<Option<String>> {
        self.take(key).map(|(n, p)| pkgs.one(n, &p)).transpose()
    }

    /// A list of package references, checked against the configured sources.
    pub(super) fn packages(
        &mut self,
        key: &'static str,
        pkgs: &PackageCheck,
    ) -> Result<Vec<String>> {
        self.take(key)
            .map(|(n, p)| pkgs.list(n, &p))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// A table of entries named by the user (`users`, `services`, ...),
    /// each decoded by `each(name, node, path)`.
    pub(super) fn named<T>(
        &mut self,
        key: &'static str,
        mut each: impl FnMut(&'a str, &'a Node, KeyPath) -> Result<T>,
    ) -> Result<BTreeMap<String, T>> {
        let Some((node, path)) = self.take(key) else {
            return Ok(BTreeMap::new());
        };
        // Each entry apart: a wrong one is noted and the others still read.
        let mut out = BTreeMap::new();
        for (k, n, p) in entries(node, &path)? {
            if let Some(v) = keep_going(each(k, n, p))? {
                out.insert(k.to_string(), v);
            }
        }
        Ok(out)
    }

    /// The node under `key` with its path, for sections decoded elsewhere.
    pub(super) fn node(&mut self, key: &'static str) -> Option<(&'a Node, KeyPath)> {
        self.take(key)
    }

    /// Fails on the keys that were never asked for (noting each of them
    /// when errors are collected).
    pub(super) fn finish(self) -> Result<()> {
        let Some(map) = self.map else { return Ok(()) };
        for unknown in map.keys().filter(|k| !self.known.contains(&k.as_str())) {
            keep_going::<()>(Err(unknown_key(&self.path, unknown, &self.known)))?;
        }
        Ok(())
    }
}

fn unknown_key(path: &KeyPath, key: &str, known: &[&str]) -> ConfigError {
    let place = if path.keys().next().is_none() {
        "at the top level".to_string()
    } else {
        format!("in `{path}`")
    };
    let closest = known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min();
    let mut sorted: Vec<&str> = known.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let message = match closest {
        Some((_, k)) => format!(
            "unknown key `{key}` {place}; did you mean `{k}`? (known keys: {})",
            sorted.join(", ")
        ),
        None => format!(
            "unknown key `{key}` {place} (known keys: {})",
            sorted.join(", ")
        ),
    };
    ConfigError::invalid(path.key(key).to_string(), message)
}

pub(super) fn type_error(path: &KeyPath, expected: &str, found: &Node) -> ConfigError {
    ConfigError::invalid(
        path.to_string(),
        format!("expected {expected}, found {}", found.describe()),
    )
}

pub(super) fn string(node: &Node, path: &KeyPath) -> Result<String> {
    match node {
        Node::Str(s) => Ok(s.clone()),
        other => Err(type_error(path, "a string", other)),
    }
}

pub(super) fn strings(node: &Node, path: &KeyPath) -> Result<Vec<String>> {
    match node {
        Node::List(items) => items
            .iter()
            .enumerate()
            .map(|(i, n)| string(n, &path.index(i + 1)))
            .collect(),
        other => Err(type_error(
            path,
            "a list of strings { \"a\", \"b\" }",
            other,
        )),
    }
}

/// Entries of a table whose keys are names chosen by the user.
pub(super) fn entries<'a>(
    node: &'a Node,
    path: &KeyPath,
) -> Result<Vec<(&'a str, &'a Node, KeyPath)>> {
    match node {
        Node::Map(m, _) => Ok(m
            .iter()
            .map(|(k, v)| (k.as_str(), v, path.key(k)))
            .collect()),
        Node::List(items) if items.is_empty() => Ok(Vec::new()),
        other => Err(type_error(
            path,
            "a table of named entries { name = { ... } }",
            other,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_closest_key() {
        let e = unknown_key(
            &KeyPath::root().key("services").key("openssh"),
            "setings",
            &["enable", "settings", "service_name"],
        );
        let msg = e.to_string();
        assert!(
            msg.contains("unknown key `setings` in `services.openssh`"),
            "{msg}"
        );
        assert!(msg.contains("did you mean `settings`?"), "{msg}");
    }

    #[test]
    fn no_suggestion_for_distant_keys() {
        let msg = unknown_key(&KeyPath::root(), "zzzzzz", &["packages", "users"]).to_string();
        assert!(!msg.contains("did you mean"), "{msg}");
        assert!(msg.contains("known keys: packages, users"), "{msg}");
    }
}
