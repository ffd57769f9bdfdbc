//! Why a request cannot be satisfied, told from resolvo's conflict graph:
//! which package needs what, and why each candidate is out.

use std::collections::HashSet;
use std::fmt;

use kod_repo::{MultiArch, Op, Relation, Version};
use petgraph::Direction;
use petgraph::graph::{DiGraph, EdgeIndex, NodeIndex};
use petgraph::visit::EdgeRef;
use resolvo::conflict::{ConflictCause, ConflictEdge, ConflictGraph, ConflictNode};
use resolvo::{Interner, NameId, Requirement, SolvableId};

use crate::provider::Provider;
use crate::universe::{Constraint, Set};

/// An explanation of an unsatisfiable request, one finding per line,
/// indented by how deep in the dependency chain it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    lines: Vec<String>,
}

impl Explanation {
    /// The lines, indentation included.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request cannot be satisfied:")?;
        for l in &self.lines {
            write!(f, "\n{l}")?;
        }
        Ok(())
    }
}

type Graph = DiGraph<ConflictNode<SolvableId>, ConflictEdge<SolvableId>>;

/// Explains `graph`, the conflict of a failed solve with `p`.
pub(crate) fn explain(graph: &ConflictGraph<SolvableId>, p: &Provider<'_, '_>) -> Explanation {
    let mut ex = Explainer {
        g: &graph.graph,
        p,
        lines: Vec::new(),
        seen: HashSet::new(),
        said: HashSet::new(),
        left_out: 0,
    };
    ex.requirements(graph.root_node, None, 0);
    if ex.left_out > 0 {
        ex.lines
            .push(format!("- ({} more findings left out)", ex.left_out));
    }
    Explanation { lines: ex.lines }
}

struct Explainer<'g, 'p, 'u, 'a> {
    g: &'g Graph,
    p: &'p Provider<'u, 'a>,
    lines: Vec<String>,
    seen: HashSet<NodeIndex>,
    /// Conflict edges already told.
    said: HashSet<EdgeIndex>,
    /// Lines not kept beyond [`MAX_LINES`].
    left_out: usize,
}

/// An explanation keeps at most this many lines.
const MAX_LINES: usize = 60;

impl<'a> Explainer<'_, '_, '_, 'a> {
    fn line(&mut self, depth: usize, text: String) {
        if self.lines.len() < MAX_LINES {
            self.lines.push(format!("{}- {text}", "  ".repeat(depth)));
        } else {
            self.left_out += 1;
        }
    }

    fn solvable_text(&self, s: SolvableId) -> String {
        self.p.display_solvable(s).to_string()
    }

    /// The failing requirements of `node` (the root or a solvable), each
    /// with the reasons its candidates are out.
    fn requirements(&mut self, node: NodeIndex, from: Option<SolvableId>, depth: usize) {
        let mut groups: Vec<(Requirement, Vec<NodeIndex>)> = Vec::new();
        let mut edges: Vec<_> = self.g.edges_directed(node, Direction::Outgoing).collect();
        edges.sort_by_key(|e| e.id());
        for e in edges {
            if let ConflictEdge::Requires(r) = *e.weight() {
                match groups.iter_mut().find(|(g, _)| *g == r) {
                    Some((_, targets)) => targets.push(e.target()),
                    None => groups.push((r, vec![e.target()])),
                }
            }
        }
        for (req, targets) in groups {
            self.requirement(from, req, &targets, depth);
        }
    }

    fn requirement(
        &mut self,
        from: Option<SolvableId>,
        req: Requirement,
        targets: &[NodeIndex],
        depth: usize,
    ) {
        let label = self.p.label(req);
        let who = match from {
            None => label,
            Some(s) => format!("{} depends on {label}", self.solvable_text(s)),
        };
        let candidates: Vec<NodeIndex> = targets
            .iter()
            .copied()
            .filter(|&t| matches!(self.g[t], ConflictNode::Solvable(_)))
            .collect();
        if candidates.is_empty() {
            let why = self.unmet(req);
            self.line(depth, format!("{who}, which cannot be met: {why}"));
            return;
        }
        match candidates.as_slice() {
            [one] => {
                let c = self.node_text(*one);
                self.line(
                    depth,
                    format!("{who}, but its only candidate, {c}, cannot be installed:"),
                );
            }
            many => self.line(
                depth,
                format!(
                    "{who}, but none of its {} candidates can be installed:",
                    many.len()
                ),
            ),
        }
        for t in candidates {
            self.solvable(t, depth + 1);
        }
    }

    fn node_text(&self, node: NodeIndex) -> String {
        match self.g[node] {
            ConflictNode::Solvable(s) => self.solvable_text(s),
            ConflictNode::Root => "the request".to_string(),
            ConflictNode::UnresolvedDependency => "an unmet dependency".to_string(),
            ConflictNode::Excluded(reason) => self.p.display_string(reason).to_string(),
        }
    }

    fn solvable(&mut self, node: NodeIndex, depth: usize) {
        let ConflictNode::Solvable(s) = self.g[node] else {
            return;
        };
        let text = self.solvable_text(s);
        if !self.seen.insert(node) {
            self.line(depth, format!("{text}: see above"));
            return;
        }
        let before = self.lines.len() + self.left_out;
        let mut skipped = false;
        let mut edges: Vec<_> = self
            .g
            .edges_directed(node, Direction::Incoming)
            .chain(self.g.edges_directed(node, Direction::Outgoing))
            .collect();
        edges.sort_by_key(|e| e.id());
        for e in edges {
            let incoming = e.target() == node;
            let other = if incoming { e.source() } else { e.target() };
            let ConflictEdge::Conflict(cause) = *e.weight() else {
                continue;
            };
            if !self.said.insert(e.id()) {
                skipped = true;
                continue;
            }
            let line = match cause {
                ConflictCause::Constrains(vs) if incoming => {
                    let rule = self.conflict_rule(other, vs);
                    format!("{text} is out: {rule}")
                }
                ConflictCause::Constrains(vs) => {
                    let rule = self.conflict_rule(node, vs);
                    let o = self.node_text(other);
                    let needed = self.needed(other);
                    format!("{rule}; that rules out {o}{needed}")
                }
                ConflictCause::ForbidMultipleInstances => {
                    let o = self.node_text(other);
                    let needed = self.needed(other);
                    format!("{text} is out: another version, {o}{needed}, is needed")
                }
                ConflictCause::Locked(l) => {
                    let l = self.solvable_text(l);
                    format!("{text} is out: {l} is locked")
                }
                ConflictCause::Excluded => {
                    let reason = self.node_text(other);
                    format!("{text} is excluded: {reason}")
                }
            };
            self.line(depth, line);
        }
        self.requirements(node, Some(s), depth);
        if self.lines.len() == before {
            let why = if skipped {
                "see above"
            } else {
                "cannot be installed"
            };
            self.line(depth, format!("{text}: {why}"));
        }
    }

    /// Why a node is in the solution attempt: requested, or needed by a
    /// package.
    fn needed(&self, node: NodeIndex) -> String {
        let mut from: Vec<_> = self
            .g
            .edges_directed(node, Direction::Incoming)
            .filter_map(|e| match e.weight() {
                ConflictEdge::Requires(r) => Some((e.source(), *r)),
                _ => None,
            })
            .collect();
        from.sort_by_key(|(n, _)| *n);
        match from.first().map(|&(n, r)| (self.g[n], r)) {
            Some((ConflictNode::Root, r)) if self.p.keeps_installed(r) => {
                " (installed)".to_string()
            }
            Some((ConflictNode::Root, _)) => " (requested)".to_string(),
            Some((ConflictNode::Solvable(r), _)) => {
                format!(" (needed by {})", self.solvable_text(r))
            }
            _ => String::new(),
        }
    }

    /// "a 1 (requested) conflicts with b (<< 2)" for the constraint `vs` of
    /// `node`, with who provides a virtual name it hits.
    fn conflict_rule(&self, node: NodeIndex, vs: resolvo::VersionSetId) -> String {
        let ConflictNode::Solvable(q) = self.g[node] else {
            return "the request rules it out".to_string();
        };
        let u = self.p.u;
        let target = u.pool.resolve_version_set_package_name(vs);
        let set = u.pool.resolve_version_set(vs);
        let r = u.record(q);
        let own = u.solvable_name(q);
        let hits = |rel: &'a Relation| {
            u.conflict_sets(own, rel)
                .iter()
                .any(|(n, s)| *n == target && s == set)
        };
        let who = format!("{}{}", self.solvable_text(q), self.needed(node));
        let target_name = u.name(target);
        let (verb, rel) = match r.conflicts.iter().find(|rel| hits(rel)) {
            Some(rel) => ("conflicts with", Some(rel)),
            None => ("breaks", r.breaks.iter().find(|rel| hits(rel))),
        };
        match rel {
            Some(rel) if rel.name != target_name => {
                format!("{who} {verb} {rel}, which {target_name} provides")
            }
            Some(rel) => format!("{who} {verb} {rel}"),
            None => format!("{who} conflicts with {target_name}"),
        }
    }

    /// Why no candidate meets `req`, version set by version set.
    fn unmet(&self, req: Requirement) -> String {
        let sets: Vec<_> = match req {
            Requirement::Single(vs) => vec![vs],
            Requirement::Union(u) => self.p.version_sets_in_union(u).collect(),
        };
        let mut parts: Vec<String> = Vec::new();
        for vs in sets {
            let name = self.p.version_set_name(vs);
            let part = self.unmet_set(name, self.p.u.pool.resolve_version_set(vs));
            if !parts.contains(&part) {
                parts.push(part);
            }
        }
        parts.join("; ")
    }

    fn unmet_set(&self, n: NameId, set: &Set) -> String {
        let u = self.p.u;
        let name = u.name(n);
        let info = u.info(n);
        match set {
            Set::Real { constraint, any } => {
                if info.candidates.is_empty() {
                    let archs: Vec<String> = u
                        .index
                        .by_name(name)
                        .map(|r| r.architecture.to_string())
                        .collect();
                    return if archs.is_empty() {
                        format!("no repository has a package {name}")
                    } else {
                        format!(
                            "{name} exists only for architecture {}",
                            dedup(archs).join(", ")
                        )
                    };
                }
                let records: Vec<_> = info.candidates.iter().map(|&s| u.record(s)).collect();
                if *any && records.iter().all(|r| r.multi_arch != MultiArch::Allowed) {
                    return format!("{name} is not Multi-Arch: allowed, which :any needs");
                }
                let versions: Vec<&Version> = records.iter().map(|r| &r.version).collect();
                versions_fail(name, &versions, constraint)
            }
            Set::Provides {
                virtual_name,
                constraint,
                any,
            } => {
                let mut provided: Vec<String> = Vec::new();
                for &s in &info.candidates {
                    let r = u.record(s);
                    if *any && r.multi_arch != MultiArch::Allowed {
                        provided.push(format!(
                            "{} {} is not Multi-Arch: allowed, which :any needs",
                            r.name, r.version
                        ));
                        continue;
                    }
                    for p in r.provides.iter().filter(|p| p.name == *virtual_name) {
                        provided.push(match (&p.version, constraint) {
                            (None, Some(Constraint(op, v))) => format!(
                                "{} {} provides {virtual_name} without a version, which ({op} \
                                 {v}) needs",
                                r.name, r.version
                            ),
                            (Some(pv), Some(Constraint(op, v))) => format!(
                                "{} {} provides {virtual_name} (= {pv}), not ({op} {v})",
                                r.name, r.version
                            ),
                            _ => format!("{} {} provides {virtual_name}", r.name, r.version),
                        });
                    }
                }
                dedup(provided).join("; ")
            }
            Set::Nothing => format!("{name} of another architecture is not installable here"),
            Set::Exact(_) | Set::Suite(_) | Set::Not(_) => {
                format!(
                    "no candidate of {name} matches {}",
                    crate::provider::SetDisplay(set)
                )
            }
        }
    }
}

/// "the only version of x, 7.50, is too old" and the like.
fn versions_fail(name: &str, versions: &[&Version], constraint: &Option<Constraint>) -> String {
    let Some(Constraint(op, wanted)) = constraint else {
        return format!("{name} cannot be installed");
    };
    let what = match op {
        Op::Greater | Op::GreaterEqual => "too old".to_string(),
        Op::Less | Op::LessEqual => "too new".to_string(),
        Op::Equal => format!("not {wanted}"),
    };
    let list = dedup(versions.iter().map(|v| v.to_string()).collect());
    match list.as_slice() {
        [one] => format!("the only version of {name}, {one}, is {what}"),
        many => format!("{name} has versions {}, all {what}", many.join(", ")),
    }
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    v.retain(|s| seen.insert(s.clone()));
    v
}
