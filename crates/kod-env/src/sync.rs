//! `kod env sync`: bring a store in line with the configuration's
//! `environments = { NAME = { distro=..., packages={...}, exports={...},
//! volumes={...} } }`.
//!
//! Declared and absent: created. Declared and present: packages declared
//! but not installed are installed; packages earlier asked for and no
//! longer declared are removed; exports are set to exactly the declared
//! ones (`app:DESKTOP_ID` entries are desktop applications); volumes are
//! recorded. Present but undeclared: deleted only with `prune`, else kept
//! and reported. A declared distribution that differs from the
//! environment's is an error (kod does not convert environments).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use kod_sandbox::Caller;

use crate::error::EnvError;
use crate::export::{export_app, export_bins, unexport};
use crate::lifecycle::{self, Engine};
use crate::status::installed_names;
use crate::store::Store;

/// One environment as the configuration declares it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Declared {
    /// `DISTRO:RELEASE`.
    pub distro: String,
    /// Packages.
    pub packages: Vec<String>,
    /// Exports: program names, and `app:DESKTOP_ID` for applications.
    pub exports: Vec<String>,
    /// Host paths bound into it on every run.
    pub volumes: Vec<String>,
}

impl Declared {
    fn bins(&self) -> Vec<String> {
        self.exports
            .iter()
            .filter(|e| !e.starts_with("app:"))
            .cloned()
            .collect()
    }

    fn apps(&self) -> Vec<String> {
        self.exports
            .iter()
            .filter_map(|e| e.strip_prefix("app:"))
            .map(str::to_string)
            .collect()
    }
}

/// One step of a sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Step {
    /// Build a new environment.
    Create {
        /// The environment.
        env: String,
        /// `DISTRO:RELEASE`.
        distro: String,
        /// Packages.
        packages: Vec<String>,
    },
    /// Install packages.
    Install {
        /// The environment.
        env: String,
        /// Packages.
        packages: Vec<String>,
    },
    /// Remove packages.
    Remove {
        /// The environment.
        env: String,
        /// Packages.
        packages: Vec<String>,
    },
    /// Export programs and applications.
    Export {
        /// The environment.
        env: String,
        /// Programs.
        bins: Vec<String>,
        /// Desktop ids.
        apps: Vec<String>,
    },
    /// Remove exports.
    Unexport {
        /// The environment.
        env: String,
        /// Programs.
        bins: Vec<String>,
        /// Desktop ids.
        apps: Vec<String>,
    },
    /// Record the volumes.
    Volumes {
        /// The environment.
        env: String,
        /// Host paths.
        volumes: Vec<PathBuf>,
    },
    /// Delete an undeclared environment (`--prune`).
    Delete {
        /// The environment.
        env: String,
    },
    /// Keep an undeclared environment (no `--prune`).
    Keep {
        /// The environment.
        env: String,
    },
}

impl Step {
    /// One line for humans.
    pub fn describe(&self) -> String {
        match self {
            Step::Create {
                env,
                distro,
                packages,
            } => format!("create {env} ({distro}) with {}", list(packages)),
            Step::Install { env, packages } => format!("install into {env}: {}", list(packages)),
            Step::Remove { env, packages } => format!("remove from {env}: {}", list(packages)),
            Step::Export { env, bins, apps } => {
                format!("export from {env}: {}", list(&joined(bins, apps)))
            }
            Step::Unexport { env, bins, apps } => {
                format!("unexport from {env}: {}", list(&joined(bins, apps)))
            }
            Step::Volumes { env, volumes } => format!(
                "bind into {env} on every run: {}",
                list(
                    &volumes
                        .iter()
                        .map(|v| v.display().to_string())
                        .collect::<Vec<_>>()
                )
            ),
            Step::Delete { env } => format!("delete {env} (no longer declared)"),
            Step::Keep { env } => {
                format!("keep {env}: no longer declared (`kod env sync --prune` deletes it)")
            }
        }
    }
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "nothing more".into()
    } else {
        v.join(", ")
    }
}

fn joined(bins: &[String], apps: &[String]) -> Vec<String> {
    bins.iter()
        .cloned()
        .chain(apps.iter().map(|a| format!("app:{a}")))
        .collect()
}

fn minus(a: &[String], b: &[String]) -> Vec<String> {
    a.iter().filter(|x| !b.contains(x)).cloned().collect()
}

/// What a sync of `store` to `declared` does, changing nothing.
pub fn plan(
    store: &Store,
    declared: &BTreeMap<String, Declared>,
    prune: bool,
) -> Result<Vec<Step>, EnvError> {
    let mut steps = Vec::new();
    let present = store.list()?;
    for (name, want) in declared {
        let volumes: Vec<PathBuf> = want.volumes.iter().map(PathBuf::from).collect();
        let Some(env) = present.iter().find(|e| &e.name == name) else {
            steps.push(Step::Create {
                env: name.clone(),
                distro: want.distro.clone(),
                packages: want.packages.clone(),
            });
            if !want.exports.is_empty() {
                steps.push(Step::Export {
                    env: name.clone(),
                    bins: want.bins(),
                    apps: want.apps(),
                });
            }
            if !volumes.is_empty() {
                steps.push(Step::Volumes {
                    env: name.clone(),
                    volumes,
                });
            }
            continue;
        };
        if env.record.distro != want.distro {
            return Err(EnvError::DistroMismatch {
                name: name.clone(),
                have: env.record.distro.clone(),
                want: want.distro.clone(),
            });
        }
        let installed = installed_names(env);
        let is_installed = |p: &String| match &installed {
            Some(set) => set.contains(p.split('=').next().unwrap_or(p)),
            None => env.record.packages.contains(p),
        };
        let to_install: Vec<String> = want
            .packages
            .iter()
            .filter(|p| !is_installed(p))
            .cloned()
            .collect();
        let to_remove: Vec<String> = minus(&env.record.packages, &want.packages)
            .into_iter()
            .filter(is_installed)
            .collect();
        if !to_install.is_empty() {
            steps.push(Step::Install {
                env: name.clone(),
                packages: to_install,
            });
        }
        if !to_remove.is_empty() {
            steps.push(Step::Remove {
                env: name.clone(),
                packages: to_remove,
            });
        }
        let have_bins: Vec<String> = env.record.bins.iter().map(|b| b.name.clone()).collect();
        let (want_bins, want_apps) = (want.bins(), want.apps());
        let export_bins: Vec<String> = want_bins
            .iter()
            .filter(|b| {
                let base = Path::new(b)
                    .file_name()
                    .map_or(b.to_string(), |n| n.to_string_lossy().into_owned());
                !have_bins.contains(&base)
            })
            .cloned()
            .collect();
        let export_apps = minus(&want_apps, &env.record.apps);
        if !export_bins.is_empty() || !export_apps.is_empty() {
            steps.push(Step::Export {
                env: name.clone(),
                bins: export_bins,
                apps: export_apps,
            });
        }
        let want_bin_names: Vec<String> = want_bins
            .iter()
            .map(|b| {
                Path::new(b)
                    .file_name()
                    .map_or(b.to_string(), |n| n.to_string_lossy().into_owned())
            })
            .collect();
        let drop_bins = minus(&have_bins, &want_bin_names);
        let drop_apps = minus(&env.record.apps, &want_apps);
        if !drop_bins.is_empty() || !drop_apps.is_empty() {
            steps.push(Step::Unexport {
                env: name.clone(),
                bins: drop_bins,
                apps: drop_apps,
            });
        }
        if env.record.volumes != volumes {
            steps.push(Step::Volumes {
                env: name.clone(),
                volumes,
            });
        }
    }
    for env in present.iter().filter(|e| !declared.contains_key(&e.name)) {
        steps.push(if prune {
            Step::Delete {
                env: env.name.clone(),
            }
        } else {
            Step::Keep {
                env: env.name.clone(),
            }
        });
    }
    Ok(steps)
}

/// Carries out `steps` (from [`plan`]). `engine` builds and changes roots;
/// without one, a step that needs it fails with [`EnvError::NoEngine`].
/// `kod` is the kod binary launchers run. Returns notes.
pub fn apply(
    store: &Store,
    steps: &[Step],
    engine: Option<&dyn Engine>,
    kod: &Path,
    caller: Caller,
) -> Result<Vec<String>, EnvError> {
    let need = |what: &str| {
        engine.ok_or_else(|| EnvError::NoEngine {
            what: what.to_string(),
        })
    };
    let get = |name: &str| {
        store.get(name)?.ok_or_else(|| EnvError::NotFound {
            name: name.to_string(),
            searched: vec![store.dir.clone()],
        })
    };
    let mut notes = Vec::new();
    for step in steps {
        match step {
            Step::Create {
                env,
                distro,
                packages,
            } => {
                let engine = need(&format!("creating environment {env}"))?;
                let (_, n) = lifecycle::create(store, env, distro, packages, engine, caller)?;
                notes.extend(n);
            }
            Step::Install { env, packages } => {
                let engine = need(&format!("installing into environment {env}"))?;
                lifecycle::install(&mut get(env)?, packages, engine)?;
            }
            Step::Remove { env, packages } => {
                let engine = need(&format!("removing from environment {env}"))?;
                lifecycle::remove(&mut get(env)?, packages, engine)?;
            }
            Step::Export { env, bins, apps } => {
                let mut e = get(env)?;
                if !bins.is_empty() {
                    export_bins(&mut e, bins, kod)?;
                }
                for a in apps {
                    export_app(&mut e, a, kod)?;
                }
            }
            Step::Unexport { env, bins, apps } => {
                unexport(&mut get(env)?, bins, apps)?;
            }
            Step::Volumes { env, volumes } => {
                let mut e = get(env)?;
                e.record.volumes = volumes.clone();
                e.save()?;
            }
            Step::Delete { env } => notes.extend(lifecycle::delete(&get(env)?)?),
            Step::Keep { env } => notes.push(step.describe().replacen(
                &format!("keep {env}"),
                &format!("kept {env}"),
                1,
            )),
        }
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ExportedBin, Ownership, Record, Scope, write_record};

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn present(
        store: &Store,
        name: &str,
        distro: &str,
        packages: &[&str],
        bins: &[&str],
        installed: &[&str],
    ) {
        let dir = store.env_dir(name);
        std::fs::create_dir_all(dir.join("root/var/lib/dpkg")).unwrap();
        let mut r = Record::new(distro, "test".into(), Ownership::Host);
        r.packages = s(packages);
        r.bins = bins
            .iter()
            .map(|b| ExportedBin {
                name: b.to_string(),
                path: format!("/usr/bin/{b}").into(),
            })
            .collect();
        write_record(&dir, &r).unwrap();
        let status: String = installed
            .iter()
            .map(|p| format!("Package: {p}\nStatus: install ok installed\nVersion: 1\n\n"))
            .collect();
        std::fs::write(dir.join("root/var/lib/dpkg/status"), status).unwrap();
    }

    #[test]
    fn plans_create_change_keep_and_prune() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path(), Scope::Custom);
        present(
            &store,
            "sid",
            "debian:sid",
            &["hello", "jq", "old"],
            &["jq", "stale"],
            &["hello", "jq", "old", "base-files"],
        );
        present(&store, "dropped", "debian:trixie", &[], &[], &[]);
        let mut declared = BTreeMap::new();
        declared.insert(
            "sid".to_string(),
            Declared {
                distro: "debian:sid".into(),
                // base-files is installed though never asked for: nothing
                // to do; vim is new.
                packages: s(&["hello", "jq", "base-files", "vim"]),
                exports: s(&["jq", "hello", "app:org.example.App"]),
                volumes: s(&["/srv"]),
            },
        );
        declared.insert(
            "new".to_string(),
            Declared {
                distro: "debian:trixie".into(),
                packages: s(&["hello"]),
                exports: s(&["hello"]),
                volumes: vec![],
            },
        );
        let steps = plan(&store, &declared, false).unwrap();
        assert_eq!(
            steps,
            vec![
                Step::Create {
                    env: "new".into(),
                    distro: "debian:trixie".into(),
                    packages: s(&["hello"])
                },
                Step::Export {
                    env: "new".into(),
                    bins: s(&["hello"]),
                    apps: vec![]
                },
                Step::Install {
                    env: "sid".into(),
                    packages: s(&["vim"])
                },
                Step::Remove {
                    env: "sid".into(),
                    packages: s(&["old"])
                },
                Step::Export {
                    env: "sid".into(),
                    bins: s(&["hello"]),
                    apps: s(&["org.example.App"])
                },
                Step::Unexport {
                    env: "sid".into(),
                    bins: s(&["stale"]),
                    apps: vec![]
                },
                Step::Volumes {
                    env: "sid".into(),
                    volumes: vec!["/srv".into()]
                },
                Step::Keep {
                    env: "dropped".into()
                },
            ]
        );
        let pruned = plan(&store, &declared, true).unwrap();
        assert_eq!(
            pruned.last(),
            Some(&Step::Delete {
                env: "dropped".into()
            })
        );
        assert!(pruned.iter().all(|s| !matches!(s, Step::Keep { .. })));

        declared.get_mut("sid").unwrap().distro = "debian:trixie".into();
        assert!(matches!(
            plan(&store, &declared, false),
            Err(EnvError::DistroMismatch { .. })
        ));
    }

    #[test]
    fn steps_needing_the_engine_fail_without_one_and_others_apply() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path(), Scope::Custom);
        present(&store, "gone", "debian:sid", &[], &[], &[]);
        let caller = Caller { uid: 0, gid: 0 };
        let notes = apply(
            &store,
            &[Step::Keep { env: "gone".into() }],
            None,
            Path::new("/kod"),
            caller,
        )
        .unwrap();
        assert_eq!(notes.len(), 1);
        assert!(notes[0].starts_with("kept gone"), "{notes:?}");
        apply(
            &store,
            &[Step::Delete { env: "gone".into() }],
            None,
            Path::new("/kod"),
            caller,
        )
        .unwrap();
        assert!(store.get("gone").unwrap().is_none());
        let e = apply(
            &store,
            &[Step::Create {
                env: "x".into(),
                distro: "debian:sid".into(),
                packages: vec![],
            }],
            None,
            Path::new("/kod"),
            caller,
        )
        .unwrap_err();
        assert!(matches!(e, EnvError::NoEngine { .. }), "{e}");
    }
}
