//! Which repositories to read: from `DISTRO:RELEASE` or a configuration,
//! and loading their index.

use kod_config::{Config, Distribution, Repo};
use kod_repo::debian::{Debian, DebianSource, find_mirror};
use kod_repo::{Backend, Freshness, Index, LoadOptions};
use kod_report::Report;

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

/// The Debian sources `spec` stands for: a stable release with its
/// -updates and -security suites, on `mirror` (or the mirror found in the
/// environment or the host's apt sources).
pub fn sources_for_spec(
    spec: &DistroSpec,
    mirror: Option<&str>,
) -> Result<Vec<DebianSource>, EngineError> {
    if spec.distribution != Distribution::Debian {
        return Err(EngineError::Unsupported {
            distribution: spec.distribution.to_string(),
            what: format!("{}:{}", spec.distribution, spec.release),
        });
    }
    let mirror = find_mirror(mirror, None)?;
    Ok(vec![DebianSource::release(&mirror, &spec.release)])
}

/// The Debian sources of a configuration's distribution repositories, in
/// key order (the default repository first); `mirror` overrides theirs.
pub fn sources_for_config(
    config: &Config,
    mirror: Option<&str>,
) -> Result<Vec<DebianSource>, EngineError> {
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
    Ok(out)
}

/// Loads the index of `sources` through the shared cache.
pub fn load_index(
    sources: &[DebianSource],
    freshness: Freshness,
    report: &Report,
) -> Result<Index, EngineError> {
    let options = LoadOptions {
        cache_dir: kod_fetch::cache_dir(),
        freshness,
    };
    Ok(Debian::new()
        .with_report(report.clone())
        .load(sources, &options)?)
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
        let sources = sources_for_spec(&spec, Some("http://mirror.invalid/debian")).unwrap();
        assert_eq!(
            sources[0].suites,
            ["bookworm", "bookworm-updates", "bookworm-security"]
        );
        assert_eq!(sources[0].mirror, "http://mirror.invalid/debian");
    }

    #[test]
    fn other_distributions_are_not_read_yet() {
        let spec = DistroSpec::parse("arch:rolling").unwrap();
        let err = sources_for_spec(&spec, None).unwrap_err();
        assert!(
            err.to_string()
                .contains("kod reads Debian repositories today")
        );
    }
}
