//! The bridge to resolvo: package names and their candidates, each
//! dependency as a requirement (an or-group is a union of version sets, one
//! per real package and per provider), each Conflicts and Breaks as
//! constraints on the names it hits.

use std::cell::RefCell;
use std::fmt;

use kod_repo::{Alternatives, PackageRecord};
use resolvo::{
    Candidates, Condition, ConditionId, ConditionalRequirement, Dependencies, DependencyProvider,
    Interner, KnownDependencies, NameId, Requirement, SolvableId, SolverCache, StringId,
    VersionSetId, VersionSetUnionId,
};

use rustc_hash::FxHashMap;

use crate::prefer::Marks;
use crate::universe::{Constraint, Set, Universe};

/// How a requirement is written.
pub(crate) enum Label<'a> {
    /// A dependency of a package.
    Group(&'a Alternatives),
    /// A requested package, as written.
    Request(String),
    /// An installed package that stays.
    Installed(String),
}

pub(crate) struct Provider<'u, 'a> {
    pub u: &'u Universe<'a>,
    /// apt's choices, tried first.
    pub marks: &'u Marks,
    /// How each requirement is written (the or-group as the package
    /// states it, or the request), for explanations.
    pub labels: RefCell<FxHashMap<Requirement, Label<'a>>>,
}

impl<'a> Provider<'_, 'a> {
    /// The requirement for one or-group, its alternatives in apt's order
    /// with the ones apt's walk chose moved first.
    pub fn requirement(&self, group: &'a Alternatives) -> Requirement {
        let mut preferred = Vec::new();
        let mut rest = Vec::new();
        for rel in group {
            for (n, set) in self.u.alternative_sets(rel).iter() {
                let id = self.u.pool.intern_version_set(*n, set.clone());
                if preferred.contains(&id) || rest.contains(&id) {
                    continue;
                }
                if self.marks.get(n).is_some_and(|&m| self.u.matches(m, set)) {
                    preferred.push(id);
                } else {
                    rest.push(id);
                }
            }
        }
        preferred.extend(rest);
        let requirement = match preferred.split_first() {
            Some((&first, [])) => Requirement::Single(first),
            Some((&first, others)) => Requirement::Union(
                self.u
                    .pool
                    .intern_version_set_union(first, others.iter().copied()),
            ),
            None => unreachable!("alternative_sets never returns an empty list"),
        };
        self.labels
            .borrow_mut()
            .entry(requirement)
            .or_insert(Label::Group(group));
        requirement
    }

    /// Whether `requirement` keeps an installed package.
    pub fn keeps_installed(&self, requirement: Requirement) -> bool {
        matches!(
            self.labels.borrow().get(&requirement),
            Some(Label::Installed(_))
        )
    }

    /// How a requirement is written (a whole phrase for a root).
    pub fn label(&self, requirement: Requirement) -> String {
        match self.labels.borrow().get(&requirement) {
            Some(Label::Request(t)) => format!("{t} is requested"),
            Some(Label::Installed(t)) => format!("{t} is installed and stays"),
            Some(Label::Group(g)) => g
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(" | "),
            None => requirement.display(self).to_string(),
        }
    }

    fn dependencies(&self, s: SolvableId) -> KnownDependencies {
        let r: &'a PackageRecord = self.u.record(s);
        let own = self.u.solvable_name(s);
        let mut deps = KnownDependencies::default();
        for group in r.pre_depends.iter().chain(&r.depends) {
            deps.requirements
                .push(ConditionalRequirement::from(self.requirement(group)));
        }
        for rel in r.conflicts.iter().chain(&r.breaks) {
            for (n, set) in self.u.conflict_sets(own, rel).iter() {
                let id = self.u.pool.intern_version_set(*n, set.clone());
                if !deps.constrains.contains(&id) {
                    deps.constrains.push(id);
                }
            }
        }
        deps
    }
}

/// Writes a constraint as Debian does: ` (>= 1.0)`.
fn write_constraint(f: &mut fmt::Formatter<'_>, c: &Option<Constraint>) -> fmt::Result {
    match c {
        Some(Constraint(op, v)) => write!(f, " ({op} {v})"),
        None => Ok(()),
    }
}

/// A version set as a person reads it (without the package name).
pub(crate) struct SetDisplay<'s>(pub &'s Set);

impl fmt::Display for SetDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Set::Real { constraint, any } => {
                if *any {
                    f.write_str(":any")?;
                }
                write_constraint(f, constraint)
            }
            Set::Provides {
                virtual_name,
                constraint,
                any,
            } => {
                write!(f, "providing {virtual_name}")?;
                if *any {
                    f.write_str(":any")?;
                }
                write_constraint(f, constraint)
            }
            Set::Exact(_) => f.write_str("(the requested version)"),
            Set::Suite(s) => write!(f, "from {s}"),
            Set::Not(inner) => write!(f, "not {}", SetDisplay(inner)),
            Set::Nothing => f.write_str("of another architecture"),
        }
    }
}

impl Interner for Provider<'_, '_> {
    type NameId = NameId;
    type SolvableId = SolvableId;

    fn display_solvable(&self, solvable: SolvableId) -> impl fmt::Display + '_ {
        let r = self.u.record(solvable);
        format!("{} {}", r.name, r.version)
    }

    fn display_name(&self, name: NameId) -> impl fmt::Display + '_ {
        self.u.name(name)
    }

    fn display_version_set(&self, version_set: VersionSetId) -> impl fmt::Display + '_ {
        SetDisplay(self.u.pool.resolve_version_set(version_set)).to_string()
    }

    fn display_string(&self, string_id: StringId) -> impl fmt::Display + '_ {
        self.u.pool.resolve_string(string_id)
    }

    fn version_set_name(&self, version_set: VersionSetId) -> NameId {
        self.u.pool.resolve_version_set_package_name(version_set)
    }

    fn solvable_name(&self, solvable: SolvableId) -> NameId {
        self.u.solvable_name(solvable)
    }

    fn version_sets_in_union(
        &self,
        version_set_union: VersionSetUnionId,
    ) -> impl Iterator<Item = VersionSetId> {
        self.u.pool.resolve_version_set_union(version_set_union)
    }

    fn resolve_condition(&self, condition: ConditionId) -> Condition {
        self.u.pool.resolve_condition(condition).clone()
    }
}

impl DependencyProvider for Provider<'_, '_> {
    async fn filter_candidates(
        &self,
        candidates: &[SolvableId],
        version_set: VersionSetId,
        inverse: bool,
    ) -> Vec<SolvableId> {
        let set = self.u.pool.resolve_version_set(version_set);
        candidates
            .iter()
            .copied()
            .filter(|&s| self.u.matches(s, set) != inverse)
            .collect()
    }

    async fn get_candidates(&self, name: NameId) -> Option<Candidates<SolvableId>> {
        let info = self.u.info(name);
        if info.candidates.is_empty() {
            return None;
        }
        Some(Candidates {
            candidates: info.candidates.clone(),
            favored: self.marks.get(&name).copied().or(info.installed),
            ..Candidates::default()
        })
    }

    async fn sort_candidates(&self, _: &SolverCache<Self>, solvables: &mut [SolvableId]) {
        // Highest version first (apt's candidate); the stable sort keeps
        // load order between equal versions.
        solvables.sort_by(|&a, &b| self.u.record(b).version.cmp(&self.u.record(a).version));
    }

    async fn get_dependencies(&self, solvable: SolvableId) -> Dependencies {
        Dependencies::Known(self.dependencies(solvable))
    }
}
