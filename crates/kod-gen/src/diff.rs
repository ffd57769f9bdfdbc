//! What changed from one generation's record to another's: packages
//! (with versions), services, users and configuration files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Serialize;

use crate::record::{LockedPackage, Record};

/// The differences between two records, from `a` to `b`. Every list is
/// sorted (services in `b`'s order for enabled ones, `a`'s for disabled
/// ones).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecordDiff {
    /// Installed packages (`packages.lock`), by name and architecture.
    pub packages: PackagesDiff,
    /// Enabled units (`enabled_services`).
    pub services: ServicesDiff,
    /// Accounts (the plan's `users` in `configuration.json`), by login.
    pub users: UsersDiff,
    /// The stored configuration files (`config/`), by relative path.
    pub config_files: FilesDiff,
}

/// Installed packages that came, went or changed version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PackagesDiff {
    /// In `b` only.
    pub added: Vec<LockedPackage>,
    /// In `a` only.
    pub removed: Vec<LockedPackage>,
    /// In both, with another version.
    pub changed: Vec<PackageChange>,
}

/// A package whose version changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageChange {
    /// Its name.
    pub name: String,
    /// Its architecture.
    pub arch: String,
    /// Its version in `a`.
    pub from: String,
    /// Its version in `b`.
    pub to: String,
}

/// Units enabled or no longer enabled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServicesDiff {
    /// Enabled in `b`, not in `a`.
    pub enabled: Vec<String>,
    /// Enabled in `a`, not in `b`.
    pub disabled: Vec<String>,
}

/// Accounts that came, went or changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UsersDiff {
    /// Logins in `b` only.
    pub added: Vec<String>,
    /// Logins in `a` only.
    pub removed: Vec<String>,
    /// Logins in both whose settings differ.
    pub changed: Vec<UserChange>,
}

/// An account whose settings changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserChange {
    /// Its login.
    pub name: String,
    /// The plan's fields that differ (`groups`, `shell`, `password` — the
    /// kind of password, never one — …), sorted.
    pub fields: Vec<String>,
}

/// Stored configuration files that came, went or changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FilesDiff {
    /// In `b` only.
    pub added: Vec<PathBuf>,
    /// In `a` only.
    pub removed: Vec<PathBuf>,
    /// In both, with other content.
    pub changed: Vec<PathBuf>,
}

impl RecordDiff {
    /// What changed from `a` to `b`.
    pub fn between(a: &Record, b: &Record) -> RecordDiff {
        RecordDiff {
            packages: packages(&a.packages, &b.packages),
            services: ServicesDiff {
                enabled: only_in(&b.enabled_services, &a.enabled_services),
                disabled: only_in(&a.enabled_services, &b.enabled_services),
            },
            users: users(&a.configuration, &b.configuration),
            config_files: files(&a.config_files, &b.config_files),
        }
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == RecordDiff::default()
    }
}

fn packages(a: &[LockedPackage], b: &[LockedPackage]) -> PackagesDiff {
    let key = |p: &LockedPackage| (p.name.clone(), p.arch.clone());
    let a: BTreeMap<_, _> = a.iter().map(|p| (key(p), p)).collect();
    let b: BTreeMap<_, _> = b.iter().map(|p| (key(p), p)).collect();
    let mut d = PackagesDiff::default();
    for (k, p) in &b {
        match a.get(k) {
            None => d.added.push((*p).clone()),
            Some(old) if old.version != p.version => d.changed.push(PackageChange {
                name: p.name.clone(),
                arch: p.arch.clone(),
                from: old.version.clone(),
                to: p.version.clone(),
            }),
            Some(_) => {}
        }
    }
    d.removed = a
        .iter()
        .filter(|(k, _)| !b.contains_key(*k))
        .map(|(_, p)| (*p).clone())
        .collect();
    d
}

/// The entries of `x` that `y` lacks, in `x`'s order.
fn only_in(x: &[String], y: &[String]) -> Vec<String> {
    let y: BTreeSet<&String> = y.iter().collect();
    x.iter().filter(|s| !y.contains(s)).cloned().collect()
}

/// The plan's accounts: `users`, an object by login (empty when a record
/// has none, as older or foreign records may not).
fn accounts(plan: &serde_json::Value) -> BTreeMap<&str, &serde_json::Value> {
    plan.get("users")
        .and_then(|u| u.as_object())
        .map(|u| u.iter().map(|(k, v)| (k.as_str(), v)).collect())
        .unwrap_or_default()
}

fn users(a: &serde_json::Value, b: &serde_json::Value) -> UsersDiff {
    let (a, b) = (accounts(a), accounts(b));
    let mut d = UsersDiff {
        added: b
            .keys()
            .filter(|k| !a.contains_key(*k))
            .map(|k| k.to_string())
            .collect(),
        removed: a
            .keys()
            .filter(|k| !b.contains_key(*k))
            .map(|k| k.to_string())
            .collect(),
        changed: Vec::new(),
    };
    for (login, new) in &b {
        let Some(old) = a.get(login) else { continue };
        if old == new {
            continue;
        }
        let fields = match (old.as_object(), new.as_object()) {
            (Some(o), Some(n)) => {
                let names: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
                names
                    .into_iter()
                    .filter(|f| o.get(*f) != n.get(*f))
                    .cloned()
                    .collect()
            }
            _ => Vec::new(),
        };
        d.changed.push(UserChange {
            name: login.to_string(),
            fields,
        });
    }
    d
}

fn files(a: &[(PathBuf, Vec<u8>)], b: &[(PathBuf, Vec<u8>)]) -> FilesDiff {
    let a: BTreeMap<_, _> = a.iter().map(|(p, d)| (p, d)).collect();
    let b: BTreeMap<_, _> = b.iter().map(|(p, d)| (p, d)).collect();
    FilesDiff {
        added: b
            .keys()
            .filter(|p| !a.contains_key(*p))
            .map(|p| (*p).clone())
            .collect(),
        removed: a
            .keys()
            .filter(|p| !b.contains_key(*p))
            .map(|p| (*p).clone())
            .collect(),
        changed: b
            .iter()
            .filter(|(p, d)| a.get(*p).is_some_and(|old| old != *d))
            .map(|(p, _)| (*p).clone())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pkg(name: &str, version: &str, arch: &str) -> LockedPackage {
        LockedPackage {
            name: name.into(),
            version: version.into(),
            arch: arch.into(),
        }
    }

    fn user(groups: &[&str], shell: &str) -> serde_json::Value {
        json!({"full_name": null, "password": "hashed", "home": "/home/x",
               "shell": shell, "groups": groups, "ssh_authorized": [], "services": []})
    }

    #[test]
    fn two_records_differ_in_packages_services_users_and_files() {
        let a = Record {
            packages: vec![
                pkg("base-files", "12.4", "amd64"),
                pkg("libc6", "2.36-9", "amd64"),
                pkg("libc6", "2.36-9", "i386"),
                pkg("nano", "7.2-1", "amd64"),
            ],
            enabled_services: vec!["cron.service".into(), "ssh.service".into()],
            configuration: json!({"users": {
                "ann": user(&["wheel"], "/bin/bash"),
                "bob": user(&[], "/bin/sh"),
                "eve": user(&[], "/bin/sh"),
            }}),
            config_files: vec![
                ("configuration.lua".into(), b"return {}".to_vec()),
                ("modules/old.lua".into(), b"x".to_vec()),
                ("same.lua".into(), b"s".to_vec()),
            ],
            ..Record::default()
        };
        let b = Record {
            packages: vec![
                pkg("base-files", "12.4", "amd64"),
                pkg("libc6", "2.36-10", "amd64"),
                pkg("libc6", "2.36-9", "i386"),
                pkg("vim", "2:9.0.1378-2", "amd64"),
            ],
            enabled_services: vec!["ssh.service".into(), "systemd-networkd.service".into()],
            configuration: json!({"users": {
                "ann": user(&["wheel", "audio"], "/bin/zsh"),
                "bob": user(&[], "/bin/sh"),
                "carol": user(&[], "/bin/sh"),
            }}),
            config_files: vec![
                ("configuration.lua".into(), b"return { x = 1 }".to_vec()),
                ("modules/new.lua".into(), b"y".to_vec()),
                ("same.lua".into(), b"s".to_vec()),
            ],
            ..Record::default()
        };
        let d = RecordDiff::between(&a, &b);
        assert_eq!(d.packages.added, [pkg("vim", "2:9.0.1378-2", "amd64")]);
        assert_eq!(d.packages.removed, [pkg("nano", "7.2-1", "amd64")]);
        assert_eq!(
            d.packages.changed,
            [PackageChange {
                name: "libc6".into(),
                arch: "amd64".into(),
                from: "2.36-9".into(),
                to: "2.36-10".into(),
            }]
        );
        assert_eq!(d.services.enabled, ["systemd-networkd.service"]);
        assert_eq!(d.services.disabled, ["cron.service"]);
        assert_eq!(d.users.added, ["carol"]);
        assert_eq!(d.users.removed, ["eve"]);
        assert_eq!(
            d.users.changed,
            [UserChange {
                name: "ann".into(),
                fields: vec!["groups".into(), "shell".into()],
            }]
        );
        assert_eq!(d.config_files.added, [PathBuf::from("modules/new.lua")]);
        assert_eq!(d.config_files.removed, [PathBuf::from("modules/old.lua")]);
        assert_eq!(d.config_files.changed, [PathBuf::from("configuration.lua")]);
        assert!(!d.is_empty());

        // The other way round, everything swaps.
        let r = RecordDiff::between(&b, &a);
        assert_eq!(r.packages.added, d.packages.removed);
        assert_eq!(r.services.enabled, d.services.disabled);
        assert_eq!(r.users.removed, d.users.added);
        assert_eq!(r.packages.changed[0].to, "2.36-9");
        // A record against itself, and records without a plan's users.
        assert!(RecordDiff::between(&a, &a).is_empty());
        assert!(RecordDiff::between(&Record::default(), &Record::default()).is_empty());
        let no_users = Record {
            configuration: json!({"generation": 1}),
            ..Record::default()
        };
        assert_eq!(
            RecordDiff::between(&no_users, &b).users.added,
            ["ann", "bob", "carol"]
        );
    }
}
