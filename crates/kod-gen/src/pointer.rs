//! The default pointer's content: the default generation and the defaults
//! before it.
//!
//! The file (`generations/default`) is text, one entry a line:
//!
//! ```text
//! default 7
//! previous 5
//! previous 4
//! ```
//!
//! `default N` first, then up to [`HISTORY`] `previous N` lines, newest
//! first, no number twice. Lines starting with `#` and blank lines are
//! ignored.

/// How many previous defaults the pointer keeps.
pub const HISTORY: usize = 32;

/// The default generation and the defaults before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    /// The default generation: the one the next boot starts.
    pub default: u64,
    /// The defaults before it, newest first (at most [`HISTORY`]; never
    /// `default`, never one number twice).
    pub previous: Vec<u64>,
}

impl Pointer {
    /// A pointer at `n` with no history.
    pub fn new(n: u64) -> Pointer {
        Pointer {
            default: n,
            previous: Vec::new(),
        }
    }

    /// Parses the file's text; the error names the line.
    pub fn parse(text: &str) -> Result<Pointer, String> {
        let mut default = None;
        let mut previous: Vec<u64> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| format!("line {}: {why}: {line:?}", i + 1);
            let (key, value) = line
                .split_once(' ')
                .ok_or_else(|| bad("expected `default N` or `previous N`"))?;
            let n: u64 = value
                .trim()
                .parse()
                .map_err(|_| bad("not a generation number"))?;
            match key {
                "default" if default.is_none() && previous.is_empty() => default = Some(n),
                "default" => return Err(bad("`default` must be the first line, once")),
                "previous" if default.is_none() => {
                    return Err(bad("`previous` before `default`"));
                }
                "previous" if Some(n) == default || previous.contains(&n) => {
                    return Err(bad("a generation named twice"));
                }
                "previous" => previous.push(n),
                _ => return Err(bad("expected `default N` or `previous N`")),
            }
        }
        let default = default.ok_or_else(|| "no `default N` line".to_owned())?;
        previous.truncate(HISTORY);
        Ok(Pointer { default, previous })
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut s = format!(
            "# The default generation, written by kod; the defaults before it follow, newest first.\ndefault {}\n",
            self.default
        );
        for n in &self.previous {
            s.push_str(&format!("previous {n}\n"));
        }
        s
    }

    /// The pointer after making `n` the default: the old default becomes
    /// the newest previous one; `n` leaves the history; the oldest entries
    /// beyond [`HISTORY`] are dropped. Setting the default it already has
    /// changes nothing.
    pub fn moved_to(&self, n: u64) -> Pointer {
        if n == self.default {
            return self.clone();
        }
        let mut previous = vec![self.default];
        previous.extend(self.previous.iter().copied().filter(|&p| p != n));
        previous.truncate(HISTORY);
        Pointer {
            default: n,
            previous,
        }
    }

    /// The newest previous default for which `usable` holds (a committed
    /// generation), if any.
    pub fn previous_where(&self, usable: impl Fn(u64) -> bool) -> Option<u64> {
        self.previous.iter().copied().find(|&p| usable(p))
    }

    /// The pointer after a rollback: the default goes back to the newest
    /// previous default for which `usable` holds; the default it leaves,
    /// and the unusable entries skipped on the way, drop out of the
    /// history (a second rollback goes further back, as a history does).
    pub fn rolled_back(&self, usable: impl Fn(u64) -> bool) -> Option<Pointer> {
        let at = self.previous.iter().position(|&p| usable(p))?;
        Some(Pointer {
            default: self.previous[at],
            previous: self.previous[at + 1..].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_round_trips_and_bad_text_names_its_line() {
        let p = Pointer {
            default: 7,
            previous: vec![5, 4, 0],
        };
        assert_eq!(Pointer::parse(&p.render()).unwrap(), p);
        assert_eq!(
            Pointer::parse("default 3\n\n# note\nprevious 1\n").unwrap(),
            Pointer {
                default: 3,
                previous: vec![1]
            }
        );
        for (text, says) in [
            ("", "no `default N`"),
            ("previous 1\n", "line 1: `previous` before"),
            ("default 1\ndefault 2\n", "line 2: `default` must be"),
            (
                "default 1\nprevious 1\n",
                "line 2: a generation named twice",
            ),
            ("default x\n", "line 1: not a generation number"),
            ("default 1\nnext 2\n", "line 2: expected"),
            ("default1\n", "line 1: expected"),
            ("default -1\n", "not a generation number"),
        ] {
            let e = Pointer::parse(text).unwrap_err();
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }

    #[test]
    fn moving_keeps_a_bounded_history_newest_first_without_repeats() {
        let mut p = Pointer::new(0);
        for n in 1..=40 {
            p = p.moved_to(n);
        }
        assert_eq!(p.default, 40);
        assert_eq!(p.previous.len(), HISTORY);
        assert_eq!(p.previous[0], 39);
        assert_eq!(*p.previous.last().unwrap(), 40 - HISTORY as u64);
        // Back to an older one: it leaves the history, the old default
        // comes first.
        let q = p.moved_to(35);
        assert_eq!(q.default, 35);
        assert_eq!(&q.previous[..5], &[40, 39, 38, 37, 36]);
        assert!(!q.previous.contains(&35));
        assert_eq!(q.previous.len(), HISTORY);
        assert_eq!(q.moved_to(35), q);
        // A long history parses back whole.
        assert_eq!(Pointer::parse(&q.render()).unwrap(), q);
    }

    #[test]
    fn rolling_back_walks_the_history_and_skips_what_is_gone() {
        let p = Pointer::new(1).moved_to(2).moved_to(3).moved_to(4);
        assert_eq!(p.previous, vec![3, 2, 1]);
        assert_eq!(p.previous_where(|_| true), Some(3));
        assert_eq!(p.previous_where(|n| n != 3), Some(2));
        let back = p.rolled_back(|_| true).unwrap();
        assert_eq!(
            back,
            Pointer {
                default: 3,
                previous: vec![2, 1]
            }
        );
        let back = back.rolled_back(|n| n != 2).unwrap();
        assert_eq!(
            back,
            Pointer {
                default: 1,
                previous: vec![]
            }
        );
        assert_eq!(back.rolled_back(|_| true), None);
    }
}
