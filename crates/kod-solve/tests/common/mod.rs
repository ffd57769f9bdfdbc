//! Test support: synthetic indexes written as Debian Packages text (parsed
//! by kod-repo's real parser), and a checker of resolutions that shares no
//! code with the solver.

#![allow(dead_code)]

use kod_repo::debian::packages::parse_packages;
use kod_repo::debian::relations::Target;
use kod_repo::{ArchQualifier, Index, MultiArch, Origin, OriginId, PackageRecord, Relation, Text};
use kod_solve::{Installed, Resolution, Selector};
use proptest::prelude::*;

pub const NATIVE: &str = "amd64";

/// An index of suites, each given as Packages paragraphs without the
/// download fields (added here). `Architecture` defaults to amd64.
pub fn index(suites: &[(&str, &str)]) -> Index {
    let mut origins = Vec::new();
    let mut records = Vec::new();
    for (i, (suite, text)) in suites.iter().enumerate() {
        origins.push(Origin {
            base_url: "http://example.org/debian".into(),
            suite: suite.to_string(),
            codename: suite.to_string(),
            component: "main".into(),
            architecture: NATIVE.into(),
        });
        let full = full_packages(text, i);
        let target = Target {
            architecture: NATIVE,
            profiles: &[],
        };
        records
            .extend(parse_packages(&full, OriginId(i as u16), target).expect("test index parses"));
    }
    Index::new(vec![Text::new(NATIVE)], origins, records)
}

/// Packages paragraphs with the download fields added (and
/// `Architecture: amd64` where missing), as a repository serves them;
/// `i` keeps file names apart between suites.
pub fn full_packages(text: &str, i: usize) -> String {
    text.split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .enumerate()
        .map(|(j, p)| {
            let p = p.trim_matches('\n');
            let arch = if p.contains("Architecture:") {
                String::new()
            } else {
                format!("Architecture: {NATIVE}\n")
            };
            format!(
                "{p}\n{arch}Filename: pool/{i}/{j}.deb\nSize: {}\nSHA256: {:064x}\n\n",
                100 + j,
                j
            )
        })
        .collect()
}

/// One suite.
pub fn one(text: &str) -> Index {
    index(&[("stable", text)])
}

/// `name version` of every package of a resolution, sorted.
pub fn set(r: &Resolution) -> Vec<String> {
    r.packages
        .iter()
        .map(|p| format!("{} {}", p.name, p.version))
        .collect()
}

/// The names of a resolution.
pub fn names(r: &Resolution) -> Vec<String> {
    r.packages.iter().map(|p| p.name.to_string()).collect()
}

/// The chosen records: from the index, or the installed database.
fn chosen<'a>(
    index: &'a Index,
    r: &Resolution,
    installed: Option<&'a Installed>,
) -> Result<Vec<&'a PackageRecord>, String> {
    r.packages
        .iter()
        .map(|p| match p.record {
            Some(id) => Ok(index.record(id)),
            None => installed
                .and_then(|i| i.get(&p.name))
                .filter(|i| *i.version() == p.version)
                .map(|i| i.record())
                .ok_or_else(|| format!("{} {} has no record", p.name, p.version)),
        })
        .collect()
}

/// dpkg's rule: does `r` (a chosen package) satisfy relation `rel`
/// (directly or by a Provides)?
fn satisfies(r: &PackageRecord, rel: &Relation) -> bool {
    let arch_ok = match &rel.arch_qualifier {
        ArchQualifier::None | ArchQualifier::Native => true,
        ArchQualifier::Any => r.multi_arch == MultiArch::Allowed,
        ArchQualifier::Specific(a) => a == NATIVE || a == "all",
    };
    if !arch_ok {
        return false;
    }
    if r.name == rel.name && rel.accepts(Some(&r.version)) {
        return true;
    }
    r.provides
        .iter()
        .any(|p| p.name == rel.name && rel.accepts(p.version.as_ref()))
}

/// Whether `r`'s Conflicts or Breaks hit `other` (never itself).
fn hits(r: &PackageRecord, other: &PackageRecord) -> Option<String> {
    if r.name == other.name {
        return None;
    }
    for rel in r.conflicts.iter().chain(&r.breaks) {
        if matches!(&rel.arch_qualifier, ArchQualifier::Specific(a) if a != NATIVE && a != "all") {
            continue;
        }
        let direct = other.name == rel.name && rel.accepts(Some(&other.version));
        let provided = other
            .provides
            .iter()
            .any(|p| p.name == rel.name && rel.accepts(p.version.as_ref()));
        if direct || provided {
            return Some(format!(
                "{} {} vs {rel} ({} {})",
                r.name, r.version, other.name, other.version
            ));
        }
    }
    None
}

/// Checks that packages form a consistent system: every dependency met,
/// no conflict, one version per name, native or `all` packages.
pub fn consistent(recs: &[&PackageRecord]) -> Result<(), String> {
    for (i, a) in recs.iter().enumerate() {
        if recs[..i].iter().any(|b| b.name == a.name) {
            return Err(format!("two versions of {}", a.name));
        }
    }
    for rec in recs {
        if rec.architecture != NATIVE && rec.architecture != "all" {
            return Err(format!("{} is for {}", rec.name, rec.architecture));
        }
        for group in rec.pre_depends.iter().chain(&rec.depends) {
            if !group
                .iter()
                .any(|rel| recs.iter().any(|o| satisfies(o, rel)))
            {
                let g: Vec<String> = group.iter().map(|r| r.to_string()).collect();
                return Err(format!(
                    "{} {} needs {} and nothing chosen meets it",
                    rec.name,
                    rec.version,
                    g.join(" | ")
                ));
            }
        }
        for other in recs {
            if let Some(why) = hits(rec, other) {
                return Err(format!("conflict: {why}"));
            }
        }
    }
    Ok(())
}

/// Checks that a resolution is a consistent system that holds the
/// request: see [`consistent`]; requests honoured, installed packages
/// kept.
pub fn check(
    index: &Index,
    r: &Resolution,
    base: &[&str],
    requests: &[kod_solve::PackageRequest],
    installed: Option<&Installed>,
) -> Result<(), String> {
    let recs = chosen(index, r, installed)?;
    consistent(&recs)?;
    for name in base {
        if !recs.iter().any(|x| x.name == *name) {
            return Err(format!("base package {name} is missing"));
        }
    }
    for q in requests {
        let Some(x) = recs.iter().find(|x| x.name == q.name) else {
            // A virtual name with one provider resolves to the provider.
            if recs
                .iter()
                .any(|x| x.provides.iter().any(|p| p.name == q.name))
            {
                continue;
            }
            return Err(format!("requested {} is missing", q.name));
        };
        match &q.selector {
            Selector::Candidate => {}
            Selector::Version(v) => {
                if x.version.as_str() != v {
                    return Err(format!("{} is {} not {v}", q.name, x.version));
                }
            }
            Selector::Suite(s) => {
                let ok = index
                    .by_name(&q.name)
                    .any(|o| o.version == x.version && index.origin(o.origin).suite == *s);
                if !ok {
                    return Err(format!("{} {} is not from {s}", q.name, x.version));
                }
            }
        }
    }
    if let Some(inst) = installed {
        for p in inst.packages() {
            if !recs.iter().any(|x| x.name == p.name()) {
                return Err(format!("installed {} was dropped", p.name()));
            }
        }
    }
    Ok(())
}

// Random universes for property tests.

/// Package names of random universes: p0, p1...
pub const NAMES: usize = 5;
const VIRTUALS: [&str; 2] = ["v0", "v1"];
const VERSIONS: [&str; 3] = ["1", "1.5", "2"];
const OPS: [&str; 5] = ["<<", "<=", "=", ">=", ">>"];

/// A relation target and optional constraint, as text.
fn relation() -> impl Strategy<Value = String> {
    (
        0..NAMES + VIRTUALS.len(),
        proptest::option::of((0..OPS.len(), 0..VERSIONS.len())),
    )
        .prop_map(|(t, c)| {
            let name = if t < NAMES {
                format!("p{t}")
            } else {
                VIRTUALS[t - NAMES].to_string()
            };
            match c {
                Some((op, v)) => format!("{name} ({} {})", OPS[op], VERSIONS[v]),
                None => name,
            }
        })
}

/// One package version: Depends, Provides, Conflicts, Breaks.
fn paragraph(name: usize, version: &'static str) -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(proptest::collection::vec(relation(), 1..3), 0..3),
        proptest::option::of((0..VIRTUALS.len(), proptest::option::of(0..VERSIONS.len()))),
        proptest::option::of(relation()),
        proptest::option::of(relation()),
    )
        .prop_map(move |(deps, provides, conflicts, breaks)| {
            let mut p = format!("Package: p{name}\nVersion: {version}\n");
            if !deps.is_empty() {
                let groups: Vec<String> = deps.iter().map(|g| g.join(" | ")).collect();
                p.push_str(&format!("Depends: {}\n", groups.join(", ")));
            }
            if let Some((v, ver)) = provides {
                match ver {
                    Some(ver) => p.push_str(&format!(
                        "Provides: {} (= {})\n",
                        VIRTUALS[v], VERSIONS[ver]
                    )),
                    None => p.push_str(&format!("Provides: {}\n", VIRTUALS[v])),
                }
            }
            if let Some(c) = conflicts {
                p.push_str(&format!("Conflicts: {c}\n"));
            }
            if let Some(b) = breaks {
                p.push_str(&format!("Breaks: {b}\n"));
            }
            p
        })
}

/// A universe (Packages text) and a request of one or two names.
pub fn universe() -> impl Strategy<Value = (String, Vec<String>)> {
    let packages: Vec<_> = (0..NAMES)
        .flat_map(|n| [paragraph(n, "1"), paragraph(n, "2")])
        .collect();
    (
        packages,
        proptest::collection::vec(any::<bool>(), NAMES * 2),
        proptest::collection::btree_set(0..NAMES, 1..3),
    )
        .prop_map(|(paragraphs, keep, requested)| {
            // Drop some versions (never both of p0, so something exists).
            let kept: Vec<(usize, String)> = paragraphs
                .into_iter()
                .zip(keep)
                .enumerate()
                .filter(|(i, (_, k))| *k || *i == 0)
                .map(|(i, (p, _))| (i / 2, p))
                .collect();
            let mut request: Vec<String> = requested
                .into_iter()
                .filter(|n| kept.iter().any(|(k, _)| k == n))
                .map(|n| format!("p{n}"))
                .collect();
            if request.is_empty() {
                request.push("p0".to_string());
            }
            let text: Vec<String> = kept.into_iter().map(|(_, p)| p).collect();
            (text.join("\n"), request)
        })
}
