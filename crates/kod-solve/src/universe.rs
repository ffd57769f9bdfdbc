//! The solver's view of an index: the candidates of each package name
//! (built lazily, only for names a request reaches), and which candidates
//! a relation, a Provides or a conflict matches, with dpkg's rules for
//! versions, virtual packages and architecture qualifiers.

use std::cell::RefCell;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::rc::Rc;

use kod_repo::{ArchQualifier, Index, MultiArch, Op, PackageRecord, RecordId, Relation, Version};
use resolvo::utils::Pool;
use resolvo::{NameId, SolvableId};
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use kod_db::Installed;

/// A version constraint of a relation, hashed and compared by its text so
/// that it can key interned version sets.
#[derive(Clone, Debug)]
pub(crate) struct Constraint(pub Op, pub Version);

impl PartialEq for Constraint {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0 && self.1.as_str() == other.1.as_str()
    }
}

impl Eq for Constraint {}

impl Hash for Constraint {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
        self.1.as_str().hash(state);
    }
}

/// Which candidates of one package name a version set holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Set {
    /// Versions of the name itself within the constraint; `any` (a `:any`
    /// relation) also requires `Multi-Arch: allowed`.
    Real {
        constraint: Option<Constraint>,
        any: bool,
    },
    /// Versions of the name that provide `virtual_name` within the
    /// constraint (an unversioned Provides only satisfies an unconstrained
    /// relation).
    Provides {
        virtual_name: String,
        constraint: Option<Constraint>,
        any: bool,
    },
    /// Exactly one candidate (`name=version`).
    Exact(SolvableId),
    /// Candidates with a record from this suite or codename (`name/suite`).
    Suite(String),
    /// Every candidate the inner set does not hold: what a Conflicts or
    /// Breaks leaves installable.
    Not(Box<Set>),
    /// No candidate: a relation this universe cannot meet (a foreign
    /// `:ARCH` qualifier).
    Nothing,
}

impl resolvo::utils::VersionSet for Set {
    type V = Candidate;
}

/// Where a candidate's metadata comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// An index record (the first of the identical ones).
    Record(RecordId),
    /// An installed package whose version no index carries.
    InstalledOnly(u32),
}

/// One installable version of one package name.
#[derive(Clone, Debug)]
pub(crate) struct Candidate {
    pub source: Source,
    /// Every index record of this name, version and architecture (the same
    /// package in several suites), in load order.
    pub records: SmallVec<[RecordId; 2]>,
    /// Whether this is the installed version.
    pub installed: bool,
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.source {
            Source::Record(id) => write!(f, "record {}", id.0),
            Source::InstalledOnly(i) => write!(f, "installed package {i}"),
        }
    }
}

/// The candidates of one name, highest version first.
#[derive(Debug, Default)]
pub(crate) struct NameInfo {
    pub candidates: Vec<SolvableId>,
    /// The installed candidate, if the name is installed.
    pub installed: Option<SolvableId>,
}

/// The packages of one index (and optionally an installed system) as the
/// solver sees them: one native architecture plus `all`.
pub(crate) struct Universe<'a> {
    pub index: &'a Index,
    native: &'a str,
    installed: Option<&'a Installed>,
    pub pool: Pool<Set, String>,
    names: RefCell<FxHashMap<NameId, Rc<NameInfo>>>,
    /// Providers of a virtual name, per (virtual) name, in preference order.
    providers: RefCell<FxHashMap<String, Rc<[NameId]>>>,
    /// [`Universe::alternative_sets`] by the address of the relation (which
    /// lives as long as the index or the installed set).
    alternatives: RefCell<FxHashMap<usize, Sets>>,
    /// [`Universe::conflict_sets`] by package and relation address.
    conflicts: RefCell<FxHashMap<(NameId, usize), Sets>>,
}

/// Version sets of one relation: (name, set) pairs.
pub(crate) type Sets = Rc<[(NameId, Set)]>;

impl<'a> Universe<'a> {
    pub fn new(index: &'a Index, installed: Option<&'a Installed>) -> Universe<'a> {
        Universe {
            index,
            native: index.native_architecture(),
            installed,
            pool: Pool::new(),
            names: RefCell::default(),
            providers: RefCell::default(),
            alternatives: RefCell::default(),
            conflicts: RefCell::default(),
        }
    }

    /// The installed packages the universe was made with.
    pub fn installed(&self) -> Option<&'a Installed> {
        self.installed
    }

    /// Whether packages of `arch` are installable here.
    pub fn arch_ok(&self, arch: &str) -> bool {
        self.native.is_empty() || arch == self.native || arch == "all"
    }

    /// The id of a package name.
    pub fn name_id(&self, name: &str) -> NameId {
        self.pool.intern_package_name(name)
    }

    /// The name of a name id.
    pub fn name(&self, id: NameId) -> &str {
        self.pool.resolve_package_name(id)
    }

    /// The candidate behind a solvable.
    pub fn candidate(&self, s: SolvableId) -> &Candidate {
        &self.pool.resolve_solvable(s).record
    }

    /// The name of a solvable.
    pub fn solvable_name(&self, s: SolvableId) -> NameId {
        self.pool.resolve_solvable(s).name
    }

    /// The metadata of a solvable.
    pub fn record(&self, s: SolvableId) -> &'a PackageRecord {
        match self.candidate(s).source {
            Source::Record(id) => self.index.record(id),
            Source::InstalledOnly(i) => self.installed_record(i),
        }
    }

    fn installed_record(&self, i: u32) -> &'a PackageRecord {
        let installed = self
            .installed
            .expect("installed-only candidates exist only with an installed set");
        installed.packages()[i as usize].record()
    }

    /// The candidates of `name` (built on first use).
    pub fn info(&self, name: NameId) -> Rc<NameInfo> {
        if let Some(info) = self.names.borrow().get(&name) {
            return info.clone();
        }
        let info = Rc::new(self.build_info(name));
        self.names.borrow_mut().insert(name, info.clone());
        info
    }

    fn build_info(&self, name_id: NameId) -> NameInfo {
        let name = self.name(name_id).to_string();
        // (version, architecture, candidate) before interning.
        let mut found: Vec<(&'a PackageRecord, Candidate)> = Vec::new();
        for &id in self.index.ids_by_name(&name) {
            let r = self.index.record(id);
            if !self.arch_ok(&r.architecture) {
                continue;
            }
            match found
                .iter_mut()
                .find(|(f, _)| f.version == r.version && f.architecture == r.architecture)
            {
                Some((_, c)) => c.records.push(id),
                None => found.push((
                    r,
                    Candidate {
                        source: Source::Record(id),
                        records: SmallVec::from_slice(&[id]),
                        installed: false,
                    },
                )),
            }
        }
        if let Some((i, p)) = self.installed.and_then(|inst| inst.find(&name)) {
            let r = p.record();
            if self.arch_ok(&r.architecture) {
                match found
                    .iter_mut()
                    .find(|(f, _)| f.version == r.version && f.architecture == r.architecture)
                {
                    Some((_, c)) => c.installed = true,
                    None => found.push((
                        r,
                        Candidate {
                            source: Source::InstalledOnly(i as u32),
                            records: SmallVec::new(),
                            installed: true,
                        },
                    )),
                }
            }
        }
        // Highest version first; the sort is stable, so equal versions keep
        // load order.
        found.sort_by(|a, b| b.0.version.cmp(&a.0.version));
        let mut info = NameInfo::default();
        for (_, c) in found {
            let installed = c.installed;
            let s = self.pool.intern_solvable(name_id, c);
            if installed {
                info.installed = Some(s);
            }
            info.candidates.push(s);
        }
        info
    }

    /// Whether solvable `s` is in `set`.
    pub fn matches(&self, s: SolvableId, set: &Set) -> bool {
        let r = self.record(s);
        let allowed = |any: bool| !any || r.multi_arch == MultiArch::Allowed;
        match set {
            Set::Real { constraint, any } => allowed(*any) && accepts(constraint, Some(&r.version)),
            Set::Provides {
                virtual_name,
                constraint,
                any,
            } => {
                allowed(*any)
                    && r.provides
                        .iter()
                        .any(|p| p.name == *virtual_name && accepts(constraint, p.version.as_ref()))
            }
            Set::Exact(x) => s == *x,
            Set::Suite(suite) => self.candidate(s).records.iter().any(|&id| {
                let o = self.index.origin(self.index.record(id).origin);
                o.suite == *suite || o.codename == *suite
            }),
            Set::Not(inner) => !self.matches(s, inner),
            Set::Nothing => false,
        }
    }

    /// Whether a relation's architecture qualifier can be met by this
    /// universe's packages at all (a foreign `:ARCH` cannot).
    fn qualifier_ok(&self, q: &ArchQualifier) -> bool {
        match q {
            ArchQualifier::None | ArchQualifier::Any | ArchQualifier::Native => true,
            ArchQualifier::Specific(a) => self.arch_ok(a),
        }
    }

    /// The version sets that satisfy one alternative of a dependency, in
    /// apt's order: the real package of that name first, then the
    /// providers of the name (see [`Universe::providers`]). Never empty: a
    /// relation nothing satisfies gives the (empty) set of its own name, so
    /// that the requirement still names what is missing.
    pub fn alternative_sets(&self, rel: &'a Relation) -> Sets {
        let key = rel as *const Relation as usize;
        if let Some(sets) = self.alternatives.borrow().get(&key) {
            return sets.clone();
        }
        let sets: Sets = self.build_alternative_sets(rel).into_iter().collect();
        self.alternatives.borrow_mut().insert(key, sets.clone());
        sets
    }

    fn build_alternative_sets(&self, rel: &Relation) -> SmallVec<[(NameId, Set); 2]> {
        let mut out = SmallVec::new();
        let real = self.name_id(&rel.name);
        let constraint = rel.constraint.clone().map(|(op, v)| Constraint(op, v));
        let any = rel.arch_qualifier == ArchQualifier::Any;
        let real_set = Set::Real {
            constraint: constraint.clone(),
            any,
        };
        if !self.qualifier_ok(&rel.arch_qualifier) {
            out.push((real, Set::Nothing));
            return out;
        }
        if !self.info(real).candidates.is_empty() {
            out.push((real, real_set.clone()));
        }
        for &p in self.providers(&rel.name).iter() {
            out.push((
                p,
                Set::Provides {
                    virtual_name: rel.name.to_string(),
                    constraint: constraint.clone(),
                    any,
                },
            ));
        }
        if out.is_empty() {
            out.push((real, real_set));
        }
        out
    }

    /// The version sets a Conflicts or Breaks relation of package `own`
    /// leaves installable, one per name it can hit; `own` itself is never
    /// hit (a package does not conflict with itself, nor with a virtual
    /// package it provides itself).
    pub fn conflict_sets(&self, own: NameId, rel: &'a Relation) -> Sets {
        let key = (own, rel as *const Relation as usize);
        if let Some(sets) = self.conflicts.borrow().get(&key) {
            return sets.clone();
        }
        let sets: Sets = self.build_conflict_sets(own, rel).into_iter().collect();
        self.conflicts.borrow_mut().insert(key, sets.clone());
        sets
    }

    fn build_conflict_sets(&self, own: NameId, rel: &Relation) -> SmallVec<[(NameId, Set); 2]> {
        let mut out = SmallVec::new();
        if !self.qualifier_ok(&rel.arch_qualifier) {
            return out;
        }
        // `:any` in a negative relation hits every architecture (dpkg), so
        // it adds no Multi-Arch condition.
        let constraint = rel.constraint.clone().map(|(op, v)| Constraint(op, v));
        let real = self.name_id(&rel.name);
        if real != own && !self.info(real).candidates.is_empty() {
            out.push((
                real,
                Set::Not(Box::new(Set::Real {
                    constraint: constraint.clone(),
                    any: false,
                })),
            ));
        }
        for &p in self.providers(&rel.name).iter() {
            if p != own {
                out.push((
                    p,
                    Set::Not(Box::new(Set::Provides {
                        virtual_name: rel.name.to_string(),
                        constraint: constraint.clone(),
                        any: false,
                    })),
                ));
            }
        }
        out
    }

    /// apt's preference between providers of a virtual package
    /// (`CompareProviders` in apt's depcache.cc): installed first, then
    /// Essential, then by Priority (required first). Equal keys are only
    /// told apart by [`Universe::by_apt_id`].
    pub fn provider_key(&self, n: NameId) -> (bool, bool, kod_repo::Priority) {
        let info = self.info(n);
        let top = info.candidates.first().map(|&s| self.record(s));
        (
            info.installed.is_none(),
            !top.is_some_and(|r| r.essential),
            top.map_or(kod_repo::Priority::Extra, |r| r.priority),
        )
    }

    /// Orders `names` as apt's last resort between providers does: by
    /// apt's package id, higher first. apt numbers packages in the order
    /// its cache generator meets their names: records in load order and,
    /// in each, its own name, then the names in Pre-Depends, Depends,
    /// Conflicts, Breaks, Recommends, Suggests, Replaces and Provides
    /// (names the index never mentions, installed only, come last: apt
    /// reads the status file last). Finding that order scans (and decodes)
    /// records until all but one name are met, so it is only asked for
    /// where a choice depends on it.
    pub fn by_apt_id(&self, names: &mut [NameId]) {
        let wanted: Vec<&str> = names.iter().map(|&n| self.name(n)).collect();
        let mut met: Vec<Option<u32>> = vec![None; names.len()];
        let mut left = names.len();
        let mut order = 0u32;
        let mut i = 0;
        while left > 1 && i < self.index.len() {
            let r: &'a PackageRecord = self.index.record(RecordId(i as u32));
            i += 1;
            let groups = [&r.pre_depends, &r.depends];
            let flat = [&r.conflicts, &r.breaks];
            let later = [&r.recommends, &r.suggests];
            let mentioned = std::iter::once(r.name.as_str())
                .chain(
                    groups
                        .into_iter()
                        .flatten()
                        .flatten()
                        .map(|rel| rel.name.as_str()),
                )
                .chain(flat.into_iter().flatten().map(|rel| rel.name.as_str()))
                .chain(
                    later
                        .into_iter()
                        .flatten()
                        .flatten()
                        .map(|rel| rel.name.as_str()),
                )
                .chain(r.replaces.iter().map(|rel| rel.name.as_str()))
                .chain(r.provides.iter().map(|p| p.name.as_str()));
            for m in mentioned {
                for (k, w) in wanted.iter().enumerate() {
                    if met[k].is_none() && *w == m {
                        met[k] = Some(order);
                        order += 1;
                        left -= 1;
                    }
                }
            }
        }
        let mut keyed: Vec<(u32, NameId)> = names
            .iter()
            .zip(&met)
            .map(|(&n, m)| (m.unwrap_or(u32::MAX), n))
            .collect();
        keyed.sort_by_key(|k| std::cmp::Reverse(k.0));
        for (slot, (_, n)) in names.iter_mut().zip(keyed) {
            *slot = n;
        }
    }

    /// The names that provide `virtual_name` (with any version), in apt's
    /// order of preference ([`Universe::provider_key`]) except between
    /// names only apt's package ids would separate.
    pub fn providers(&self, virtual_name: &str) -> Rc<[NameId]> {
        if let Some(p) = self.providers.borrow().get(virtual_name) {
            return p.clone();
        }
        let mut names: Vec<NameId> = Vec::new();
        for (_, r, _) in self.index.providers(virtual_name) {
            if self.arch_ok(&r.architecture) {
                let id = self.name_id(&r.name);
                if !names.contains(&id) {
                    names.push(id);
                }
            }
        }
        if let Some(inst) = self.installed {
            for p in inst.packages() {
                let r = p.record();
                if r.provides.iter().any(|p| p.name == virtual_name)
                    && self.arch_ok(&r.architecture)
                {
                    let id = self.name_id(&r.name);
                    if !names.contains(&id) {
                        names.push(id);
                    }
                }
            }
        }
        // apt's last resort is its package id, which takes a scan of the
        // index ([`Universe::by_apt_id`], used where a choice depends on
        // it). Here ties keep a cheap stable order: the name whose first
        // record comes last first.
        let mut keyed: Vec<_> = names
            .into_iter()
            .map(|n| {
                let info = self.info(n);
                let first = info
                    .candidates
                    .iter()
                    .filter_map(|&s| self.candidate(s).records.first().copied())
                    .min();
                ((self.provider_key(n), std::cmp::Reverse(first)), n)
            })
            .collect();
        keyed.sort_by_key(|k| k.0);
        let names: Vec<NameId> = keyed.into_iter().map(|(_, n)| n).collect();
        let names: Rc<[NameId]> = names.into();
        self.providers
            .borrow_mut()
            .insert(virtual_name.to_string(), names.clone());
        names
    }
}

fn accepts(constraint: &Option<Constraint>, version: Option<&Version>) -> bool {
    match (constraint, version) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(Constraint(op, wanted)), Some(v)) => op.holds(v, wanted),
    }
}
