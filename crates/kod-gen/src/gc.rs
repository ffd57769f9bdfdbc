//! Which generations may go: the checks before deleting one, and the
//! selection of garbage collection (keep the newest K, and always the
//! booted, current, default and last good ones).

use serde::Serialize;

use crate::error::{Error, Result};
use crate::running::Running;
use crate::top::{BUILDING, Top};

/// Why a generation is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Keep {
    /// One of the newest K committed generations.
    Newest,
    /// The running system started from it.
    Booted,
    /// `/` is it now.
    Current,
    /// The next boot starts it.
    Default,
    /// The newest generation that booted successfully.
    LastGood,
}

impl Keep {
    /// The reason in words (`newest`, `booted`, `current`, `default`,
    /// `last good`).
    pub fn word(self) -> &'static str {
        match self {
            Keep::Newest => "newest",
            Keep::Booted => "booted",
            Keep::Current => "current",
            Keep::Default => "default",
            Keep::LastGood => "last good",
        }
    }
}

/// A generation garbage collection keeps, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    /// Its number.
    pub generation: u64,
    /// Why (at least one reason), in [`Keep`]'s order.
    pub why: Vec<Keep>,
}

/// What garbage collection keeps and deletes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GcPlan {
    /// How many of the newest committed generations it was asked to keep.
    pub keep: usize,
    /// The generations kept, oldest first.
    pub kept: Vec<Kept>,
    /// The generations to delete, oldest first.
    pub delete: Vec<u64>,
}

impl Top {
    /// The reasons generation `n` must not be deleted: booted, current,
    /// default or last good (never [`Keep::Newest`]).
    pub fn protections(&self, running: &Running, n: u64) -> Result<Vec<Keep>> {
        Ok(protections(running, self.default()?, self.last_good()?, n))
    }

    /// Checks that generation `n` may be deleted by hand: it exists, is
    /// kod's (committed, or a leftover being built), and is neither the
    /// booted, the current nor the default generation (each refusal says
    /// what to do instead). The last good one may be deleted by hand;
    /// garbage collection keeps it.
    pub fn check_delete(&self, running: &Running, n: u64) -> Result<()> {
        let dir = self.generation_dir(n);
        if !dir.is_dir() {
            return Err(Error::NoGeneration {
                generation: n,
                path: dir,
            });
        }
        if !self.is_committed(n) && !dir.join(BUILDING).exists() {
            return Err(Error::NotKods {
                generation: n,
                path: dir,
            });
        }
        if running.booted == Some(n) {
            return Err(Error::IsBooted { generation: n });
        }
        if running.current == Some(n) {
            return Err(Error::IsCurrent { generation: n });
        }
        if self.default()? == Some(n) {
            return Err(Error::IsDefault { generation: n });
        }
        Ok(())
    }

    /// What garbage collection keeping the newest `keep` committed
    /// generations does: every committed generation older than those is
    /// deleted unless it is booted, current, default or last good (which
    /// may keep more than `keep`). Changes nothing.
    pub fn gc_plan(&self, running: &Running, keep: usize) -> Result<GcPlan> {
        let all = self.generations()?;
        let default = self.default()?;
        let last_good = self.last_good()?;
        Ok(select(&all, keep, |n| {
            protections(running, default, last_good, n)
        }))
    }
}

/// The protections of `n` given the marks.
fn protections(
    running: &Running,
    default: Option<u64>,
    last_good: Option<u64>,
    n: u64,
) -> Vec<Keep> {
    [
        (running.booted, Keep::Booted),
        (running.current, Keep::Current),
        (default, Keep::Default),
        (last_good, Keep::LastGood),
    ]
    .into_iter()
    .filter_map(|(mark, why)| (mark == Some(n)).then_some(why))
    .collect()
}

/// The selection: of the committed generations `all` (sorted), keep the
/// newest `keep` and every one `protected` names a reason for.
fn select(all: &[u64], keep: usize, protected: impl Fn(u64) -> Vec<Keep>) -> GcPlan {
    let newest = &all[all.len().saturating_sub(keep)..];
    let mut kept = Vec::new();
    let mut delete = Vec::new();
    for &n in all {
        let mut why = Vec::new();
        if newest.contains(&n) {
            why.push(Keep::Newest);
        }
        why.extend(protected(n));
        if why.is_empty() {
            delete.push(n);
        } else {
            kept.push(Kept { generation: n, why });
        }
    }
    GcPlan { keep, kept, delete }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(p: &GcPlan) -> Vec<(u64, Vec<&'static str>)> {
        p.kept
            .iter()
            .map(|k| (k.generation, k.why.iter().map(|w| w.word()).collect()))
            .collect()
    }

    #[test]
    fn gc_keeps_the_newest_and_every_protected_generation() {
        let all = [0, 2, 3, 5, 8];
        let running = Running {
            booted: Some(2),
            current: Some(3),
        };
        let p = select(&all, 1, |n| protections(&running, Some(5), Some(8), n));
        assert_eq!(p.delete, [0]);
        assert_eq!(
            kept(&p),
            [
                (2, vec!["booted"]),
                (3, vec!["current"]),
                (5, vec!["default"]),
                (8, vec!["newest", "last good"]),
            ]
        );
        // Keeping none still keeps the protected ones; keeping more than
        // there are deletes nothing.
        let p = select(&all, 0, |n| {
            protections(&Running::none(), Some(5), Some(8), n)
        });
        assert_eq!(p.delete, [0, 2, 3]);
        assert_eq!(p.kept.len(), 2);
        let p = select(&all, 10, |_| Vec::new());
        assert!(p.delete.is_empty());
        assert_eq!(p.kept.len(), 5);
        assert!(select(&[], 3, |_| Vec::new()).kept.is_empty());
        let json = serde_json::to_value(select(&[1, 2], 1, |n| {
            protections(&Running::none(), Some(1), Some(2), n)
        }))
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"keep": 1, "delete": [],
                "kept": [{"generation": 1, "why": ["default"]},
                         {"generation": 2, "why": ["newest", "last-good"]}]})
        );
    }
}
