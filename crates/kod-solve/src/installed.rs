//! The packages installed in a root, read from its package database, so
//! that a resolution keeps them and prefers them.
//!
//! The Debian backend's database is dpkg's `/var/lib/dpkg/status`; other
//! backends add their readers here, producing the same [`Installed`].

use std::path::{Path, PathBuf};

use deb822_fast::borrowed::{BorrowedParagraph, iter_paragraphs_borrowed};
use kod_repo::debian::relations::{Target, parse_dependencies, parse_provides, parse_relations};
use kod_repo::{
    Location, MultiArch, OriginId, PackageRecord, Priority, Scheme, Sha256, Text, Version,
};
use rustc_hash::FxHashMap;

/// Where dpkg keeps its status database inside a root.
pub const DPKG_STATUS: &str = "var/lib/dpkg/status";

/// The package database of a root could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InstalledError {
    /// The file could not be read.
    #[error(
        "cannot read the package database {path}: {source} (give the root directory of an \
         installed system, the one that holds var/lib/dpkg)"
    )]
    Read {
        /// The status file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// An entry of the file is malformed.
    #[error("{source} in the package database {path} (check the file with `dpkg --audit`)")]
    Malformed {
        /// The status file.
        path: PathBuf,
        /// The entry and what is wrong with it.
        #[source]
        source: StatusError,
    },
}

/// A malformed entry of a dpkg status text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad entry {paragraph} (package {package:?}): {reason}")]
pub struct StatusError {
    /// 1-based position of the entry.
    pub paragraph: usize,
    /// The package name, when the entry has one.
    pub package: String,
    /// What is wrong.
    pub reason: String,
}

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

    /// dpkg's state word (`installed`, `unpacked`, `half-configured`...).
    pub fn state(&self) -> &str {
        &self.state
    }

    /// The package's metadata as the database records it. It has no
    /// download location (its [`Location`] is empty, of size 0).
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

/// dpkg states in which a package's files are on disk.
const PRESENT: &[&str] = &[
    "installed",
    "unpacked",
    "half-configured",
    "half-installed",
    "triggers-awaited",
    "triggers-pending",
];

impl Installed {
    /// Reads `ROOT/var/lib/dpkg/status`. `architecture` is the root's native
    /// architecture (a package of another one is kept, but only a package
    /// of `architecture` or `all` stands for its name).
    pub fn read_root(root: &Path, architecture: &str) -> Result<Installed, InstalledError> {
        Installed::read_dpkg_status(&root.join(DPKG_STATUS), architecture)
    }

    /// Reads a dpkg status file.
    pub fn read_dpkg_status(path: &Path, architecture: &str) -> Result<Installed, InstalledError> {
        let text = std::fs::read_to_string(path).map_err(|source| InstalledError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Installed::parse_dpkg_status(&text, architecture).map_err(|source| {
            InstalledError::Malformed {
                path: path.to_path_buf(),
                source,
            }
        })
    }

    /// Parses the text of a dpkg status file; entries whose files are not
    /// on disk (`not-installed`, `config-files`) are left out.
    pub fn parse_dpkg_status(text: &str, architecture: &str) -> Result<Installed, StatusError> {
        let target = Target {
            architecture,
            profiles: &[],
        };
        let mut out = Installed::default();
        for (i, para) in iter_paragraphs_borrowed(text).enumerate() {
            let bad = |package: String, reason: String| StatusError {
                paragraph: i + 1,
                package,
                reason,
            };
            let para = para.map_err(|e| bad(String::new(), e.to_string()))?;
            let Some(package) = entry(&para, target).map_err(|(p, r)| bad(p, r))? else {
                continue;
            };
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
        Ok(out)
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

    /// Number of installed packages.
    pub fn len(&self) -> usize {
        self.packages.len()
    }

    /// Whether nothing is installed.
    pub fn is_empty(&self) -> bool {
        self.packages.is_empty()
    }
}

/// One status entry; `None` when the package is not on disk.
fn entry(
    para: &BorrowedParagraph<'_>,
    target: Target<'_>,
) -> Result<Option<InstalledPackage>, (String, String)> {
    let field = |name: &str| para.get(name).map(|lines| lines.join(" "));
    let name = field("Package").ok_or((String::new(), "no Package field".to_string()))?;
    let name = name.trim().to_string();
    let err = |reason: String| (name.clone(), reason);
    let status = field("Status").ok_or_else(|| err("no Status field".into()))?;
    let state = status.split_whitespace().nth(2).unwrap_or("");
    if !PRESENT.contains(&state) {
        return Ok(None);
    }
    let version = field("Version").ok_or_else(|| err("no Version field".into()))?;
    let version = Version::parse(Scheme::Debian, version.trim()).map_err(|e| err(e.to_string()))?;
    let deps = |f: &str| {
        parse_dependencies(&field(f).unwrap_or_default(), target).map_err(|e| err(e.to_string()))
    };
    let flat = |f: &str| {
        parse_relations(&field(f).unwrap_or_default(), target).map_err(|e| err(e.to_string()))
    };
    let text = |f: &str| Text::new(field(f).unwrap_or_default().trim());
    let multi_arch = match field("Multi-Arch").as_deref().map(str::trim) {
        Some("same") => MultiArch::Same,
        Some("foreign") => MultiArch::Foreign,
        Some("allowed") => MultiArch::Allowed,
        _ => MultiArch::No,
    };
    let priority = match field("Priority").as_deref().map(str::trim) {
        Some("required") => Priority::Required,
        Some("important") => Priority::Important,
        Some("standard") => Priority::Standard,
        Some("extra") => Priority::Extra,
        _ => Priority::Optional,
    };
    let record = PackageRecord {
        name: Text::new(&name),
        version,
        architecture: text("Architecture"),
        multi_arch,
        essential: field("Essential").is_some_and(|e| e.trim() == "yes"),
        priority,
        section: text("Section"),
        source: Text::new(
            field("Source")
                .as_deref()
                .and_then(|s| s.split_whitespace().next())
                .unwrap_or(&name),
        ),
        source_version: None,
        installed_size: field("Installed-Size").and_then(|s| s.trim().parse().ok()),
        description: Text::new(
            para.get("Description")
                .and_then(|l| l.first())
                .map_or("", |l| l.trim()),
        ),
        depends: deps("Depends")?,
        pre_depends: deps("Pre-Depends")?,
        recommends: deps("Recommends")?,
        suggests: deps("Suggests")?,
        provides: parse_provides(&field("Provides").unwrap_or_default(), target)
            .map_err(|e| err(e.to_string()))?,
        conflicts: flat("Conflicts")?,
        breaks: flat("Breaks")?,
        replaces: flat("Replaces")?,
        location: Location {
            path: Text::default(),
            size: 0,
            sha256: Sha256([0; 32]),
        },
        origin: OriginId(u16::MAX),
    };
    Ok(Some(InstalledPackage {
        record,
        state: Text::new(state),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "\
Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 12000
Architecture: amd64
Multi-Arch: same
Version: 2.36-9+deb12u4
Depends: libgcc-s1
Breaks: hurd (<< 1:0.9.git20220301-2)
Description: GNU C Library
 long text

Package: old
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: libc6
Status: install ok installed
Architecture: i386
Multi-Arch: same
Version: 2.36-9+deb12u4

Package: mawk
Status: install ok unpacked
Essential: yes
Priority: required
Architecture: amd64
Version: 1.3.4.20200120-3.1
Provides: awk
Pre-Depends: libc6 (>= 2.34)
";

    #[test]
    fn reads_present_packages_with_their_relations() {
        let inst = Installed::parse_dpkg_status(STATUS, "amd64").unwrap();
        assert_eq!(inst.len(), 3, "config-files entries are not installed");
        let libc = inst.get("libc6").unwrap();
        assert_eq!(
            libc.architecture(),
            "amd64",
            "the native one stands for the name"
        );
        assert_eq!(libc.version().as_str(), "2.36-9+deb12u4");
        assert_eq!(
            libc.record().breaks[0].to_string(),
            "hurd (<< 1:0.9.git20220301-2)"
        );
        assert_eq!(libc.record().description, "GNU C Library");
        let mawk = inst.get("mawk").unwrap();
        assert_eq!(mawk.state(), "unpacked");
        assert!(mawk.record().essential);
        assert_eq!(mawk.record().provides[0].name, "awk");
        assert_eq!(
            mawk.record().pre_depends[0][0].to_string(),
            "libc6 (>= 2.34)"
        );
        assert!(inst.get("old").is_none());
    }

    #[test]
    fn errors_name_entry_and_package() {
        let bad = STATUS.replace("Version: 1.3.4.20200120-3.1", "Version: 1 3");
        let e = Installed::parse_dpkg_status(&bad, "amd64").unwrap_err();
        assert_eq!((e.paragraph, e.package.as_str()), (4, "mawk"));
        assert!(
            e.to_string()
                .starts_with("bad entry 4 (package \"mawk\"): invalid"),
            "{e}"
        );
        let e = Installed::read_root(Path::new("/nonexistent-kod-root"), "amd64").unwrap_err();
        assert!(
            e.to_string()
                .contains("/nonexistent-kod-root/var/lib/dpkg/status"),
            "{e}"
        );
    }
}
