//! "Did you mean": the names close to one no repository has. The one
//! routine behind the solver's [`SolveError::UnknownPackage`] and every
//! command that looks a package up by name (`kod pkg show`).
//!
//! [`SolveError::UnknownPackage`]: crate::SolveError::UnknownPackage

use std::cmp::Reverse;

use kod_repo::Index;

/// At most this many suggestions.
const MAX: usize = 5;

/// Names close to `wanted`, best first: real package names, and packages
/// providing a close virtual name, written `provider (provides name)`.
///
/// Close means at most one edit (insertion, deletion, substitution, or a
/// swap of neighbours) per three letters of `wanted`, one to three in all:
/// a short name gets only the nearest names, where two edits of a
/// three-letter word would leave one letter of it. Fewest edits first;
/// among equals the name sharing the most letters with `wanted` (`gti`
/// gives `git` before `bti`), then by name.
pub fn close_names(index: &Index, wanted: &str) -> Vec<String> {
    let limit = (wanted.chars().count() / 3).clamp(1, 3);
    let rank = |d: usize, name: &str| (d, Reverse(shared_letters(wanted, name)));
    let mut found: Vec<((usize, Reverse<usize>), String)> = Vec::new();
    for name in index.names() {
        if let Some(d) = distance_within(wanted, name, limit) {
            found.push((rank(d, name), name.to_string()));
        }
    }
    for name in index.provided_names() {
        if !index.ids_by_name(name).is_empty() {
            continue;
        }
        if let Some(d) = distance_within(wanted, name, limit) {
            let mut providers: Vec<&str> = index
                .providers(name)
                .map(|(_, r, _)| r.name.as_str())
                .collect();
            providers.sort_unstable();
            providers.dedup();
            for p in providers {
                found.push((rank(d, name), format!("{p} (provides {name})")));
            }
        }
    }
    found.sort();
    found.dedup();
    found.into_iter().take(MAX).map(|(_, n)| n).collect()
}

/// How many letters two names share, counted with repetition.
fn shared_letters(a: &str, b: &str) -> usize {
    let mut rest: Vec<char> = b.chars().collect();
    a.chars()
        .filter(|c| {
            rest.iter()
                .position(|r| r == c)
                .map(|i| rest.swap_remove(i))
                .is_some()
        })
        .count()
}

/// The edit distance between `a` and `b` (insertions, deletions,
/// substitutions and swaps of neighbours: the optimal string alignment
/// distance) if it is at most `limit`.
fn distance_within(a: &str, b: &str, limit: usize) -> Option<usize> {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len().abs_diff(b.len()) > limit {
        return None;
    }
    // Three rows: two back (for swaps), previous, current.
    let mut two: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 0..a.len() {
        cur[0] = i + 1;
        let mut row_min = cur[0];
        for j in 0..b.len() {
            let cost = usize::from(a[i] != b[j]);
            let mut d = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            if i > 0 && j > 0 && a[i] == b[j - 1] && a[i - 1] == b[j] {
                d = d.min(two[j - 1] + 1);
            }
            cur[j + 1] = d;
            row_min = row_min.min(d);
        }
        if row_min > limit {
            return None;
        }
        std::mem::swap(&mut two, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    let d = prev[b.len()];
    (d <= limit).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_with_cutoff() {
        assert_eq!(distance_within("git", "git", 1), Some(0));
        assert_eq!(distance_within("gti", "git", 1), Some(1));
        assert_eq!(distance_within("ca", "abc", 3), Some(3));
        assert_eq!(distance_within("vim", "vin", 1), Some(1));
        assert_eq!(
            distance_within("openssh-servr", "openssh-server", 3),
            Some(1)
        );
        assert_eq!(distance_within("abc", "xyzabc", 2), None);
        assert_eq!(distance_within("kitten", "sitting", 2), None);
        assert_eq!(distance_within("kitten", "sitting", 3), Some(3));
    }

    #[test]
    fn shared_letters_count_repeats_once_each() {
        assert_eq!(shared_letters("gti", "git"), 3);
        assert_eq!(shared_letters("gti", "bti"), 2);
        assert_eq!(shared_letters("aab", "abb"), 2);
        assert_eq!(shared_letters("", "abc"), 0);
    }
}
