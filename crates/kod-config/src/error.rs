//! Errors of configuration evaluation: each names the file and line (when
//! known), the key, and what to do.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A place in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<u32>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}", self.file.display()),
            None => write!(f, "{}", self.file.display()),
        }
    }
}

/// Why a configuration could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No configuration file where one was looked for.
    #[error(
        "no configuration found (looked for {}); pass -c FILE or -c DIR (DIR/configuration.lua)",
        display_paths(tried)
    )]
    NotFound {
        /// Every path tried, in order.
        tried: Vec<PathBuf>,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The Lua code does not parse.
    #[error("{location}: syntax error: {message}{}", hint_suffix(hint))]
    Syntax {
        /// Where.
        location: Location,
        /// Lua's own message, without the location.
        message: String,
        /// A suggestion, when kod recognises the mistake.
        hint: Option<String>,
    },
    /// The Lua code failed while running, or tried something the sandbox refuses.
    #[error("{}{message}", location_prefix(location))]
    Runtime {
        /// Where, when Lua says.
        location: Option<Location>,
        /// What happened.
        message: String,
    },
    /// Evaluation ran past its time bound (an endless loop?).
    #[error(
        "{}evaluation took longer than {:.1} s and was stopped (an endless loop?)",
        location_prefix(location),
        limit.as_secs_f64()
    )]
    Timeout {
        /// Where it was when stopped.
        location: Option<Location>,
        /// The bound.
        limit: Duration,
    },
    /// The configuration evaluated but a value is wrong: an unknown key, a
    /// wrong type, a contradiction.
    #[error("{}{key}: {message}", location_prefix(location))]
    Invalid {
        /// Where the key is written, when kod can find it.
        location: Option<Location>,
        /// The key's place, e.g. `services.openssh.setings`.
        key: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// More than one mistake, each with its place, in the order of the
    /// files and lines (one a line, after a count).
    #[error("{} mistakes in the configuration:\n{}", .0.len(), one_a_line(.0))]
    Several(Vec<ConfigError>),
}

fn one_a_line(errors: &[ConfigError]) -> String {
    let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
    lines.join("\n")
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_ref()
        .map(|h| format!("\n  hint: {h}"))
        .unwrap_or_default()
}

fn location_prefix(location: &Option<Location>) -> String {
    location
        .as_ref()
        .map(|l| format!("{l}: "))
        .unwrap_or_default()
}

impl ConfigError {
    /// Several errors as one: the only one as it is, or [`ConfigError::Several`].
    pub(crate) fn from_several(mut errors: Vec<ConfigError>) -> ConfigError {
        if errors.len() == 1 {
            return errors.remove(0);
        }
        ConfigError::Several(errors)
    }

    /// The location the error points at (the first one's, for several),
    /// if any.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Several(all) => all.first().and_then(ConfigError::location),
            ConfigError::Syntax { location, .. } => Some(location),
            ConfigError::Runtime { location, .. }
            | ConfigError::Timeout { location, .. }
            | ConfigError::Invalid { location, .. } => location.as_ref(),
            _ => None,
        }
    }

    pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            location: None,
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Splits Lua's `FILE:LINE: message` into a location and the message.
pub(crate) fn split_lua_location(msg: &str) -> (Option<Location>, String) {
    // Lua prefixes messages with the chunk name; kod names chunks by path.
    let first = msg.lines().next().unwrap_or("");
    let mut parts = first.splitn(3, ':');
    if let (Some(file), Some(line), Some(rest)) = (parts.next(), parts.next(), parts.next())
        && let Ok(line) = line.trim().parse::<u32>()
        && !file.is_empty()
    {
        let rest_of_msg: Vec<&str> = std::iter::once(rest.trim_start())
            .chain(msg.lines().skip(1))
            .take_while(|l| !l.starts_with("stack traceback"))
            .collect();
        return (
            Some(Location {
                file: Path::new(file).to_path_buf(),
                line: Some(line),
            }),
            rest_of_msg.join("\n").trim_end().to_string(),
        );
    }
    let msg: Vec<&str> = msg
        .lines()
        .take_while(|l| !l.starts_with("stack traceback"))
        .collect();
    (None, msg.join("\n").trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_file_and_line() {
        let (loc, msg) =
            split_lua_location("cfg/configuration.lua:12: boom\nstack traceback:\n\t[C]: in ?");
        let loc = loc.unwrap();
        assert_eq!(loc.file, PathBuf::from("cfg/configuration.lua"));
        assert_eq!(loc.line, Some(12));
        assert_eq!(msg, "boom");
    }

    #[test]
    fn keeps_messages_without_location() {
        let (loc, msg) = split_lua_location("not enough memory");
        assert!(loc.is_none());
        assert_eq!(msg, "not enough memory");
    }
}
