//! The target's dpkg database (`/var/lib/dpkg`): the status file, the
//! per-package info files, trigger interests and deferred activations,
//! diversions. Read and written in dpkg's own formats.

use std::collections::BTreeMap;

use kod_unpack::Diversion;

use super::control::{Stanza, parse_stanzas};
use crate::{Error, io_error};
use kod_root::Root;

/// dpkg's administrative directory, relative to the root.
pub(crate) const ADMIN: &str = "var/lib/dpkg";
pub(crate) const STATUS: &str = "var/lib/dpkg/status";
pub(crate) const INFO: &str = "var/lib/dpkg/info";
pub(crate) const TRIGGERS: &str = "var/lib/dpkg/triggers";

/// One package of the status file.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) stanza: Stanza,
    pub(crate) name: String,
    pub(crate) arch: String,
    /// `Multi-Arch: same`: its info files and trigger names carry `:ARCH`.
    pub(crate) same: bool,
    /// The third word of `Status:` (`installed`, `unpacked`, ...).
    pub(crate) state: String,
}

impl Entry {
    fn from_stanza(stanza: Stanza) -> Result<Entry, String> {
        let name = stanza
            .get("Package")
            .ok_or("a stanza has no Package field")?
            .to_string();
        let status = stanza.get("Status").unwrap_or("unknown ok not-installed");
        let words: Vec<&str> = status.split_whitespace().collect();
        let [_want, _flag, state] = words[..] else {
            return Err(format!("package {name}: bad Status {status:?}"));
        };
        Ok(Entry {
            arch: stanza.get("Architecture").unwrap_or_default().to_string(),
            same: stanza
                .get("Multi-Arch")
                .is_some_and(|m| m.eq_ignore_ascii_case("same")),
            state: state.to_string(),
            name,
            stanza,
        })
    }

    /// Unpacked or further: its files are on disk.
    pub(crate) fn is_installed(&self) -> bool {
        !matches!(self.state.as_str(), "not-installed" | "config-files")
    }

    /// Known to dpkg with something on disk (installed, or its conffiles).
    pub(crate) fn is_present(&self) -> bool {
        self.state != "not-installed"
    }

    /// The name dpkg uses for its info files and trigger records:
    /// `NAME:ARCH` for `Multi-Arch: same` packages.
    pub(crate) fn stem(&self) -> String {
        stem(&self.name, &self.arch, self.same)
    }

    pub(crate) fn version(&self) -> &str {
        self.stanza.get("Version").unwrap_or_default()
    }

    /// dpkg's sort key for the status file.
    fn key(&self) -> (String, bool, String) {
        (self.name.clone(), self.same, self.arch.clone())
    }
}

/// `NAME` or `NAME:ARCH`.
pub(crate) fn stem(name: &str, arch: &str, same: bool) -> String {
    if same {
        format!("{name}:{arch}")
    } else {
        name.to_string()
    }
}

/// The status file, parsed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Status {
    pub(crate) entries: Vec<Entry>,
}

impl Status {
    /// Reads the status file of `fs`; `None` if there is none.
    pub(crate) fn load(fs: &Root) -> Result<Option<Status>, Error> {
        let Some(bytes) = fs.read(STATUS).map_err(io_error("read", fs.show(STATUS)))? else {
            return Ok(None);
        };
        let text = String::from_utf8(bytes).map_err(|_| Error::Target {
            root: fs.path().to_path_buf(),
            reason: format!("{} is not UTF-8", STATUS),
        })?;
        let bad = |reason: String| Error::Target {
            root: fs.path().to_path_buf(),
            reason: format!("{STATUS}: {reason}; fix it with the target's dpkg first"),
        };
        let entries = parse_stanzas(&text)
            .map_err(bad)?
            .into_iter()
            .map(Entry::from_stanza)
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        Ok(Some(Status { entries }))
    }

    /// The entry of `name` (of architecture `arch` when it is
    /// `Multi-Arch: same`, else any).
    pub(crate) fn get(&self, name: &str, arch: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.name == name && (!e.same || e.arch == arch))
    }

    /// Replaces (or adds) the stanza of `name`/`arch`.
    pub(crate) fn put(&mut self, text: String) -> Result<(), String> {
        let mut stanzas = parse_stanzas(&text)?;
        let stanza = stanzas.pop().ok_or("an empty stanza")?;
        let entry = Entry::from_stanza(stanza)?;
        // Another instance of the same package goes, unless both are
        // Multi-Arch: same instances of different architectures.
        self.entries
            .retain(|e| e.name != entry.name || (e.arch != entry.arch && e.same && entry.same));
        self.entries.push(entry);
        Ok(())
    }

    /// The status file's text, sorted as dpkg sorts it.
    pub(crate) fn render(&mut self) -> String {
        self.entries.sort_by_key(Entry::key);
        let mut out = String::new();
        for e in &self.entries {
            out.push_str(&e.stanza.text);
            out.push('\n');
        }
        out
    }

    /// Writes the status file (keeping the previous one as `status-old`,
    /// as dpkg does).
    pub(crate) fn write(&mut self, fs: &Root) -> Result<(), Error> {
        let text = self.render();
        if let Some(old) = fs.read(STATUS).map_err(io_error("read", fs.show(STATUS)))? {
            let old_path = format!("{STATUS}-old");
            fs.write(&old_path, &old, 0o644)
                .map_err(io_error("write", fs.show(&old_path)))?;
        }
        fs.write(STATUS, text.as_bytes(), 0o644)
            .map_err(io_error("write", fs.show(STATUS)))
    }
}

/// A trigger interest of the `triggers/File` file: `PATH PKG[/noawait]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileInterest {
    pub(crate) path: String,
    pub(crate) package: String,
}

/// Reads `triggers/File`.
pub(crate) fn file_interests(fs: &Root) -> Result<Vec<FileInterest>, Error> {
    let rel = format!("{TRIGGERS}/File");
    let Some(bytes) = fs.read(&rel).map_err(io_error("read", fs.show(&rel)))? else {
        return Ok(Vec::new());
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((path, package)) = line.split_once(' ') else {
            continue;
        };
        out.push(FileInterest {
            path: path.to_string(),
            package: package.trim().to_string(),
        });
    }
    Ok(out)
}

/// Trigger bookkeeping of one transaction: interests to add and
/// activations to leave for dpkg in `triggers/Unincorp` (the file
/// `dpkg-trigger` writes; dpkg incorporates it when it next runs).
#[derive(Debug, Default)]
pub(crate) struct Triggers {
    /// New `triggers/File` lines.
    pub(crate) file: Vec<String>,
    /// Explicit trigger name -> new interested `PKG[/noawait]`.
    pub(crate) explicit: BTreeMap<String, Vec<String>>,
    /// Trigger name -> awaiting packages (`-` for none).
    pub(crate) activate: BTreeMap<String, Vec<String>>,
}

impl Triggers {
    pub(crate) fn activate(&mut self, trigger: &str, awaiter: &str) {
        let v = self.activate.entry(trigger.to_string()).or_default();
        if !v.iter().any(|a| a == awaiter) {
            v.push(awaiter.to_string());
        }
    }

    /// Writes the interests and activations into the root.
    pub(crate) fn write(&self, fs: &Root) -> Result<(), Error> {
        if !self.file.is_empty() {
            let rel = format!("{TRIGGERS}/File");
            let mut text = fs
                .read(&rel)
                .map_err(io_error("read", fs.show(&rel)))?
                .unwrap_or_default();
            for l in &self.file {
                text.extend_from_slice(l.as_bytes());
                text.push(b'\n');
            }
            fs.write(&rel, &text, 0o644)
                .map_err(io_error("write", fs.show(&rel)))?;
        }
        for (name, pkgs) in &self.explicit {
            let rel = format!("{TRIGGERS}/{name}");
            let old = fs
                .read(&rel)
                .map_err(io_error("read", fs.show(&rel)))?
                .unwrap_or_default();
            let mut text = String::new();
            for l in String::from_utf8_lossy(&old).lines() {
                let who = l.split('/').next().unwrap_or(l);
                if !pkgs.iter().any(|p| p.split('/').next() == Some(who)) {
                    text.push_str(l);
                    text.push('\n');
                }
            }
            for p in pkgs {
                text.push_str(p);
                text.push('\n');
            }
            fs.write(&rel, text.as_bytes(), 0o644)
                .map_err(io_error("write", fs.show(&rel)))?;
        }
        let rel = format!("{TRIGGERS}/Unincorp");
        let mut text = fs
            .read(&rel)
            .map_err(io_error("read", fs.show(&rel)))?
            .unwrap_or_default();
        for (trigger, awaiters) in &self.activate {
            text.extend_from_slice(trigger.as_bytes());
            for a in awaiters {
                text.push(b' ');
                text.extend_from_slice(a.as_bytes());
            }
            text.push(b'\n');
        }
        fs.write(&rel, &text, 0o644)
            .map_err(io_error("write", fs.show(&rel)))
    }
}

/// Reads `diversions` (three lines per diversion).
pub(crate) fn diversions(fs: &Root) -> Result<Vec<Diversion>, Error> {
    let rel = format!("{ADMIN}/diversions");
    let Some(bytes) = fs.read(&rel).map_err(io_error("read", fs.show(&rel)))? else {
        return Ok(Vec::new());
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    Ok(lines
        .chunks_exact(3)
        .map(|c| Diversion {
            from: c[0].into(),
            to: c[1].into(),
            holder: c[2].to_string(),
        })
        .collect())
}

/// The version of dpkg installed in the root (for `DPKG_RUNNING_VERSION`).
pub(crate) fn dpkg_version(status: &Status) -> String {
    status
        .entries
        .iter()
        .find(|e| e.name == "dpkg" && e.is_installed())
        .map(|e| e.version().to_string())
        .unwrap_or_default()
}
