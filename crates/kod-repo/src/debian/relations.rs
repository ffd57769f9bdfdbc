//! Debian relation fields (Depends, Pre-Depends, Recommends, Suggests,
//! Conflicts, Breaks, Replaces, Provides), as deb-control(5) and dpkg define
//! them: `,`-separated relations, `|` alternatives, `name[:arch]`,
//! `(op version)`, architecture restrictions `[amd64 !i386]` and build
//! profiles `<!nocheck>`, the last two evaluated here against a
//! [`Target`].

use crate::model::{
    Alternatives, ArchQualifier, Dependencies, Op, Provide, Relation, Scheme, Text, Version,
};

/// What restrictions in relation fields are evaluated against.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The architecture packages are installed for (e.g. `amd64`).
    pub architecture: &'a str,
    /// Active build profiles (none for installing binary packages).
    pub profiles: &'a [&'a str],
}

/// A relation field that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse relation {text:?}: {reason}")]
pub struct RelationError {
    /// The relation (one `,`-separated entry) that failed.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

fn fail(text: &str, reason: impl Into<String>) -> RelationError {
    RelationError {
        text: text.trim().to_string(),
        reason: reason.into(),
    }
}

/// Parses a Depends-like field (alternatives allowed). Relations whose
/// architecture restriction or build profiles exclude `target` are left
/// out, and so is a group all of whose alternatives are left out.
pub fn parse_dependencies(field: &str, target: Target<'_>) -> Result<Dependencies, RelationError> {
    let mut out = Vec::new();
    for group in field.split(',') {
        if group.trim().is_empty() {
            continue;
        }
        let mut alts = Alternatives::new();
        for alt in group.split('|') {
            if let Some(rel) = parse_relation(alt, target)? {
                alts.push(rel);
            }
        }
        if !alts.is_empty() {
            out.push(alts);
        }
    }
    Ok(out)
}

/// Parses a Conflicts-like field (no alternatives: a `|` is an error).
pub fn parse_relations(field: &str, target: Target<'_>) -> Result<Vec<Relation>, RelationError> {
    let mut out = Vec::new();
    for entry in field.split(',') {
        if entry.trim().is_empty() {
            continue;
        }
        if entry.contains('|') {
            return Err(fail(
                entry,
                "alternatives (`|`) are not allowed in this field",
            ));
        }
        if let Some(rel) = parse_relation(entry, target)? {
            out.push(rel);
        }
    }
    Ok(out)
}

/// Parses a Provides field: names with an optional `(= version)`.
pub fn parse_provides(field: &str, target: Target<'_>) -> Result<Vec<Provide>, RelationError> {
    parse_relations(field, target)?
        .into_iter()
        .map(|r| match r.constraint {
            None => Ok(Provide {
                name: r.name,
                version: None,
            }),
            Some((Op::Equal, v)) => Ok(Provide {
                name: r.name,
                version: Some(v),
            }),
            Some((op, v)) => Err(fail(
                &format!("{} ({op} {v})", r.name),
                "only exact (=) versions may be provided",
            )),
        })
        .collect()
}

/// A small cursor over one relation's text.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn skip_ws(&mut self) {
        while self
            .s
            .as_bytes()
            .get(self.pos)
            .is_some_and(|c| c.is_ascii_whitespace())
        {
            self.pos += 1;
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    /// Takes bytes until whitespace or one of `stops`.
    fn word(&mut self, stops: &[u8]) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_whitespace() || stops.contains(&c) {
                break;
            }
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }
    /// Takes bytes up to (not including) `end`, or None if it never comes.
    fn until(&mut self, end: u8) -> Option<&'a str> {
        let start = self.pos;
        let off = self.s[start..].bytes().position(|c| c == end)?;
        self.pos = start + off + 1;
        Some(&self.s[start..start + off])
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.' | b'_'))
}

/// Parses one relation; `None` when its restrictions exclude `target`.
fn parse_relation(text: &str, target: Target<'_>) -> Result<Option<Relation>, RelationError> {
    let mut c = Cursor { s: text, pos: 0 };
    c.skip_ws();
    let name = c.word(b":([<");
    if !valid_name(name) {
        return Err(fail(text, format!("invalid package name {name:?}")));
    }
    let arch_qualifier = if c.eat(b':') {
        match c.word(b"([<") {
            "any" => ArchQualifier::Any,
            "native" => ArchQualifier::Native,
            a if valid_name(a) => ArchQualifier::Specific(Text::new(a)),
            a => return Err(fail(text, format!("invalid architecture qualifier {a:?}"))),
        }
    } else {
        ArchQualifier::None
    };
    c.skip_ws();
    let mut constraint = None;
    if c.eat(b'(') {
        let inner = c
            .until(b')')
            .ok_or_else(|| fail(text, "missing `)` after the version"))?
            .trim();
        let (op, rest) = if let Some(r) = inner.strip_prefix("<<") {
            (Op::Less, r)
        } else if let Some(r) = inner.strip_prefix("<=") {
            (Op::LessEqual, r)
        } else if let Some(r) = inner.strip_prefix(">=") {
            (Op::GreaterEqual, r)
        } else if let Some(r) = inner.strip_prefix(">>") {
            (Op::Greater, r)
        } else if let Some(r) = inner.strip_prefix('=') {
            (Op::Equal, r)
        } else if let Some(r) = inner.strip_prefix('<') {
            // Deprecated; dpkg reads it as `<=`.
            (Op::LessEqual, r)
        } else if let Some(r) = inner.strip_prefix('>') {
            // Deprecated; dpkg reads it as `>=`.
            (Op::GreaterEqual, r)
        } else {
            return Err(fail(text, format!("no relation operator in ({inner})")));
        };
        let version =
            Version::parse(Scheme::Debian, rest.trim()).map_err(|e| fail(text, e.to_string()))?;
        constraint = Some((op, version));
        c.skip_ws();
    }
    let mut included = true;
    if c.eat(b'[') {
        let list = c
            .until(b']')
            .ok_or_else(|| fail(text, "missing `]` after the architecture list"))?;
        included &= arch_list_matches(list, target.architecture).map_err(|r| fail(text, r))?;
        c.skip_ws();
    }
    let mut profile_groups = 0;
    let mut any_profile_group = false;
    while c.eat(b'<') {
        let group = c
            .until(b'>')
            .ok_or_else(|| fail(text, "missing `>` after the build profiles"))?;
        profile_groups += 1;
        any_profile_group |= group
            .split_whitespace()
            .all(|term| match term.strip_prefix('!') {
                Some(p) => !target.profiles.contains(&p),
                None => target.profiles.contains(&term),
            });
        c.skip_ws();
    }
    if profile_groups > 0 {
        included &= any_profile_group;
    }
    if c.pos != text.len() {
        return Err(fail(
            text,
            format!("unexpected {:?}", &text[c.pos..].trim()),
        ));
    }
    Ok(included.then_some(Relation {
        name: Text::new(name),
        arch_qualifier,
        constraint,
    }))
}

/// Whether `arch` matches an architecture restriction list such as
/// `amd64 i386` or `!hurd-any !kfreebsd-any`.
fn arch_list_matches(list: &str, arch: &str) -> Result<bool, String> {
    let mut positive = None;
    let mut hit = false;
    for term in list.split_whitespace() {
        let (neg, wildcard) = match term.strip_prefix('!') {
            Some(w) => (true, w),
            None => (false, term),
        };
        if positive.is_some_and(|p| p == neg) {
            return Err(format!(
                "architecture list [{list}] mixes negated and plain entries"
            ));
        }
        positive = Some(!neg);
        hit |= arch_matches(arch, wildcard);
    }
    Ok(match positive {
        None => true,
        Some(true) => hit,
        Some(false) => !hit,
    })
}

/// The (os, cpu) of a Debian architecture name, as dpkg's tuple tables
/// give them for the architectures Debian and its ports ship.
fn os_cpu(arch: &str) -> (&str, &str) {
    let (os, cpu) = match arch.rsplit_once('-') {
        // `musl-linux-amd64`: the os part is the middle one.
        Some((prefix, cpu)) => (prefix.rsplit('-').next().unwrap_or(prefix), cpu),
        None => ("linux", arch),
    };
    let cpu = match cpu {
        "armel" | "armhf" => "arm",
        "x32" => "amd64",
        other => other,
    };
    (os, cpu)
}

/// Whether `arch` matches one architecture wildcard (`any`, `linux-any`,
/// `any-amd64`, or a plain name).
pub fn arch_matches(arch: &str, wildcard: &str) -> bool {
    if wildcard == arch || wildcard == "any" {
        return true;
    }
    let (os, cpu) = os_cpu(arch);
    match wildcard.split_once('-') {
        Some(("any", wcpu)) => wcpu == cpu,
        Some((wos, "any")) => wos == os,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AMD64: Target<'static> = Target {
        architecture: "amd64",
        profiles: &[],
    };

    fn deps(s: &str) -> Vec<Vec<String>> {
        parse_dependencies(s, AMD64)
            .unwrap()
            .iter()
            .map(|g| g.iter().map(|r| r.to_string()).collect())
            .collect()
    }

    #[test]
    fn alternatives_versions_and_qualifiers() {
        assert_eq!(
            deps(
                "libc6 (>= 2.34), debconf (>= 0.5) | debconf-2.0,python3:any , perl:native (<< 6~)"
            ),
            vec![
                vec!["libc6 (>= 2.34)".to_string()],
                vec!["debconf (>= 0.5)".into(), "debconf-2.0".into()],
                vec!["python3:any".into()],
                vec!["perl:native (<< 6~)".into()],
            ]
        );
        let r = &parse_dependencies("gcc:i386(>>1:2)", AMD64).unwrap()[0][0];
        assert_eq!(r.arch_qualifier, ArchQualifier::Specific("i386".into()));
        assert_eq!(r.constraint.as_ref().unwrap().0, Op::Greater);
        assert_eq!(r.constraint.as_ref().unwrap().1.as_str(), "1:2");
    }

    #[test]
    fn deprecated_operators_mean_or_equal() {
        let d = parse_dependencies("a (< 1), b (> 2)", AMD64).unwrap();
        assert_eq!(d[0][0].constraint.as_ref().unwrap().0, Op::LessEqual);
        assert_eq!(d[1][0].constraint.as_ref().unwrap().0, Op::GreaterEqual);
    }

    #[test]
    fn architecture_restrictions_and_profiles() {
        assert_eq!(
            deps(
                "a [amd64 i386], b [!amd64], c [!hurd-any !kfreebsd-any] | d, e [linux-any], f [any-arm64] | g <!nocheck>, h <nocheck>, i <!nocheck> <stage1>"
            ),
            vec![
                vec!["a".to_string()],
                vec!["c".into(), "d".into()],
                vec!["e".into()],
                vec!["g".into()],
                vec!["i".into()],
            ]
        );
        let arm = Target {
            architecture: "armhf",
            profiles: &["nocheck"],
        };
        let d = parse_dependencies("a [any-arm], b <!nocheck>, c <nocheck>", arm).unwrap();
        let names: Vec<_> = d.iter().map(|g| g[0].name.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
        assert!(arch_matches("musl-linux-amd64", "linux-any"));
        assert!(arch_matches("hurd-i386", "hurd-any"));
        assert!(!arch_matches("hurd-i386", "linux-any"));
    }

    #[test]
    fn provides_versioned_and_not() {
        let p = parse_provides("awk, mawk-x (= 1.3-4), c:any", AMD64);
        assert!(p.is_ok(), "{p:?}");
        let p = parse_provides("awk, mawk-x (= 1.3-4)", AMD64).unwrap();
        assert_eq!(p[0].version, None);
        assert_eq!(p[1].version.as_ref().unwrap().as_str(), "1.3-4");
        assert!(parse_provides("x (>= 1)", AMD64).is_err());
    }

    proptest::proptest! {
        /// Rendering a parsed field and parsing it again gives the same
        /// relations.
        #[test]
        fn render_and_parse_round_trip(
            groups in proptest::collection::vec(
                proptest::collection::vec(
                    ("[a-z0-9][a-z0-9+.-]{0,8}", 0..4usize, proptest::option::of((0..5usize, "[0-9]{1,2}(\\.[0-9a-z~+]{1,3})?(-[0-9]{1,2})?"))),
                    1..3,
                ),
                0..5,
            )
        ) {
            let text = groups
                .iter()
                .map(|alts| {
                    alts.iter()
                        .map(|(name, q, c)| {
                            let q = [":any", ":native", ":i386", ""][*q];
                            let c = c
                                .as_ref()
                                .map(|(op, v)| format!(" ({} {v})", ["<<", "<=", "=", ">=", ">>"][*op]))
                                .unwrap_or_default();
                            format!("{name}{q}{c}")
                        })
                        .collect::<Vec<_>>()
                        .join(" | ")
                })
                .collect::<Vec<_>>()
                .join(", ");
            let parsed = parse_dependencies(&text, AMD64).unwrap();
            let rendered = parsed
                .iter()
                .map(|g| g.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(" | "))
                .collect::<Vec<_>>()
                .join(", ");
            proptest::prop_assert_eq!(&rendered, &text);
            proptest::prop_assert_eq!(parse_dependencies(&rendered, AMD64).unwrap(), parsed);
        }
    }

    #[test]
    fn errors_name_the_relation() {
        for bad in [
            "a (>= 1",
            "a (~ 1)",
            "Foo$",
            "a [amd64",
            "a (>= )",
            "a b",
            "a [amd64 !i386]",
        ] {
            let e = parse_dependencies(bad, AMD64).unwrap_err();
            assert!(e.to_string().contains("cannot parse relation"), "{e}");
        }
        assert!(parse_relations("a | b", AMD64).is_err());
        assert!(parse_dependencies(" , a,, ", AMD64).unwrap().len() == 1);
    }
}
