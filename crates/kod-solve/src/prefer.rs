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
//! (`MarkInstall_RemoveConflictsIfNotUpgradeable`), unless that one is
//! protected (requested, the only solution of a dependency of a
//! protected package, or busy installing its own dependencies) or
//! installed. At the end of each apt run, what nothing kept needs any
//! more is unmarked (`DoAutomaticRemove`).
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

/// One solution of an or-group.
struct Solution {
    s: SolvableId,
    n: NameId,
    /// Solutions with the same run are providers only apt's package ids
    /// order.
    run: u32,
}

enum Undo {
    /// A name was marked or unmarked; the value is what it was marked as
    /// before.
    Mark(NameId, Option<SolvableId>),
    /// A name was protected.
    Protect(NameId),
}

struct Walk<'u, 'a> {
    u: &'u Universe<'a>,
    /// Candidates fixed by the request (`name=version`, `name/suite`).
    pinned: &'u FxHashMap<NameId, SolvableId>,
    recommends: bool,
    marked: Marks,
    /// Names a conflict never unmarks (apt's `Protected` flag): the
    /// requests, and the only solution of a Depends or Pre-Depends of a
    /// protected package.
    protected: FxHashSet<NameId>,
    /// Packages whose dependencies are being installed: apt protects them
    /// for that time (`ScopedProtected`), so a dependency that conflicts
    /// with its parent fails instead of unmarking it.
    busy: Vec<NameId>,
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
    let roots: FxHashSet<NameId> = stages
        .iter()
        .flatten()
        .map(|&s| u.solvable_name(s))
        .collect();
    let mut w = Walk {
        u,
        pinned,
        recommends,
        marked: Marks::default(),
        protected: roots,
        busy: Vec::new(),
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
            if w.replaceable(n) {
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
        // Each stage is one apt-get run: it ends with the sweep, and what
        // it installed is installed for the next stage (a conflict there
        // cannot unmark it).
        w.sweep();
        let installed: Vec<NameId> = w.marked.keys().copied().collect();
        w.protected.extend(installed);
    }
    w.marked
}

impl<'a> Walk<'_, 'a> {
    /// apt-get's `DoAutomaticRemove`: a package marked on the way that
    /// nothing kept needs any more (it was pulled in by a package a
    /// conflict unmarked later) is unmarked again. Kept are the protected
    /// packages (the requests, what earlier stages installed), installed
    /// and Essential packages, and whatever their Pre-Depends,
    /// Depends and Recommends reach through marked packages (apt's
    /// `MarkPackage` with Debian's apt configuration: Recommends are
    /// important for autoremoval, Suggests are not, as apt's
    /// `01autoremove` sets).
    fn sweep(&mut self) {
        let u = self.u;
        let mut stack: Vec<NameId> = self
            .marked
            .iter()
            .filter(|&(n, &m)| {
                self.protected.contains(n) || u.candidate(m).installed || u.record(m).essential
            })
            .map(|(&n, _)| n)
            .collect();
        stack.sort_unstable();
        let mut keep: FxHashSet<NameId> = stack.iter().copied().collect();
        while let Some(n) = stack.pop() {
            let r = u.record(self.marked[&n]);
            let groups = [&r.pre_depends, &r.depends, &r.recommends];
            for rel in groups.into_iter().flatten().flatten() {
                for (other, set) in u.alternative_sets(rel).iter() {
                    if self.marked.get(other).is_some_and(|&m| u.matches(m, set))
                        && keep.insert(*other)
                    {
                        stack.push(*other);
                    }
                }
            }
        }
        self.marked.retain(|n, _| keep.contains(n));
    }

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

    /// apt's `MarkInstall_RemoveConflictsIfNotUpgradeable`: the packages
    /// `s` conflicts with are unmarked, unless one is requested or
    /// installed (apt would have to remove it), which fails.
    fn make_room(&mut self, s: SolvableId) -> bool {
        for other in self.hit_by(s) {
            let m = self.marked[&other];
            if self.protected.contains(&other)
                || self.busy.contains(&other)
                || self.u.candidate(m).installed
            {
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
                Some(Undo::Protect(n)) => {
                    self.protected.remove(&n);
                }
                None => break,
            }
        }
    }

    /// Marks `s` and its dependencies; on failure nothing stays marked.
    fn mark_install(&mut self, s: SolvableId, protect: bool) -> bool {
        let n = self.u.solvable_name(s);
        if self.marked.get(&n) == Some(&s) {
            if protect {
                self.propagate_protection(s);
            }
            return true;
        }
        if !self.replaceable(n) {
            return false;
        }
        let save = self.undo.len();
        // apt unmarks what `s` conflicts with, then marks it. A marked
        // package whose own Conflicts hit `s` is left as it is: the
        // sweep at the end drops it when nothing needs it any more (else
        // apt would call its problem resolver, and the solver decides).
        if !self.make_room(s) {
            self.rollback(save);
            return false;
        }
        self.mark(s);
        if protect && self.protected.insert(n) {
            self.undo.push(Undo::Protect(n));
        }
        if self.install_dependencies(s) {
            true
        } else {
            self.rollback(save);
            false
        }
    }

    /// Protects an already marked package and, through its dependencies,
    /// what apt protects along (it walks a newly protected package's
    /// dependencies again).
    fn propagate_protection(&mut self, s: SolvableId) {
        let n = self.u.solvable_name(s);
        if self.protected.insert(n) {
            self.undo.push(Undo::Protect(n));
            let save = self.undo.len();
            if !self.install_dependencies(s) {
                self.rollback(save);
            }
        }
    }

    fn install_dependencies(&mut self, s: SolvableId) -> bool {
        let n = self.u.solvable_name(s);
        self.busy.push(n);
        let done = self.install_dependencies_of(s);
        self.busy.pop();
        done
    }

    fn install_dependencies_of(&mut self, s: SolvableId) -> bool {
        let r = self.u.record(s);
        let protect = self.protected.contains(&self.u.solvable_name(s));
        for group in r.pre_depends.iter().chain(&r.depends) {
            if !self.satisfy(group, protect) {
                return false;
            }
        }
        if self.recommends {
            for group in &r.recommends {
                // A recommendation that cannot be met is skipped, and so is
                // one the installed version had and the system left unmet.
                if !self.ignored_recommendation(s, group) {
                    self.satisfy(group, false);
                }
            }
        }
        true
    }

    /// apt's rule for the Recommends of an installed package (kept or
    /// upgraded): one its installed version had too, on the same first
    /// package, and that the installed system did not meet, stays unmet
    /// ("ignore old unsatisfied important dependency").
    fn ignored_recommendation(&self, s: SolvableId, group: &'a Alternatives) -> bool {
        let u = self.u;
        let Some(installed) = u.info(u.solvable_name(s)).installed else {
            return false;
        };
        let Some(first) = group.first() else {
            return false;
        };
        let Some(old) = u
            .record(installed)
            .recommends
            .iter()
            .find(|g| g.first().is_some_and(|r| r.name == first.name))
        else {
            return false;
        };
        !old.iter().any(|rel| {
            u.alternative_sets(rel)
                .iter()
                .any(|(n, set)| u.info(*n).installed.is_some_and(|i| u.matches(i, set)))
        })
    }

    /// Satisfies one or-group: already, or by marking its first solution
    /// that installs. For a Depends of a protected package (`protect`),
    /// apt protects the solution when it is the only one.
    fn satisfy(&mut self, group: &'a Alternatives, protect: bool) -> bool {
        if self.satisfied(group) {
            if protect
                && let [only] = self.solutions(group).as_slice()
                && self.marked.get(&self.u.solvable_name(only.s)) == Some(&only.s)
            {
                self.propagate_protection(only.s);
            }
            return true;
        }
        let mut solutions = self.solutions(group);
        let protect = protect && solutions.len() == 1;
        let mut i = 0;
        while i < solutions.len() {
            let run = solutions[i].run;
            let end = i + solutions[i..].iter().take_while(|x| x.run == run).count();
            if end - i > 1 {
                // Providers only apt's package ids separate: order them
                // now that the choice depends on it.
                let mut names: Vec<NameId> = solutions[i..end].iter().map(|x| x.n).collect();
                self.u.by_apt_id(&mut names);
                solutions[i..end].sort_by_key(|x| names.iter().position(|&n| n == x.n));
            }
            for x in &solutions[i..end] {
                if self.mark_install(x.s, protect) {
                    return true;
                }
            }
            i = end;
        }
        false
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
    /// the group, installed packages first, then in alternative order,
    /// each alternative's real package before its providers. Providers
    /// that only apt's package ids would order share a `run`.
    fn solutions(&self, group: &'a Alternatives) -> Vec<Solution> {
        let u = self.u;
        let mut installed: Vec<Solution> = Vec::new();
        let mut new: Vec<Solution> = Vec::new();
        let mut run = 0;
        for rel in group {
            let mut previous = None;
            for (n, set) in u.alternative_sets(rel).iter() {
                let Some(s) = self.candidate(*n) else {
                    continue;
                };
                if !u.matches(s, set) {
                    continue;
                }
                let key = matches!(set, Set::Provides { .. }).then(|| u.provider_key(*n));
                if key.is_none() || key != previous {
                    run += 1;
                }
                previous = key;
                let list = if u.info(*n).installed.is_some() {
                    &mut installed
                } else {
                    &mut new
                };
                if !list.iter().any(|x| x.s == s) {
                    list.push(Solution { s, n: *n, run });
                }
            }
        }
        for x in new {
            if !installed.iter().any(|y| y.s == x.s) {
                installed.push(x);
            }
        }
        installed
    }
}
