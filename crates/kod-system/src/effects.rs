//! The install-stage effects of configuration helpers (`configs.mount`,
//! `configs.copy_file`, ...): files written or copied into the root, units
//! enabled, commands run in the target as their user.
//!
//! Files come before the services step (a unit a helper writes can be
//! enabled by a service); units and commands after it. A command is
//! always planned: kod cannot tell whether its work is done, and
//! install-stage commands run once, at install.

use std::path::{Path, PathBuf};

use kod_config::{Effect, Stage};

use crate::Input;
use crate::accounts::Accounts;
use crate::error::{Error, io_err};
use crate::planner::Planner;
use crate::services;
use crate::units;

fn steps<'a>(input: &'a Input) -> impl Iterator<Item = &'a kod_plan::Step> {
    input.plan.stages.get(&Stage::Install).into_iter().flatten()
}

fn owner(accounts: &Accounts, key: &str, name: &str) -> Result<(u32, u32), Error> {
    accounts.owner(name).ok_or_else(|| Error::UnknownOwner {
        key: key.into(),
        owner: name.into(),
    })
}

fn absolute(key: &str, path: &str) -> Result<PathBuf, Error> {
    let p = Path::new(path);
    if !p.is_absolute() || p.components().any(|c| c == std::path::Component::ParentDir) {
        return Err(Error::BadValue {
            key: key.into(),
            value: path.into(),
            reason: "is not an absolute path in the target without `..`".into(),
        });
    }
    Ok(p.to_path_buf())
}

/// Plans the files of install-stage effects.
pub(crate) fn plan_files(p: &mut Planner, input: &Input, accounts: &Accounts) -> Result<(), Error> {
    for step in steps(input) {
        let key = step.origin.as_str();
        match &step.effect {
            Effect::WriteFile {
                path,
                content,
                mode,
                owner: who,
            } => {
                let ids = owner(accounts, key, who)?;
                let path = absolute(key, path)?;
                if let Some(parent) = path.parent() {
                    p.dirs(key, parent, 0o755, ids)?;
                }
                p.write(key, path, content.as_bytes(), mode & 0o7777, ids)?;
            }
            Effect::CopyFile {
                source,
                target,
                owner: who,
            } => {
                let ids = owner(accounts, key, who)?;
                let path = absolute(key, target)?;
                let data = std::fs::read(source).map_err(io_err("read", source))?;
                let mode = std::fs::metadata(source)
                    .map_err(io_err("look at", source))?
                    .permissions();
                let mode = std::os::unix::fs::PermissionsExt::mode(&mode) & 0o7777;
                if let Some(parent) = path.parent() {
                    p.dirs(key, parent, 0o755, ids)?;
                }
                p.write(key, path, data, mode, ids)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// The files the install-stage effects of `plan` write in the target.
pub fn written_files(plan: &kod_plan::Plan) -> Vec<PathBuf> {
    plan.stages
        .get(&Stage::Install)
        .into_iter()
        .flatten()
        .filter_map(|step| match &step.effect {
            Effect::WriteFile { path, .. } => Some(PathBuf::from(path)),
            Effect::CopyFile { target, .. } => Some(PathBuf::from(target)),
            _ => None,
        })
        .collect()
}

/// Plans removing the files helpers of the previous generation wrote
/// that no helper writes now (a helper left the configuration, or writes
/// elsewhere); files already gone are left out.
pub(crate) fn plan_removed_files(p: &mut Planner, input: &Input) -> Result<(), Error> {
    let now = written_files(input.plan);
    for path in input.previous_files {
        if now.contains(path) || !path.is_absolute() {
            continue;
        }
        if matches!(
            p.node(path)?,
            crate::planner::Node::File { .. } | crate::planner::Node::Symlink(_)
        ) {
            p.remove("configs (no longer in the configuration)", path.clone());
        }
    }
    Ok(())
}

/// Plans the units and commands of install-stage effects.
pub(crate) fn plan_units_and_commands(
    p: &mut Planner,
    input: &Input,
    accounts: &Accounts,
) -> Result<(), Error> {
    for step in steps(input) {
        let key = step.origin.as_str();
        match &step.effect {
            Effect::EnableUnit { unit, user: None } => services::enable(p, key, unit)?,
            Effect::EnableUnit {
                unit,
                user: Some(user),
            } => enable_user_unit(p, key, accounts, user, unit)?,
            Effect::Run { argv, user } => {
                if argv.is_empty() {
                    return Err(Error::BadValue {
                        key: key.into(),
                        value: String::new(),
                        reason: "is an empty command".into(),
                    });
                }
                owner(accounts, key, user)?;
                let mut full = if user == "root" {
                    vec!["/usr/bin/env".to_string()]
                } else {
                    let runuser = p
                        .program(&["/usr/sbin/runuser", "/sbin/runuser"])?
                        .ok_or_else(|| Error::Missing {
                            key: key.into(),
                            path: "/usr/sbin/runuser".into(),
                            hint: "install util-linux".into(),
                        })?;
                    vec![runuser, "-u".into(), user.clone(), "--".into()]
                };
                full.extend(argv.iter().cloned());
                p.run(key, full, format!("{} helper", step.helper));
            }
            Effect::GitCheckout { url, .. } => {
                return Err(Error::Unsupported {
                    key: key.into(),
                    what: format!("checking out {url} at install"),
                    hint: "run the helper at rebuild-user, or clone it after the install".into(),
                });
            }
            Effect::WriteFile { .. } | Effect::CopyFile { .. } => {}
        }
    }
    Ok(())
}

/// A user unit enabled for one user: the links `systemctl --user enable`
/// makes, under `~/.config/systemd/user`, owned by the user.
/// (`systemctl --global` would enable it for every user, and `--user`
/// needs the user's running manager.)
fn enable_user_unit(
    p: &mut Planner,
    key: &str,
    accounts: &Accounts,
    user: &str,
    unit: &str,
) -> Result<(), Error> {
    let ids = owner(accounts, key, user)?;
    let home = accounts
        .users
        .get(user)
        .map_or_else(|| PathBuf::from("/root"), |a| PathBuf::from(&a.home));
    let base = home.join(".config/systemd/user");
    let unit = units::unit_name(unit);
    let mut dirs = vec![base.clone()];
    dirs.extend(units::USER_DIRS.iter().map(PathBuf::from));
    let Some(found) = units::find(p, &dirs, &unit)? else {
        return Err(Error::UnitNotFound {
            key: key.into(),
            unit,
        });
    };
    for link in units::links(&base, &found) {
        if let Some(parent) = link.parent() {
            for d in [
                home.join(".config"),
                home.join(".config/systemd"),
                base.clone(),
            ] {
                p.dirs(key, &d, 0o755, ids)?;
            }
            p.dirs(key, parent, 0o755, ids)?;
        }
        p.symlink(key, link, found.path.clone(), ids)?;
    }
    Ok(())
}
