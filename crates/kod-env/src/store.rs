//! Where environments live, and each one's record.
//!
//! A store is one directory of environments:
//!
//! ```text
//! STORE/NAME/root/            the environment's root (unless adopted in place)
//! STORE/NAME/env.json         its record
//! STORE/NAME/exports/bin/     launchers of its exported programs
//! STORE/NAME/exports/share/   its exported desktop files and icons
//! STORE/.view.json            view settings (mode, priority, current)
//! STORE/.unified/             the unified view
//! STORE/.view -> ...          the stable path: `.unified` or `NAME/exports`
//! STORE/.NAME.kod-tmp-PID-... an environment being built or deleted, a view
//!                             being made (kod's temporaries, removed by the
//!                             next kod once their process is gone)
//! ```
//!
//! Environment names never start with `.`, so kod's own entries cannot
//! collide with them.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use kod_sandbox::Caller;

use crate::error::EnvError;

/// The system-wide store: made by root, runnable by every user.
pub const SYSTEM_DIR: &str = "/var/lib/kod/envs";

/// The environment variable that replaces both stores with one directory.
pub const ENVS_DIR_ENV: &str = "KOD_ENVS_DIR";

/// Which store an environment is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// `/var/lib/kod/envs`.
    System,
    /// `$XDG_DATA_HOME/kod/envs`.
    Personal,
    /// `$KOD_ENVS_DIR`.
    Custom,
}

impl Scope {
    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Scope::System => "system",
            Scope::Personal => "personal",
            Scope::Custom => "custom",
        }
    }
}

/// Checks an environment name: not empty, no `/`, not `.` or `..` and not
/// starting with `.` (kod's own entries do), no NUL or control characters,
/// at most 64 bytes.
pub fn validate_name(name: &str) -> Result<(), EnvError> {
    let why = if name.is_empty() {
        Some("it is empty")
    } else if name.contains('/') {
        Some("it contains `/`")
    } else if name.starts_with('.') {
        Some("it starts with `.` (that includes `.` and `..`)")
    } else if name.chars().any(|c| c.is_control()) {
        Some("it contains a control character")
    } else if name.len() > 64 {
        Some("it is longer than 64 bytes")
    } else {
        None
    };
    match why {
        Some(why) => Err(EnvError::Name {
            name: name.to_string(),
            why,
        }),
        None => Ok(()),
    }
}

/// How an environment's files are owned on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ownership {
    /// By the ids its archive or package manager gave them (made by root).
    Host,
    /// Shifted into the owner's subordinate ids: root's files are the
    /// owner's, others' are in /etc/subuid's range. Changing it needs the
    /// owner's user namespace.
    SubIds,
    /// Everything belongs to the user who made it (no subordinate ids).
    Caller,
}

/// What kod knows about an environment: `env.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// `DISTRO:RELEASE` (or any label given to `kod env import`).
    pub distro: String,
    /// When it was made (seconds since the epoch).
    pub created: u64,
    /// How it was made: `create`, or `import:SOURCE`.
    pub origin: String,
    /// Packages asked for (by `create`, `install` or the configuration).
    #[serde(default)]
    pub packages: Vec<String>,
    /// Exported programs (launcher names) and their paths inside.
    #[serde(default)]
    pub bins: Vec<ExportedBin>,
    /// Exported desktop application ids.
    #[serde(default)]
    pub apps: Vec<String>,
    /// Host paths bound into it on every run.
    #[serde(default)]
    pub volumes: Vec<PathBuf>,
    /// A root adopted in place (`kod env import NAME DIR`); else the root
    /// is `NAME/root` in the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    /// How its files are owned.
    pub ownership: Ownership,
}

/// An exported program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedBin {
    /// The launcher's name.
    pub name: String,
    /// The program's path inside the environment.
    pub path: PathBuf,
}

impl Record {
    /// A new record made now.
    pub fn new(distro: &str, origin: String, ownership: Ownership) -> Record {
        Record {
            distro: distro.to_string(),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            origin,
            packages: Vec::new(),
            bins: Vec::new(),
            apps: Vec::new(),
            volumes: Vec::new(),
            root: None,
            ownership,
        }
    }

    /// The distribution part of the label (`debian` of `debian:sid`).
    pub fn distribution(&self) -> &str {
        self.distro.split_once(':').map_or(&self.distro, |(d, _)| d)
    }

    /// The release part of the label (`sid` of `debian:sid`; empty without
    /// one).
    pub fn release(&self) -> &str {
        self.distro.split_once(':').map_or("", |(_, r)| r)
    }
}

/// One directory of environments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    /// The directory.
    pub dir: PathBuf,
    /// Which one it is.
    pub scope: Scope,
}

/// One environment.
#[derive(Debug, Clone)]
pub struct Env {
    /// Its name.
    pub name: String,
    /// Its store.
    pub store: Store,
    /// Its record.
    pub record: Record,
}

impl Env {
    /// Its directory in the store.
    pub fn dir(&self) -> PathBuf {
        self.store.dir.join(&self.name)
    }

    /// Its root directory.
    pub fn root(&self) -> PathBuf {
        self.record
            .root
            .clone()
            .unwrap_or_else(|| self.dir().join("root"))
    }

    /// Its exports directory (`exports/bin`, `exports/share/...`).
    pub fn exports_dir(&self) -> PathBuf {
        self.dir().join("exports")
    }

    /// Writes its record (atomically).
    pub fn save(&self) -> Result<(), EnvError> {
        write_record(&self.dir(), &self.record)
    }
}

pub(crate) fn write_record(dir: &Path, record: &Record) -> Result<(), EnvError> {
    write_json(&dir.join("env.json"), record)
}

/// Writes `value` as pretty JSON to `path`, atomically.
pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> Result<(), EnvError> {
    let mut text = serde_json::to_vec_pretty(value).map_err(|e| EnvError::Record {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    text.push(b'\n');
    kod_root::write_atomic(path, &text).map_err(EnvError::io("write", path))
}

impl Store {
    /// The store at `dir`.
    pub fn new(dir: impl Into<PathBuf>, scope: Scope) -> Store {
        Store {
            dir: dir.into(),
            scope,
        }
    }

    /// The directory of environment `name`.
    pub fn env_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Environment `name` of this store, if it has one.
    pub fn get(&self, name: &str) -> Result<Option<Env>, EnvError> {
        validate_name(name)?;
        let path = self.env_dir(name).join("env.json");
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(EnvError::Io {
                    op: "read",
                    path,
                    source: e,
                });
            }
        };
        let record = serde_json::from_slice(&text).map_err(|e| EnvError::Record {
            path,
            detail: e.to_string(),
        })?;
        Ok(Some(Env {
            name: name.to_string(),
            store: self.clone(),
            record,
        }))
    }

    /// Every environment of this store, by name.
    pub fn list(&self) -> Result<Vec<Env>, EnvError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(EnvError::Io {
                    op: "list",
                    path: self.dir.clone(),
                    source: e,
                });
            }
        };
        let mut envs = Vec::new();
        for e in entries {
            let e = e.map_err(EnvError::io("list", &self.dir))?;
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if validate_name(&name).is_err() {
                continue;
            }
            if let Some(env) = self.get(&name)? {
                envs.push(env);
            }
        }
        envs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(envs)
    }

    /// Creates the store directory if needed, and removes what killed kod
    /// processes left in it (environments half built or half deleted,
    /// views half made).
    pub fn ensure(&self) -> Result<(), EnvError> {
        std::fs::create_dir_all(&self.dir).map_err(EnvError::io("create", &self.dir))?;
        match kod_root::remove_stale_temporaries(&self.dir) {
            Ok(gone) => {
                for p in gone {
                    tracing::info!("removed {}, left by an interrupted kod", p.display());
                }
            }
            Err(e) => tracing::warn!("{e}"),
        }
        Ok(())
    }

    /// A temporary path in the store for `name` (kod's temporary-name
    /// scheme: unique to this process, thread and call, and removed by a
    /// later [`Store::ensure`] if this process dies): where an environment
    /// is built before it appears under its name, or moved before it is
    /// deleted.
    pub(crate) fn temp_dir(&self, name: &str) -> PathBuf {
        self.dir
            .join(kod_root::temp_name(std::ffi::OsStr::new(name)))
    }
}

/// The stores a caller sees: where `kod run` looks, in order, and where new
/// environments go.
#[derive(Debug, Clone)]
pub struct Locations {
    /// Searched in order.
    pub search: Vec<Store>,
    /// Where this caller creates environments.
    pub writable: Store,
}

impl Locations {
    /// The caller's stores: `KOD_ENVS_DIR` alone if set; else the personal
    /// store (`$XDG_DATA_HOME/kod/envs`, default `~/.local/share/kod/envs`)
    /// then the system store. Root creates in the system store, everyone
    /// else in their personal one.
    pub fn for_caller(caller: Caller) -> Locations {
        Locations::from_vars(
            caller,
            std::env::var_os(ENVS_DIR_ENV).map(PathBuf::from),
            std::env::var_os("XDG_DATA_HOME").map(PathBuf::from),
            std::env::var_os("HOME").map(PathBuf::from),
        )
    }

    /// [`Locations::for_caller`] with the variables given.
    pub fn from_vars(
        caller: Caller,
        envs_dir: Option<PathBuf>,
        xdg_data_home: Option<PathBuf>,
        home: Option<PathBuf>,
    ) -> Locations {
        if let Some(d) = envs_dir.filter(|d| !d.as_os_str().is_empty()) {
            let s = Store::new(d, Scope::Custom);
            return Locations {
                search: vec![s.clone()],
                writable: s,
            };
        }
        let system = Store::new(SYSTEM_DIR, Scope::System);
        let data = xdg_data_home
            .filter(|d| d.is_absolute())
            .or_else(|| home.map(|h| h.join(".local/share")));
        let mut search = Vec::new();
        let personal = data.map(|d| Store::new(d.join("kod/envs"), Scope::Personal));
        search.extend(personal.clone());
        search.push(system.clone());
        let writable = match personal {
            Some(p) if !caller.is_root() => p,
            _ => system,
        };
        Locations { search, writable }
    }

    /// Environment `name`: the first store that has it.
    pub fn find(&self, name: &str) -> Result<Env, EnvError> {
        validate_name(name)?;
        for s in &self.search {
            if let Some(e) = s.get(name)? {
                return Ok(e);
            }
        }
        Err(EnvError::NotFound {
            name: name.to_string(),
            searched: self.search.iter().map(|s| s.dir.clone()).collect(),
        })
    }

    /// Every environment the caller sees, store by store.
    pub fn list(&self) -> Result<Vec<Env>, EnvError> {
        let mut out = Vec::new();
        for s in &self.search {
            out.extend(s.list()?);
        }
        Ok(out)
    }
}

/// `secs` since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        for good in ["sid", "debian-12", "my_env.2", "Ünïcode"] {
            validate_name(good).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "/abs",
            "../up",
            "tab\there",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_name(&"x".repeat(65)).is_err());
        let e = validate_name("a/b").unwrap_err().to_string();
        assert!(e.contains("contains `/`"), "{e}");
    }

    #[test]
    fn stores_follow_the_caller_and_the_override() {
        let user = Caller {
            uid: 1000,
            gid: 1000,
        };
        let root = Caller { uid: 0, gid: 0 };
        let l = Locations::from_vars(user, None, None, Some("/home/a".into()));
        assert_eq!(l.writable.dir, Path::new("/home/a/.local/share/kod/envs"));
        assert_eq!(l.writable.scope, Scope::Personal);
        assert_eq!(
            l.search.iter().map(|s| s.scope).collect::<Vec<_>>(),
            [Scope::Personal, Scope::System]
        );
        let l = Locations::from_vars(user, None, Some("/x/data".into()), Some("/home/a".into()));
        assert_eq!(l.writable.dir, Path::new("/x/data/kod/envs"));
        // A relative XDG_DATA_HOME is ignored, as the spec says.
        let l = Locations::from_vars(user, None, Some("rel".into()), Some("/home/a".into()));
        assert_eq!(l.writable.dir, Path::new("/home/a/.local/share/kod/envs"));
        let l = Locations::from_vars(root, None, None, Some("/root".into()));
        assert_eq!(l.writable.dir, Path::new(SYSTEM_DIR));
        assert_eq!(l.search.len(), 2);
        let l = Locations::from_vars(user, Some("/e".into()), None, Some("/home/a".into()));
        assert_eq!(l.search, vec![Store::new("/e", Scope::Custom)]);
        assert_eq!(l.writable.dir, Path::new("/e"));
    }

    #[test]
    fn records_round_trip_and_split_labels() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path(), Scope::Custom);
        let mut r = Record::new("debian:sid", "create".into(), Ownership::Host);
        r.packages = vec!["hello".into()];
        std::fs::create_dir(store.env_dir("sid")).unwrap();
        write_record(&store.env_dir("sid"), &r).unwrap();
        // Not an environment: kod's own entries and names without a record.
        std::fs::create_dir(dir.path().join(".unified")).unwrap();
        std::fs::create_dir(dir.path().join("stray")).unwrap();
        let envs = store.list().unwrap();
        assert_eq!(envs.len(), 1);
        assert_eq!(envs[0].record, r);
        assert_eq!(envs[0].record.distribution(), "debian");
        assert_eq!(envs[0].record.release(), "sid");
        assert_eq!(envs[0].root(), store.env_dir("sid").join("root"));
        let l = Locations::from_vars(
            Caller { uid: 5, gid: 5 },
            Some(dir.path().into()),
            None,
            None,
        );
        assert_eq!(l.find("sid").unwrap().name, "sid");
        assert!(matches!(l.find("nope"), Err(EnvError::NotFound { .. })));
        assert!(matches!(l.find("../x"), Err(EnvError::Name { .. })));
    }

    #[test]
    fn times_format_as_utc() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
