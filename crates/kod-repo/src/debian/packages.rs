//! Debian `Packages` indices: deb822 paragraphs to [`PackageRecord`]s,
//! parsed in parallel chunks.

use std::borrow::Cow;

use deb822_fast::borrowed::{BorrowedParagraph, iter_paragraphs_borrowed};
use rayon::prelude::*;

use super::relations::{Target, parse_dependencies, parse_provides, parse_relations};
use crate::model::{
    Location, MultiArch, OriginId, PackageRecord, Priority, Scheme, Sha256, Text, Version,
};

/// A paragraph of a Packages index that cannot be turned into a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("paragraph {paragraph} (package {package:?}): {reason}")]
pub struct PackagesError {
    /// 1-based position of the paragraph in the file.
    pub paragraph: usize,
    /// The package name, when the paragraph has one.
    pub package: String,
    /// What is wrong.
    pub reason: String,
}

/// Parses a whole Packages file. Records keep file order. Paragraphs are
/// parsed on all cores, in chunks split at blank lines.
pub fn parse_packages(
    text: &str,
    origin: OriginId,
    target: Target<'_>,
) -> Result<Vec<PackageRecord>, PackagesError> {
    let chunks = split_chunks(text, rayon::current_num_threads() * 4);
    let parsed: Vec<Result<Vec<PackageRecord>, PackagesError>> = chunks
        .par_iter()
        .map(|chunk| parse_chunk(chunk, origin, target))
        .collect();
    let mut out = Vec::with_capacity(parsed.iter().map(|r| r.as_ref().map_or(0, Vec::len)).sum());
    let mut before = 0;
    for part in parsed {
        match part {
            Ok(records) => {
                before += records.len();
                out.extend(records);
            }
            Err(mut e) => {
                // Make the paragraph number absolute (every chunk before the
                // failing one parsed completely).
                e.paragraph += before;
                return Err(e);
            }
        }
    }
    Ok(out)
}

/// Splits `text` into about `n` pieces, each ending at a paragraph boundary.
fn split_chunks(text: &str, n: usize) -> Vec<&str> {
    let target = (text.len() / n.max(1)).max(1 << 16);
    let mut out = Vec::new();
    let mut rest = text;
    while rest.len() > target {
        match rest[target..].find("\n\n") {
            Some(off) => {
                let (head, tail) = rest.split_at(target + off + 2);
                out.push(head);
                rest = tail;
            }
            None => break,
        }
    }
    out.push(rest);
    out
}

fn parse_chunk(
    chunk: &str,
    origin: OriginId,
    target: Target<'_>,
) -> Result<Vec<PackageRecord>, PackagesError> {
    let mut out = Vec::with_capacity(chunk.len() / 1200);
    for (i, para) in iter_paragraphs_borrowed(chunk).enumerate() {
        let para = para.map_err(|e| PackagesError {
            paragraph: i + 1,
            package: String::new(),
            reason: e.to_string(),
        })?;
        out.push(
            record(&para, origin, target).map_err(|(package, reason)| PackagesError {
                paragraph: i + 1,
                package,
                reason,
            })?,
        );
    }
    Ok(out)
}

/// The fields of one paragraph that make a record. Folded (multi-line)
/// values are joined with spaces, except Description, of which only the
/// first line (the short description) is kept.
#[derive(Default)]
struct Fields<'a> {
    package: Option<Cow<'a, str>>,
    version: Option<Cow<'a, str>>,
    architecture: Option<Cow<'a, str>>,
    multi_arch: Option<Cow<'a, str>>,
    essential: Option<Cow<'a, str>>,
    priority: Option<Cow<'a, str>>,
    section: Option<Cow<'a, str>>,
    source: Option<Cow<'a, str>>,
    installed_size: Option<Cow<'a, str>>,
    description: Option<Cow<'a, str>>,
    depends: Option<Cow<'a, str>>,
    pre_depends: Option<Cow<'a, str>>,
    recommends: Option<Cow<'a, str>>,
    suggests: Option<Cow<'a, str>>,
    provides: Option<Cow<'a, str>>,
    conflicts: Option<Cow<'a, str>>,
    breaks: Option<Cow<'a, str>>,
    replaces: Option<Cow<'a, str>>,
    filename: Option<Cow<'a, str>>,
    size: Option<Cow<'a, str>>,
    sha256: Option<Cow<'a, str>>,
}

impl<'a> Fields<'a> {
    fn read(para: &BorrowedParagraph<'a>) -> Fields<'a> {
        let mut f = Fields::default();
        for field in para.iter() {
            let name = field.name();
            let slot = match name.len() {
                4 if eq(name, "Size") => &mut f.size,
                6 if eq(name, "SHA256") => &mut f.sha256,
                6 if eq(name, "Source") => &mut f.source,
                7 if eq(name, "Package") => &mut f.package,
                7 if eq(name, "Version") => &mut f.version,
                7 if eq(name, "Depends") => &mut f.depends,
                7 if eq(name, "Section") => &mut f.section,
                6 if eq(name, "Breaks") => &mut f.breaks,
                8 if eq(name, "Priority") => &mut f.priority,
                8 if eq(name, "Filename") => &mut f.filename,
                8 if eq(name, "Provides") => &mut f.provides,
                8 if eq(name, "Replaces") => &mut f.replaces,
                8 if eq(name, "Suggests") => &mut f.suggests,
                9 if eq(name, "Essential") => &mut f.essential,
                9 if eq(name, "Conflicts") => &mut f.conflicts,
                10 if eq(name, "Multi-Arch") => &mut f.multi_arch,
                10 if eq(name, "Recommends") => &mut f.recommends,
                11 if eq(name, "Pre-Depends") => &mut f.pre_depends,
                11 if eq(name, "Description") => {
                    f.description = field.lines().first().map(|l| Cow::Borrowed(*l));
                    continue;
                }
                12 if eq(name, "Architecture") => &mut f.architecture,
                14 if eq(name, "Installed-Size") => &mut f.installed_size,
                _ => continue,
            };
            *slot = Some(match field.lines() {
                [one] => Cow::Borrowed(*one),
                many => Cow::Owned(many.join(" ")),
            });
        }
        f
    }
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// A field's trimmed value, or an error naming the missing field.
fn required<'b>(
    v: Option<&'b str>,
    field: &str,
    package: &str,
) -> Result<&'b str, (String, String)> {
    v.map(str::trim)
        .ok_or_else(|| (package.to_string(), format!("no {field} field")))
}

fn record(
    para: &BorrowedParagraph<'_>,
    origin: OriginId,
    target: Target<'_>,
) -> Result<PackageRecord, (String, String)> {
    let f = Fields::read(para);
    let name = f
        .package
        .as_deref()
        .map(str::trim)
        .ok_or((String::new(), "no Package field".to_string()))?;
    let err = |reason: String| (name.to_string(), reason);
    let text = |v: &Option<Cow<'_, str>>| Text::new(v.as_deref().unwrap_or("").trim());
    let version = Version::parse(
        Scheme::Debian,
        required(f.version.as_deref(), "Version", name)?,
    )
    .map_err(|e| err(e.to_string()))?;
    let deps = |v: &Option<Cow<'_, str>>| {
        parse_dependencies(v.as_deref().unwrap_or(""), target).map_err(|e| err(e.to_string()))
    };
    let flat = |v: &Option<Cow<'_, str>>| {
        parse_relations(v.as_deref().unwrap_or(""), target).map_err(|e| err(e.to_string()))
    };
    let (source, source_version) = match f.source.as_deref() {
        None => (Text::new(name), None),
        Some(s) => match s.split_once('(') {
            None => (Text::new(s.trim()), None),
            Some((n, v)) => {
                let v = v.trim().trim_end_matches(')').trim();
                (
                    Text::new(n.trim()),
                    Some(Version::parse(Scheme::Debian, v).map_err(|e| err(e.to_string()))?),
                )
            }
        },
    };
    let multi_arch = match f.multi_arch.as_deref().map(str::trim) {
        None | Some("no") => MultiArch::No,
        Some("same") => MultiArch::Same,
        Some("foreign") => MultiArch::Foreign,
        Some("allowed") => MultiArch::Allowed,
        Some(other) => return Err(err(format!("unknown Multi-Arch value {other:?}"))),
    };
    let priority = match f.priority.as_deref().map(str::trim) {
        Some("required") => Priority::Required,
        Some("important") => Priority::Important,
        Some("standard") => Priority::Standard,
        Some("extra") => Priority::Extra,
        _ => Priority::Optional,
    };
    let size = required(f.size.as_deref(), "Size", name)?
        .parse()
        .map_err(|_| err("Size is not a number".into()))?;
    let sha256 = match f.sha256.as_deref() {
        None => {
            return Err(err(
                "no SHA256 field (kod checks every download against it)".into(),
            ));
        }
        Some(h) => Sha256::from_hex(h.trim())
            .ok_or_else(|| err("SHA256 is not 64 hexadecimal digits".into()))?,
    };
    Ok(PackageRecord {
        name: Text::new(name),
        version,
        architecture: Text::new(required(f.architecture.as_deref(), "Architecture", name)?),
        multi_arch,
        essential: f.essential.as_deref().is_some_and(|e| e.trim() == "yes"),
        priority,
        section: text(&f.section),
        source,
        source_version,
        installed_size: f
            .installed_size
            .as_deref()
            .and_then(|s| s.trim().parse().ok()),
        description: text(&f.description),
        depends: deps(&f.depends)?,
        pre_depends: deps(&f.pre_depends)?,
        recommends: deps(&f.recommends)?,
        suggests: deps(&f.suggests)?,
        provides: parse_provides(f.provides.as_deref().unwrap_or(""), target)
            .map_err(|e| err(e.to_string()))?,
        conflicts: flat(&f.conflicts)?,
        breaks: flat(&f.breaks)?,
        replaces: flat(&f.replaces)?,
        location: Location {
            path: Text::new(required(f.filename.as_deref(), "Filename", name)?),
            size,
            sha256,
        },
        origin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ArchQualifier, Op};

    const AMD64: Target<'static> = Target {
        architecture: "amd64",
        profiles: &[],
    };

    const TWO: &str = "Package: dash
Source: dash (0.5.12-2)
Version: 0.5.12-2+b1
Installed-Size: 204
Maintainer: Someone <someone@example.org>
Architecture: amd64
Multi-Arch: foreign
Essential: yes
Pre-Depends: libc6 (>= 2.34)
Depends: debianutils (>= 5.6-0.1),
 dpkg (>= 1.19.1) [amd64] | dpkg-x [i386]
Provides: sh, sh-impl (= 0.5)
Breaks: foo (<< 1)
Description: POSIX-compliant shell
 The Debian Almquist Shell.
Priority: required
Section: shells
Filename: pool/main/d/dash/dash_0.5.12-2+b1_amd64.deb
Size: 93012
SHA256: 0000000000000000000000000000000000000000000000000000000000000001

package: python3-x
version: 1:2.0~rc1
architecture: all
depends: python3:any
filename: pool/main/p/x/python3-x_2.0~rc1_all.deb
size: 5
sha256: 00000000000000000000000000000000000000000000000000000000000000ff
";

    #[test]
    fn records_carry_every_field() {
        let r = parse_packages(TWO, OriginId(0), AMD64).unwrap();
        assert_eq!(r.len(), 2);
        let d = &r[0];
        assert_eq!(d.name, "dash");
        assert_eq!(d.version.as_str(), "0.5.12-2+b1");
        assert_eq!(d.source, "dash");
        assert_eq!(d.source_version.as_ref().unwrap().as_str(), "0.5.12-2");
        assert_eq!(d.installed_size, Some(204));
        assert_eq!(d.multi_arch, MultiArch::Foreign);
        assert!(d.essential);
        assert_eq!(d.priority, Priority::Required);
        assert_eq!(d.section, "shells");
        assert_eq!(d.description, "POSIX-compliant shell");
        assert_eq!(d.pre_depends[0][0].to_string(), "libc6 (>= 2.34)");
        assert_eq!(d.depends.len(), 2);
        assert_eq!(d.depends[1].len(), 1, "the [i386] alternative is dropped");
        assert_eq!(d.depends[1][0].name, "dpkg");
        assert_eq!(d.provides.len(), 2);
        assert_eq!(d.provides[1].version.as_ref().unwrap().as_str(), "0.5");
        assert_eq!(d.breaks[0].constraint.as_ref().unwrap().0, Op::Less);
        assert_eq!(d.location.size, 93012);
        assert_eq!(d.location.sha256.0[31], 1);
        let p = &r[1];
        assert_eq!(p.source, "python3-x");
        assert_eq!(p.version.as_str(), "1:2.0~rc1");
        assert_eq!(p.priority, Priority::Optional);
        assert_eq!(p.depends[0][0].arch_qualifier, ArchQualifier::Any);
    }

    #[test]
    fn errors_name_paragraph_and_package() {
        let bad = TWO.replace(
            "sha256: 00000000000000000000000000000000000000000000000000000000000000ff\n",
            "",
        );
        let e = parse_packages(&bad, OriginId(0), AMD64).unwrap_err();
        assert_eq!(e.paragraph, 2);
        assert_eq!(e.package, "python3-x");
        assert!(e.reason.contains("SHA256"), "{e}");
        let bad = TWO.replace("Version: 0.5.12-2+b1", "Version: 0.5 12");
        let e = parse_packages(&bad, OriginId(0), AMD64).unwrap_err();
        assert_eq!((e.paragraph, e.package.as_str()), (1, "dash"));
    }

    #[test]
    fn chunks_split_only_between_paragraphs() {
        let many: String = (0..3000)
            .map(|i| TWO.replace("Package: dash", &format!("Package: p{i}")) + "\n")
            .collect();
        for n in [1, 3, 64] {
            let chunks = split_chunks(&many, n);
            assert_eq!(chunks.concat(), many);
            assert!(
                chunks
                    .iter()
                    .all(|c| c.to_ascii_lowercase().starts_with("package: p"))
            );
        }
        let r = parse_packages(&many, OriginId(0), AMD64).unwrap();
        assert_eq!(r.len(), 6000);
        assert_eq!(r[5998].name, "p2999");
    }
}
