//! What a removal pulls out: the packages asked for plus, when asked, the
//! installed packages whose `Depends`/`Pre-Depends` would no longer be
//! satisfied, computed from the status file (versions in dpkg's order,
//! alternatives, Provides).

use std::collections::BTreeSet;

use kod_repo::debian::relations::{Target, parse_dependencies, parse_provides};
use kod_repo::model::{Scheme, Version};

use super::status::{self as db, Entry, Status};
use crate::{Broken, Error, RemovalPlan, io_error};
use kod_root::Root;

/// An installed package as the dependency check sees it.
struct Pkg<'a> {
    entry: &'a Entry,
    version: Option<Version>,
    provides: Vec<(String, Option<Version>)>,
}

fn target(e: &Entry) -> Target<'_> {
    Target {
        architecture: &e.arch,
        profiles: &[],
    }
}

/// Which of `pkgs` (minus `gone`) satisfy a dependency group.
fn satisfied(
    group: &[kod_repo::model::Relation],
    pkgs: &[Pkg<'_>],
    gone: &BTreeSet<String>,
) -> bool {
    group.iter().any(|r| {
        pkgs.iter().any(|p| {
            if gone.contains(&p.entry.name) {
                return false;
            }
            if p.entry.name == r.name.as_str() && r.accepts(p.version.as_ref()) {
                return true;
            }
            p.provides
                .iter()
                .any(|(n, v)| n == r.name.as_str() && r.accepts(v.as_ref()))
        })
    })
}

/// The dependencies of installed packages outside `gone` that `gone`
/// breaks (those satisfied now and not without `gone`).
fn broken_by(pkgs: &[Pkg<'_>], gone: &BTreeSet<String>) -> Vec<Broken> {
    let none = BTreeSet::new();
    let mut out = Vec::new();
    for p in pkgs {
        if gone.contains(&p.entry.name) {
            continue;
        }
        for field in ["Pre-Depends", "Depends"] {
            let Some(text) = p.entry.stanza.get(field) else {
                continue;
            };
            let Ok(groups) = parse_dependencies(text, target(p.entry)) else {
                continue;
            };
            for g in groups {
                if satisfied(&g, pkgs, &none) && !satisfied(&g, pkgs, gone) {
                    out.push(Broken {
                        package: p.entry.name.clone(),
                        field,
                        dependency: g
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(" | "),
                    });
                }
            }
        }
    }
    out
}

/// Essential and Protected packages are never removed.
fn refuse_essential(pkgs: &[Pkg<'_>], gone: &BTreeSet<String>) -> Result<(), Error> {
    let essential: Vec<String> = pkgs
        .iter()
        .filter(|p| gone.contains(&p.entry.name))
        .filter(|p| {
            ["Essential", "Protected"].iter().any(|f| {
                p.entry
                    .stanza
                    .get(f)
                    .is_some_and(|v| v.eq_ignore_ascii_case("yes"))
            })
        })
        .map(|p| p.entry.name.clone())
        .collect();
    if essential.is_empty() {
        Ok(())
    } else {
        Err(Error::Essential {
            packages: essential,
        })
    }
}

/// Plans removing `names` from the packages of `status`. Packages not
/// installed, and Essential or Protected ones, are errors. With
/// `with_dependents`, packages that would break are added (again and
/// again until nothing more breaks); without, they are an
/// [`Error::WouldBreak`].
pub(crate) fn plan(
    root: &std::path::Path,
    status: &Status,
    names: &[&str],
    with_dependents: bool,
    purge: bool,
) -> Result<RemovalPlan, Error> {
    let pkgs: Vec<Pkg<'_>> = status
        .entries
        .iter()
        .filter(|e| e.is_installed())
        .map(|e| Pkg {
            entry: e,
            version: Version::parse(Scheme::Debian, e.version()).ok(),
            provides: e
                .stanza
                .get("Provides")
                .and_then(|t| parse_provides(t, target(e)).ok())
                .unwrap_or_default()
                .into_iter()
                .map(|p| (p.name.to_string(), p.version))
                .collect(),
        })
        .collect();
    let missing: Vec<String> = names
        .iter()
        .filter(|n| !pkgs.iter().any(|p| p.entry.name == **n))
        .map(|n| n.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(Error::NotInstalled {
            root: root.to_path_buf(),
            packages: missing,
        });
    }
    let mut gone: BTreeSet<String> = names.iter().map(|n| n.to_string()).collect();
    refuse_essential(&pkgs, &gone)?;
    let mut dependents = Vec::new();
    loop {
        let broken = broken_by(&pkgs, &gone);
        if broken.is_empty() {
            break;
        }
        if !with_dependents {
            return Err(Error::WouldBreak {
                requested: names.iter().map(|n| n.to_string()).collect(),
                broken,
            });
        }
        for b in broken {
            if gone.insert(b.package.clone()) {
                dependents.push(b.package);
            }
        }
    }
    refuse_essential(&pkgs, &gone)?;
    Ok(RemovalPlan {
        requested: names.iter().map(|n| n.to_string()).collect(),
        dependents,
        purge,
    })
}

/// Plans removing `names` from the root `root` as its dpkg status file
/// says now, without a transaction (no lock, no overlay, no privileges
/// beyond reading the file): what `--dry-run` shows. See
/// [`crate::PackageDb::plan_removal`] for the rules and errors; a root
/// without a status file is an [`Error::Target`].
pub fn plan_removal(
    root: &std::path::Path,
    names: &[&str],
    with_dependents: bool,
    purge: bool,
) -> Result<RemovalPlan, Error> {
    let fs = Root::open(root).map_err(io_error("open", root))?;
    let status = Status::load(&fs)?.ok_or_else(|| Error::Target {
        root: root.to_path_buf(),
        reason: format!("not a Debian root (no {})", db::STATUS),
    })?;
    plan(root, &status, names, with_dependents, purge)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn status(text: &str) -> Status {
        let mut s = Status::default();
        for stanza in text.split("\n\n") {
            s.put(format!("{}\n", stanza.trim())).expect("stanza");
        }
        s
    }

    const DB: &str = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nMulti-Arch: same\nVersion: 2.36-9\n\n\
Package: git\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:2.39.5-0\nDepends: libc6 (>= 2.34), perl | perl-base, git-man (= 1:2.39.5-0)\n\n\
Package: git-man\nStatus: install ok installed\nArchitecture: all\nVersion: 1:2.39.5-0\n\n\
Package: tig\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.5\nDepends: git\n\n\
Package: perl-base\nStatus: install ok installed\nEssential: yes\nArchitecture: amd64\nVersion: 5.36\nProvides: perlapi-5.36.0\n\n\
Package: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1";

    #[test]
    fn leaves_are_removed_alone() {
        let s = status(DB);
        let p = plan(Path::new("/r"), &s, &["tig"], false, false).expect("plan");
        assert_eq!(p.requested, vec!["tig"]);
        assert!(p.dependents.is_empty());
    }

    #[test]
    fn dependents_break_or_come_along() {
        let s = status(DB);
        match plan(Path::new("/r"), &s, &["git-man"], false, false) {
            Err(Error::WouldBreak { broken, .. }) => {
                assert_eq!(broken.len(), 1);
                assert_eq!(broken[0].package, "git");
            }
            other => panic!("{other:?}"),
        }
        let p = plan(Path::new("/r"), &s, &["git-man"], true, true).expect("plan");
        assert_eq!(p.dependents, vec!["git", "tig"]);
        assert_eq!(
            p.packages().collect::<Vec<_>>(),
            vec!["git-man", "git", "tig"]
        );
    }

    /// The free function reads the root's status file, as a transaction
    /// would see it, and refuses a root without one.
    #[test]
    fn plan_from_a_roots_status_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let err = plan_removal(dir.path(), &["tig"], false, false).expect_err("no status");
        assert!(
            matches!(&err, Error::Target { reason, .. } if reason.contains("var/lib/dpkg/status")),
            "{err}"
        );
        let admin = dir.path().join("var/lib/dpkg");
        std::fs::create_dir_all(&admin).expect("mkdir");
        std::fs::write(admin.join("status"), format!("{DB}\n")).expect("write");
        let p = plan_removal(dir.path(), &["git-man"], true, false).expect("plan");
        assert_eq!(p.packages().collect::<Vec<_>>(), ["git-man", "git", "tig"]);
        assert!(matches!(
            plan_removal(dir.path(), &["git"], false, false),
            Err(Error::WouldBreak { broken, .. }) if broken.len() == 1 && broken[0].package == "tig"
        ));
    }

    #[test]
    fn essential_and_missing_are_refused() {
        let s = status(DB);
        assert!(matches!(
            plan(Path::new("/r"), &s, &["perl-base"], false, false),
            Err(Error::Essential { .. })
        ));
        assert!(matches!(
            plan(Path::new("/r"), &s, &["gone", "nope"], false, false),
            Err(Error::NotInstalled { packages, .. }) if packages == vec!["gone", "nope"]
        ));
    }
}
