//! Which repositories to read: from `DISTRO:RELEASE` or a configuration,
//! and loading their index.

use kod_config::{Config, Distribution, Repo};
use std::path::Path;

use kod_repo::debian::{Debian, DebianSource, apt_sources, find_mirror};
use kod_repo::{Backend, Freshness, Index, LoadOptions};
use kod_report::Report;
use kod_root::Root;

use crate::EngineError;

/// A `DISTRO:RELEASE` spec, e.g. `debian:bookworm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistroSpec {
    /// The distribution.
    pub distribution: Distribution,
    /// Its release or suite.
    pub release: String,
}

impl DistroSpec {
    /// Parses `debian:bookworm`.
    pub fn parse(spec: &str) -> Result<DistroSpec, EngineError> {
        let bad = |reason: &str| EngineError::BadSpec {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (d, r) = spec.split_once(':').ok_or_else(|| bad("there is no `:`"))?;
        let distribution = Distribution::parse(d).ok_or_else(|| {
            let names: Vec<&str> = Distribution::ALL.iter().map(|d| d.name()).collect();
            bad(&format!(
                "unknown distribution {d:?}; known: {}",
                names.join(", ")
            ))
        })?;
        if r.is_empty() || r.contains(['/', ' ']) {
            return Err(bad("the release is empty or has `/` or spaces"));
        }
        Ok(DistroSpec {
            distribution,
            release: r.to_string(),
        })
    }
}

/// The repositories a command reads, each family in its own terms. The
/// engine's one place that names a backend's source type: plans carry a
/// `Repositories`, the binary never sees what is inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repositories {
    /// Debian archives: suites on mirrors, in order.
    Debian(Vec<DebianSource>),
}

impl Repositories {
    /// The repositories `spec` stands for: for Debian a stable release
    /// with its -updates and -security suites, on `mirror` (or the mirror
    /// found in the environment or the host's apt sources).
    pub fn for_spec(spec: &DistroSpec, mirror: Option<&str>) -> Result<Repositories, EngineError> {
        if spec.distribution != Distribution::Debian {
            return Err(EngineError::Unsupported {
                distribution: spec.distribution.to_string(),
                what: format!("{}:{}", spec.distribution, spec.release),
            });
        }
        let mirror = find_mirror(mirror, None)?;
        Ok(Repositories::Debian(vec![DebianSource::release(
            &mirror,
            &spec.release,
        )]))
    }

    /// A configuration's distribution repositories, in key order (the
    /// default repository first); `mirror` overrides theirs.
    pub fn for_config(config: &Config, mirror: Option<&str>) -> Result<Repositories, EngineError> {
        let mut keys: Vec<&String> = config.repos.keys().collect();
        keys.sort_by_key(|k| **k != config.default_repo);
        let mut out = Vec::new();
        for key in keys {
            let Repo::Distribution(repo) = &config.repos[key] else {
                continue;
            };
            if repo.distribution != Distribution::Debian {
                return Err(EngineError::Unsupported {
                    distribution: repo.distribution.to_string(),
                    what: format!("repos.{key}"),
                });
            }
            let found = find_mirror(mirror, repo.mirrors.first().map(String::as_str))?;
            let suite = repo.release.as_deref().unwrap_or("stable");
            let mut source = DebianSource::release(&found, suite);
            source.components = repo.components.clone();
            source.signed_by = repo.signed_by.iter().cloned().collect();
            source.trusted_without_signature = repo.trusted;
            out.push(source);
        }
        if out.is_empty() {
            return Err(EngineError::NoRepository);
        }
        Ok(Repositories::Debian(out))
    }

    /// The repositories an existing root reads (its apt sources, for the
    /// root's native architecture `arch`).
    pub fn of_root(root: &Path, arch: &str) -> Result<Repositories, EngineError> {
        Ok(Repositories::Debian(apt_sources(root, arch)?))
    }

    /// Loads their index through the shared cache.
    pub fn load(&self, freshness: Freshness, report: &Report) -> Result<Index, EngineError> {
        let options = LoadOptions {
            cache_dir: kod_fetch::cache_dir(),
            freshness,
        };
        match self {
            Repositories::Debian(sources) => Ok(Debian::new()
                .with_report(report.clone())
                .load(sources, &options)?),
        }
    }

    /// Writes the root's own record of them (`/etc/apt/sources.list`), so
    /// the distribution's tools inside the root work, as mmdebstrap leaves
    /// it.
    pub(crate) fn write_into(&self, root: &Root) -> Result<(), EngineError> {
        let Repositories::Debian(sources) = self;
        let mut text = String::new();
        for s in sources {
            for suite in &s.suites {
                text.push_str(&format!(
                    "deb {} {suite} {}\n",
                    s.base_url(suite),
                    s.components.join(" ")
                ));
            }
        }
        let file = "etc/apt/sources.list";
        root.create_dir_all("etc/apt", 0o755)
            .and_then(|()| root.write(file, text.as_bytes(), 0o644))
            .map_err(|e| EngineError::io(&root.show(file), e))
    }
}

/// Where they are, for people: `MIRROR (SUITE, SUITE, ...)` per mirror.
impl std::fmt::Display for Repositories {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Repositories::Debian(sources) = self;
        let shown: Vec<String> = sources
            .iter()
            .map(|s| format!("{} ({})", s.mirror, s.suites.join(", ")))
            .collect();
        f.write_str(&shown.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        let s = DistroSpec::parse("debian:bookworm").unwrap();
        assert_eq!(s.distribution, Distribution::Debian);
        assert_eq!(s.release, "bookworm");
        for bad in ["bookworm", "debian:", "gentoo:1", "debian:a/b"] {
            assert!(DistroSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn spec_of_a_stable_release_has_updates_and_security() {
        let spec = DistroSpec::parse("debian:bookworm").unwrap();
        let Repositories::Debian(sources) =
            Repositories::for_spec(&spec, Some("http://mirror.invalid/debian")).unwrap();
        assert_eq!(
            sources[0].suites,
            ["bookworm", "bookworm-updates", "bookworm-security"]
        );
        assert_eq!(sources[0].mirror, "http://mirror.invalid/debian");
        assert_eq!(
            Repositories::Debian(sources).to_string(),
            "http://mirror.invalid/debian (bookworm, bookworm-updates, bookworm-security)"
        );
    }

    #[test]
    fn other_distributions_are_not_read_yet() {
        let spec = DistroSpec::parse("arch:rolling").unwrap();
        let err = Repositories::for_spec(&spec, None).unwrap_err();
        assert!(
            err.to_string()
                .contains("kod reads Debian repositories today")
        );
    }
}
