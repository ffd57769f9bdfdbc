//! What can go wrong with environments.

use std::io;
use std::path::PathBuf;

/// The error type of the package engine that [`crate::Engine`] wraps.
pub type EngineError = Box<dyn std::error::Error + Send + Sync>;

/// An environment operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// The package cache could not be read or changed.
    #[error("the package cache: {0}")]
    Cache(String),
    /// The name cannot name an environment.
    #[error("{name:?} is not a valid environment name: {why}")]
    Name {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// No environment has this name.
    #[error(
        "no environment named {name:?} (looked in {}); `kod env list` shows them, \
         `kod env create` or `kod env import` makes one",
        searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NotFound {
        /// The name.
        name: String,
        /// The directories searched.
        searched: Vec<PathBuf>,
    },
    /// An environment of this name exists already.
    #[error("an environment named {name:?} already exists in {}; delete it first or pick another name", dir.display())]
    Exists {
        /// The name.
        name: String,
        /// Its directory.
        dir: PathBuf,
    },
    /// A file or directory operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// An environment's record is unreadable.
    #[error("the record {} is damaged ({detail}); fix or delete it", path.display())]
    Record {
        /// The record file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// An archive entry cannot be extracted safely.
    #[error("cannot import {}: entry {entry:?}: {why}", archive.display())]
    Archive {
        /// The tarball.
        archive: PathBuf,
        /// The entry's path as the archive gives it.
        entry: String,
        /// What is wrong.
        why: String,
    },
    /// A program to export is not in the environment.
    #[error(
        "{program:?} is not a program in environment {env:?} (looked in {looked}); install it first"
    )]
    NoProgram {
        /// The environment.
        env: String,
        /// The program.
        program: String,
        /// Where it was looked for.
        looked: String,
    },
    /// A desktop application to export is not in the environment.
    #[error("environment {env:?} has no desktop file {id:?} (looked in {looked})")]
    NoApp {
        /// The environment.
        env: String,
        /// The desktop id.
        id: String,
        /// Where it was looked for.
        looked: String,
    },
    /// An unknown view mode.
    #[error("{0:?} is not a view: use `unified` or `isolated`")]
    ViewMode(String),
    /// The declared distribution differs from the environment's.
    #[error(
        "environment {name:?} is {have} but the configuration declares {want}; kod does not \
         convert environments: `kod env delete {name}` then `kod env sync` rebuilds it"
    )]
    DistroMismatch {
        /// The environment.
        name: String,
        /// Its distribution.
        have: String,
        /// The declared one.
        want: String,
    },
    /// The package engine is needed but none was supplied.
    #[error(
        "{what} needs kod's package engine, which this build does not provide yet; \
         `kod env import` adopts a root made by another tool meanwhile"
    )]
    NoEngine {
        /// What needed it.
        what: String,
    },
    /// The package engine failed.
    #[error("{what} in environment {env:?} failed: {source}")]
    Engine {
        /// The environment.
        env: String,
        /// What the engine was doing.
        what: String,
        /// The engine's error.
        #[source]
        source: EngineError,
    },
    /// The sandbox failed.
    #[error(transparent)]
    Sandbox(#[from] kod_sandbox::SandboxError),
}

impl EnvError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> EnvError {
        let path = path.into();
        move |source| EnvError::Io { op, path, source }
    }
}
