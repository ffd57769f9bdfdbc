//! apt's choices, computed the way apt makes them, to steer the solver.
//!
//! apt installs greedily (`pkgDepCache::MarkInstall`): it marks every
//! requested package, then walks each one's dependencies depth first,
//! skipping a dependency that a marked or installed package already
//! satisfies, and otherwise marking the first solution in this order:
//! installed packages first, then the alternatives of the or-group in
//! order, each alternative's real package before its providers. It only
//! ever considers each package's candidate version. A package whose
//! Conflicts or Breaks hit a marked one unmarks it first
//! (`MarkInstall_RemoveConflictsIfNotUpgradeable`), unless that one was
//! requested or is installed.
//!
//! The SAT solver decides in another order (breadth first, in rounds), so
//! the same rules alone would pick differently where an or-group is
//! satisfied by a package that apt reaches first through another path.
//! This pass replays apt's walk and records what it marks; the solver then
//! tries those packages first (favoured candidates, preferred
//! alternatives) and, once the request is solved, adds the rest of them
//! (soft requirements: a package apt marked for an or-group that another
//! path satisfied first in the solver's order). When apt's walk is
//! consistent the solver returns exactly it; when it is not (apt would
//! need its problem resolver), the solver still finds a consistent answer.

use kod_repo::Alternatives;
use resolvo::{NameId, SolvableId};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::universe::{Set, Universe};

/// What apt's walk marked: the chosen candidate per name.
pub(crate) type Marks = FxHashMap<NameId, SolvableId>;

enum Undo {
    /// A name was marked or unmarked; the value is what it was marked as
    /// before.
    Mark(NameId, Option<SolvableId>),
    /// A set was pushed to a name's forbidden list.
    Forbid(NameId),
}

struct Walk<'u, 'a> {
    u: &'u Universe<'a>,
    /// Candidates fixed by the request (`name=version`, `name/suite`).
    pinned: &'u FxHashMap<NameId, SolvableId>,
    recommends: bool,
    marked: Marks,
    /// The requested names (apt protects them: a conflict never unmarks
    /// them).
    roots: FxHashSet<NameId>,
    /// Per name, the sets its chosen candidate must stay in, each with the
    /// package whose Conflicts or Breaks left it (in force while that
    /// package is marked).
    forbidden: FxHashMap<NameId, Vec<(SolvableId, Set)>>,
    undo: Vec<Undo>,
}

/// Replays apt's walk: every installed package is kept, then each stage's
/// roots are marked and their dependencies installed, stage after stage.
pub(crate) fn apt_marks(
    u: &Universe<'_>,
    stages: &[Vec<SolvableId>],
    pinned: &FxHashMap<NameId, SolvableId>,
    recommends: bool,
) -> Marks {
    let mut w = Walk {
        u,
        pinned,
        recommends,
        marked: Marks::default(),
        roots: stages
            .iter()
            .flatten()
            .map(|&s| u.solvable_name(s))
            .collect(),
        forbidden: FxHashMap::default(),
        undo: Vec::new(),
    };
    if let Some(installed) = u.installed() {
        for p in installed.packages() {
            let n = u.name_id(p.name());
            if let Some(s) = u.info(n).installed {
                w.mark(s);
            }
        }
    }
    for stage in stages {
        // apt-get install marks every requested package first, then
        // installs their dependencies one request after the other.
        let mut marked = Vec::with_capacity(stage.len());
        for &s in stage {
            let n = u.solvable_name(s);
            if w.marked.get(&n) == Some(&s) {
                continue;
            }
            if w.replaceable(n) && !w.forbidden(s) && !w.hits_marked(s) {
                w.mark(s);
                marked.push(s);
            }
        }
        for s in marked {
            let save = w.undo.len();
            if !w.install_dependencies(s) {
                // apt leaves the request broken for its problem resolver;
                // here the solver takes over, so keep only the request.
                w.rollback(save);
            }
        }
    }
    w.marked
}

impl<'a> Walk<'_, 'a> {
    /// The version apt would install for a name: the requested one, else
    /// the highest (the installed one when nothing newer exists).
    fn candidate(&self, n: NameId) -> Option<SolvableId> {
        self.pinned
            .get(&n)
            .copied()
            .or_else(|| self.u.info(n).candidates.first().copied())
    }

    /// Whether a name may be (re)marked: it is unmarked, or only kept as
    /// installed (apt upgrades it when a dependency needs that).
    fn replaceable(&self, n: NameId) -> bool {
        match self.marked.get(&n) {
            None => true,
            Some(&m) => self.u.candidate(m).installed,
        }
    }

    /// Whether a marked package's Conflicts or Breaks rule `s` out.
    fn forbidden(&self, s: SolvableId) -> bool {
        let n = self.u.solvable_name(s);
        self.forbidden.get(&n).is_some_and(|sets| {
            sets.iter().any(|(by, set)| {
                self.marked.get(&self.u.solvable_name(*by)) == Some(by) && !self.u.matches(s, set)
            })
        })
    }

    /// The marked packages `s`'s own Conflicts and Breaks hit.
    fn hit_by(&self, s: SolvableId) -> Vec<NameId> {
        let n = self.u.solvable_name(s);
        let r = self.u.record(s);
        let mut out = Vec::new();
        for rel in r.conflicts.iter().chain(&r.breaks) {
            for (other, set) in self.u.conflict_sets(n, rel).iter() {
                if self
                    .marked
                    .get(other)
                    .is_some_and(|&m| !self.u.matches(m, set))
                    && !out.contains(other)
                {
                    out.push(*other);
                }
            }
        }
        out
    }

    fn hits_marked(&self, s: SolvableId) -> bool {
        !self.hit_by(s).is_empty()
    }

    /// apt's `MarkInstall_RemoveConflictsIfNotUpgradeable`: the packages
    /// `s` conflicts with are unmarked, unless one is requested or
    /// installed (apt would have to remove it), which fails.
    fn make_room(&mut self, s: SolvableId) -> bool {
        for other in self.hit_by(s) {
            let m = self.marked[&other];
            if self.roots.contains(&other) || self.u.candidate(m).installed {
                return false;
            }
            self.marked.remove(&other);
            self.undo.push(Undo::Mark(other, Some(m)));
        }
        true
    }

    fn mark(&mut self, s: SolvableId) {
        let n = self.u.solvable_name(s);
        let before = self.marked.insert(n, s);
        self.undo.push(Undo::Mark(n, before));
        let r = self.u.record(s);
        for rel in r.conflicts.iter().chain(&r.breaks) {
            for (other, set) in self.u.conflict_sets(n, rel).iter() {
                self.forbidden
                    .entry(*other)
                    .or_default()
                    .push((s, set.clone()));
                self.undo.push(Undo::Forbid(*other));
            }
        }
    }

    fn rollback(&mut self, to: usize) {
        while self.undo.len() > to {
            match self.undo.pop() {
                Some(Undo::Mark(n, before)) => match before {
                    Some(b) => {
                        self.marked.insert(n, b);
                    }
                    None => {
                        self.marked.remove(&n);
                    }
                },
                Some(Undo::Forbid(n)) => {
                    if let Some(v) = self.forbidden.get_mut(&n) {
                        v.pop();
                    }
                }
                None => break,
            }
        }
    }

    /// Marks `s` and its dependencies; on failure nothing stays marked.
    fn mark_install(&mut self, s: SolvableId) -> bool {
        let n = self.u.solvable_name(s);
        if self.marked.get(&n) == Some(&s) {
            return true;
        }
        if !self.replaceable(n) {
            return false;
        }
        let save = self.undo.len();
        // apt unmarks what `s` conflicts with, then marks it; a marked
        // package whose own Conflicts hit `s` would be left broken (for
        // apt's problem resolver), so `s` is not taken then.
        if !self.make_room(s) || self.forbidden(s) {
            self.rollback(save);
            return false;
        }
        self.mark(s);
        if self.install_dependencies(s) {
            true
        } else {
            self.rollback(save);
            false
        }
    }

    fn install_dependencies(&mut self, s: SolvableId) -> bool {
        let r = self.u.record(s);
        for group in r.pre_depends.iter().chain(&r.depends) {
            if !self.satisfy(group) {
                return false;
            }
        }
        if self.recommends {
            for group in &r.recommends {
                // A recommendation that cannot be met is skipped.
                self.satisfy(group);
            }
        }
        true
    }

    /// Satisfies one or-group: already, or by marking its first solution
    /// that installs.
    fn satisfy(&mut self, group: &'a Alternatives) -> bool {
        if self.satisfied(group) {
            return true;
        }
        self.solutions(group)
            .into_iter()
            .any(|c| self.mark_install(c))
    }

    fn satisfied(&self, group: &'a Alternatives) -> bool {
        let u = self.u;
        group.iter().any(|rel| {
            u.alternative_sets(rel)
                .iter()
                .any(|(n, set)| self.marked.get(n).is_some_and(|&m| u.matches(m, set)))
        })
    }

    /// apt's `getAllPossibleSolutions`: the candidate versions that satisfy
    /// the group, installed packages first, then in alternative order.
    fn solutions(&self, group: &'a Alternatives) -> Vec<SolvableId> {
        let u = self.u;
        let mut installed = Vec::new();
        let mut new = Vec::new();
        for rel in group {
            for (n, set) in u.alternative_sets(rel).iter() {
                let Some(c) = self.candidate(*n) else {
                    continue;
                };
                if !u.matches(c, set) {
                    continue;
                }
                let list = if u.info(*n).installed.is_some() {
                    &mut installed
                } else {
                    &mut new
                };
                if !list.contains(&c) {
                    list.push(c);
                }
            }
        }
        for c in new {
            if !installed.contains(&c) {
                installed.push(c);
            }
        }
        installed
    }
}
