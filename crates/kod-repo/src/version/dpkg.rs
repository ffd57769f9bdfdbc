//! [`Scheme::Debian`](super::Scheme::Debian): dpkg's version ordering
//! (deb-version(7)), on the text itself, without allocating:
//! `[epoch:]upstream[-revision]`.

use std::cmp::Ordering;

/// Splits a version into (epoch, upstream, revision) the way dpkg's
/// `parseversion` does: the epoch is what precedes the first `:`, the
/// revision what follows the last `-`.
fn split(v: &str) -> (u64, &str, &str) {
    let v = v.trim();
    let (epoch, rest) = match v.split_once(':') {
        Some((e, rest)) => (e.parse().unwrap_or(0), rest),
        None => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((up, rev)) => (epoch, up, rev),
        None => (epoch, rest, ""),
    }
}

/// The weight dpkg gives a non-digit character: `~` sorts before the end
/// of the string, which sorts before letters, which sort before the rest.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(b'~') => -1,
        Some(c) => c as i32 + 256,
    }
}

/// dpkg's `verrevcmp`: alternating non-digit and digit runs.
fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = order(a.get(i).copied());
            let bc = order(b.get(j).copied());
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while i < a.len() && a[i].is_ascii_digit() && j < b.len() && b[j].is_ascii_digit() {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if i < a.len() && a[i].is_ascii_digit() {
            return Ordering::Greater;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

/// Compares two Debian versions exactly as `dpkg --compare-versions` does.
pub(super) fn compare(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| verrevcmp(ua.as_bytes(), ub.as_bytes()))
        .then_with(|| verrevcmp(ra.as_bytes(), rb.as_bytes()))
}

/// Checks a version the way dpkg's `parseversion` does for errors (not for
/// its warnings): non-empty, no embedded blanks, a numeric epoch, a
/// non-empty upstream part and revision.
pub(super) fn check(v: &str) -> Result<(), &'static str> {
    let t = v.trim();
    if t.is_empty() {
        return Err("version string is empty");
    }
    if t.contains(char::is_whitespace) {
        return Err("version string has embedded spaces");
    }
    if t != v {
        return Err("version string has surrounding spaces");
    }
    let rest = match t.split_once(':') {
        Some((e, rest)) => {
            if e.is_empty() {
                return Err("epoch in version is empty");
            }
            if !e.bytes().all(|c| c.is_ascii_digit()) {
                return Err("epoch in version is not a number");
            }
            if e.parse::<u32>().map_or(true, |n| n > i32::MAX as u32) {
                return Err("epoch in version is too big");
            }
            if rest.is_empty() {
                return Err("nothing after colon in version number");
            }
            rest
        }
        None => t,
    };
    if let Some((up, rev)) = rest.rsplit_once('-') {
        if up.is_empty() {
            return Err("version number is empty");
        }
        if rev.is_empty() {
            return Err("revision number is empty");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_picked_orderings() {
        use Ordering::*;
        let cases = [
            ("1.0", "1.0", Equal),
            ("1.0", "0:1.0", Equal),
            ("1.0", "1.0-0", Equal),
            ("1.0~rc1", "1.0", Less),
            ("1.0~~", "1.0~", Less),
            ("1.0~", "1.0", Less),
            ("1.0", "1.0a", Less),
            ("1.0a", "1.0+", Less),
            ("1.0+", "1.0.", Less),
            ("1:0.1", "2.0", Greater),
            ("2.0-1", "2.0-1~bpo1", Greater),
            ("1.2.3", "1.2.10", Less),
            ("1.002", "1.2", Equal),
            ("1.0-1", "1.0-1.1", Less),
            ("7.4.052", "7.4.052-1", Less),
            ("1-2-3", "1-2-4", Less),
            ("a", "b", Less),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn rejects_what_dpkg_rejects() {
        for bad in ["", " ", "1 .0", ":1.0", "a:1.0", "1:", "-1", "1.0-"] {
            assert!(check(bad).is_err(), "{bad:?} accepted");
        }
        for good in [
            "1.0",
            "1:2.3-4",
            "0~",
            "1.0-1-2",
            "2:1.0+dfsg~rc1-1~bpo12+1",
        ] {
            assert!(check(good).is_ok(), "{good:?} rejected");
        }
    }
}
