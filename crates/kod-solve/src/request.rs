//! What to resolve: requested packages (by name, exact version or suite),
//! a base set, and options; and what comes out.

use std::fmt;
use std::str::FromStr;

use kod_repo::{RecordId, Text, Version};

use crate::SolveError;

/// How the version of a requested package is chosen.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    /// apt's candidate: the highest version of every loaded suite (a
    /// release, its -updates and -security are equally preferred).
    Candidate,
    /// Exactly this version (`name=version`).
    Version(String),
    /// The highest version carried by this suite or codename
    /// (`name/suite`).
    Suite(String),
}

/// One requested package.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PackageRequest {
    /// The package name.
    pub name: String,
    /// Which version.
    pub selector: Selector,
}

impl PackageRequest {
    /// A request for the candidate version of `name`.
    pub fn name(name: impl Into<String>) -> PackageRequest {
        PackageRequest {
            name: name.into(),
            selector: Selector::Candidate,
        }
    }
}

impl FromStr for PackageRequest {
    type Err = SolveError;

    /// Parses `name`, `name=version` or `name/suite`, as apt-get does.
    fn from_str(text: &str) -> Result<PackageRequest, SolveError> {
        let bad = |reason: &str| SolveError::BadRequest {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let (name, selector) = if let Some((n, v)) = text.split_once('=') {
            if v.is_empty() {
                return Err(bad("the version after `=` is empty"));
            }
            (n, Selector::Version(v.to_string()))
        } else if let Some((n, s)) = text.split_once('/') {
            if s.is_empty() {
                return Err(bad("the suite after `/` is empty"));
            }
            (n, Selector::Suite(s.to_string()))
        } else {
            (text, Selector::Candidate)
        };
        if name.is_empty() {
            return Err(bad("the package name is empty"));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "+-._".contains(*c)))
        {
            return Err(bad(&format!(
                "{c:?} cannot appear in a package name (lower-case letters, digits, + - . _)"
            )));
        }
        Ok(PackageRequest {
            name: name.to_string(),
            selector,
        })
    }
}

impl fmt::Display for PackageRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        match &self.selector {
            Selector::Candidate => Ok(()),
            Selector::Version(v) => write!(f, "={v}"),
            Selector::Suite(s) => write!(f, "/{s}"),
        }
    }
}

/// A resolution request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// The base set (a variant's packages, see
    /// [`variant_base`](crate::variant_base)), by name. As mmdebstrap and
    /// debootstrap do, its Essential packages are installed first, then
    /// the rest of the base with [`Request::packages`]; this order decides
    /// which alternative apt would pick where several would do.
    pub base: Vec<String>,
    /// The requested packages, in command-line order.
    pub packages: Vec<PackageRequest>,
    /// Whether Recommends are installed too (apt's
    /// `APT::Install-Recommends`). Off by default, as mmdebstrap. They are
    /// installed where apt's walk installs them (with their own
    /// dependencies), and left out where that would fail.
    pub recommends: bool,
}

impl Request {
    /// A request for `packages` (each `name`, `name=version` or
    /// `name/suite`) on top of `base`.
    pub fn new<B, P>(base: B, packages: P) -> Result<Request, SolveError>
    where
        B: IntoIterator,
        B::Item: Into<String>,
        P: IntoIterator,
        P::Item: AsRef<str>,
    {
        Ok(Request {
            base: base.into_iter().map(Into::into).collect(),
            packages: packages
                .into_iter()
                .map(|p| p.as_ref().parse())
                .collect::<Result<_, _>>()?,
            recommends: false,
        })
    }
}

/// What happens to one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Newly installed.
    Install,
    /// Installed already, replaced by a higher version.
    Upgrade {
        /// The installed version.
        from: Version,
    },
    /// Installed already, replaced by a lower version (only when a request
    /// pins one).
    Downgrade {
        /// The installed version.
        from: Version,
    },
    /// Installed already and kept as it is.
    Keep,
}

/// One package of a resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Package name.
    pub name: Text,
    /// The chosen version.
    pub version: Version,
    /// Its architecture.
    pub architecture: Text,
    /// The index record to download (`None` for an installed package whose
    /// version no repository carries any more; it is kept).
    pub record: Option<RecordId>,
    /// What happens to it.
    pub action: Action,
}

/// The packages a request resolves to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Every package of the resulting system (installed ones that are kept
    /// included), sorted by name.
    pub packages: Vec<Resolved>,
    /// Bytes to download: the archives of every package installed,
    /// upgraded or downgraded.
    pub download_size: u64,
}

impl Resolution {
    /// The package named `name`, if it is part of the resolution.
    pub fn get(&self, name: &str) -> Option<&Resolved> {
        self.packages
            .binary_search_by(|p| p.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.packages[i])
    }

    /// The packages that change (everything but [`Action::Keep`]).
    pub fn changes(&self) -> impl Iterator<Item = &Resolved> {
        self.packages.iter().filter(|p| p.action != Action::Keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_apt_forms() {
        let p: PackageRequest = "git".parse().unwrap();
        assert_eq!(p, PackageRequest::name("git"));
        let p: PackageRequest = "git=1:2.39.5-0+deb12u2".parse().unwrap();
        assert_eq!(p.selector, Selector::Version("1:2.39.5-0+deb12u2".into()));
        assert_eq!(p.to_string(), "git=1:2.39.5-0+deb12u2");
        let p: PackageRequest = "libc6/bookworm-security".parse().unwrap();
        assert_eq!(p.name, "libc6");
        assert_eq!(p.selector, Selector::Suite("bookworm-security".into()));
        assert_eq!(p.to_string(), "libc6/bookworm-security");
        for bad in ["", "=1", "git=", "git/", "Git", "a b"] {
            let e = bad.parse::<PackageRequest>().unwrap_err();
            assert!(e.to_string().contains("invalid package request"), "{e}");
        }
    }
}
