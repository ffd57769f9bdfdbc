//! `kod env list` and `kod env status`: what each environment is and holds.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::EnvError;
use crate::store::{Env, Ownership, Scope, format_utc};
use crate::view::{self, Conflict, Mode};

/// One line of `kod env list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The name.
    pub name: String,
    /// Its store.
    pub scope: Scope,
    /// `DISTRO:RELEASE` label.
    pub distro: String,
    /// When it was made (UTC).
    pub created: String,
    /// Its root directory.
    pub root: PathBuf,
}

/// An installed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Installed {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
}

/// Disk usage of a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Size {
    /// Bytes allocated (hard links counted once, other filesystems not
    /// entered).
    pub bytes: u64,
    /// Directories that could not be read (so `bytes` is a lower bound).
    pub unreadable_dirs: u64,
}

/// `kod env status` of one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The name.
    pub name: String,
    /// Its store.
    pub scope: Scope,
    /// The store's directory.
    pub store: PathBuf,
    /// `DISTRO:RELEASE` label.
    pub distro: String,
    /// The distribution (before the `:`).
    pub distribution: String,
    /// The release (after the `:`).
    pub release: String,
    /// When it was made (UTC).
    pub created: String,
    /// How it was made.
    pub origin: String,
    /// Its root directory.
    pub root: PathBuf,
    /// How its files are owned.
    pub ownership: Ownership,
    /// Disk usage.
    pub size: Size,
    /// Packages asked for.
    pub requested: Vec<String>,
    /// Packages installed, from its dpkg database (absent without one).
    pub installed: Option<Vec<Installed>>,
    /// Exported programs.
    pub exports: Vec<String>,
    /// Exported desktop applications.
    pub apps: Vec<String>,
    /// Host paths bound on every run.
    pub volumes: Vec<PathBuf>,
    /// The store's view mode.
    pub view: Mode,
    /// In the isolated view: whether the stable path shows this one.
    pub current: bool,
    /// The PATH directory of its exports in the store's view.
    pub view_bin: PathBuf,
    /// Conflicts this environment's exports are part of.
    pub conflicts: Vec<Conflict>,
}

/// The list line of `env`.
pub fn summary(env: &Env) -> Summary {
    Summary {
        name: env.name.clone(),
        scope: env.store.scope,
        distro: env.record.distro.clone(),
        created: format_utc(env.record.created),
        root: env.root(),
    }
}

/// The installed packages (fully configured) of a dpkg status file's
/// text, as kod-db reads it; `NAME:ARCH` for `Multi-Arch: same` ones. An
/// unreadable text has none.
pub fn dpkg_installed(text: &str) -> Vec<Installed> {
    let Ok(all) = kod_db::dpkg::parse_installed(text, "") else {
        return Vec::new();
    };
    let mut out: Vec<Installed> = all
        .packages()
        .iter()
        .filter(|p| p.state() == "installed")
        .map(|p| {
            let r = p.record();
            let multi = r.multi_arch == kod_repo::MultiArch::Same;
            Installed {
                name: if multi && !r.architecture.is_empty() {
                    format!("{}:{}", r.name, r.architecture)
                } else {
                    r.name.to_string()
                },
                version: r.version.as_str().to_string(),
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Installed package names without `:ARCH`, for comparing with requests.
pub fn installed_names(env: &Env) -> Option<HashSet<String>> {
    let text = std::fs::read_to_string(env.root().join("var/lib/dpkg/status")).ok()?;
    Some(
        dpkg_installed(&text)
            .into_iter()
            .map(|p| p.name.split(':').next().unwrap_or(&p.name).to_string())
            .collect(),
    )
}

/// Disk usage of the tree at `root`: allocated blocks, each inode once,
/// never crossing into another filesystem.
pub fn disk_usage(root: &Path) -> Size {
    let mut size = Size {
        bytes: 0,
        unreadable_dirs: 0,
    };
    let Ok(top) = std::fs::symlink_metadata(root) else {
        size.unreadable_dirs = 1;
        return size;
    };
    let dev = top.dev();
    let mut seen = HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    size.bytes += top.blocks() * 512;
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            size.unreadable_dirs += 1;
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.dev() != dev {
                continue;
            }
            if m.nlink() > 1 && !m.is_dir() && !seen.insert(m.ino()) {
                continue;
            }
            size.bytes += m.blocks() * 512;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    size
}

/// The status of `env`.
pub fn status(env: &Env) -> Result<Status, EnvError> {
    let (v, _) = view::compute(&env.store)?;
    let root = env.root();
    let installed = std::fs::read_to_string(root.join("var/lib/dpkg/status"))
        .ok()
        .map(|t| dpkg_installed(&t));
    Ok(Status {
        name: env.name.clone(),
        scope: env.store.scope,
        store: env.store.dir.clone(),
        distro: env.record.distro.clone(),
        distribution: env.record.distribution().to_string(),
        release: env.record.release().to_string(),
        created: format_utc(env.record.created),
        origin: env.record.origin.clone(),
        size: disk_usage(&root),
        root,
        ownership: env.record.ownership,
        requested: env.record.packages.clone(),
        installed,
        exports: env.record.bins.iter().map(|b| b.name.clone()).collect(),
        apps: env.record.apps.clone(),
        volumes: env.record.volumes.clone(),
        view: v.mode,
        current: v.current.as_deref() == Some(env.name.as_str()),
        view_bin: match v.mode {
            Mode::Unified => v.bin.clone(),
            Mode::Isolated => env.exports_dir().join("bin"),
        },
        conflicts: v
            .conflicts
            .into_iter()
            .filter(|c| c.envs.contains(&env.name))
            .collect(),
    })
}

/// A human size: `12.3 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_packages_come_from_dpkg_status() {
        let text = "\
Package: hello
Status: install ok installed
Architecture: amd64
Version: 2.10-3

Package: gone
Status: deinstall ok config-files
Version: 1

Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 2.41-6
";
        assert_eq!(
            dpkg_installed(text),
            vec![
                Installed {
                    name: "hello".into(),
                    version: "2.10-3".into()
                },
                Installed {
                    name: "libc6:amd64".into(),
                    version: "2.41-6".into()
                },
            ]
        );
    }

    #[test]
    fn disk_usage_counts_hard_links_once() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), vec![1u8; 100_000]).unwrap();
        let one = disk_usage(d.path()).bytes;
        std::fs::hard_link(d.path().join("a"), d.path().join("b")).unwrap();
        assert_eq!(disk_usage(d.path()).bytes, one);
        assert!(one >= 100_000);
    }

    #[test]
    fn sizes_are_human() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(130 * 1024 * 1024), "130.0 MiB");
    }
}
