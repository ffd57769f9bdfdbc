//! The configuration's value as a plain tree, read once from Lua.
//!
//! Lua has one table type for lists and maps; here a table whose keys are
//! exactly 1..n is a list, a table with string keys a map, an empty table
//! either. Functions are kept (configuration helpers carry one).

use std::collections::BTreeMap;

use mlua::{Table, Value};

use crate::error::ConfigError;
use crate::path::KeyPath;

/// Deeper than this is a table that contains itself.
const MAX_DEPTH: usize = 64;

/// A configuration value.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Node>),
    Map(BTreeMap<String, Node>, Table),
    Func(mlua::Function),
}

impl Node {
    /// What a person calls this kind of value, for error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Node::Bool(b) => format!("the boolean {b}"),
            Node::Int(i) => format!("the number {i}"),
            Node::Float(f) => format!("the number {f}"),
            Node::Str(s) => format!("the string {s:?}"),
            Node::List(items) if items.is_empty() => "an empty table".to_string(),
            Node::List(_) => "a list".to_string(),
            Node::Map(..) => "a table of keys".to_string(),
            Node::Func(_) => "a function".to_string(),
        }
    }

    /// Reads a Lua value; `None` for nil.
    pub(crate) fn from_lua(value: Value, path: &KeyPath) -> Result<Option<Node>, ConfigError> {
        read(value, path, 0)
    }
}

fn read(value: Value, path: &KeyPath, depth: usize) -> Result<Option<Node>, ConfigError> {
    if depth > MAX_DEPTH {
        return Err(ConfigError::invalid(
            path.to_string(),
            "nested too deeply (does a table contain itself?)",
        ));
    }
    Ok(Some(match value {
        Value::Nil => return Ok(None),
        Value::Boolean(b) => Node::Bool(b),
        Value::Integer(i) => Node::Int(i),
        Value::Number(f) => Node::Float(f),
        Value::String(s) => match s.to_str() {
            Ok(s) => Node::Str(s.to_string()),
            Err(_) => {
                return Err(ConfigError::invalid(
                    path.to_string(),
                    "this string is not valid UTF-8",
                ));
            }
        },
        Value::Table(t) => read_table(t, path, depth)?,
        Value::Function(f) => Node::Func(f),
        other => {
            return Err(ConfigError::invalid(
                path.to_string(),
                format!("a {} cannot be part of a configuration", other.type_name()),
            ));
        }
    }))
}

fn read_table(t: Table, path: &KeyPath, depth: usize) -> Result<Node, ConfigError> {
    let mut ints: BTreeMap<i64, Value> = BTreeMap::new();
    let mut strs: BTreeMap<String, Value> = BTreeMap::new();
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair.map_err(|e| ConfigError::invalid(path.to_string(), e.to_string()))?;
        match k {
            Value::Integer(i) => {
                ints.insert(i, v);
            }
            Value::String(s) => {
                let Ok(s) = s.to_str() else {
                    return Err(ConfigError::invalid(
                        path.to_string(),
                        "a key is not valid UTF-8",
                    ));
                };
                strs.insert(s.to_string(), v);
            }
            other => {
                return Err(ConfigError::invalid(
                    path.to_string(),
                    format!(
                        "keys must be names or list positions, not a {}",
                        other.type_name()
                    ),
                ));
            }
        }
    }
    if !ints.is_empty() && !strs.is_empty() {
        let key = strs.keys().next().cloned().unwrap_or_default();
        return Err(ConfigError::invalid(
            path.to_string(),
            format!(
                "this table mixes list items with named keys (`{key}`); use either a list \
                 {{ \"a\", \"b\" }} or a table of keys {{ a = ..., b = ... }}"
            ),
        ));
    }
    if !ints.is_empty() {
        let n = ints.len() as i64;
        if ints.keys().copied().ne(1..=n) {
            return Err(ConfigError::invalid(
                path.to_string(),
                "this list has holes (a nil item, or keys that are not 1, 2, 3, ...)",
            ));
        }
        let mut items = Vec::with_capacity(ints.len());
        for (i, v) in ints {
            let item_path = path.index(i as usize);
            if let Some(node) = read(v, &item_path, depth + 1)? {
                items.push(node);
            }
        }
        return Ok(Node::List(items));
    }
    let mut map = BTreeMap::new();
    for (k, v) in strs {
        let key_path = path.key(&k);
        if let Some(node) = read(v, &key_path, depth + 1)? {
            map.insert(k, node);
        }
    }
    if map.is_empty() {
        Ok(Node::List(Vec::new()))
    } else {
        Ok(Node::Map(map, t))
    }
}
