//! os-release and machine-id.
//!
//! `/etc/os-release` becomes a file of its own (Debian ships it as a
//! symlink to `../usr/lib/os-release`): the distribution's fields kept,
//! `VARIANT_ID=kod` and `IMAGE_VERSION=N` added. `/etc/machine-id` gets a
//! fresh random id when it has none: see the crate README for why.

use std::path::Path;

use crate::Input;
use crate::error::Error;
use crate::planner::Planner;

/// The distribution's os-release fields, as found in a root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    /// `KEY=value` lines in order (values as written, quotes included).
    pub fields: Vec<(String, String)>,
}

impl OsRelease {
    /// Parses os-release text (comments and blank lines dropped).
    pub fn parse(text: &str) -> OsRelease {
        let fields = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        OsRelease { fields }
    }

    /// The value of `key`, unquoted.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim_matches(|c| c == '"' || c == '\''))
    }
}

const KEY: &str = "os-release";

/// Plans /etc/os-release: the distribution's /usr/lib/os-release with
/// kod's variant and the generation.
pub(crate) fn plan(p: &mut Planner, input: &Input) -> Result<(), Error> {
    let lib = Path::new("/usr/lib/os-release");
    let text = match p.read_text(lib)? {
        Some(t) => t,
        None => p
            .read_text(Path::new("/etc/os-release"))?
            .ok_or_else(|| Error::Missing {
                key: KEY.into(),
                path: lib.into(),
                hint: "the base system is not installed (Debian's base-files ships it)".into(),
            })?,
    };
    let mut os = OsRelease::parse(&text);
    os.fields
        .retain(|(k, _)| k != "VARIANT_ID" && k != "IMAGE_VERSION");
    os.fields.push(("VARIANT_ID".into(), "kod".into()));
    os.fields
        .push(("IMAGE_VERSION".into(), input.generation.to_string()));
    let out: String = os
        .fields
        .iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    p.write(KEY, "/etc/os-release", out, 0o644, (0, 0))?;
    Ok(())
}

/// Whether `s` is a valid machine id: 32 lowercase hex digits, not all
/// zero.
pub fn valid_machine_id(s: &str) -> bool {
    let s = s.trim_end_matches('\n');
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && s.bytes().any(|b| b != b'0')
}

/// A new random machine id, formatted as systemd does (a v4 UUID's 32
/// hex digits).
fn new_machine_id() -> Result<String, Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| Error::Io {
        op: "get random bytes for",
        path: "/etc/machine-id".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Plans /etc/machine-id: kept when it holds an id, else a new one.
pub(crate) fn plan_machine_id(p: &mut Planner) -> Result<(), Error> {
    let path = Path::new("/etc/machine-id");
    let current = p.read_text(path)?;
    if current.as_deref().is_some_and(valid_machine_id) {
        // Mode and owner as systemd writes it (0444 root).
        if let Some(id) = current {
            p.write("machine-id", path, id, 0o444, (0, 0))?;
        }
        return Ok(());
    }
    p.write(
        "machine-id",
        path,
        format!("{}\n", new_machine_id()?),
        0o444,
        (0, 0),
    )?;
    Ok(())
}
