//! Views: how an environment store's exports appear on the host.
//!
//! - unified: one directory, `STORE/.unified/bin`, holds every
//!   environment's exported programs; when two export the same name, the
//!   one earlier in the priority wins (environments the settings' `priority`
//!   lists come first, in that order, then the rest by name) and the
//!   conflict is reported;
//! - isolated: each environment keeps its own `NAME/exports/bin`, and
//!   `kod env switch NAME` points the stable path at it.
//!
//! Either way the stable path is `STORE/.view` (a symlink to `.unified` or
//! to `NAME/exports`), so the line to add to PATH never changes:
//! `STORE/.view/bin` (and `STORE/.view/share` to XDG_DATA_DIRS for
//! desktop files). Settings live in `STORE/.view.json`
//! (`{"mode": "unified", "priority": ["sid", "arch"], "current": "sid"}`),
//! which may be edited by hand; `kod env view` applies them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::EnvError;
use crate::store::{Env, Store, write_json};

/// A view mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every environment's exports in one directory.
    #[default]
    Unified,
    /// One directory per environment; the stable path points at one.
    Isolated,
}

impl Mode {
    /// `unified` or `isolated`.
    pub fn parse(s: &str) -> Result<Mode, EnvError> {
        match s {
            "unified" => Ok(Mode::Unified),
            "isolated" => Ok(Mode::Isolated),
            other => Err(EnvError::ViewMode(other.to_string())),
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Unified => "unified",
            Mode::Isolated => "isolated",
        }
    }
}

/// `STORE/.view.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// The mode.
    #[serde(default)]
    pub mode: Mode,
    /// Environments in priority order (first wins a unified conflict);
    /// unlisted ones follow by name.
    #[serde(default)]
    pub priority: Vec<String>,
    /// The environment the isolated view shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
}

/// One exported name provided by several environments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// The program name.
    pub name: String,
    /// The environments exporting it, in priority order.
    pub envs: Vec<String>,
    /// The one the unified view uses.
    pub winner: String,
}

/// A view as it now is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct View {
    /// The mode.
    pub mode: Mode,
    /// The environment the isolated view shows.
    pub current: Option<String>,
    /// The priority order used.
    pub order: Vec<String>,
    /// The directory to put on PATH.
    pub bin: PathBuf,
    /// The directory to put on XDG_DATA_DIRS.
    pub share: PathBuf,
    /// Conflicts between environments' exports.
    pub conflicts: Vec<Conflict>,
}

impl View {
    /// The shell lines to add to a profile.
    pub fn path_lines(&self) -> String {
        format!(
            "export PATH=\"{}:$PATH\"\nexport XDG_DATA_DIRS=\"{}:${{XDG_DATA_DIRS:-/usr/local/share:/usr/share}}\"\n",
            self.bin.display(),
            self.share.display()
        )
    }
}

fn settings_path(store: &Store) -> PathBuf {
    store.dir.join(".view.json")
}

/// The store's view settings (defaults when it has none).
pub fn settings(store: &Store) -> Result<Settings, EnvError> {
    let path = settings_path(store);
    match std::fs::read(&path) {
        Ok(t) => serde_json::from_slice(&t).map_err(|e| EnvError::Record {
            path,
            detail: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
        Err(e) => Err(EnvError::Io {
            op: "read",
            path,
            source: e,
        }),
    }
}

fn save(store: &Store, s: &Settings) -> Result<(), EnvError> {
    store.ensure()?;
    write_json(&settings_path(store), s)
}

/// Environment names in priority order.
pub fn order(names: &[String], priority: &[String]) -> Vec<String> {
    let mut out: Vec<String> = priority
        .iter()
        .filter(|p| names.contains(p))
        .cloned()
        .collect();
    let mut rest: Vec<&String> = names.iter().filter(|n| !out.contains(n)).collect();
    rest.sort();
    rest.dedup();
    out.extend(rest.into_iter().cloned());
    out
}

/// The winner of each exported name, and the conflicts, given each
/// environment's exports in priority order.
pub fn resolve(exports: &[(String, Vec<String>)]) -> (BTreeMap<String, String>, Vec<Conflict>) {
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (env, names) in exports {
        for n in names {
            let envs = by_name.entry(n.clone()).or_default();
            if !envs.contains(env) {
                envs.push(env.clone());
            }
        }
    }
    let mut winners = BTreeMap::new();
    let mut conflicts = Vec::new();
    for (name, envs) in by_name {
        winners.insert(name.clone(), envs[0].clone());
        if envs.len() > 1 {
            conflicts.push(Conflict {
                name,
                winner: envs[0].clone(),
                envs,
            });
        }
    }
    (winners, conflicts)
}

/// Computes the view of `store` from its settings and records, without
/// changing anything.
pub fn compute(store: &Store) -> Result<(View, Vec<Env>), EnvError> {
    let s = settings(store)?;
    let envs = store.list()?;
    let names: Vec<String> = envs.iter().map(|e| e.name.clone()).collect();
    let ordered = order(&names, &s.priority);
    let exports: Vec<(String, Vec<String>)> = ordered
        .iter()
        .filter_map(|n| envs.iter().find(|e| &e.name == n))
        .map(|e| {
            (
                e.name.clone(),
                e.record.bins.iter().map(|b| b.name.clone()).collect(),
            )
        })
        .collect();
    let (_, conflicts) = resolve(&exports);
    let current = match s.mode {
        Mode::Isolated => s
            .current
            .clone()
            .filter(|c| names.contains(c))
            .or_else(|| ordered.first().cloned()),
        Mode::Unified => None,
    };
    let stable = store.dir.join(".view");
    Ok((
        View {
            mode: s.mode,
            current,
            order: ordered,
            bin: stable.join("bin"),
            share: stable.join("share"),
            conflicts,
        },
        envs,
    ))
}

/// Rebuilds the view of `store` on disk: the unified directory and the
/// stable path.
pub fn refresh(store: &Store) -> Result<View, EnvError> {
    let (view, envs) = compute(store)?;
    store.ensure()?;
    for e in &envs {
        for d in ["bin", "share/applications"] {
            let p = e.exports_dir().join(d);
            std::fs::create_dir_all(&p).map_err(EnvError::io("create", &p))?;
        }
    }
    // The unified directory, built beside the old one and swapped in.
    let unified = store.dir.join(".unified");
    let fresh = store.temp_dir(".unified");
    let built = (|| -> Result<(), EnvError> {
        for d in ["bin", "share/applications"] {
            let p = fresh.join(d);
            std::fs::create_dir_all(&p).map_err(EnvError::io("create", &p))?;
        }
        let mut taken = std::collections::BTreeSet::new();
        for name in &view.order {
            let Some(e) = envs.iter().find(|e| &e.name == name) else {
                continue;
            };
            for b in &e.record.bins {
                if taken.insert(b.name.clone()) {
                    link(
                        &Path::new("../..")
                            .join(name)
                            .join("exports/bin")
                            .join(&b.name),
                        &fresh.join("bin").join(&b.name),
                    )?;
                }
            }
            let apps = e.exports_dir().join("share/applications");
            if let Ok(rd) = std::fs::read_dir(&apps) {
                for f in rd.flatten() {
                    let file = f.file_name();
                    link(
                        &Path::new("../../..")
                            .join(name)
                            .join("exports/share/applications")
                            .join(&file),
                        &fresh.join("share/applications").join(&file),
                    )?;
                }
            }
        }
        Ok(())
    })();
    if let Err(e) = built {
        let _ = remove_any(&fresh);
        return Err(e);
    }
    swap_in(&fresh, &unified)?;
    let target = match (&view.mode, &view.current) {
        (Mode::Isolated, Some(c)) => Path::new(c).join("exports"),
        _ => PathBuf::from(".unified"),
    };
    let stable = store.dir.join(".view");
    let tmp = store.temp_dir(".view");
    std::os::unix::fs::symlink(&target, &tmp).map_err(EnvError::io("create", &tmp))?;
    if let Err(e) = std::fs::rename(&tmp, &stable) {
        let _ = std::fs::remove_file(&tmp);
        return Err(EnvError::io("rename into place", &stable)(e));
    }
    Ok(view)
}

/// Sets the mode (and, when given, the priority) and rebuilds the view.
pub fn set_mode(
    store: &Store,
    mode: Mode,
    priority: Option<Vec<String>>,
) -> Result<View, EnvError> {
    if let Some(unknown) = priority
        .iter()
        .flatten()
        .find(|n| !matches!(store.get(n), Ok(Some(_))))
    {
        return Err(EnvError::NotFound {
            name: unknown.clone(),
            searched: vec![store.dir.clone()],
        });
    }
    let mut s = settings(store)?;
    s.mode = mode;
    if let Some(p) = priority {
        s.priority = p;
    }
    save(store, &s)?;
    refresh(store)
}

/// Points the isolated view at `name` (the settings remember it even in
/// the unified mode) and rebuilds the view.
pub fn switch(store: &Store, name: &str) -> Result<View, EnvError> {
    if store.get(name)?.is_none() {
        return Err(EnvError::NotFound {
            name: name.to_string(),
            searched: vec![store.dir.clone()],
        });
    }
    let mut s = settings(store)?;
    s.current = Some(name.to_string());
    save(store, &s)?;
    refresh(store)
}

fn link(target: &Path, at: &Path) -> Result<(), EnvError> {
    std::os::unix::fs::symlink(target, at).map_err(EnvError::io("create", at))
}

fn remove_any(p: &Path) -> Result<(), EnvError> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p).map_err(EnvError::io("remove", p)),
        Ok(_) => std::fs::remove_file(p).map_err(EnvError::io("remove", p)),
        Err(_) => Ok(()),
    }
}

/// Puts directory `fresh` at `at` atomically (exchanging with the old one,
/// which is then removed).
fn swap_in(fresh: &Path, at: &Path) -> Result<(), EnvError> {
    match rustix::fs::renameat_with(
        rustix::fs::CWD,
        fresh,
        rustix::fs::CWD,
        at,
        rustix::fs::RenameFlags::EXCHANGE,
    ) {
        Ok(()) => remove_any(fresh),
        Err(rustix::io::Errno::NOENT) => {
            std::fs::rename(fresh, at).map_err(EnvError::io("rename into place", at))
        }
        Err(e) => Err(EnvError::Io {
            op: "exchange",
            path: at.to_path_buf(),
            source: e.into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ExportedBin, Ownership, Record, Scope, write_record};

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn priority_first_then_names() {
        let names = s(&["arch", "sid", "alma", "trixie"]);
        assert_eq!(
            order(&names, &s(&["trixie", "gone", "sid"])),
            s(&["trixie", "sid", "alma", "arch"])
        );
        assert_eq!(order(&names, &[]), s(&["alma", "arch", "sid", "trixie"]));
    }

    #[test]
    fn the_first_environment_in_priority_wins_and_conflicts_are_listed() {
        let (winners, conflicts) = resolve(&[
            ("trixie".into(), s(&["jq", "vim"])),
            ("sid".into(), s(&["jq", "hello"])),
            ("arch".into(), s(&["vim", "jq"])),
        ]);
        assert_eq!(winners["jq"], "trixie");
        assert_eq!(winners["hello"], "sid");
        assert_eq!(winners["vim"], "trixie");
        assert_eq!(
            conflicts,
            vec![
                Conflict {
                    name: "jq".into(),
                    envs: s(&["trixie", "sid", "arch"]),
                    winner: "trixie".into()
                },
                Conflict {
                    name: "vim".into(),
                    envs: s(&["trixie", "arch"]),
                    winner: "trixie".into()
                },
            ]
        );
    }

    fn env_with(store: &Store, name: &str, bins: &[&str]) {
        let dir = store.env_dir(name);
        std::fs::create_dir_all(dir.join("exports/bin")).unwrap();
        let mut r = Record::new("debian:sid", "test".into(), Ownership::Host);
        for b in bins {
            let launcher = dir.join("exports/bin").join(b);
            std::fs::write(&launcher, format!("#!/bin/sh\necho {name}\n")).unwrap();
            r.bins.push(ExportedBin {
                name: b.to_string(),
                path: format!("/usr/bin/{b}").into(),
            });
        }
        write_record(&dir, &r).unwrap();
    }

    #[test]
    fn views_on_disk_follow_mode_priority_and_switch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path(), Scope::Custom);
        env_with(&store, "a", &["tool", "only-a"]);
        env_with(&store, "b", &["tool"]);
        let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();

        let v = refresh(&store).unwrap();
        assert_eq!(v.mode, Mode::Unified);
        assert_eq!(read(".view/bin/tool"), "#!/bin/sh\necho a\n");
        assert_eq!(read(".view/bin/only-a"), "#!/bin/sh\necho a\n");
        assert_eq!(v.conflicts.len(), 1);
        assert!(
            v.path_lines()
                .contains(&format!("{}/.view/bin:$PATH", dir.path().display()))
        );

        let v = set_mode(&store, Mode::Unified, Some(s(&["b"]))).unwrap();
        assert_eq!(v.conflicts[0].winner, "b");
        assert_eq!(read(".view/bin/tool"), "#!/bin/sh\necho b\n");
        assert_eq!(read(".view/bin/only-a"), "#!/bin/sh\necho a\n");

        let v = set_mode(&store, Mode::Isolated, None).unwrap();
        assert_eq!(v.current.as_deref(), Some("b"));
        assert_eq!(read(".view/bin/tool"), "#!/bin/sh\necho b\n");
        assert!(!dir.path().join(".view/bin/only-a").exists());
        let v = switch(&store, "a").unwrap();
        assert_eq!(v.current.as_deref(), Some("a"));
        assert_eq!(read(".view/bin/tool"), "#!/bin/sh\necho a\n");
        assert!(switch(&store, "zz").is_err());
        assert!(Mode::parse("both").is_err());
    }
}
