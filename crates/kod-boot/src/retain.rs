//! Which generations keep a boot entry.

use std::collections::BTreeSet;

/// The generations among `generations` that keep an entry: every one in
/// `protected` (the booted, default and last good generations) that
/// exists, then the newest others until `max` entries in all. The
/// protected ones count towards `max` but are kept even when they alone
/// exceed it.
///
/// This limits entries only: a generation without one stays on disk
/// (`generations gc --keep` removes generations) and gets its entry back
/// when it becomes the default again.
pub fn retain(generations: &[u64], protected: &[u64], max: usize) -> BTreeSet<u64> {
    let all: BTreeSet<u64> = generations.iter().copied().collect();
    let mut kept: BTreeSet<u64> = protected
        .iter()
        .copied()
        .filter(|g| all.contains(g))
        .collect();
    let room = max.saturating_sub(kept.len());
    let newest: Vec<u64> = all
        .iter()
        .rev()
        .copied()
        .filter(|g| !kept.contains(g))
        .take(room)
        .collect();
    kept.extend(newest);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keeps_the_newest_and_the_protected() {
        let gens: Vec<u64> = (0..=12).collect();
        assert_eq!(retain(&gens, &[12], 3), BTreeSet::from([10, 11, 12]));
        // Rolled back to 2 while 12 is booted: both stay, one more newest.
        assert_eq!(retain(&gens, &[2, 12], 3), BTreeSet::from([2, 11, 12]));
        // The case: max 2 after three rebuilds, 3 default, 0 last good.
        assert_eq!(retain(&[0, 1, 2, 3], &[3, 0], 2), BTreeSet::from([0, 3]));
        // Protected alone above the limit.
        assert_eq!(retain(&gens, &[1, 5, 9], 2), BTreeSet::from([1, 5, 9]));
        // A protected number that is not a generation is no entry.
        assert_eq!(retain(&[4, 5], &[9], 1), BTreeSet::from([5]));
        assert_eq!(retain(&[], &[1], 3), BTreeSet::new());
    }

    proptest! {
        #[test]
        fn retention_rules(
            gens in prop::collection::btree_set(0u64..40, 0..25),
            picks in prop::collection::vec(0usize..25, 0..3),
            max in 0usize..12,
        ) {
            let gens: Vec<u64> = gens.into_iter().collect();
            let protected: Vec<u64> = picks.iter().filter_map(|&i| gens.get(i).copied()).collect();
            let kept = retain(&gens, &protected, max);
            let distinct: BTreeSet<u64> = protected.iter().copied().collect();
            // Only generations; every protected one.
            prop_assert!(kept.iter().all(|g| gens.contains(g)));
            prop_assert!(distinct.iter().all(|g| kept.contains(g)));
            // Exactly max when there are enough, never more than needed.
            prop_assert_eq!(kept.len(), gens.len().min(max.max(distinct.len())));
            // An unprotected generation kept means every newer one is kept.
            for g in &gens {
                if kept.contains(g) && !distinct.contains(g) {
                    prop_assert!(gens.iter().filter(|n| *n > g).all(|n| kept.contains(n)));
                }
            }
        }
    }
}
