//! Close names for an unknown package: the index's package names within a
//! small edit distance, and packages providing a close virtual name.

use kod_repo::Index;

/// At most this many suggestions.
const MAX: usize = 6;

/// Names close to `wanted`: real package names by edit distance, then
/// providers of close virtual names (`provider (provides name)`), best
/// first.
pub(crate) fn close_names(index: &Index, wanted: &str) -> Vec<String> {
    let limit = (wanted.chars().count() / 3).clamp(1, 3);
    let mut found: Vec<(usize, String)> = Vec::new();
    for name in index.names() {
        if let Some(d) = distance_within(wanted, name, limit) {
            found.push((d, name.to_string()));
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
                found.push((d, format!("{p} (provides {name})")));
            }
        }
    }
    found.sort();
    found.dedup();
    found.into_iter().take(MAX).map(|(_, n)| n).collect()
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
}
