//! Versions and their orderings, owned by no backend.
//!
//! A [`Version`] is its text and the [`Scheme`] that orders it. Each scheme
//! is one module here with two functions, `check` (the syntax its package
//! manager accepts) and `compare` (its ordering), and one arm in
//! [`Scheme::check`] and [`Scheme::compare`]: dpkg's now; pacman's `vercmp`
//! and rpm's `rpmvercmp` would each be one more module and one more arm.
//! A backend names the scheme of its versions and imports nothing from
//! another backend.

mod dpkg;

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::Text;

/// How versions of a repository format are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scheme {
    /// dpkg's ordering: epoch, upstream version and revision, with `~`
    /// sorting before everything (deb-version(7)).
    Debian,
}

impl Scheme {
    /// Checks `text` the way this scheme's package manager does, saying
    /// what is wrong.
    fn check(self, text: &str) -> Result<(), &'static str> {
        match self {
            Scheme::Debian => dpkg::check(text),
        }
    }

    /// Orders two version texts of this scheme.
    fn compare(self, a: &str, b: &str) -> Ordering {
        match self {
            Scheme::Debian => dpkg::compare(a, b),
        }
    }
}

/// A version string that knows how it is ordered.
///
/// Cloning is cheap (short versions are stored inline). `Ord` dispatches on
/// the [`Scheme`]; versions of different schemes order by scheme first.
/// Equality is equality under the ordering: for Debian `1.0` equals `0:1.0`.
/// `Display` prints the original text.
#[derive(Clone, Serialize, Deserialize)]
pub struct Version {
    scheme: Scheme,
    text: Text,
}

/// A version string that its scheme does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {scheme:?} version {text:?}: {reason}")]
pub struct VersionError {
    /// The scheme the text was parsed under.
    pub scheme: Scheme,
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Version {
    /// Parses `text` as a version of `scheme`, checking its syntax.
    pub fn parse(scheme: Scheme, text: &str) -> Result<Version, VersionError> {
        scheme.check(text).map_err(|reason| VersionError {
            scheme,
            text: text.to_string(),
            reason,
        })?;
        Ok(Version {
            scheme,
            text: Text::new(text),
        })
    }

    /// The ordering scheme of this version.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The version as written in the metadata.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.scheme
            .cmp(&other.scheme)
            .then_with(|| self.scheme.compare(&self.text, &other.text))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text.as_str())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A Debian version, for tests.
    pub(crate) fn v(s: &str) -> Version {
        Version::parse(Scheme::Debian, s).unwrap()
    }

    #[test]
    fn equal_under_ordering_not_text() {
        assert_eq!(v("1.0"), v("0:1.0"));
        assert_eq!(v("0:1.0").to_string(), "0:1.0");
        assert!(v("1.0~rc1") < v("1.0"));
    }

    #[test]
    fn parse_names_the_scheme_and_the_reason() {
        let e = Version::parse(Scheme::Debian, "1.0-").unwrap_err();
        assert_eq!(e.scheme, Scheme::Debian);
        assert_eq!(e.text, "1.0-");
        assert_eq!(e.reason, "revision number is empty");
        assert_eq!(
            e.to_string(),
            "invalid Debian version \"1.0-\": revision number is empty"
        );
    }
}
