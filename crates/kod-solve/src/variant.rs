//! The base sets of mmdebstrap's variants, computed from an index.

use std::collections::BTreeSet;

use kod_repo::{Index, Priority, RecordId};

use crate::SolveError;

/// The variants [`variant_base`] knows, as mmdebstrap names them.
pub const VARIANTS: &[&str] = &[
    "extract",
    "custom",
    "essential",
    "apt",
    "required",
    "minbase",
    "buildd",
    "important",
    "debootstrap",
    "-",
    "standard",
];

/// The base set of a variant, as mmdebstrap selects it: the packages of
/// the release suite (the suite of the index's first origin, matched by
/// suite or codename, as mmdebstrap narrows to its SUITE) for the native
/// architecture or `all` that are
///
/// - `essential`: `Essential: yes`;
/// - `apt`: those and `apt`;
/// - `required`, `minbase`: those and every `Priority: required` package;
/// - `buildd`: those of `required` and `build-essential`;
/// - `important`, `debootstrap`, `-`: those and every `Priority: important`
///   package;
/// - `standard`: those and every `Priority: standard` package;
/// - `extract`, `custom`: nothing (only what is requested).
///
/// Essential packages come first, then the others, each part sorted by
/// name. Newer versions from the release's -updates and -security suites
/// are what gets installed; they only do not change which names are in.
pub fn variant_base(index: &Index, variant: &str) -> Result<Vec<String>, SolveError> {
    let (max_priority, extra): (Option<Priority>, &[&str]) = match variant {
        "extract" | "custom" => return Ok(Vec::new()),
        "essential" => (None, &[]),
        "apt" => (None, &["apt"]),
        "required" | "minbase" => (Some(Priority::Required), &[]),
        "buildd" => (Some(Priority::Required), &["build-essential"]),
        "important" | "debootstrap" | "-" => (Some(Priority::Important), &[]),
        "standard" => (Some(Priority::Standard), &[]),
        _ => {
            return Err(SolveError::UnknownVariant {
                variant: variant.to_string(),
            });
        }
    };
    let release = index.origins().first().map(|o| o.suite.as_str());
    let picked: Vec<(RecordId, bool)> = (0..index.len() as u32)
        .filter_map(|i| {
            let id = RecordId(i);
            // Facts kept beside the records: no record is decoded.
            let r = index.base_facts(id);
            let o = index.origin(r.origin);
            if release.is_some_and(|s| o.suite != s && o.codename != s) || !r.native_or_all {
                return None;
            }
            if r.essential {
                Some((id, true))
            } else if max_priority.is_some_and(|p| r.priority <= p) {
                Some((id, false))
            } else {
                None
            }
        })
        .collect();
    let mut essential = BTreeSet::new();
    let mut rest = BTreeSet::new();
    for (id, is_essential) in picked {
        if is_essential {
            essential.insert(index.name(id));
        } else {
            rest.insert(index.name(id));
        }
    }
    rest.extend(extra.iter().copied());
    let mut out: Vec<String> = essential.iter().map(|s| s.to_string()).collect();
    out.extend(
        rest.into_iter()
            .filter(|n| !essential.contains(n))
            .map(str::to_string),
    );
    Ok(out)
}
