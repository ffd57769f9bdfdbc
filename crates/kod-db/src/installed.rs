//! The packages installed in a root, as a database reads them: the
//! format-neutral set a resolution keeps and prefers.

use kod_repo::{PackageRecord, Text, Version};
use rustc_hash::FxHashMap;

/// One installed package.
#[derive(Debug, Clone)]
pub struct InstalledPackage {
    record: PackageRecord,
    state: Text,
}

impl InstalledPackage {
    /// The package name.
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// The installed version.
    pub fn version(&self) -> &Version {
        &self.record.version
    }

    /// The architecture it was installed for.
    pub fn architecture(&self) -> &str {
        &self.record.architecture
    }

    /// An installed package: its metadata as the database records it (no
    /// download location) and the database's state word.
    pub fn new(record: PackageRecord, state: &str) -> InstalledPackage {
        InstalledPackage {
            record,
            state: Text::new(state),
        }
    }

    /// The database's state word (dpkg's `installed`, `unpacked`,
    /// `half-configured`...).
    pub fn state(&self) -> &str {
        &self.state
    }

    /// The package's metadata as the database records it. It has no
    /// download location (its `Location` is empty, of size 0).
    pub fn record(&self) -> &PackageRecord {
        &self.record
    }
}

/// The packages installed in one root.
#[derive(Debug, Clone, Default)]
pub struct Installed {
    packages: Vec<InstalledPackage>,
    by_name: FxHashMap<Text, usize>,
}

impl Installed {
    /// The set of `packages` (in database order). `architecture` is the
    /// root's native architecture: where a name is installed for several
    /// architectures, the native one (or `all`) stands for the name.
    pub fn new(packages: Vec<InstalledPackage>, architecture: &str) -> Installed {
        let mut out = Installed::default();
        for package in packages {
            let native =
                package.record.architecture == architecture || package.record.architecture == "all";
            match out.by_name.get(&package.record.name) {
                Some(&j) if !native || out.packages[j].record.architecture == architecture => {}
                _ => {
                    out.by_name
                        .insert(package.record.name.clone(), out.packages.len());
                }
            }
            out.packages.push(package);
        }
        out
    }

    /// Every installed package, in database order.
    pub fn packages(&self) -> &[InstalledPackage] {
        &self.packages
    }

    /// The installed package named `name` (of the native architecture or
    /// `all` when there are several), with its position in
    /// [`Installed::packages`].
    pub fn find(&self, name: &str) -> Option<(usize, &InstalledPackage)> {
        self.by_name.get(name).map(|&i| (i, &self.packages[i]))
    }

    /// The installed package named `name`.
    pub fn get(&self, name: &str) -> Option<&InstalledPackage> {
        self.find(name).map(|(_, p)| p)
    }

    /// The installed packages whose names `keep` accepts, as a set of a
    /// root of native `architecture`.
    pub fn only(&self, keep: impl Fn(&str) -> bool, architecture: &str) -> Installed {
        let kept = self.packages.iter().filter(|p| keep(p.name())).cloned();
        Installed::new(kept.collect(), architecture)
    }

    /// Number of installed packages.
    pub fn len(&self) -> usize {
        self.packages.len()
    }

    /// Whether nothing is installed.
    pub fn is_empty(&self) -> bool {
        self.packages.is_empty()
    }
}
