//! Registration: what `dpkg --unpack` records for a package it has just
//! unpacked, written for packages kod-unpack unpacked. Per package: its
//! control members as `info/PKG.*` (maintainer scripts keep their modes),
//! `info/PKG.list`, `info/PKG.md5sums` (generated when the package has
//! none, as dpkg does), its status stanza (`install ok unpacked`,
//! conffiles as `newconffile`), its trigger interests, and the triggers its
//! files and its `activate` directives set off (left in `triggers/Unincorp`
//! for the next dpkg run to record, exactly as `dpkg-trigger` does).

use std::collections::BTreeSet;
use std::path::Path;

use kod_unpack::{DebMeta, Unpacked};
use md5::{Digest, Md5};
use rayon::prelude::*;

use super::control::{
    Conffile, NEW_CONFFILE, Stanza, parse_conffiles, parse_stanzas, unpacked_status_stanza,
};
use super::status::{self as db, FileInterest, INFO, Status, Triggers, stem};
use crate::{Error, io_error};
use kod_root::Root;

/// A package's identity, from its control file.
#[derive(Debug, Clone)]
pub(crate) struct Ident {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) arch: String,
    pub(crate) same: bool,
    pub(crate) control: Stanza,
}

impl Ident {
    /// `NAME` or `NAME:ARCH` (info files, trigger records).
    pub(crate) fn stem(&self) -> String {
        stem(&self.name, &self.arch, self.same)
    }
}

/// Reads a package's identity from its control part.
pub(crate) fn ident(meta: &DebMeta, archive: &Path) -> Result<Ident, Error> {
    let bad = |reason: String| Error::Package {
        package: meta.control.package().to_string(),
        archive: archive.to_path_buf(),
        reason,
    };
    let control = parse_stanzas(&meta.control.text)
        .map_err(|e| bad(format!("control file: {e}")))?
        .into_iter()
        .next()
        .ok_or_else(|| bad("empty control file".into()))?;
    let field = |n: &str| control.get(n).map(str::to_string);
    Ok(Ident {
        name: field("Package").ok_or_else(|| bad("no Package field".into()))?,
        version: field("Version").ok_or_else(|| bad("no Version field".into()))?,
        arch: field("Architecture").ok_or_else(|| bad("no Architecture field".into()))?,
        same: control
            .get("Multi-Arch")
            .is_some_and(|m| m.eq_ignore_ascii_case("same")),
        control,
    })
}

/// The control members dpkg copies to `info/`: everything but `control`
/// (and a stray `list`), names without a dot.
fn info_members(meta: &DebMeta) -> impl Iterator<Item = &kod_unpack::ControlMember> {
    meta.members
        .iter()
        .filter(|m| m.name != "control" && m.name != "list" && !m.name.contains(['.', '/']))
}

/// Writes every control member of a package to `info/STEM.NAME`, with its
/// mode.
fn write_info_members(fs: &Root, id: &Ident, meta: &DebMeta) -> Result<(), Error> {
    let stem = id.stem();
    for m in info_members(meta) {
        let rel = format!("{INFO}/{stem}.{}", m.name);
        fs.write(&rel, &m.data, m.mode & 0o7777)
            .map_err(io_error("write", fs.show(&rel)))?;
    }
    Ok(())
}

/// The md5 (hex) of the file `rel` in the root; `None` unless it is a
/// regular file.
fn md5_of(fs: &Root, rel: &str) -> Result<Option<String>, Error> {
    let Some(st) = fs.lstat(rel).map_err(io_error("stat", fs.show(rel)))? else {
        return Ok(None);
    };
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Ok(None);
    }
    let data = fs
        .read(rel)
        .map_err(io_error("read", fs.show(rel)))?
        .unwrap_or_default();
    let mut hex = String::with_capacity(32);
    for b in Md5::digest(&data) {
        hex.push_str(&format!("{b:02x}"));
    }
    Ok(Some(hex))
}

/// md5sums for a package that ships none, computed from what was
/// unpacked (conffiles from their `.dpkg-new` while they wait there), as
/// dpkg generates them.
fn generate_md5sums(fs: &Root, u: &Unpacked, conffiles: &[Conffile]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    for p in &u.list {
        let path = p.to_string_lossy();
        if path == "/." {
            continue;
        }
        let here = u.on_disk(p).to_string_lossy();
        let on_disk = if conffiles
            .iter()
            .any(|c| c.path == path && c.hash == NEW_CONFFILE)
        {
            format!("{here}.dpkg-new")
        } else {
            here.into_owned()
        };
        let Some(hex) = md5_of(fs, &on_disk)? else {
            continue;
        };
        out.extend_from_slice(hex.as_bytes());
        out.extend_from_slice(b"  ");
        out.extend_from_slice(path.trim_start_matches('/').as_bytes());
        out.push(b'\n');
    }
    Ok(out)
}

/// A trigger directive of a `triggers` control member.
#[derive(Debug, PartialEq, Eq)]
enum Directive<'a> {
    Interest { name: &'a str, noawait: bool },
    Activate { name: &'a str, noawait: bool },
}

fn parse_triggers(data: &[u8]) -> Result<Vec<Directive<'_>>, String> {
    let text = std::str::from_utf8(data).map_err(|_| "the triggers member is not UTF-8")?;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (cmd, name) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("triggers: bad directive {line:?}"))?;
        let name = name.trim();
        if name.is_empty() || name.bytes().any(|b| b <= b' ' || b >= 0x7f) {
            return Err(format!("triggers: bad trigger name {name:?}"));
        }
        out.push(match cmd {
            "interest" | "interest-await" => Directive::Interest {
                name,
                noawait: false,
            },
            "interest-noawait" => Directive::Interest {
                name,
                noawait: true,
            },
            "activate" | "activate-await" => Directive::Activate {
                name,
                noawait: false,
            },
            "activate-noawait" => Directive::Activate {
                name,
                noawait: true,
            },
            other => return Err(format!("triggers: unknown directive {other:?}")),
        });
    }
    Ok(out)
}

/// Writes a package's info files (control members, list, md5sums) and
/// returns its identity and status stanza.
fn prepare(fs: &Root, u: &Unpacked, conffiles_in_place: bool) -> Result<(Ident, String), Error> {
    let id = ident(&u.meta, &u.archive)?;
    let bad = |reason: String| Error::Package {
        package: id.name.clone(),
        archive: u.archive.clone(),
        reason,
    };
    let stem = id.stem();
    let mut conffiles = match u.meta.member("conffiles") {
        Some(m) => parse_conffiles(&m.data).map_err(bad)?,
        None => Vec::new(),
    };
    if conffiles_in_place {
        for c in &mut conffiles {
            let here = u.on_disk(Path::new(&c.path)).to_string_lossy();
            if let Some(hex) = md5_of(fs, &here)? {
                c.hash = hex;
            }
        }
    }
    write_info_members(fs, &id, &u.meta)?;
    let list_rel = format!("{INFO}/{stem}.list");
    fs.write(&list_rel, &u.list_file(), 0o644)
        .map_err(io_error("write", fs.show(&list_rel)))?;
    if u.meta.member("md5sums").is_none() {
        let sums = generate_md5sums(fs, u, &conffiles)?;
        let rel = format!("{INFO}/{stem}.md5sums");
        fs.write(&rel, &sums, 0o644)
            .map_err(io_error("write", fs.show(&rel)))?;
    }
    let stanza = unpacked_status_stanza(&id.control, &conffiles).map_err(bad)?;
    Ok((id, stanza))
}

/// Registers unpacked packages: info files, list, md5sums, status
/// stanzas, trigger interests and activations. `existing` are the file
/// trigger interests of packages installed before the transaction.
/// `conffiles_in_place`: the conffiles were unpacked in place (a new
/// root, as mmdebstrap's extraction leaves them) and are recorded with
/// their md5, else they wait as `.dpkg-new` and are recorded as
/// `newconffile`, as `dpkg --unpack` does.
pub(crate) fn register(
    fs: &Root,
    status: &mut Status,
    unpacked: &[Unpacked],
    existing: &[FileInterest],
    conffiles_in_place: bool,
) -> Result<(), Error> {
    // Per package, in parallel: its files in info/ and its status stanza.
    let prepared: Vec<(Ident, String)> = unpacked
        .par_iter()
        .map(|u| prepare(fs, u, conffiles_in_place))
        .collect::<Result<_, _>>()?;
    let mut triggers = Triggers::default();
    for (u, (id, stanza)) in unpacked.iter().zip(prepared) {
        let bad = |reason: String| Error::Package {
            package: id.name.clone(),
            archive: u.archive.clone(),
            reason,
        };
        let stem = id.stem();
        status.put(stanza).map_err(bad)?;

        // Every entry unpacked sets off the file triggers interested in
        // exactly its path (dpkg's tarobject; parent directories are
        // entries of their own; a diverted file by where it went);
        // dpkg skips packages not configured yet when it records them.
        let paths: BTreeSet<&str> = u
            .list
            .iter()
            .filter_map(|p| u.on_disk(p).to_str())
            .collect();
        for i in existing {
            if paths.contains(i.path.as_str()) {
                triggers.activate(&i.path, &stem);
            }
        }
        if let Some(m) = u.meta.member("triggers") {
            for d in parse_triggers(&m.data).map_err(bad)? {
                match d {
                    Directive::Interest { name, noawait } => {
                        let who = if noawait {
                            format!("{stem}/noawait")
                        } else {
                            stem.clone()
                        };
                        if name.starts_with('/') {
                            triggers.file.push(format!("{name} {who}"));
                        } else {
                            triggers
                                .explicit
                                .entry(name.to_string())
                                .or_default()
                                .push(who);
                        }
                    }
                    Directive::Activate { name, noawait } => {
                        triggers.activate(name, if noawait { "-" } else { &stem });
                    }
                }
            }
        }
    }
    triggers.write(fs)?;
    let format_rel = format!("{INFO}/format");
    if !fs
        .exists(&format_rel)
        .map_err(io_error("stat", fs.show(&format_rel)))?
    {
        fs.write(&format_rel, b"1\n", 0o644)
            .map_err(io_error("write", fs.show(&format_rel)))?;
    }
    status.write(fs)
}

/// Checks new packages against what installed packages own: a replaced
/// file of another installed package is taken over (dropped from its list)
/// when the new package declares `Replaces` on it, else it is a
/// [`Error::FileConflict`]. A file written to where a diversion sends it
/// is weighed under the name the packages' lists give it.
pub(crate) fn check_files(fs: &Root, status: &Status, unpacked: &[Unpacked]) -> Result<(), Error> {
    let diversions = db::diversions(fs)?;
    // Only replaced paths can belong to another package: each with its
    // listed name, and the holder of the diversion that moved it (whose
    // own file under that name stays).
    let mut replaced: Vec<(usize, String, Option<&str>)> = Vec::new();
    for (i, u) in unpacked.iter().enumerate() {
        for p in &u.changes.replaced {
            let s = p.to_string_lossy().into_owned();
            let is_dir = fs
                .stat(&s)
                .map_err(io_error("stat", fs.show(&s)))?
                .is_some_and(|st| {
                    rustix::fs::FileType::from_raw_mode(st.st_mode)
                        == rustix::fs::FileType::Directory
                });
            if !is_dir {
                replaced.push(match u.diverted.iter().find(|(_, to)| to == p) {
                    Some((listed, _)) => (
                        i,
                        listed.to_string_lossy().into_owned(),
                        diversions
                            .iter()
                            .find(|d| d.from == *listed)
                            .map(|d| d.holder.as_str()),
                    ),
                    None => (i, s, None),
                });
            }
        }
    }
    if replaced.is_empty() {
        return Ok(());
    }
    let new_names: Vec<String> = unpacked
        .iter()
        .map(|u| ident(&u.meta, &u.archive).map(|i| i.name))
        .collect::<Result<_, _>>()?;
    for e in status.entries.iter().filter(|e| e.is_installed()) {
        if new_names.contains(&e.name) {
            continue;
        }
        let rel = format!("{INFO}/{}.list", e.stem());
        let Some(list) = fs.read(&rel).map_err(io_error("read", fs.show(&rel)))? else {
            continue;
        };
        let list = String::from_utf8_lossy(&list).into_owned();
        let mut taken = Vec::new();
        for (i, path, holder) in &replaced {
            if *holder == Some(e.name.as_str()) || !list.lines().any(|l| l == path) {
                continue;
            }
            let u = &unpacked[*i];
            let id = ident(&u.meta, &u.archive)?;
            if !replaces(&id, e) {
                return Err(Error::FileConflict {
                    package: id.name,
                    path: path.clone(),
                    owner: e.name.clone(),
                });
            }
            taken.push(path.as_str());
        }
        if !taken.is_empty() {
            let mut kept = String::new();
            for l in list.lines().filter(|l| !taken.contains(l)) {
                kept.push_str(l);
                kept.push('\n');
            }
            fs.write(&rel, kept.as_bytes(), 0o644)
                .map_err(io_error("write", fs.show(&rel)))?;
        }
    }
    Ok(())
}

/// Whether `new` declares `Replaces` on installed `old` (version checked).
fn replaces(new: &Ident, old: &db::Entry) -> bool {
    let Some(field) = new.control.get("Replaces") else {
        return false;
    };
    let target = kod_repo::debian::relations::Target {
        architecture: &new.arch,
        profiles: &[],
    };
    let Ok(rels) = kod_repo::debian::relations::parse_relations(field, target) else {
        return false;
    };
    let Ok(version) =
        kod_repo::model::Version::parse(kod_repo::model::Scheme::Debian, old.version())
    else {
        return false;
    };
    rels.iter()
        .any(|r| r.name.as_str() == old.name && r.accepts(Some(&version)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_directives() {
        let d = parse_triggers(
            b"# c\ninterest-noawait /usr/share/man\nactivate-noawait ldconfig\n interest foo \n",
        )
        .expect("parses");
        assert_eq!(
            d,
            vec![
                Directive::Interest {
                    name: "/usr/share/man",
                    noawait: true
                },
                Directive::Activate {
                    name: "ldconfig",
                    noawait: true
                },
                Directive::Interest {
                    name: "foo",
                    noawait: false
                },
            ]
        );
        assert!(parse_triggers(b"frob x\n").is_err());
        assert!(parse_triggers(b"interest\n").is_err());
    }
}
