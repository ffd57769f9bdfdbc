//! Services: `services.NAME.settings` written as drop-ins where kod knows
//! the service's configuration directory (openssh's `sshd_config.d`), the
//! units the plan enables enabled with the target's own `systemctl
//! enable`, and the units the configuration switches off (`enable =
//! false`) disabled; other units stay as the distribution leaves them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kod_config::{Service, Setting};

use crate::Input;
use crate::error::Error;
use crate::planner::Planner;
use crate::units;

/// A configuration directory kod writes settings into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropIn {
    /// The directory.
    pub dir: &'static str,
    /// The file kod writes there.
    pub file: &'static str,
}

/// Where the settings of a service go: by its key, unit or package.
pub fn drop_in(name: &str, service: &Service) -> Option<DropIn> {
    let names = [
        Some(name),
        service.service_name.as_deref(),
        service.package.as_deref(),
    ];
    let is = |known: &[&str]| names.iter().flatten().any(|n| known.contains(n));
    if is(&[
        "openssh",
        "openssh-server",
        "ssh",
        "sshd",
        "ssh.service",
        "sshd.service",
    ]) {
        return Some(DropIn {
            dir: "/etc/ssh/sshd_config.d",
            file: "/etc/ssh/sshd_config.d/kod.conf",
        });
    }
    None
}

/// One value as sshd_config writes it: booleans as yes/no, lists space
/// separated.
fn sshd_value(service: &str, key: &str, v: &Setting) -> Result<String, Error> {
    let bad = |reason: &str| Error::BadValue {
        key: format!("services.{service}.settings.{key}"),
        value: format!("{v:?}"),
        reason: reason.into(),
    };
    Ok(match v {
        Setting::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
        Setting::Int(i) => i.to_string(),
        Setting::Float(f) => f.to_string(),
        Setting::Text(t) => {
            if t.contains('\n') {
                return Err(bad("holds a newline"));
            }
            t.clone()
        }
        Setting::List(items) => items
            .iter()
            .map(|i| match i {
                Setting::List(_) => Err(bad("is a list in a list; give one list of values")),
                other => sshd_value(service, key, other),
            })
            .collect::<Result<Vec<_>, _>>()?
            .join(" "),
    })
}

/// The sshd_config.d text of `settings`.
pub fn sshd_config(service: &str, settings: &BTreeMap<String, Setting>) -> Result<String, Error> {
    let mut s = String::from("# Written by kod from the configuration's services settings.\n");
    for (k, v) in settings {
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(Error::BadValue {
                key: format!("services.{service}.settings"),
                value: k.clone(),
                reason: "is no sshd_config keyword".into(),
            });
        }
        s.push_str(&format!("{k} {}\n", sshd_value(service, k, v)?));
    }
    Ok(s)
}

/// Plans the settings drop-ins of the services not switched off.
pub(crate) fn plan_settings(p: &mut Planner, input: &Input) -> Result<(), Error> {
    for (name, svc) in &input.config.services {
        if svc.enable == Some(false) || svc.settings.is_empty() {
            continue;
        }
        let key = format!("services.{name}.settings");
        let Some(place) = drop_in(name, svc) else {
            return Err(Error::UnknownSettingsPlace {
                service: name.clone(),
                setting: svc.settings.keys().next().cloned().unwrap_or_default(),
            });
        };
        let text = sshd_config(name, &svc.settings)?;
        p.dirs(&key, Path::new(place.dir), 0o755, (0, 0))?;
        p.write(&key, place.file, text, 0o644, (0, 0))?;
    }
    Ok(())
}

/// The target's systemctl.
pub(crate) fn systemctl(p: &Planner, key: &str) -> Result<String, Error> {
    p.program(&["/usr/bin/systemctl", "/bin/systemctl"])?
        .ok_or_else(|| Error::Missing {
            key: key.into(),
            path: "/usr/bin/systemctl".into(),
            hint: "install systemd".into(),
        })
}

fn system_dirs() -> Vec<PathBuf> {
    units::SYSTEM_DIRS.iter().map(PathBuf::from).collect()
}

/// Plans `systemctl enable UNIT` for a system unit not enabled yet.
pub(crate) fn enable(p: &mut Planner, key: &str, unit: &str) -> Result<(), Error> {
    let unit = units::unit_name(unit);
    let Some(found) = units::find(p, &system_dirs(), &unit)? else {
        return Err(Error::UnitNotFound {
            key: key.into(),
            unit,
        });
    };
    if found.masked {
        return Err(Error::BadValue {
            key: key.into(),
            value: unit.clone(),
            reason: format!(
                "is masked ({} links to /dev/null); unmask it or do not enable it",
                found.path.display()
            ),
        });
    }
    if !units::enabled(p, Path::new(units::SYSTEM_DIRS[0]), &found)? {
        let systemctl = systemctl(p, key)?;
        p.run(
            key,
            vec![systemctl, "enable".into(), unit.clone()],
            format!("enable {unit}"),
        );
    }
    Ok(())
}

/// Plans enabling the plan's units and disabling the ones switched off;
/// returns the units enabled, sorted.
pub(crate) fn plan_units(p: &mut Planner, input: &Input) -> Result<Vec<String>, Error> {
    for (unit, keys) in &input.plan.services.system {
        let key = keys.first().map_or("services", String::as_str);
        enable(p, key, unit)?;
    }
    let enabled = enabled_units(input.plan);
    let switched_off = input
        .config
        .services
        .iter()
        .filter(|(_, svc)| svc.enable == Some(false))
        .map(|(name, svc)| {
            (
                format!("services.{name}.enable"),
                units::unit_name(svc.service_name.as_deref().unwrap_or(name)),
            )
        });
    // What the generation before enabled and this configuration does not
    // (a service taken out of it) goes too.
    let dropped = input
        .previously_enabled
        .iter()
        .filter(|u| !enabled.contains(u))
        .map(|u| ("services".to_string(), u.clone()));
    for (key, unit) in switched_off.chain(dropped).collect::<Vec<_>>() {
        disable(p, &key, &unit)?;
    }
    Ok(enabled)
}

/// The system units `plan` enables, by their full names, sorted: the
/// record's `enabled_services`.
pub fn enabled_units(plan: &kod_plan::Plan) -> Vec<String> {
    let mut units: Vec<String> = plan
        .services
        .system
        .keys()
        .map(|u| units::unit_name(u))
        .collect();
    units.sort();
    units.dedup();
    units
}

/// Plans `systemctl disable UNIT` for a system unit that is enabled; a
/// unit not installed needs nothing (nothing can start it).
fn disable(p: &mut Planner, key: &str, unit: &str) -> Result<(), Error> {
    let Some(found) = units::find(p, &system_dirs(), unit)? else {
        return Ok(());
    };
    if !found.masked && units::any_link(p, Path::new(units::SYSTEM_DIRS[0]), &found)? {
        let systemctl = systemctl(p, key)?;
        p.run(
            key,
            vec![systemctl, "disable".into(), unit.to_string()],
            format!("disable {unit}"),
        );
    }
    Ok(())
}
