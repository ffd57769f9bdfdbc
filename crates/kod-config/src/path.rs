//! Where a value sits in the configuration: `services.openssh.settings`.

use std::fmt;

/// A path of keys and list positions from the configuration's root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

impl KeyPath {
    /// The root.
    pub fn root() -> KeyPath {
        KeyPath(Vec::new())
    }

    /// This path with a key appended.
    pub fn key(&self, k: &str) -> KeyPath {
        let mut v = self.0.clone();
        v.push(Segment::Key(k.to_string()));
        KeyPath(v)
    }

    /// This path with a (1-based, as Lua counts) list position appended.
    pub fn index(&self, i: usize) -> KeyPath {
        let mut v = self.0.clone();
        v.push(Segment::Index(i));
        KeyPath(v)
    }

    /// The keys along the path, without list positions.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|s| match s {
            Segment::Key(k) => Some(k.as_str()),
            Segment::Index(_) => None,
        })
    }
}

fn is_identifier(k: &str) -> bool {
    let mut chars = k.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(the returned table)");
        }
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Segment::Key(k) if is_identifier(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Segment::Key(k) => write!(f, "[{k:?}]")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_lua() {
        let p = KeyPath::root()
            .key("users")
            .key("demo-user")
            .key("programs")
            .index(2);
        assert_eq!(p.to_string(), "users[\"demo-user\"].programs[2]");
        assert_eq!(
            p.keys().collect::<Vec<_>>(),
            ["users", "demo-user", "programs"]
        );
    }
}
