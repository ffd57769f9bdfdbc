//! deb822 stanzas read and written the way dpkg does: field values kept
//! byte for byte (continuation lines included, trailing white space
//! trimmed), and a freshly unpacked package's status stanza written in
//! dpkg's field order with dpkg's normalisations (lib/dpkg/parse.c and
//! dump.c of dpkg 1.21), so that the status file kod writes is the one
//! `dpkg --unpack` would have written.

use kod_repo::debian::relations::{Target, parse_dependencies, parse_provides, parse_relations};
use kod_repo::model::{ArchQualifier, Relation};

/// One field: its name as written and its value (without the leading
/// white space, with continuation lines, trailing white space trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field {
    pub(crate) name: String,
    pub(crate) value: String,
}

/// One stanza: its fields in order, and its text as it appeared (for
/// copying stanzas of other packages unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stanza {
    pub(crate) fields: Vec<Field>,
    pub(crate) text: String,
}

impl Stanza {
    /// A field's value by name, compared case-insensitively (as dpkg does).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
            .map(|f| f.value.as_str())
    }
}

/// Parses every stanza of `text` the way dpkg's `parse_stanza` does.
/// Errors say which line is wrong.
pub(crate) fn parse_stanzas(text: &str) -> Result<Vec<Stanza>, String> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut i = 0;
    while i < lines.len() {
        // Skip blank lines between stanzas.
        if lines[i].trim_end_matches('\n').is_empty() {
            i += 1;
            continue;
        }
        let start_line = i;
        let mut fields: Vec<Field> = Vec::new();
        let mut text_len = 0;
        while i < lines.len() {
            let line = lines[i];
            let body = line.strip_suffix('\n').unwrap_or(line);
            if body.is_empty() {
                break;
            }
            text_len += line.len();
            if body.starts_with([' ', '\t']) {
                let Some(last) = fields.last_mut() else {
                    return Err(format!(
                        "line {}: a continuation line before any field",
                        i + 1
                    ));
                };
                last.value.push('\n');
                last.value.push_str(body);
            } else {
                let colon = body.find(':').ok_or_else(|| {
                    format!("line {}: field name without a colon: {body:?}", i + 1)
                })?;
                let name = body[..colon].trim_end();
                if name.is_empty() || name.contains(char::is_whitespace) || name.starts_with('-') {
                    return Err(format!("line {}: bad field name {name:?}", i + 1));
                }
                fields.push(Field {
                    name: name.to_string(),
                    value: body[colon + 1..]
                        .trim_start_matches([' ', '\t'])
                        .to_string(),
                });
            }
            i += 1;
        }
        for f in &mut fields {
            let trimmed = f.value.trim_end().len();
            f.value.truncate(trimmed);
        }
        let offset: usize = lines[..start_line].iter().map(|l| l.len()).sum();
        let mut stanza_text = text[offset..offset + text_len].to_string();
        if !stanza_text.ends_with('\n') {
            stanza_text.push('\n');
        }
        out.push(Stanza {
            fields,
            text: stanza_text,
        });
    }
    Ok(out)
}

/// A conffile as the status `Conffiles:` field records it for a freshly
/// unpacked package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conffile {
    /// The absolute path.
    pub(crate) path: String,
    /// The `remove-on-upgrade` flag.
    pub(crate) remove_on_upgrade: bool,
    /// The md5 of the file in place, or `newconffile` while it waits as
    /// `.dpkg-new` for `dpkg --configure`.
    pub(crate) hash: String,
}

/// dpkg's hash for a conffile that is not installed yet.
pub(crate) const NEW_CONFFILE: &str = "newconffile";

/// Parses a `conffiles` control member as dpkg's `deb_parse_conffiles`
/// does: one absolute path a line, optionally preceded by a flag
/// (`remove-on-upgrade /etc/x`).
pub(crate) fn parse_conffiles(data: &[u8]) -> Result<Vec<Conffile>, String> {
    let text = std::str::from_utf8(data).map_err(|_| "the conffiles member is not UTF-8")?;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        let (flag, path) = match line.strip_prefix('/') {
            Some(_) => (None, line),
            None => match line.split_once(' ') {
                Some((flag, path)) if path.starts_with('/') => (Some(flag), path),
                _ => return Err(format!("conffile name {line:?} is not an absolute path")),
            },
        };
        let remove_on_upgrade = match flag {
            None => false,
            Some("remove-on-upgrade") => true,
            Some(other) => return Err(format!("unknown flag {other:?} for conffile {path:?}")),
        };
        out.push(Conffile {
            path: path.to_string(),
            remove_on_upgrade,
            hash: NEW_CONFFILE.to_string(),
        });
    }
    Ok(out)
}

/// A version as dpkg prints it (`vdew_nonambig`): a zero epoch is left
/// out unless the rest holds a colon.
pub(crate) fn nonambig_version(v: &str) -> &str {
    let v = v.trim();
    if let Some((epoch, rest)) = v.split_once(':')
        && epoch.bytes().all(|b| b.is_ascii_digit())
        && epoch.bytes().all(|b| b == b'0')
        && !rest.contains(':')
    {
        return rest;
    }
    v
}

fn relation_text(r: &Relation, out: &mut String) {
    out.push_str(&r.name);
    match &r.arch_qualifier {
        ArchQualifier::None => {}
        ArchQualifier::Any => out.push_str(":any"),
        ArchQualifier::Native => out.push_str(":native"),
        ArchQualifier::Specific(a) => {
            out.push(':');
            out.push_str(a);
        }
    }
    if let Some((op, v)) = &r.constraint {
        out.push_str(" (");
        out.push_str(op.as_str());
        out.push(' ');
        out.push_str(nonambig_version(v.as_str()));
        out.push(')');
    }
}

/// What kind of relation field a name is, for normalisation.
#[derive(Clone, Copy)]
enum Kind {
    /// Alternatives allowed (Depends, Pre-Depends, Recommends, Suggests, Enhances).
    Alternatives,
    /// No alternatives (Replaces, Breaks, Conflicts).
    Plain,
    /// Provides: `=` only.
    Provides,
}

/// A relation field re-written as dpkg's `w_dependency` writes it.
fn normalize_relations(name: &str, value: &str, kind: Kind) -> Result<String, String> {
    let target = Target {
        architecture: "",
        profiles: &[],
    };
    let bad = |e: kod_repo::debian::relations::RelationError| format!("field {name}: {e}");
    let mut out = String::new();
    match kind {
        Kind::Alternatives => {
            for (i, group) in parse_dependencies(value, target)
                .map_err(bad)?
                .iter()
                .enumerate()
            {
                if i > 0 {
                    out.push_str(", ");
                }
                for (j, r) in group.iter().enumerate() {
                    if j > 0 {
                        out.push_str(" | ");
                    }
                    relation_text(r, &mut out);
                }
            }
        }
        Kind::Plain => {
            for (i, r) in parse_relations(value, target)
                .map_err(bad)?
                .iter()
                .enumerate()
            {
                if i > 0 {
                    out.push_str(", ");
                }
                relation_text(r, &mut out);
            }
        }
        Kind::Provides => {
            for (i, p) in parse_provides(value, target)
                .map_err(bad)?
                .iter()
                .enumerate()
            {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&p.name);
                if let Some(v) = &p.version {
                    out.push_str(" (= ");
                    out.push_str(nonambig_version(v.as_str()));
                    out.push(')');
                }
            }
        }
    }
    Ok(out)
}

/// dpkg's field table, in the order `varbuf_stanza` writes it.
const ORDER: &[&str] = &[
    "Package",
    "Essential",
    "Protected",
    "Status",
    "Priority",
    "Section",
    "Installed-Size",
    "Origin",
    "Maintainer",
    "Bugs",
    "Architecture",
    "Multi-Arch",
    "Source",
    "Version",
    "Config-Version",
    "Replaces",
    "Provides",
    "Depends",
    "Pre-Depends",
    "Recommends",
    "Suggests",
    "Breaks",
    "Conflicts",
    "Enhances",
    "Conffiles",
    "Filename",
    "Size",
    "MD5sum",
    "MSDOS-Filename",
    "Description",
    "Triggers-Pending",
    "Triggers-Awaited",
];

/// Obsolete names dpkg still reads: (alias, field it feeds).
const ALIASES: &[(&str, &str)] = &[("Recommended", "Recommends"), ("Optional", "Suggests")];

/// Fields dpkg refuses in a package's control file, or that change the
/// version in ways kod does not replicate.
const REFUSED: &[&str] = &["Class", "Revision", "Package-Revision", "Package_Revision"];

fn yes_no(name: &str, value: &str) -> Result<bool, String> {
    if value.eq_ignore_ascii_case("yes") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("no") {
        Ok(false)
    } else {
        Err(format!("field {name}: {value:?} is neither yes nor no"))
    }
}

/// The status stanza dpkg writes for a package it has just unpacked
/// (`Status: install ok unpacked`), from the package's `control` file.
pub(crate) fn unpacked_status_stanza(
    control: &Stanza,
    conffiles: &[Conffile],
) -> Result<String, String> {
    let mut known: Vec<Option<String>> = vec![None; ORDER.len()];
    let mut arbitrary: Vec<&Field> = Vec::new();
    for f in &control.fields {
        let canonical = ALIASES
            .iter()
            .find(|(alias, _)| f.name.eq_ignore_ascii_case(alias))
            .map_or(f.name.as_str(), |(_, to)| to);
        if REFUSED.iter().any(|r| r.eq_ignore_ascii_case(&f.name)) {
            return Err(format!(
                "obsolete field {} is not supported; rebuild the package without it",
                f.name
            ));
        }
        match ORDER.iter().position(|k| k.eq_ignore_ascii_case(canonical)) {
            Some(i) => match &mut known[i] {
                // An alias adds to the field it feeds, as dpkg does.
                Some(v) if !f.name.eq_ignore_ascii_case(ORDER[i]) => {
                    v.push_str(", ");
                    v.push_str(&f.value);
                }
                Some(_) => return Err(format!("duplicate field {}", f.name)),
                slot @ None => *slot = Some(f.value.clone()),
            },
            None => {
                if arbitrary
                    .iter()
                    .any(|a| a.name.eq_ignore_ascii_case(&f.name))
                {
                    return Err(format!("duplicate field {}", f.name));
                }
                arbitrary.push(f);
            }
        }
    }
    let value = |name: &str| -> Option<&str> {
        let i = ORDER.iter().position(|k| *k == name)?;
        known[i].as_deref()
    };
    let mut out = String::new();
    for name in ORDER {
        let mut line = |name: &str, v: &str| push_field(&mut out, name, v);
        let v = value(name);
        match *name {
            "Package" => line(name, v.ok_or("no Package field")?),
            "Essential" | "Protected" => {
                if let Some(v) = v
                    && yes_no(name, v)?
                {
                    line(name, "yes");
                }
            }
            "Status" => line(name, "install ok unpacked"),
            "Priority" => {
                if let Some(v) = v {
                    let known = ["required", "important", "standard", "optional", "extra"];
                    match known.iter().find(|k| k.eq_ignore_ascii_case(v)) {
                        Some(k) => line(name, k),
                        None => line(name, v),
                    }
                }
            }
            "Multi-Arch" => {
                if let Some(v) = v {
                    let known = ["no", "same", "allowed", "foreign"];
                    match known.iter().find(|k| k.eq_ignore_ascii_case(v)) {
                        Some(&"no") => {}
                        Some(k) => line(name, k),
                        None => return Err(format!("field Multi-Arch: unknown value {v:?}")),
                    }
                }
            }
            "Version" => {
                let v = v.ok_or("no Version field")?;
                kod_repo::model::Version::parse(kod_repo::model::Scheme::Debian, v)
                    .map_err(|e| e.to_string())?;
                line(name, nonambig_version(v));
            }
            "Replaces" | "Breaks" | "Conflicts" => {
                if let Some(v) = v {
                    let n = normalize_relations(name, v, Kind::Plain)?;
                    if !n.is_empty() {
                        line(name, &n);
                    }
                }
            }
            "Provides" => {
                if let Some(v) = v {
                    let n = normalize_relations(name, v, Kind::Provides)?;
                    if !n.is_empty() {
                        line(name, &n);
                    }
                }
            }
            "Depends" | "Pre-Depends" | "Recommends" | "Suggests" | "Enhances" => {
                if let Some(v) = v {
                    let n = normalize_relations(name, v, Kind::Alternatives)?;
                    if !n.is_empty() {
                        line(name, &n);
                    }
                }
            }
            "Conffiles" => {
                if !conffiles.is_empty() {
                    out.push_str("Conffiles:");
                    for c in conffiles {
                        out.push_str("\n ");
                        out.push_str(&c.path);
                        out.push(' ');
                        out.push_str(&c.hash);
                        if c.remove_on_upgrade {
                            out.push_str(" remove-on-upgrade");
                        }
                    }
                    out.push('\n');
                }
            }
            // Only in `available`, or only for installed packages.
            "Config-Version" | "Filename" | "Size" | "MD5sum" | "MSDOS-Filename"
            | "Triggers-Pending" | "Triggers-Awaited" => {}
            _ => {
                if let Some(v) = v {
                    line(name, v);
                }
            }
        }
    }
    for f in arbitrary {
        push_field(&mut out, &f.name, &f.value);
    }
    Ok(out)
}

fn push_field(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str(": ");
    out.push_str(value);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanzas_keep_values_byte_for_byte() {
        let text = "Package: a\nDescription: short  \n line one\n .\n line two\nX-Y:value\n\n\nPackage: b\n";
        let s = parse_stanzas(text).expect("parses");
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0].get("description"),
            Some("short  \n line one\n .\n line two")
        );
        assert_eq!(s[0].get("X-Y"), Some("value"));
        assert_eq!(
            s[0].text,
            "Package: a\nDescription: short  \n line one\n .\n line two\nX-Y:value\n"
        );
        assert_eq!(s[1].text, "Package: b\n");
    }

    #[test]
    fn bad_stanzas_are_refused_with_the_line() {
        let e = parse_stanzas("Package: a\nno colon here\n").expect_err("refused");
        assert!(e.contains("line 2"), "{e}");
        assert!(parse_stanzas(" cont\n").is_err());
    }

    #[test]
    fn conffiles_with_flags() {
        let c = parse_conffiles(b"/etc/a\nremove-on-upgrade /etc/b  \n\n").expect("parses");
        assert_eq!(c.len(), 2);
        assert!(!c[0].remove_on_upgrade);
        assert_eq!(c[1].path, "/etc/b");
        assert!(c[1].remove_on_upgrade);
        assert!(parse_conffiles(b"etc/x\n").is_err());
        assert!(parse_conffiles(b"frobnicate /etc/x\n").is_err());
    }

    #[test]
    fn versions_print_like_dpkg() {
        assert_eq!(nonambig_version("0:1.2-3"), "1.2-3");
        assert_eq!(nonambig_version("1:1.2-3"), "1:1.2-3");
        assert_eq!(nonambig_version("0:1:2"), "0:1:2");
        assert_eq!(nonambig_version("1.2"), "1.2");
    }
}
