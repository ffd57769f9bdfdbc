//! The record of a generation, in `generations/N/` beside its root.
//!
//! KodOS's three files, and more:
//!
//! | file | content |
//! |---|---|
//! | `installed_packages` | JSON: the requested packages per source key (`official`, `aur`, `flatpak`, …), plus `kernel` |
//! | `enabled_services` | the units the configuration enabled, one a line |
//! | `packages.lock` | every installed package, `NAME VERSION ARCH` one a line, sorted bytewise: `dpkg-query -W -f '${Package} ${Version} ${Architecture}\n' \| LC_ALL=C sort` |
//! | `configuration.json` | the plan, as JSON (without passwords: the caller's duty) |
//! | `kod-version` | the version of the kod that wrote it |
//! | `config/` | the sanitised configuration files, under their relative names |
//! | `record-complete` | written last: the generation is committed |
//!
//! Write order: the caller has synced the new root; every record file is
//! written and fsynced, then the directories (`config/`'s, the
//! generation's), then the marker (temporary, fsync, rename, fsync of the
//! directory). Only after [`Record::write`] returns may the default
//! pointer move. A generation without the marker is not committed:
//! [`Record::read`] says so, and it is a leftover
//! ([`Top::leftovers`](crate::Top::leftovers)) when kod made it.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::durable::{replace, sync_dir, write_synced};
use crate::error::{Error, Result, io};
use crate::top::{BUILDING, RECORD_COMPLETE, Top};

/// The content of the completion marker: the record's format.
pub(crate) const MARKER_TEXT: &str = "kod generation record, format 1\n";

/// The requested packages of a generation: `installed_packages`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledPackages {
    /// The kernel package, if the configuration names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// Requested packages per source key (`official`, `aur`, `flatpak`,
    /// …), as the configuration names them. A source may not be called
    /// `kernel`.
    #[serde(flatten)]
    pub sources: BTreeMap<String, Vec<String>>,
}

/// One installed package: a line of `packages.lock`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct LockedPackage {
    /// Its name.
    pub name: String,
    /// Its version, as the package database writes it.
    pub version: String,
    /// Its architecture (`amd64`, `all`, …).
    pub arch: String,
}

/// `packages.lock`'s text: one `NAME VERSION ARCH` a line, the lines
/// sorted bytewise (as `LC_ALL=C sort` sorts them). A field that is empty
/// or holds white space is an error naming the package.
pub fn render_lock(packages: &[LockedPackage]) -> Result<String, String> {
    let mut lines = Vec::with_capacity(packages.len());
    for p in packages {
        for f in [&p.name, &p.version, &p.arch] {
            if f.is_empty() || f.chars().any(char::is_whitespace) {
                return Err(format!(
                    "package {:?} {:?} {:?}: a field is empty or holds white space",
                    p.name, p.version, p.arch
                ));
            }
        }
        lines.push(format!("{} {} {}\n", p.name, p.version, p.arch));
    }
    lines.sort();
    Ok(lines.concat())
}

/// Parses `packages.lock` text (or the output of `dpkg-query -W -f
/// '${Package} ${Version} ${Architecture}\n'`); the error names the line.
pub fn parse_lock(text: &str) -> Result<Vec<LockedPackage>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let [name, version, arch] = f[..] else {
            return Err(format!(
                "line {}: expected `NAME VERSION ARCH`: {line:?}",
                i + 1
            ));
        };
        out.push(LockedPackage {
            name: name.into(),
            version: version.into(),
            arch: arch.into(),
        });
    }
    Ok(out)
}

/// Whether `p` is a name for a file under `config/`: relative, its parts
/// neither empty, `.` nor `..`.
fn valid_config_path(p: &Path) -> bool {
    let b = p.as_os_str().as_bytes();
    !b.is_empty()
        && b.split(|&c| c == b'/')
            .all(|part| !part.is_empty() && part != b"." && part != b"..")
}

/// The record of one generation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// `installed_packages`.
    pub installed_packages: InstalledPackages,
    /// `enabled_services`, in the order given.
    pub enabled_services: Vec<String>,
    /// `packages.lock` (written sorted; read back sorted).
    pub packages: Vec<LockedPackage>,
    /// `configuration.json`: the plan.
    pub configuration: serde_json::Value,
    /// `kod-version`.
    pub kod_version: String,
    /// `config/`: (relative path, content), read back sorted by path.
    pub config_files: Vec<(PathBuf, Vec<u8>)>,
}

impl Record {
    /// Writes this record for generation `n` of `top` and commits it: the
    /// files, fsynced, then the completion marker. `n` must exist
    /// ([`Top::allocate`]) and not be committed yet.
    pub fn write(&self, top: &Top, n: u64) -> Result<()> {
        let dir = top.generation_dir(n);
        if !dir.is_dir() {
            return Err(Error::NoGeneration {
                generation: n,
                path: dir,
            });
        }
        let marker = dir.join(RECORD_COMPLETE);
        if marker.exists() {
            return Err(Error::Committed {
                generation: n,
                marker,
            });
        }
        top.report()
            .verbose(|| format!("writing the record of generation {n} in {}", dir.display()));
        self.write_in(&dir)?;
        // The marker is there: what says "building" goes.
        let building = dir.join(BUILDING);
        match fs::remove_file(&building) {
            Ok(()) => sync_dir(&dir)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove", building)(e)),
        }
        top.report().verbose(|| {
            format!(
                "generation {n} committed ({})",
                dir.join(RECORD_COMPLETE).display()
            )
        });
        Ok(())
    }

    /// The record of generation `n` of `top`; an incomplete one is
    /// [`Error::Incomplete`].
    pub fn read(top: &Top, n: u64) -> Result<Record> {
        let dir = top.generation_dir(n);
        if !dir.is_dir() {
            return Err(Error::NoGeneration {
                generation: n,
                path: dir,
            });
        }
        Record::read_in(&dir, n)
    }

    /// Writes the record files into `dir`, the marker last.
    pub(crate) fn write_in(&self, dir: &Path) -> Result<()> {
        let malformed = |name: &str, problem: String| Error::Malformed {
            path: dir.join(name),
            problem,
        };
        if self.installed_packages.sources.contains_key("kernel") {
            return Err(malformed(
                "installed_packages",
                "a package source named `kernel` would collide with the kernel entry".into(),
            ));
        }
        if let Some(bad) = self
            .enabled_services
            .iter()
            .find(|u| u.is_empty() || u.chars().any(char::is_whitespace))
        {
            return Err(malformed(
                "enabled_services",
                format!("unit name {bad:?} is empty or holds white space"),
            ));
        }
        if self.kod_version.trim().is_empty() || self.kod_version.contains('\n') {
            return Err(malformed(
                "kod-version",
                format!(
                    "version {:?} is empty or has several lines",
                    self.kod_version
                ),
            ));
        }
        if let Some((bad, _)) = self
            .config_files
            .iter()
            .find(|(p, _)| !valid_config_path(p))
        {
            return Err(Error::ConfigPath { path: bad.clone() });
        }
        let lock = render_lock(&self.packages).map_err(|p| malformed("packages.lock", p))?;
        let mut installed = serde_json::to_vec_pretty(&self.installed_packages)
            .map_err(|e| malformed("installed_packages", e.to_string()))?;
        installed.push(b'\n');
        let mut configuration = serde_json::to_vec_pretty(&self.configuration)
            .map_err(|e| malformed("configuration.json", e.to_string()))?;
        configuration.push(b'\n');
        let services: String = self
            .enabled_services
            .iter()
            .map(|u| format!("{u}\n"))
            .collect();

        for (name, data) in [
            ("installed_packages", installed.as_slice()),
            ("enabled_services", services.as_bytes()),
            ("packages.lock", lock.as_bytes()),
            ("configuration.json", configuration.as_slice()),
            (
                "kod-version",
                format!("{}\n", self.kod_version.trim()).as_bytes(),
            ),
        ] {
            write_synced(&dir.join(name), data)?;
        }
        // What an interrupted write left in config/ goes first.
        let config = dir.join("config");
        kod_root::tree::remove_tree(&config).map_err(io("remove", &config))?;
        fs::create_dir(&config).map_err(io("create", &config))?;
        let mut dirs = vec![config.clone()];
        for (rel, data) in &self.config_files {
            let path = config.join(rel);
            if let Some(parent) = path.parent()
                && !parent.is_dir()
            {
                kod_root::make_dirs(parent).map_err(io("create", parent))?;
                let mut d = parent;
                while d != config {
                    dirs.push(d.to_path_buf());
                    d = d.parent().unwrap_or(&config);
                }
            }
            write_synced(&path, data)?;
        }
        dirs.sort();
        dirs.dedup();
        for d in dirs.iter().rev() {
            sync_dir(d)?;
        }
        sync_dir(dir)?;
        replace(&dir.join(RECORD_COMPLETE), MARKER_TEXT.as_bytes())
    }

    /// Reads the record in `dir` (generation `n`, for messages).
    pub(crate) fn read_in(dir: &Path, n: u64) -> Result<Record> {
        let marker = dir.join(RECORD_COMPLETE);
        if !marker.exists() {
            return Err(Error::Incomplete {
                generation: n,
                marker,
            });
        }
        let text = |name: &str| -> Result<(PathBuf, String)> {
            let path = dir.join(name);
            let s = fs::read_to_string(&path).map_err(io("read", &path))?;
            Ok((path, s))
        };
        let malformed = |path: PathBuf, problem: String| Error::Malformed { path, problem };

        let (path, s) = text("installed_packages")?;
        let installed_packages =
            serde_json::from_str(&s).map_err(|e| malformed(path, e.to_string()))?;
        let (_, s) = text("enabled_services")?;
        let enabled_services = s
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        let (path, s) = text("packages.lock")?;
        let packages = parse_lock(&s).map_err(|p| malformed(path, p))?;
        let (path, s) = text("configuration.json")?;
        let configuration = serde_json::from_str(&s).map_err(|e| malformed(path, e.to_string()))?;
        let (_, s) = text("kod-version")?;
        let kod_version = s.trim().to_owned();

        let config = dir.join("config");
        let mut config_files = Vec::new();
        if config.exists() {
            read_tree(&config, Path::new(""), &mut config_files)?;
        }
        config_files.sort();
        Ok(Record {
            installed_packages,
            enabled_services,
            packages,
            configuration,
            kod_version,
            config_files,
        })
    }
}

/// The regular files under `base/rel`, with their names relative to
/// `base`; anything else there (a symlink, a device) is an error.
fn read_tree(base: &Path, rel: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) -> Result<()> {
    let dir = base.join(rel);
    for e in fs::read_dir(&dir).map_err(io("read the directory", &dir))? {
        let e = e.map_err(io("read the directory", &dir))?;
        let path = e.path();
        let t = e.file_type().map_err(io("read", &path))?;
        let name = rel.join(e.file_name());
        if t.is_dir() {
            read_tree(base, &name, out)?;
        } else if t.is_file() {
            let data = fs::read(&path).map_err(io("read", &path))?;
            out.push((name, data));
        } else {
            return Err(Error::Malformed {
                path,
                problem: "not a regular file or directory in a record's config/".into(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            installed_packages: InstalledPackages {
                kernel: Some("linux-image-amd64".into()),
                sources: BTreeMap::from([
                    ("official".into(), vec!["vim".into(), "git".into()]),
                    ("flatpak".into(), vec!["org.gnome.Calculator".into()]),
                ]),
            },
            enabled_services: vec!["ssh.service".into(), "systemd-networkd.service".into()],
            packages: vec![
                LockedPackage {
                    name: "libc6".into(),
                    version: "2.36-9+deb12u10".into(),
                    arch: "amd64".into(),
                },
                LockedPackage {
                    name: "base-files".into(),
                    version: "12.4+deb12u11".into(),
                    arch: "amd64".into(),
                },
                LockedPackage {
                    name: "libc6".into(),
                    version: "2.36-9+deb12u10".into(),
                    arch: "i386".into(),
                },
            ],
            configuration: serde_json::json!({"packages": {"official": ["vim", "git"]}}),
            kod_version: "0.1.0".into(),
            config_files: vec![
                ("configuration.lua".into(), b"return {}\n".to_vec()),
                ("modules/cli.lua".into(), b"return {'vim'}\n".to_vec()),
            ],
        }
    }

    #[test]
    fn a_record_round_trips_and_its_files_are_kodos_shaped() {
        let d = tempfile::tempdir().unwrap();
        let r = sample();
        r.write_in(d.path()).unwrap();
        let mut want = r.clone();
        want.packages.sort();
        assert_eq!(Record::read_in(d.path(), 3).unwrap(), want);
        let f = |n: &str| fs::read_to_string(d.path().join(n)).unwrap();
        assert_eq!(
            f("packages.lock"),
            "base-files 12.4+deb12u11 amd64\nlibc6 2.36-9+deb12u10 amd64\nlibc6 2.36-9+deb12u10 i386\n"
        );
        assert_eq!(
            f("enabled_services"),
            "ssh.service\nsystemd-networkd.service\n"
        );
        let installed: serde_json::Value = serde_json::from_str(&f("installed_packages")).unwrap();
        assert_eq!(
            installed,
            serde_json::json!({
                "kernel": "linux-image-amd64",
                "official": ["vim", "git"],
                "flatpak": ["org.gnome.Calculator"],
            })
        );
        assert_eq!(f("kod-version"), "0.1.0\n");
        assert_eq!(f("config/modules/cli.lua"), "return {'vim'}\n");
        assert_eq!(f(RECORD_COMPLETE), MARKER_TEXT);
        // No temporary is left.
        let names: Vec<String> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(!names.iter().any(|n| n.contains("kod-tmp")), "{names:?}");
        // A second write (a retried commit) leaves no stale config file.
        let mut fewer = r.clone();
        fewer.config_files.truncate(1);
        fewer.write_in(d.path()).unwrap();
        assert!(!d.path().join("config/modules").exists());
    }

    #[test]
    fn a_record_without_its_marker_is_incomplete() {
        let d = tempfile::tempdir().unwrap();
        sample().write_in(d.path()).unwrap();
        fs::remove_file(d.path().join(RECORD_COMPLETE)).unwrap();
        let e = Record::read_in(d.path(), 4).unwrap_err();
        assert!(matches!(e, Error::Incomplete { generation: 4, .. }), "{e}");
        assert!(e.to_string().contains("not committed"), "{e}");
    }

    #[test]
    fn config_names_leaving_config_and_bad_fields_are_refused_before_writing() {
        for bad in ["/etc/passwd", "../x", "a/../../x", "a//b", "./a", "", "a/."] {
            let d = tempfile::tempdir().unwrap();
            let mut r = sample();
            r.config_files.push((bad.into(), b"x".to_vec()));
            let e = r.write_in(d.path()).unwrap_err();
            assert!(matches!(e, Error::ConfigPath { .. }), "{bad:?}: {e}");
            assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0, "{bad:?}");
        }
        let d = tempfile::tempdir().unwrap();
        let mut r = sample();
        r.packages[0].version = "1 2".into();
        let e = r.write_in(d.path()).unwrap_err();
        assert!(e.to_string().contains("white space"), "{e}");
        let mut r = sample();
        r.installed_packages.sources.insert("kernel".into(), vec![]);
        assert!(r.write_in(d.path()).is_err());
        let mut r = sample();
        r.enabled_services.push("a b".into());
        assert!(r.write_in(d.path()).is_err());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn lock_text_parses_dpkg_query_output_and_names_bad_lines() {
        let p = parse_lock("zlib1g 1:1.2.13.dfsg-1 amd64\n\nadduser 3.134 all\n").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].version, "1:1.2.13.dfsg-1");
        assert_eq!(
            render_lock(&p).unwrap(),
            "adduser 3.134 all\nzlib1g 1:1.2.13.dfsg-1 amd64\n"
        );
        let e = parse_lock("a 1 all\nb 2\n").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
    }
}
