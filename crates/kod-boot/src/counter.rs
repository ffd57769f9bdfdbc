//! Reading kod's entry file names back: the generation and systemd's boot
//! counter (Automatic Boot Assessment), which `systemd-bless-boot` and
//! systemd-boot change by renaming the file.

use std::fmt;

/// The state of an entry's tries counter, from its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// `kod-N.conf`: no counter; blessed (or written without counting).
    Blessed,
    /// `kod-N+LEFT[-DONE].conf`: still being assessed; `left == 0` is bad.
    Counting {
        /// Boots left before the entry counts as bad.
        left: u32,
        /// Boots tried so far (0 when the name has no `-DONE`).
        done: u32,
    },
}

/// A kod entry's file name in `loader/entries`, parsed:
/// `kod-N_RANK[+LEFT[-DONE]].conf`.
///
/// The rank (also the entry's `version`, which orders the menu) is in the
/// name so that moving an entry up writes a new file before the old one
/// goes: FAT cannot replace a file atomically, and removing the entry that
/// boots now, even for a moment, would leave only others (perhaps a bad one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryName {
    /// The generation it boots.
    pub generation: u64,
    /// Its place in the order: the highest boots by default.
    pub rank: u64,
    /// Its tries counter.
    pub counter: Counter,
}

impl EntryName {
    /// Parses `kod-N_RANK.conf`, `kod-N_RANK+LEFT.conf` or
    /// `kod-N_RANK+LEFT-DONE.conf` (`_RANK` may be missing: rank 0);
    /// `None` for anything else (other loaders' entries, extras, leftovers).
    pub fn parse(file: &str) -> Option<EntryName> {
        let stem = file.strip_prefix("kod-")?.strip_suffix(".conf")?;
        let (ids, counter) = match stem.split_once('+') {
            None => (stem, Counter::Blessed),
            Some((number, tries)) => {
                let (left, done) = match tries.split_once('-') {
                    None => (tries, "0"),
                    Some(pair) => pair,
                };
                (
                    number,
                    Counter::Counting {
                        left: digits(left)?,
                        done: digits(done)?,
                    },
                )
            }
        };
        let (number, rank) = ids.split_once('_').unwrap_or((ids, "0"));
        Some(EntryName {
            generation: digits(number)?,
            rank: digits(rank)?,
            counter,
        })
    }

    /// A new entry's name: counting with `tries` boots left, or blessed
    /// from the start when `tries` is 0 (boot counting off).
    pub fn new(generation: u64, rank: u64, tries: u32) -> EntryName {
        let counter = if tries == 0 {
            Counter::Blessed
        } else {
            Counter::Counting {
                left: tries,
                done: 0,
            }
        };
        EntryName {
            generation,
            rank,
            counter,
        }
    }

    /// Whether its boots failed: systemd-boot sorts it last.
    pub fn is_bad(&self) -> bool {
        matches!(self.counter, Counter::Counting { left: 0, .. })
    }

    /// Whether a boot of it reached `boot-complete.target` (or counting was off).
    pub fn is_blessed(&self) -> bool {
        self.counter == Counter::Blessed
    }
}

/// Plain decimal digits only: `+3` or ` 3` are not systemd's counters.
fn digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl fmt::Display for EntryName {
    /// The file name, as systemd writes it: `-0` is left out of a fresh
    /// counter, as `kernel-install` does.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kod-{}_{}", self.generation, self.rank)?;
        match self.counter {
            Counter::Blessed => write!(f, ".conf"),
            Counter::Counting { left, done: 0 } => write!(f, "+{left}.conf"),
            Counter::Counting { left, done } => write!(f, "+{left}-{done}.conf"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_systemd_renames_them() {
        assert_eq!(
            EntryName::parse("kod-7.conf"),
            Some(EntryName {
                generation: 7,
                rank: 0,
                counter: Counter::Blessed
            })
        );
        assert_eq!(
            EntryName::parse("kod-7_12+3.conf"),
            Some(EntryName {
                generation: 7,
                rank: 12,
                counter: Counter::Counting { left: 3, done: 0 }
            })
        );
        let after_one_failure = EntryName::parse("kod-12+2-1.conf").unwrap();
        assert_eq!(
            after_one_failure.counter,
            Counter::Counting { left: 2, done: 1 }
        );
        assert!(!after_one_failure.is_bad());
        let bad = EntryName::parse("kod-2+0-1.conf").unwrap();
        assert!(bad.is_bad());
        assert!(!bad.is_blessed());
        assert!(EntryName::parse("kod-2.conf").unwrap().is_blessed());
    }

    #[test]
    fn other_files_are_not_kod_entries() {
        for name in [
            "debian-6.1.conf",
            "kod-.conf",
            "kod-x.conf",
            "kod-1+.conf",
            "kod-1+a.conf",
            "kod-1+1-.conf",
            "kod-1.conf.part",
            "kodextra-memtest.conf",
            "kod-1+-1.conf",
            "kod--1.conf",
            "kod-1_.conf",
            "kod-1_x+3.conf",
        ] {
            assert_eq!(EntryName::parse(name), None, "{name}");
        }
    }

    #[test]
    fn new_names() {
        assert_eq!(EntryName::new(4, 2, 3).to_string(), "kod-4_2+3.conf");
        assert_eq!(EntryName::new(4, 0, 0).to_string(), "kod-4_0.conf");
        let renamed = EntryName {
            generation: 4,
            rank: 9,
            counter: Counter::Counting { left: 0, done: 3 },
        };
        assert_eq!(renamed.to_string(), "kod-4_9+0-3.conf");
        assert_eq!(EntryName::parse(&renamed.to_string()), Some(renamed));
    }
}
