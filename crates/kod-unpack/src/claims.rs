//! Which package of a batch owns which path, and who wins when two ship
//! the same one.
//!
//! The rule, applied whatever order the threads reach a path in:
//!
//! - directories are shared freely between packages;
//! - a directory in one package and a symlink in another are accepted, and
//!   the filesystem rules of dpkg decide: a directory entry follows an
//!   existing symlink to a directory, a symlink entry keeps an existing
//!   directory or an existing symlink to the same directory. This is
//!   trixie's merged /usr, where base-files ships `bin -> usr/bin` while
//!   other packages may still ship `bin/`. The outcome is the same in
//!   every thread order when the symlink exists before the batch (set up
//!   merged /usr first with [`crate::setup_merged_usr`]); in an empty root
//!   a real directory may be created before the symlink, and then stays;
//! - a directory in one package and any other non-directory in another is
//!   an error naming both ([`Reason::DirConflict`]);
//! - two packages shipping the same non-directory: the later one in batch
//!   order wins if it declares `Replaces` on the earlier one (with a
//!   satisfied version constraint, if any), as `dpkg --unpack` in batch
//!   order would do; else the earlier one wins if it declares `Replaces` on
//!   the later one (dpkg's "replaced by files in installed package"); else
//!   instances of one `Multi-Arch: same` package share it; else it is an
//!   error naming both packages and the path ([`Reason::Conflict`]).
//!
//! The losing package does not write the path and it is dropped from the
//! loser's `.list`, as dpkg drops a replaced file from the old package's
//! list. A path is identified by its parent directory's device and inode
//! plus its name, so `bin/x` and `usr/bin/x` are one path when `bin` is a
//! symlink to `usr/bin`.
//!
//! Two packages writing one path never write their `.dpkg-new` at the same
//! time: a non-directory claim is *busy* from before the `.dpkg-new` is
//! created until it is renamed into place; a second claimant waits. A
//! package holds at most one busy claim at a time and never waits while
//! holding one, so this cannot deadlock.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use debversion::Version;

use crate::error::Reason;

/// A path in the root: parent directory (device, inode) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) name: Box<[u8]>,
}

#[derive(Debug)]
struct Claim {
    pkg: usize,
    dir: bool,
    symlink: bool,
    busy: bool,
    /// The archive path of the owner, for messages and `.list` fix-ups.
    path: Box<[u8]>,
}

/// What the package-level facts the conflict rule needs.
#[derive(Debug)]
pub(crate) struct PkgFacts {
    pub(crate) name: String,
    pub(crate) version: Option<Version>,
    pub(crate) multi_arch_same: bool,
    pub(crate) replaces: Vec<Relation>,
}

/// One `Replaces` entry: a package name with an optional version constraint.
#[derive(Debug, PartialEq)]
pub(crate) struct Relation {
    pub(crate) name: String,
    pub(crate) constraint: Option<(String, Version)>,
}

/// The outcome of claiming a non-directory path.
#[derive(Debug, PartialEq)]
pub(crate) enum Decision {
    /// Write it; call [`Claims::release`] once it is in place (or abandoned).
    Write,
    /// Another package wins: do not write it and leave it out of the list.
    Skip,
}

const SHARDS: usize = 64;

/// The claim table of one batch.
pub(crate) struct Claims {
    shards: Vec<(Mutex<HashMap<Key, Claim>>, Condvar)>,
    facts: Vec<OnceLock<PkgFacts>>,
    /// (package index, archive path) of every path a package lost.
    lost: Mutex<Vec<(usize, Box<[u8]>)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn display(path: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(path))
}

impl Claims {
    pub(crate) fn new(packages: usize) -> Self {
        Claims {
            shards: (0..SHARDS)
                .map(|_| (Mutex::new(HashMap::new()), Condvar::new()))
                .collect(),
            facts: (0..packages).map(|_| OnceLock::new()).collect(),
            lost: Mutex::new(Vec::new()),
        }
    }

    /// Records what package `pkg` declares; called once, after its control
    /// part is read and before any of its data is written.
    pub(crate) fn set_facts(&self, pkg: usize, facts: PkgFacts) {
        // A second call cannot happen: each package is read once.
        let _ = self.facts[pkg].set(facts);
    }

    /// The name of package `pkg`, once its control part is read.
    pub(crate) fn package_name(&self, pkg: usize) -> Option<String> {
        self.facts[pkg].get().map(|f| f.name.clone())
    }

    fn name_of(&self, pkg: usize) -> String {
        self.package_name(pkg)
            .unwrap_or_else(|| format!("package #{pkg}"))
    }

    fn shard(&self, key: &Key) -> &(Mutex<HashMap<Key, Claim>>, Condvar) {
        let h = key
            .name
            .iter()
            .fold(key.ino.wrapping_mul(0x9e37_79b9_7f4a_7c15), |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        &self.shards[(h % SHARDS as u64) as usize]
    }

    /// Package `pkg` ships a directory at `key`.
    pub(crate) fn claim_dir(&self, key: Key, pkg: usize, path: &[u8]) -> Result<(), Reason> {
        let (m, _) = self.shard(&key);
        let mut map = lock(m);
        match map.get(&key) {
            Some(c) if !c.dir && !c.symlink && c.pkg != pkg => Err(Reason::DirConflict {
                path: display(path),
                dir_pkg: self.name_of(pkg),
                other_pkg: self.name_of(c.pkg),
            }),
            Some(_) => Ok(()),
            None => {
                map.insert(
                    key,
                    Claim {
                        pkg,
                        dir: true,
                        symlink: false,
                        busy: false,
                        path: path.into(),
                    },
                );
                Ok(())
            }
        }
    }

    /// Package `pkg` ships a non-directory (a symlink if `symlink`) at `key`.
    pub(crate) fn claim(
        &self,
        key: Key,
        pkg: usize,
        path: &[u8],
        symlink: bool,
    ) -> Result<Decision, Reason> {
        let (m, cv) = self.shard(&key);
        let mut map = lock(m);
        loop {
            let Some(c) = map.get_mut(&key) else {
                map.insert(
                    key,
                    Claim {
                        pkg,
                        dir: false,
                        symlink,
                        busy: true,
                        path: path.into(),
                    },
                );
                return Ok(Decision::Write);
            };
            if c.dir && symlink {
                return Ok(Decision::Write);
            }
            if c.dir {
                return Err(Reason::DirConflict {
                    path: display(path),
                    dir_pkg: self.name_of(c.pkg),
                    other_pkg: self.name_of(pkg),
                });
            }
            if c.pkg == pkg {
                c.busy = true;
                return Ok(Decision::Write);
            }
            if c.busy {
                map = cv.wait(map).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            let winner = self.winner(pkg, c.pkg).ok_or_else(|| Reason::Conflict {
                path: display(path),
                other: self.name_of(c.pkg),
                this: self.name_of(pkg),
            })?;
            let mut lost = lock(&self.lost);
            return Ok(if winner == pkg {
                lost.push((c.pkg, std::mem::replace(&mut c.path, path.into())));
                c.pkg = pkg;
                c.symlink = symlink;
                c.busy = true;
                Decision::Write
            } else {
                lost.push((pkg, path.into()));
                Decision::Skip
            });
        }
    }

    /// The write of `key` by its owner is over (placed or abandoned).
    pub(crate) fn release(&self, key: &Key) {
        let (m, cv) = self.shard(key);
        if let Some(c) = lock(m).get_mut(key) {
            c.busy = false;
        }
        cv.notify_all();
    }

    /// Which of two packages keeps a path both ship, if either may.
    fn winner(&self, a: usize, b: usize) -> Option<usize> {
        let (later, earlier) = if a > b { (a, b) } else { (b, a) };
        let (fl, fe) = (self.facts[later].get()?, self.facts[earlier].get()?);
        if replaces(fl, fe) {
            Some(later)
        } else if replaces(fe, fl) {
            Some(earlier)
        } else if fl.name == fe.name && fl.multi_arch_same && fe.multi_arch_same {
            Some(later)
        } else {
            None
        }
    }

    /// The paths each package lost to another one, by package index.
    pub(crate) fn take_lost(&self) -> Vec<(usize, Box<[u8]>)> {
        std::mem::take(&mut *lock(&self.lost))
    }
}

/// Whether `by` declares `Replaces` on `pkg` (name and version constraint).
fn replaces(by: &PkgFacts, pkg: &PkgFacts) -> bool {
    by.replaces.iter().any(|r| {
        r.name == pkg.name
            && match (&r.constraint, &pkg.version) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some((op, want)), Some(have)) => match op.as_str() {
                    "<<" | "<" => have < want,
                    "<=" => have <= want,
                    "=" => have == want,
                    ">=" => have >= want,
                    ">>" | ">" => have > want,
                    _ => false,
                },
            }
    })
}

/// Parses a `Replaces` field: `name[:arch] [(op version)], ...`.
pub(crate) fn parse_relations(field: &str) -> Result<Vec<Relation>, String> {
    let mut out = Vec::new();
    for item in field.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (name_part, constraint) = match item.split_once('(') {
            Some((n, rest)) => {
                let inner = rest
                    .strip_suffix(')')
                    .ok_or_else(|| format!("unclosed `(` in relation `{item}`"))?
                    .trim();
                let split = inner
                    .find(|c: char| !matches!(c, '<' | '>' | '='))
                    .unwrap_or(inner.len());
                let (op, ver) = inner.split_at(split);
                let ver: Version = ver
                    .trim()
                    .parse()
                    .map_err(|e| format!("bad version in relation `{item}`: {e:?}"))?;
                (n, Some((op.to_string(), ver)))
            }
            None => (item, None),
        };
        let name = name_part.trim();
        let name = name.split_once(':').map_or(name, |(n, _)| n).trim();
        if name.is_empty() {
            return Err(format!("relation `{item}` has no package name"));
        }
        out.push(Relation {
            name: name.to_string(),
            constraint,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(name: &str, version: &str, replaces: &str) -> PkgFacts {
        PkgFacts {
            name: name.into(),
            version: Some(version.parse().expect("version")),
            multi_arch_same: false,
            replaces: parse_relations(replaces).expect("relations"),
        }
    }

    #[test]
    fn relations_parse_names_arch_qualifiers_and_constraints() {
        let r = parse_relations("foo (<< 1.2-3), bar:any, baz ( >= 2 )").expect("parse");
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].name, "foo");
        let (op, v) = r[0].constraint.as_ref().expect("constraint");
        assert_eq!((op.as_str(), v.to_string().as_str()), ("<<", "1.2-3"));
        assert_eq!(r[1].name, "bar");
        assert!(r[1].constraint.is_none());
        assert_eq!(r[2].constraint.as_ref().map(|c| c.0.as_str()), Some(">="));
        assert!(parse_relations("foo (<< 1").is_err());
    }

    #[test]
    fn replaces_honours_version_constraints() {
        let old = facts("old", "1.0-1", "");
        assert!(replaces(&facts("new", "2", "old (<< 1.1)"), &old));
        assert!(!replaces(&facts("new", "2", "old (<< 1.0-1)"), &old));
        assert!(replaces(&facts("new", "2", "old"), &old));
        assert!(!replaces(&facts("new", "2", "other"), &old));
    }

    fn key(name: &str) -> Key {
        Key {
            dev: 1,
            ino: 2,
            name: name.as_bytes().into(),
        }
    }

    #[test]
    fn later_replacing_package_wins_in_either_arrival_order() {
        for later_first in [false, true] {
            let c = Claims::new(2);
            c.set_facts(0, facts("a", "1", ""));
            c.set_facts(1, facts("b", "1", "a"));
            let order: [usize; 2] = if later_first { [1, 0] } else { [0, 1] };
            let mut decisions = [None, None];
            for p in order {
                let d = c.claim(key("x"), p, b"x", false).expect("claim");
                c.release(&key("x"));
                decisions[p] = Some(d);
            }
            assert_eq!(decisions[1], Some(Decision::Write));
            let lost = c.take_lost();
            assert_eq!(lost.len(), 1);
            assert_eq!(lost[0].0, 0);
        }
    }

    #[test]
    fn conflict_without_replaces_names_both_packages() {
        let c = Claims::new(2);
        c.set_facts(0, facts("a", "1", ""));
        c.set_facts(1, facts("b", "1", ""));
        assert_eq!(
            c.claim(key("x"), 0, b"x", false).expect("first"),
            Decision::Write
        );
        c.release(&key("x"));
        let err = c.claim(key("x"), 1, b"x", false).expect_err("conflict");
        let msg = err.to_string();
        assert!(
            msg.contains("`/x`") && msg.contains(" a ") && msg.contains(" b "),
            "{msg}"
        );
    }

    #[test]
    fn directory_against_non_directory_is_an_error() {
        let c = Claims::new(2);
        c.set_facts(0, facts("a", "1", ""));
        c.set_facts(1, facts("b", "1", "a"));
        c.claim_dir(key("d"), 0, b"d").expect("dir");
        c.claim_dir(key("d"), 1, b"d").expect("shared dir");
        assert!(matches!(
            c.claim(key("d"), 1, b"d", false),
            Err(Reason::DirConflict { .. })
        ));
        // A symlink against a directory is left to the filesystem rules.
        assert_eq!(
            c.claim(key("d"), 1, b"d", true).expect("symlink"),
            Decision::Write
        );
        c.claim(key("s"), 0, b"s", true).expect("symlink first");
        c.release(&key("s"));
        c.claim_dir(key("s"), 1, b"s")
            .expect("directory after a symlink");
    }
}
