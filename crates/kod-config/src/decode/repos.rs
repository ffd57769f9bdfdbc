//! `repos`: the package sources, which of them unprefixed packages come
//! from, and the check of every package reference against them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::Result;
use super::fields::{Fields, string, strings};
use crate::error::ConfigError;
use crate::model::*;
use crate::node::Node;
use crate::path::KeyPath;

/// The key of the repository for unprefixed packages, and the distribution.
pub(super) fn default_repo(
    repos: &BTreeMap<String, Repo>,
    base: Option<Distribution>,
) -> Result<(String, Distribution)> {
    let distribution_keys: Vec<&str> = repos
        .iter()
        .filter(|(_, r)| r.distribution().is_some())
        .map(|(k, _)| k.as_str())
        .collect();
    let key = if let Some(official) = repos.get("official") {
        if official.distribution().is_none() {
            return Err(ConfigError::invalid(
                "repos.official",
                format!(
                    "`official` is a {} repository; it must be a distribution's (e.g. \
                     repos.debian_repo{{suite = \"bookworm\"}})",
                    official.kind()
                ),
            ));
        }
        "official".to_string()
    } else {
        match distribution_keys.as_slice() {
            [one] => one.to_string(),
            [] => {
                return Err(ConfigError::invalid(
                    "repos",
                    "no distribution repository is configured; add one keyed `official`, e.g. \
                     official = repos.debian_repo{suite = \"bookworm\"}",
                ));
            }
            many => {
                return Err(ConfigError::invalid(
                    "repos",
                    format!(
                        "{} distribution repositories ({}) and none is keyed `official`: \
                         unprefixed packages would not know where to come from; key the one \
                         they come from `official`",
                        many.len(),
                        many.join(", ")
                    ),
                ));
            }
        }
    };
    let dist = repos[&key]
        .distribution()
        .expect("the default repository is a distribution's");
    match base {
        Some(b) if b != dist => Err(ConfigError::invalid(
            "base_distribution",
            format!(
                "base_distribution is {b:?} but the default repository `{key}` is a {dist} \
                 repository; make them agree",
                b = b.name()
            ),
        )),
        _ => Ok((key, dist)),
    }
}

/// Checks package references against the configured repositories.
pub(super) struct PackageCheck<'a> {
    /// The configured sources; `None` when `repos` itself is wrong, so
    /// prefixes are not checked against a list that is not there (which
    /// would only repeat that mistake).
    pub(super) repos: Option<&'a BTreeMap<String, Repo>>,
}

impl PackageCheck<'_> {
    pub(super) fn one(&self, node: &Node, path: &KeyPath) -> Result<String> {
        let s = string(node, path)?;
        self.check(&s, path)?;
        Ok(s)
    }

    pub(super) fn list(&self, node: &Node, path: &KeyPath) -> Result<Vec<String>> {
        let list = strings(node, path)?;
        for (i, s) in list.iter().enumerate() {
            self.check(s, &path.index(i + 1))?;
        }
        Ok(list)
    }

    fn check(&self, reference: &str, path: &KeyPath) -> Result<()> {
        if reference.is_empty() || reference.chars().any(char::is_whitespace) {
            return Err(ConfigError::invalid(
                path.to_string(),
                format!("{reference:?} is not a package name (empty, or has spaces)"),
            ));
        }
        let (Some((prefix, name)), Some(repos)) = (reference.split_once(':'), self.repos) else {
            return Ok(());
        };
        if repos.contains_key(prefix) {
            if name.is_empty() {
                return Err(ConfigError::invalid(
                    path.to_string(),
                    format!("{reference:?} names no package after `{prefix}:`"),
                ));
            }
            return Ok(());
        }
        if prefix == "aur" || prefix == "flatpak" {
            let helper = if prefix == "aur" {
                "repos.aur_repo(\"yay\", URL)"
            } else {
                "repos.flatpak_repo(\"flathub\")"
            };
            return Err(ConfigError::invalid(
                path.to_string(),
                format!(
                    "{reference:?} comes from the `{prefix}` repository, which is not configured; \
                     add repos.{prefix} = {helper}"
                ),
            ));
        }
        // `libc6:i386` and the like: an architecture-qualified name for the
        // default repository.
        Ok(())
    }
}

pub(super) fn repo(node: &Node, path: &KeyPath) -> Result<Repo> {
    let mut f = Fields::of(node, path)?;
    let kind = f.required_string("type")?;
    let repo = match kind.as_str() {
        "aur" => Repo::Aur(AurRepo {
            helper: f.required_string("helper")?,
            helper_url: f.string("helper_url")?,
            build_cmd: f.string("build_cmd")?,
        }),
        "flatpak" => Repo::Flatpak(FlatpakRepo {
            remote: f.string("remote")?.unwrap_or_else(|| "flathub".to_string()),
            url: f.string("url")?,
        }),
        other => {
            let Some(distribution) = Distribution::parse(other) else {
                let mut kinds: Vec<&str> = Distribution::ALL.iter().map(|d| d.name()).collect();
                kinds.extend(["aur", "flatpak"]);
                return Err(ConfigError::invalid(
                    path.key("type").to_string(),
                    format!(
                        "unknown repository type {other:?}; expected one of {}",
                        kinds.join(", ")
                    ),
                ));
            };
            let mirrors = match f.node("mirror") {
                Some((Node::Str(s), _)) => vec![s.clone()],
                Some((n, p)) => strings(n, &p)?,
                None => Vec::new(),
            };
            let release_key = if distribution == Distribution::Debian {
                "suite"
            } else {
                "release"
            };
            let release = f.string(release_key)?;
            let components_key = if distribution == Distribution::Debian {
                "components"
            } else {
                "repositories"
            };
            let mut components = f.strings(components_key)?;
            if components.is_empty() {
                components = default_components(distribution);
            }
            if distribution == Distribution::Debian && release.is_none() {
                return Err(ConfigError::invalid(
                    path.to_string(),
                    "a Debian repository needs a `suite` (e.g. \"bookworm\")",
                ));
            }
            Repo::Distribution(DistributionRepo {
                distribution,
                mirrors,
                release,
                components,
                signed_by: f.string("signed_by")?.map(PathBuf::from),
                trusted: f.bool("trusted")?.unwrap_or(false),
            })
        }
    };
    f.finish()?;
    Ok(repo)
}

fn default_components(d: Distribution) -> Vec<String> {
    let list: &[&str] = match d {
        Distribution::Debian => &["main"],
        Distribution::Arch => &["core", "extra"],
        Distribution::Fedora => &["fedora", "updates"],
        Distribution::Centos => &["baseos", "appstream"],
        Distribution::Opensuse => &["oss"],
        Distribution::Alpine => &["main", "community"],
    };
    list.iter().map(|s| s.to_string()).collect()
}
