//! Random small universes: every resolution is consistent (checked by the
//! independent checker), and the solver fails exactly when a brute-force
//! search over every assignment finds no consistent system.

mod common;

use common::{NAMES, check, consistent, one, universe};
use kod_repo::PackageRecord;
use kod_solve::{Request, SolveError, solve};
use proptest::prelude::*;

/// Whether some choice of at most one version per name, holding every
/// requested name, is consistent.
fn brute_force(records: &[&PackageRecord], requested: &[String]) -> bool {
    let mut by_name: Vec<Vec<&PackageRecord>> = Vec::new();
    for n in 0..NAMES {
        let name = format!("p{n}");
        by_name.push(records.iter().copied().filter(|r| r.name == name).collect());
    }
    let choices: Vec<usize> = by_name.iter().map(|v| v.len() + 1).collect();
    let total: usize = choices.iter().product();
    for mut code in 0..total {
        let mut chosen = Vec::new();
        for (n, options) in by_name.iter().enumerate() {
            let pick = code % choices[n];
            code /= choices[n];
            if pick > 0 {
                chosen.push(options[pick - 1]);
            }
        }
        let holds_request = requested
            .iter()
            .all(|q| chosen.iter().any(|r| r.name == q.as_str()));
        if holds_request && consistent(&chosen).is_ok() {
            return true;
        }
    }
    false
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn solutions_are_consistent_and_failures_are_real((text, requested) in universe()) {
        let ix = one(&text);
        let request = Request::new(Vec::<String>::new(), &requested).unwrap();
        let records: Vec<&PackageRecord> = ix.records().collect();
        let possible = brute_force(&records, &requested);
        match solve(&ix, &request, None) {
            Ok(r) => {
                prop_assert!(possible, "solved what brute force calls impossible");
                if let Err(e) = check(&ix, &r, &[], &request.packages, None) {
                    prop_assert!(false, "inconsistent resolution: {e}\n{text}");
                }
            }
            Err(SolveError::Unsatisfiable(e)) => {
                prop_assert!(!possible, "failed though a solution exists:\n{e}\n{text}");
                prop_assert!(!e.lines().is_empty());
            }
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }
}
