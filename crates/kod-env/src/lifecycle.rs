//! Making, filling and deleting environments.
//!
//! Building a root and installing or removing packages is the package
//! engine's work: it comes in through the [`Engine`] trait, so this crate
//! works with any backend (and tests can use another bootstrapper).
//! Everything else — where the root goes, its record, preparation, the
//! view — happens here.

use std::path::Path;

use kod_sandbox::Caller;

use crate::error::{EngineError, EnvError};
use crate::import::{Source, extract_tarball};
use crate::prepare::prepare;
use crate::store::{Env, Ownership, Record, Store, validate_name, write_record};
use crate::view;

/// The package engine, as environments need it.
pub trait Engine {
    /// Builds a root of `distro` (`DISTRO:RELEASE`, e.g. `debian:sid`) into
    /// the empty directory `target`, with `packages` installed.
    fn bootstrap(
        &self,
        target: &Path,
        distro: &str,
        packages: &[String],
    ) -> Result<(), EngineError>;
    /// Installs `packages` into the root.
    fn install(&self, root: &Path, packages: &[String]) -> Result<(), EngineError>;
    /// Removes `packages` from the root.
    fn remove(&self, root: &Path, packages: &[String]) -> Result<(), EngineError>;
}

/// How files made now are owned: by their real owners (root on the host),
/// shifted into subordinate ids (root of the caller's user namespace), or
/// all by the calling user.
pub fn current_ownership() -> Ownership {
    let root = rustix::process::geteuid().is_root();
    match (root, kod_sandbox::in_user_namespace()) {
        (true, false) => Ownership::Host,
        (true, true) => Ownership::SubIds,
        (false, _) => Ownership::Caller,
    }
}

/// Whether changing `env` needs the owner's user namespace (its files are
/// shifted into subordinate ids and this process is not in it).
pub fn needs_user_namespace(env: &Env) -> bool {
    env.record.ownership == Ownership::SubIds && current_ownership() != Ownership::SubIds
}

fn remove_tree(p: &Path) -> Result<(), EnvError> {
    match std::fs::symlink_metadata(p) {
        Ok(_) => std::fs::remove_dir_all(p).map_err(EnvError::io("remove", p)),
        Err(_) => Ok(()),
    }
}

/// Builds environment `name` in a staging directory with `fill` (which
/// gets the staging directory and returns the record and notes), prepares
/// its root, and moves it into place.
fn make(
    store: &Store,
    name: &str,
    caller: Caller,
    fill: impl FnOnce(&Path) -> Result<(Record, Vec<String>), EnvError>,
) -> Result<(Env, Vec<String>), EnvError> {
    validate_name(name)?;
    store.ensure()?;
    if store.get(name)?.is_some() {
        return Err(EnvError::Exists {
            name: name.to_string(),
            dir: store.env_dir(name),
        });
    }
    let staging = store.temp_dir(name);
    std::fs::create_dir(&staging).map_err(EnvError::io("create", &staging))?;
    let built = (|| {
        let (record, mut notes) = fill(&staging)?;
        let root = record.root.clone().unwrap_or_else(|| staging.join("root"));
        notes.extend(prepare(&root, name, caller)?);
        write_record(&staging, &record)?;
        let dest = store.env_dir(name);
        std::fs::rename(&staging, &dest).map_err(EnvError::io("move into place", &dest))?;
        Ok((record, notes))
    })();
    let (record, notes) = match built {
        Ok(b) => b,
        Err(e) => {
            // Best effort: the error that stopped the build matters more.
            let _ = remove_tree(&staging);
            return Err(e);
        }
    };
    let env = Env {
        name: name.to_string(),
        store: store.clone(),
        record,
    };
    view::refresh(store)?;
    Ok((env, notes))
}

/// Adopts a root directory in place, or extracts a root tarball, as
/// environment `name` labelled `distro`.
pub fn import(
    store: &Store,
    name: &str,
    source: &Path,
    distro: &str,
    caller: Caller,
) -> Result<(Env, Vec<String>), EnvError> {
    let source = Source::of(source)?;
    make(store, name, caller, |staging| {
        let (origin, adopted, notes) = match &source {
            Source::Dir(dir) => (
                format!("import:{}", dir.display()),
                Some(dir.clone()),
                Vec::new(),
            ),
            Source::Tarball(file) => {
                let root = staging.join("root");
                std::fs::create_dir(&root).map_err(EnvError::io("create", &root))?;
                let done = extract_tarball(file, &root)?;
                (format!("import:{}", file.display()), None, done.notes())
            }
        };
        let mut record = Record::new(distro, origin, current_ownership());
        record.root = adopted;
        Ok((record, notes))
    })
}

/// Creates environment `name` of `distro` with `packages` through the
/// engine.
pub fn create(
    store: &Store,
    name: &str,
    distro: &str,
    packages: &[String],
    engine: &dyn Engine,
    caller: Caller,
) -> Result<(Env, Vec<String>), EnvError> {
    make(store, name, caller, |staging| {
        let root = staging.join("root");
        std::fs::create_dir(&root).map_err(EnvError::io("create", &root))?;
        engine
            .bootstrap(&root, distro, packages)
            .map_err(|source| EnvError::Engine {
                env: name.to_string(),
                what: format!("building a {distro} root"),
                source,
            })?;
        let mut record = Record::new(distro, "create".into(), current_ownership());
        record.packages = packages.to_vec();
        Ok((record, Vec::new()))
    })
}

/// Installs packages into `env` through the engine and records them.
pub fn install(env: &mut Env, packages: &[String], engine: &dyn Engine) -> Result<(), EnvError> {
    engine
        .install(&env.root(), packages)
        .map_err(|source| EnvError::Engine {
            env: env.name.clone(),
            what: format!("installing {}", packages.join(", ")),
            source,
        })?;
    for p in packages {
        if !env.record.packages.contains(p) {
            env.record.packages.push(p.clone());
        }
    }
    env.save()
}

/// Removes packages from `env` through the engine and from its record.
pub fn remove(env: &mut Env, packages: &[String], engine: &dyn Engine) -> Result<(), EnvError> {
    engine
        .remove(&env.root(), packages)
        .map_err(|source| EnvError::Engine {
            env: env.name.clone(),
            what: format!("removing {}", packages.join(", ")),
            source,
        })?;
    env.record.packages.retain(|p| !packages.contains(p));
    env.save()
}

/// Deletes `env`: its directory (root, record, exports) and its place in
/// the view. A root adopted in place is left where it is. Returns notes.
pub fn delete(env: &Env) -> Result<Vec<String>, EnvError> {
    let dir = env.dir();
    let doomed = env.store.temp_dir(&env.name);
    std::fs::rename(&dir, &doomed).map_err(EnvError::io("move away", &dir))?;
    remove_tree(&doomed)?;
    view::refresh(&env.store)?;
    Ok(match &env.record.root {
        Some(r) => vec![format!(
            "the adopted root {} is left in place (kod only forgot it)",
            r.display()
        )],
        None => Vec::new(),
    })
}
