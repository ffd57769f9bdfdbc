//! What the solver needs of dpkg's status file: every package whose files
//! are on disk, as a neutral [`InstalledPackage`] with its relations.
//! The file is read by [`Status`], the one reader of it.

use std::path::{Path, PathBuf};

use kod_repo::debian::relations::{Target, parse_dependencies, parse_provides, parse_relations};
use kod_repo::{
    Location, MultiArch, OriginId, PackageRecord, Priority, Scheme, Sha256, Text, Version,
};

use super::control::{Stanza, parse_stanzas};
use super::status::STATUS;
use crate::{Installed, InstalledPackage};

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
    /// 1-based position of the entry (0: the text is not a list of
    /// entries at all; the reason names the line).
    pub paragraph: usize,
    /// The package name, when the entry has one.
    pub package: String,
    /// What is wrong.
    pub reason: String,
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

/// Reads `ROOT/var/lib/dpkg/status`. `architecture` is the root's native
/// architecture (a package of another one is kept, but only a package of
/// `architecture` or `all` stands for its name).
pub fn read_installed(root: &Path, architecture: &str) -> Result<Installed, InstalledError> {
    let path = root.join(STATUS);
    let text = std::fs::read_to_string(&path).map_err(|source| InstalledError::Read {
        path: path.clone(),
        source,
    })?;
    parse_installed(&text, architecture)
        .map_err(|source| InstalledError::Malformed { path, source })
}

/// Parses the text of a dpkg status file; entries whose files are not on
/// disk (`not-installed`, `config-files`) are left out.
pub fn parse_installed(text: &str, architecture: &str) -> Result<Installed, StatusError> {
    let stanzas = parse_stanzas(text).map_err(|reason| StatusError {
        paragraph: 0,
        package: String::new(),
        reason,
    })?;
    installed_from(&stanzas, architecture)
}

/// The present packages of parsed status stanzas.
pub(crate) fn installed_from(
    stanzas: &[Stanza],
    architecture: &str,
) -> Result<Installed, StatusError> {
    let target = Target {
        architecture,
        profiles: &[],
    };
    let mut packages = Vec::new();
    for (i, stanza) in stanzas.iter().enumerate() {
        let package = entry(stanza, target).map_err(|(package, reason)| StatusError {
            paragraph: i + 1,
            package,
            reason,
        })?;
        packages.extend(package);
    }
    Ok(Installed::new(packages, architecture))
}

/// One status entry; `None` when the package is not on disk.
fn entry(
    stanza: &Stanza,
    target: Target<'_>,
) -> Result<Option<InstalledPackage>, (String, String)> {
    // Continuation lines joined, as one logical line.
    let field = |name: &str| {
        stanza
            .get(name)
            .map(|v| v.lines().map(str::trim).collect::<Vec<_>>().join(" "))
    };
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
            stanza
                .get("Description")
                .and_then(|d| d.lines().next())
                .map_or("", str::trim),
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
    Ok(Some(InstalledPackage::new(record, state)))
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
        let inst = parse_installed(STATUS, "amd64").unwrap();
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
        let e = parse_installed(&bad, "amd64").unwrap_err();
        assert_eq!((e.paragraph, e.package.as_str()), (4, "mawk"));
        assert!(
            e.to_string()
                .starts_with("bad entry 4 (package \"mawk\"): invalid"),
            "{e}"
        );
        let e = read_installed(Path::new("/nonexistent-kod-root"), "amd64").unwrap_err();
        assert!(
            e.to_string()
                .contains("/nonexistent-kod-root/var/lib/dpkg/status"),
            "{e}"
        );
    }
}
