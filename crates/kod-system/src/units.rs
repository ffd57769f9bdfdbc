//! systemd unit files in a root: where a unit is, what its `[Install]`
//! section asks for, and whether the symlinks `systemctl enable` makes
//! are there.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::planner::{Node, Planner};

/// Where system units are looked up, in systemd's order.
pub(crate) const SYSTEM_DIRS: [&str; 3] = [
    "/etc/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// Where user units are looked up (the user's own directory comes first).
pub(crate) const USER_DIRS: [&str; 3] = [
    "/etc/systemd/user",
    "/usr/lib/systemd/user",
    "/lib/systemd/user",
];

/// `name` with `.service` added when it has no unit suffix.
pub(crate) fn unit_name(name: &str) -> String {
    const SUFFIXES: [&str; 11] = [
        ".service",
        ".socket",
        ".timer",
        ".mount",
        ".automount",
        ".target",
        ".path",
        ".swap",
        ".slice",
        ".scope",
        ".device",
    ];
    if SUFFIXES.iter().any(|s| name.ends_with(s)) {
        name.to_string()
    } else {
        format!("{name}.service")
    }
}

/// A unit found in a root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unit {
    /// The name symlinks carry (the real unit's when `name` is an alias,
    /// the instance's for a template instance).
    pub(crate) name: String,
    /// Where the unit file is.
    pub(crate) path: PathBuf,
    /// Targets of `WantedBy=` (as `T.wants`) and `RequiredBy=` (`T.requires`).
    pub(crate) wanted_by: Vec<String>,
    /// `Alias=` names.
    pub(crate) aliases: Vec<String>,
    /// Masked (a link to /dev/null).
    pub(crate) masked: bool,
}

/// Looks `name` up in `dirs`; a template instance (`getty@tty1.service`)
/// falls back to its template.
pub(crate) fn find(p: &Planner, dirs: &[PathBuf], name: &str) -> Result<Option<Unit>, Error> {
    let template = name.split_once('@').and_then(|(pre, rest)| {
        let (_, suffix) = rest.rsplit_once('.')?;
        (!rest.starts_with('.')).then(|| format!("{pre}@.{suffix}"))
    });
    for file in std::iter::once(name.to_string()).chain(template) {
        for d in dirs {
            let path = d.join(&file);
            let mut real = name.to_string();
            match p.node(&path)? {
                Node::Absent => continue,
                Node::Symlink(t) if t == Path::new("/dev/null") => {
                    return Ok(Some(Unit {
                        name: name.into(),
                        path,
                        wanted_by: Vec::new(),
                        aliases: Vec::new(),
                        masked: true,
                    }));
                }
                Node::Symlink(t) if file == name => {
                    if let Some(n) = t.file_name().and_then(|n| n.to_str()) {
                        real = n.to_string();
                    }
                }
                _ => {}
            }
            let Some(text) = p.read_text(&path)? else {
                continue;
            };
            let (wanted_by, aliases) = install_section(&text);
            return Ok(Some(Unit {
                name: real,
                path,
                wanted_by,
                aliases,
                masked: false,
            }));
        }
    }
    Ok(None)
}

/// `WantedBy=`/`RequiredBy=` as `T.wants`/`T.requires`, and `Alias=`.
fn install_section(text: &str) -> (Vec<String>, Vec<String>) {
    let mut in_install = false;
    let (mut wants, mut aliases) = (Vec::new(), Vec::new());
    for l in text.lines().map(str::trim) {
        if l.starts_with('[') {
            in_install = l == "[Install]";
            continue;
        }
        if !in_install {
            continue;
        }
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        let dir = match k.trim() {
            "WantedBy" => "wants",
            "RequiredBy" => "requires",
            "Alias" => {
                aliases.extend(v.split_whitespace().map(str::to_string));
                continue;
            }
            _ => continue,
        };
        wants.extend(v.split_whitespace().map(|t| format!("{t}.{dir}")));
    }
    (wants, aliases)
}

/// The symlinks enabling `unit` in `base` makes.
pub(crate) fn links(base: &Path, unit: &Unit) -> Vec<PathBuf> {
    unit.wanted_by
        .iter()
        .map(|w| base.join(w).join(&unit.name))
        .chain(unit.aliases.iter().map(|a| base.join(a)))
        .collect()
}

/// Whether every link of `unit` in `base` exists.
pub(crate) fn enabled(p: &Planner, base: &Path, unit: &Unit) -> Result<bool, Error> {
    for l in links(base, unit) {
        if p.node(&l)? == Node::Absent {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether any link of `unit` in `base` exists.
pub(crate) fn any_link(p: &Planner, base: &Path, unit: &Unit) -> Result<bool, Error> {
    for l in links(base, unit) {
        if p.node(&l)? != Node::Absent {
            return Ok(true);
        }
    }
    Ok(false)
}
