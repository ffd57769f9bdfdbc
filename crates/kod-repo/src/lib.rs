//! Repository backends for kod: read a distribution's repositories
//! (metadata, signatures, package indices) and present their packages in one
//! format-neutral [`Index`] that the solver works on.
//!
//! The [`model`] is shared by every backend, with the [`version`] orderings
//! it dispatches to; each backend is a module behind the [`Backend`] trait.
//! Debian ([`debian`]) is the first.
#![deny(missing_docs)]

pub mod debian;
mod index;
mod mapped;
pub mod model;
pub mod version;

use std::path::PathBuf;

pub use index::{BaseFacts, Index, RecordId};
pub use model::{
    Alternatives, ArchQualifier, Dependencies, Location, MultiArch, Op, Origin, OriginId,
    PackageRecord, Priority, Provide, Relation, Scheme, Sha256, Text, Version, VersionError,
};

/// How a load uses what is already cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Freshness {
    /// Use the cached signed metadata without asking the network; fetch
    /// only what is not cached (or a cached Release past its Valid-Until).
    /// The parsed index is reused when the metadata is unchanged.
    #[default]
    Cached,
    /// Ask the repository whether its signed metadata changed (conditional
    /// requests) and download what did (`kod pkg update`); package indices
    /// whose hash is cached, and the parsed index when nothing changed, are
    /// reused.
    Refresh,
    /// Use only the cache; fail if something is missing from it.
    Offline,
}

/// Options common to every backend's load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Directory that holds downloaded metadata and parsed indices.
    pub cache_dir: PathBuf,
    /// How the cache is used.
    pub freshness: Freshness,
}

impl Default for LoadOptions {
    /// kod's cache directory ([`kod_fetch::cache_dir`]) and
    /// [`Freshness::Cached`].
    fn default() -> Self {
        LoadOptions {
            cache_dir: kod_fetch::cache_dir(),
            freshness: Freshness::Cached,
        }
    }
}

/// A repository format: turns repository specifications into an [`Index`].
pub trait Backend {
    /// What names one repository of this format (mirror, suites, keys...).
    type Source;
    /// What goes wrong while loading.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Loads the records of every repository in `sources` into one index,
    /// verifying signatures and hashes, and using the cache as `options`
    /// say.
    fn load(&self, sources: &[Self::Source], options: &LoadOptions) -> Result<Index, Self::Error>;
}
