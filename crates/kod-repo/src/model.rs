//! The format-neutral package model every backend maps its metadata into,
//! and that the solver reads: versions, relations, package records.
//!
//! Nothing here knows a repository format. A backend turns its metadata into
//! [`PackageRecord`]s; the only format-specific behaviour is the ordering of
//! [`Version`]s, which each version carries as its [`Scheme`] and which
//! lives in [`crate::version`], beside the model, not in a backend.

use std::cmp::Ordering;
use std::fmt;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

pub use crate::version::{Scheme, Version, VersionError};

/// A short string that lives inline up to 24 bytes (package names, most
/// versions and architectures), so records load without an allocation each.
pub type Text = CompactString;

/// A version comparison operator of a relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    /// `<<`: strictly earlier.
    Less,
    /// `<=`: earlier or equal (also written `<`, deprecated).
    LessEqual,
    /// `=`: exactly equal.
    Equal,
    /// `>=`: later or equal (also written `>`, deprecated).
    GreaterEqual,
    /// `>>`: strictly later.
    Greater,
}

impl Op {
    /// Whether `candidate OP wanted` holds.
    pub fn holds(self, candidate: &Version, wanted: &Version) -> bool {
        let ord = candidate.cmp(wanted);
        match self {
            Op::Less => ord == Ordering::Less,
            Op::LessEqual => ord != Ordering::Greater,
            Op::Equal => ord == Ordering::Equal,
            Op::GreaterEqual => ord != Ordering::Less,
            Op::Greater => ord == Ordering::Greater,
        }
    }

    /// The operator as Debian writes it (`<<`, `<=`, `=`, `>=`, `>>`).
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Less => "<<",
            Op::LessEqual => "<=",
            Op::Equal => "=",
            Op::GreaterEqual => ">=",
            Op::Greater => ">>",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The architecture qualifier of a relation's package name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ArchQualifier {
    /// No qualifier: a package of the depending package's architecture (or a
    /// `Multi-Arch: foreign` / `all` one).
    None,
    /// `:any`: any architecture, if the target is `Multi-Arch: allowed`.
    Any,
    /// `:native`: the native architecture.
    Native,
    /// `:ARCH`: that architecture.
    Specific(Text),
}

/// One relation to a package: name, architecture qualifier, and an
/// optional version constraint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relation {
    /// The package (or virtual package) name.
    pub name: Text,
    /// The architecture qualifier written after `:`.
    pub arch_qualifier: ArchQualifier,
    /// The version constraint, `(OP VERSION)`.
    pub constraint: Option<(Op, Version)>,
}

impl Relation {
    /// Whether a package (or a versioned Provides) with `version` satisfies
    /// this relation's version constraint. `None` stands for an unversioned
    /// Provides, which satisfies only unconstrained relations.
    pub fn accepts(&self, version: Option<&Version>) -> bool {
        match (&self.constraint, version) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some((op, wanted)), Some(v)) => op.holds(v, wanted),
        }
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        match &self.arch_qualifier {
            ArchQualifier::None => {}
            ArchQualifier::Any => f.write_str(":any")?,
            ArchQualifier::Native => f.write_str(":native")?,
            ArchQualifier::Specific(a) => write!(f, ":{a}")?,
        }
        if let Some((op, v)) = &self.constraint {
            write!(f, " ({op} {v})")?;
        }
        Ok(())
    }
}

/// One dependency: a disjunction of alternatives (`a | b`). Derefs to a
/// slice of relations; one alternative, the common case, is stored inline.
pub type Alternatives = smallvec::SmallVec<[Relation; 1]>;

/// A conjunction of dependencies, each a disjunction of alternatives:
/// `a | b, c` is `[[a, b], [c]]`.
pub type Dependencies = Vec<Alternatives>;

/// A virtual package a record provides, optionally with a version
/// (`Provides: foo (= 1.2)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provide {
    /// The provided name.
    pub name: Text,
    /// The provided version, when the Provides is versioned.
    pub version: Option<Version>,
}

/// How a package may be co-installed across architectures (Multi-Arch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum MultiArch {
    /// `no` (the default): satisfies dependencies of its own architecture only.
    #[default]
    No,
    /// `same`: co-installable with itself for other architectures.
    Same,
    /// `foreign`: satisfies dependencies of any architecture.
    Foreign,
    /// `allowed`: satisfies `:any` dependencies of any architecture.
    Allowed,
}

/// How important a package is to the distribution.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub enum Priority {
    /// Needed for the system to work at all.
    Required,
    /// Expected on any Unix-like system.
    Important,
    /// A reasonably small but not too limited character-mode system.
    Standard,
    /// Everything else (the default).
    #[default]
    Optional,
    /// Deprecated synonym of optional, kept as written.
    Extra,
}

impl Priority {
    /// The priority as Debian writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Required => "required",
            Priority::Important => "important",
            Priority::Standard => "standard",
            Priority::Optional => "optional",
            Priority::Extra => "extra",
        }
    }
}

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    /// Parses 64 hexadecimal digits.
    pub fn from_hex(hex: &str) -> Option<Sha256> {
        let b = hex.as_bytes();
        if b.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in b.chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(Sha256(out))
    }

    /// The digest of `data`.
    pub fn digest(data: &[u8]) -> Sha256 {
        use sha2::Digest;
        Sha256(sha2::Sha256::digest(data).into())
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Where a package's archive is downloaded from and how it is checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// Path relative to the origin's [`Origin::base_url`] (Debian's `Filename`).
    pub path: Text,
    /// Size of the archive in bytes.
    pub size: u64,
    /// SHA-256 of the archive.
    pub sha256: Sha256,
}

/// Identifies an [`Origin`] within one [`Index`](crate::Index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OriginId(pub u16);

/// The repository part a record came from: one suite, component and
/// architecture of one mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The base URL that [`Location::path`] is relative to (no trailing `/`).
    pub base_url: String,
    /// The suite as requested (e.g. `bookworm-updates`).
    pub suite: String,
    /// The codename the signed Release names (e.g. `bookworm`), if any.
    pub codename: String,
    /// The component (e.g. `main`).
    pub component: String,
    /// The architecture of the index the records came from (`amd64`, `all`).
    pub architecture: String,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}/{} [{}]",
            self.base_url, self.suite, self.component, self.architecture
        )
    }
}

/// One binary package of one repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageRecord {
    /// Package name.
    pub name: Text,
    /// Package version.
    pub version: Version,
    /// Architecture the package is built for (`all` when independent).
    pub architecture: Text,
    /// Multi-Arch behaviour.
    pub multi_arch: MultiArch,
    /// Whether the package is Essential (always installed, never removed).
    pub essential: bool,
    /// Priority.
    pub priority: Priority,
    /// Section (e.g. `admin`, `libs`), empty when the metadata has none.
    pub section: Text,
    /// Name of the source package (the package's own name when not given).
    pub source: Text,
    /// Version of the source package when it differs from [`Self::version`].
    pub source_version: Option<Version>,
    /// Installed size in KiB, when given.
    pub installed_size: Option<u64>,
    /// The one-line description.
    pub description: Text,
    /// Needed for the package to be configured.
    pub depends: Dependencies,
    /// Needed before the package is even unpacked.
    pub pre_depends: Dependencies,
    /// Installed along in all but unusual installations.
    pub recommends: Dependencies,
    /// May be useful along.
    pub suggests: Dependencies,
    /// Virtual packages this package provides.
    pub provides: Vec<Provide>,
    /// Packages that cannot be unpacked at the same time.
    pub conflicts: Vec<Relation>,
    /// Packages this one breaks (cannot be configured together).
    pub breaks: Vec<Relation>,
    /// Packages whose files this one may overwrite.
    pub replaces: Vec<Relation>,
    /// Where to download the archive and how to check it.
    pub location: Location,
    /// The repository part the record came from.
    pub origin: OriginId,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::tests::v;

    #[test]
    fn ops_and_unversioned_provides() {
        let r = Relation {
            name: "foo".into(),
            arch_qualifier: ArchQualifier::None,
            constraint: Some((Op::GreaterEqual, v("2"))),
        };
        assert!(r.accepts(Some(&v("2"))));
        assert!(r.accepts(Some(&v("2.1"))));
        assert!(!r.accepts(Some(&v("1.9"))));
        assert!(!r.accepts(None));
        assert_eq!(r.to_string(), "foo (>= 2)");
        assert!(Op::Less.holds(&v("1"), &v("1.0")));
        assert!(!Op::Greater.holds(&v("1"), &v("1")));
    }

    #[test]
    fn sha256_hex_round_trip() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let d = Sha256::from_hex(hex).unwrap();
        assert_eq!(d, Sha256::digest(b""));
        assert_eq!(d.to_string(), hex);
        assert!(Sha256::from_hex("zz").is_none());
    }
}
