//! Dependency resolution for kod over any backend's package index: which
//! packages (names and versions) a request installs, decided by the
//! `resolvo` SAT solver with apt's preferences.
//!
//! The solver reads only kod-repo's format-neutral model ([`Index`],
//! [`kod_repo::PackageRecord`], [`kod_repo::Version`] with its scheme's
//! ordering), so every backend maps into the same rules:
//!
//! - each package name has as candidates its versions for the native
//!   architecture or `all` (the same version in several suites is one
//!   candidate);
//! - `Pre-Depends` and `Depends` are requirements; an or-group `a | b (>= 2)`
//!   is a union of version sets, one for each real package and one for each
//!   provider of a virtual name. A versioned relation on a virtual name is
//!   only met by a versioned Provides that matches (dpkg's rule);
//!   `:any` is only met by `Multi-Arch: allowed` packages;
//! - `Conflicts` and `Breaks` are constraints on every name they hit,
//!   providers of a virtual name included, never on the package itself;
//! - Recommends are left out unless [`Request::recommends`] is set; then
//!   they are installed where apt would install them, never at the price
//!   of a failure (they are wishes, not requirements).
//!
//! Choices follow apt's where apt has a rule (see `prefer.rs`): the
//! candidate is the highest version, the first satisfiable alternative of
//! an or-group wins, installed packages are preferred, and among providers
//! of a virtual package the real package comes first, then installed,
//! Essential and higher-priority ones.
//!
//! Only the names a request reaches are ever looked at: candidates and
//! dependencies are built lazily, as resolvo asks for them.
#![deny(missing_docs)]

mod explain;
mod prefer;
mod provider;
mod request;
mod suggest;
mod universe;
mod variant;

use std::cell::RefCell;

use kod_repo::{Index, Version};
use resolvo::{
    ConditionalRequirement, Problem, Requirement, SolvableId, Solver, UnsolvableOrCancelled,
};
use rustc_hash::FxHashMap;

pub use explain::Explanation;
pub use kod_db::{Installed, InstalledPackage};
pub use request::{Action, PackageRequest, Request, Resolution, Resolved, Selector};
pub use suggest::close_names;
pub use variant::{VARIANTS, variant_base};

use provider::Provider;
use universe::{Set, Source, Universe};

/// Why a request could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SolveError {
    /// A request is not `name`, `name=version` or `name/suite`.
    #[error("invalid package request {text:?}: {reason} (write NAME, NAME=VERSION or NAME/SUITE)")]
    BadRequest {
        /// The request as written.
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// No package has this name.
    #[error(
        "unknown package {name}: no loaded repository has it{}",
        suggest(suggestions)
    )]
    UnknownPackage {
        /// The requested name.
        name: String,
        /// Close names from the index, best first.
        suggestions: Vec<String>,
    },
    /// The name is only provided by other packages, and by more than one.
    #[error(
        "{name} is a virtual package provided by {}: request one of them",
        providers.join(", ")
    )]
    VirtualPackage {
        /// The requested name.
        name: String,
        /// The packages that provide it.
        providers: Vec<String>,
    },
    /// The package exists, but not for this system's architecture.
    #[error(
        "{name} is not available for architecture {architecture} (only for {}); pick another \
         package or architecture",
        found.join(", ")
    )]
    WrongArchitecture {
        /// The requested name.
        name: String,
        /// The native architecture.
        architecture: String,
        /// The architectures it exists for.
        found: Vec<String>,
    },
    /// `name=version` names a version no repository has.
    #[error("{name} has no version {version}; available: {}", available.join(", "))]
    UnknownVersion {
        /// The requested name.
        name: String,
        /// The requested version.
        version: String,
        /// The versions there are, highest first.
        available: Vec<String>,
    },
    /// `name/suite` names a suite that does not carry the package.
    #[error(
        "{name} is not in suite {suite}; it is in {} (the suite must be loaded: check the \
         configured suites)",
        suites.join(", ")
    )]
    NotInSuite {
        /// The requested name.
        name: String,
        /// The requested suite.
        suite: String,
        /// The suites (and codenames) that carry it.
        suites: Vec<String>,
    },
    /// The variant is not one of [`VARIANTS`].
    #[error("unknown variant {variant:?}; valid variants: {}", VARIANTS.join(", "))]
    UnknownVariant {
        /// The variant as given.
        variant: String,
    },
    /// No set of packages satisfies the request.
    #[error("{0}")]
    Unsatisfiable(Explanation),
}

fn suggest(s: &[String]) -> String {
    if s.is_empty() {
        " (check the name, or refresh the package lists with `kod pkg update`)".to_string()
    } else {
        format!("; did you mean {}?", s.join(", "))
    }
}

/// One root of the problem: the version set it requires and the candidate
/// apt would install for it.
struct Root {
    name: resolvo::NameId,
    set: Set,
    candidate: SolvableId,
    pinned: bool,
    label: String,
}

/// Resolves `request` against `index`; with `installed`, the packages of
/// that system are kept (upgraded only where a request needs it) and
/// preferred.
pub fn solve(
    index: &Index,
    request: &Request,
    installed: Option<&Installed>,
) -> Result<Resolution, SolveError> {
    let u = Universe::new(index, installed);
    let mut essential = Vec::new();
    let mut rest = Vec::new();
    let mut roots = Vec::new();
    for name in &request.base {
        let root = resolve_request(&u, &PackageRequest::name(name.as_str()))?;
        if u.record(root.candidate).essential {
            essential.push(root.candidate);
        } else {
            rest.push(root.candidate);
        }
        roots.push(root);
    }
    let mut stage2 = Vec::new();
    for p in &request.packages {
        let root = resolve_request(&u, p)?;
        stage2.push(root.candidate);
        roots.push(root);
    }
    // mmdebstrap's second stage names the requested packages before the
    // rest of the base.
    stage2.extend(rest);
    let pinned: FxHashMap<_, _> = roots
        .iter()
        .filter(|r| r.pinned)
        .map(|r| (r.name, r.candidate))
        .collect();
    run(
        &u,
        &roots,
        &[essential, stage2],
        &pinned,
        request.recommends,
    )
}

fn run(
    u: &Universe<'_>,
    roots: &[Root],
    stages: &[Vec<SolvableId>],
    pinned: &FxHashMap<resolvo::NameId, SolvableId>,
    recommends: bool,
) -> Result<Resolution, SolveError> {
    let marks = prefer::apt_marks(u, stages, pinned, recommends);
    let provider = Provider {
        u,
        marks: &marks,
        labels: RefCell::default(),
    };
    let mut requirements: Vec<ConditionalRequirement> = Vec::new();
    for root in roots {
        let vs = u.pool.intern_version_set(root.name, root.set.clone());
        provider
            .labels
            .borrow_mut()
            .entry(Requirement::Single(vs))
            .or_insert_with(|| provider::Label::Request(root.label.clone()));
        requirements.push(Requirement::Single(vs).into());
    }
    if let Some(installed) = u.installed() {
        // Everything installed stays installed, in some version.
        for p in installed.packages() {
            let n = u.name_id(p.name());
            if u.info(n).installed.is_some() {
                let vs = u.pool.intern_version_set(
                    n,
                    Set::Real {
                        constraint: None,
                        any: false,
                    },
                );
                provider
                    .labels
                    .borrow_mut()
                    .entry(Requirement::Single(vs))
                    .or_insert_with(|| provider::Label::Installed(p.name().to_string()));
                requirements.push(Requirement::Single(vs).into());
            }
        }
    }
    // Everything apt's walk marked, in a stable order, for the solver to
    // add once the request is met.
    let mut soft: Vec<SolvableId> = marks.values().copied().collect();
    soft.sort_unstable();
    let mut solver = Solver::new(provider);
    let problem = Problem::new()
        .requirements(requirements)
        .soft_requirements(soft);
    match solver.solve(problem) {
        Ok(solution) => Ok(resolution(u, &solution, roots)),
        Err(UnsolvableOrCancelled::Unsolvable(conflict)) => {
            let graph = conflict.graph(&solver);
            Err(SolveError::Unsatisfiable(explain::explain(
                &graph,
                solver.provider(),
            )))
        }
        Err(UnsolvableOrCancelled::Cancelled(_)) => {
            unreachable!("the provider never cancels")
        }
    }
}

/// The root for one requested package, or why there is none.
fn resolve_request(u: &Universe<'_>, p: &PackageRequest) -> Result<Root, SolveError> {
    let mut n = u.name_id(&p.name);
    let mut info = u.info(n);
    let mut label = p.to_string();
    if info.candidates.is_empty() {
        let providers = u.providers(&p.name);
        match (providers.as_ref(), &p.selector) {
            ([one], Selector::Candidate) => {
                // apt: "Note, selecting 'one' instead of 'name'".
                n = *one;
                info = u.info(n);
                label = format!("{} (for {})", u.name(n), p.name);
            }
            ([], _) => {
                let found: Vec<String> = u
                    .index
                    .by_name(&p.name)
                    .map(|r| r.architecture.to_string())
                    .collect();
                return Err(if found.is_empty() {
                    SolveError::UnknownPackage {
                        name: p.name.clone(),
                        suggestions: suggest::close_names(u.index, &p.name),
                    }
                } else {
                    let mut found = found;
                    found.sort();
                    found.dedup();
                    SolveError::WrongArchitecture {
                        name: p.name.clone(),
                        architecture: u.index.native_architecture().to_string(),
                        found,
                    }
                });
            }
            (many, _) => {
                let mut providers: Vec<String> =
                    many.iter().map(|&m| u.name(m).to_string()).collect();
                providers.sort();
                return Err(SolveError::VirtualPackage {
                    name: p.name.clone(),
                    providers,
                });
            }
        }
    }
    let any = Set::Real {
        constraint: None,
        any: false,
    };
    let (set, candidate, pinned) = match &p.selector {
        Selector::Candidate => (any, info.candidates[0], false),
        Selector::Version(v) => {
            let scheme = u.record(info.candidates[0]).version.scheme();
            let wanted = Version::parse(scheme, v).ok();
            let found = info
                .candidates
                .iter()
                .copied()
                .find(|&s| Some(&u.record(s).version) == wanted.as_ref());
            match found {
                Some(s) => (Set::Exact(s), s, true),
                None => {
                    return Err(SolveError::UnknownVersion {
                        name: p.name.clone(),
                        version: v.clone(),
                        available: info
                            .candidates
                            .iter()
                            .map(|&s| u.record(s).version.to_string())
                            .collect(),
                    });
                }
            }
        }
        Selector::Suite(suite) => {
            let set = Set::Suite(suite.clone());
            match info
                .candidates
                .iter()
                .copied()
                .find(|&s| u.matches(s, &set))
            {
                Some(s) => (set, s, true),
                None => {
                    let mut suites: Vec<String> = info
                        .candidates
                        .iter()
                        .flat_map(|&s| u.candidate(s).records.clone())
                        .map(|id| u.index.origin(u.index.record(id).origin).suite.clone())
                        .collect();
                    suites.sort();
                    suites.dedup();
                    if suites.is_empty() {
                        suites.push("no suite (it is only installed)".to_string());
                    }
                    return Err(SolveError::NotInSuite {
                        name: p.name.clone(),
                        suite: suite.clone(),
                        suites,
                    });
                }
            }
        }
    };
    Ok(Root {
        name: n,
        set,
        candidate,
        pinned,
        label,
    })
}

/// Turns the solver's answer into a sorted [`Resolution`].
fn resolution(u: &Universe<'_>, solution: &[SolvableId], roots: &[Root]) -> Resolution {
    let mut packages = Vec::with_capacity(solution.len());
    let mut download_size = 0;
    for &s in solution {
        let r = u.record(s);
        let c = u.candidate(s);
        let info = u.info(u.solvable_name(s));
        let action = if c.installed {
            request::Action::Keep
        } else {
            match info.installed.map(|i| &u.record(i).version) {
                None => request::Action::Install,
                Some(from) if *from < r.version => request::Action::Upgrade { from: from.clone() },
                Some(from) => request::Action::Downgrade { from: from.clone() },
            }
        };
        // The record to download: from the requested suite when a root
        // names one, else the first loaded.
        let record = match c.source {
            Source::InstalledOnly(_) => None,
            Source::Record(first) => Some(
                roots
                    .iter()
                    .find_map(|root| match &root.set {
                        Set::Suite(suite) if root.candidate == s => {
                            c.records.iter().copied().find(|&id| {
                                let o = u.index.origin(u.index.record(id).origin);
                                o.suite == *suite || o.codename == *suite
                            })
                        }
                        _ => None,
                    })
                    .unwrap_or(first),
            ),
        };
        if action != request::Action::Keep {
            download_size += r.location.size;
        }
        packages.push(Resolved {
            name: r.name.clone(),
            version: r.version.clone(),
            architecture: r.architecture.clone(),
            record,
            action,
        });
    }
    packages.sort_by(|a, b| a.name.cmp(&b.name).then(a.version.cmp(&b.version)));
    Resolution {
        packages,
        download_size,
    }
}
