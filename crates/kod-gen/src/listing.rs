//! The list of a top level's generations, each with what people ask of
//! it: when it was committed, its kernel, how many packages, and which of
//! the booted, current, default and last good generations it is.

use std::fs;
use std::time::UNIX_EPOCH;

use serde::Serialize;

use crate::error::{Result, io};
use crate::record::Record;
use crate::running::Running;
use crate::top::{RECORD_COMPLETE, Top};

/// A top level's committed generations and its marks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listing {
    /// The generation the running system started from, when the top
    /// level is the running system's.
    pub booted: Option<u64>,
    /// The generation `/` is now, when the top level is the running
    /// system's.
    pub current: Option<u64>,
    /// The generation the next boot starts (the default pointer).
    pub default: Option<u64>,
    /// The newest generation that booted successfully (where the boot
    /// entries are not known: the newest committed one).
    pub last_good: Option<u64>,
    /// Generations whose boots failed (their entry used up its tries).
    pub bad: Vec<u64>,
    /// The pointer's previous defaults, newest first: where rollbacks go.
    pub previous_defaults: Vec<u64>,
    /// The committed generations, oldest first.
    pub generations: Vec<Generation>,
}

/// One committed generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Generation {
    /// Its number.
    pub number: u64,
    /// When its record was committed, UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub committed: String,
    /// The same, in seconds since 1970 (UTC).
    pub committed_unix: u64,
    /// Its kernel package, if the configuration names one.
    pub kernel: Option<Kernel>,
    /// How many packages are installed in it (`packages.lock`).
    pub packages: usize,
    /// The kod that wrote it.
    pub kod_version: String,
    /// Whether the running system started from it.
    pub booted: bool,
    /// Whether `/` is it now.
    pub current: bool,
    /// Whether the next boot starts it.
    pub default: bool,
    /// Whether it is the last good generation.
    pub last_good: bool,
    /// Whether its boots failed.
    pub bad: bool,
}

/// A generation's kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kernel {
    /// The package the configuration names (`installed_packages`'s
    /// `kernel`), e.g. `linux-image-amd64`.
    pub package: String,
    /// Its installed version (`packages.lock`), when it is installed.
    pub version: Option<String>,
}

impl Generation {
    /// Its marks as words, in a fixed order: `booted`, `current`,
    /// `default`, `last good`, `bad`.
    pub fn marks(&self) -> Vec<&'static str> {
        [
            (self.booted, "booted"),
            (self.current, "current"),
            (self.default, "default"),
            (self.last_good, "last good"),
            (self.bad, "bad"),
        ]
        .into_iter()
        .filter_map(|(on, word)| on.then_some(word))
        .collect()
    }
}

impl Top {
    /// The last good generation: the newest committed one whose boot was
    /// blessed, when the boot entries were read ([`Top::with_boot_marks`]);
    /// without them, the newest committed generation.
    pub fn last_good(&self) -> Result<Option<u64>> {
        let committed = self.generations()?;
        Ok(match self.boot_marks() {
            Some(m) => committed.into_iter().rev().find(|n| m.blessed.contains(n)),
            None => committed.last().copied(),
        })
    }

    /// When generation `n` was committed: its completion marker's
    /// modification time, in seconds since 1970.
    pub fn committed_at(&self, n: u64) -> Result<u64> {
        let marker = self.generation_dir(n).join(RECORD_COMPLETE);
        let m = fs::metadata(&marker).map_err(io("read", &marker))?;
        let t = m.modified().map_err(io("read the time of", &marker))?;
        Ok(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    }

    /// The committed generations with their records' facts and marks;
    /// `running` says which are booted and current
    /// ([`Running::detect`]).
    pub fn list(&self, running: &Running) -> Result<Listing> {
        let pointer = self.pointer()?;
        let default = pointer.as_ref().map(|p| p.default);
        let last_good = self.last_good()?;
        let bad: Vec<u64> = self.boot_marks().map(|m| m.bad.clone()).unwrap_or_default();
        let mut generations = Vec::new();
        for n in self.generations()? {
            let record = Record::read(self, n)?;
            let at = self.committed_at(n)?;
            let kernel = record.installed_packages.kernel.as_ref().map(|k| Kernel {
                package: k.clone(),
                version: record
                    .packages
                    .iter()
                    .find(|p| &p.name == k)
                    .map(|p| p.version.clone()),
            });
            generations.push(Generation {
                number: n,
                committed: utc(at),
                committed_unix: at,
                kernel,
                packages: record.packages.len(),
                kod_version: record.kod_version,
                booted: running.booted == Some(n),
                current: running.current == Some(n),
                default: default == Some(n),
                last_good: last_good == Some(n),
                bad: bad.contains(&n),
            });
        }
        Ok(Listing {
            booted: running.booted,
            current: running.current,
            default,
            last_good,
            bad: generations
                .iter()
                .filter(|g| g.bad)
                .map(|g| g.number)
                .collect(),
            previous_defaults: pointer.map(|p| p.previous).unwrap_or_default(),
            generations,
        })
    }
}

/// `secs` since 1970 as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of day `z` since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_read_as_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_709_210_096), "2024-02-29T12:34:56Z");
        assert_eq!(utc(1_735_689_599), "2024-12-31T23:59:59Z");
        assert_eq!(utc(4_102_444_800), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn marks_read_in_a_fixed_order() {
        let g = Generation {
            number: 3,
            committed: utc(0),
            committed_unix: 0,
            kernel: None,
            packages: 0,
            kod_version: "0.1.0".into(),
            booted: true,
            current: false,
            default: true,
            last_good: true,
            bad: false,
        };
        assert_eq!(g.marks(), ["booted", "default", "last good"]);
        let bad = Generation {
            bad: true,
            booted: false,
            ..g
        };
        assert_eq!(bad.marks(), ["default", "last good", "bad"]);
    }
}
