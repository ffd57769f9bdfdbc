//! Which entry systemd-boot 252 boots: its order of type #1 entries and
//! its choice of the default among them, modelled so tests (and
//! `generations list`) can tell what the next boot picks without booting.
//!
//! systemd-boot 252 (`src/boot/efi/boot.c`, `config_entry_compare`) sorts
//! entries whose tries counter reached 0 last; entries with a `sort-key`
//! before those without; among entries that both have one, by `sort-key`
//! ascending, then `machine-id`, then `version` descending; then by id
//! (the file name, counter included, lower-cased) descending; then more
//! tries left first. Without a one-shot or saved EFI variable, the default
//! is the first entry in that order whose id matches loader.conf's
//! `default` glob (the first entry when there is none).

use std::cmp::Ordering;

/// What the order reads from one entry file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    /// The id: the file name, lower-cased, as systemd-boot 252 makes it.
    pub id: String,
    /// The `sort-key` line.
    pub sort_key: Option<String>,
    /// The `machine-id` line.
    pub machine_id: Option<String>,
    /// The `version` line.
    pub version: Option<String>,
    /// Tries left and done from a `+LEFT[-DONE]` name, if counting.
    pub tries: Option<(u32, u32)>,
}

impl EntryInfo {
    /// Reads the file `file` (name in `loader/entries`) with contents `text`.
    pub fn parse(file: &str, text: &str) -> EntryInfo {
        let key = |k: &str| {
            text.lines().find_map(|l| {
                let (name, value) = l.trim().split_once(char::is_whitespace)?;
                (name == k).then(|| value.trim().to_string())
            })
        };
        EntryInfo {
            id: file.to_ascii_lowercase(),
            sort_key: key("sort-key"),
            machine_id: key("machine-id"),
            version: key("version"),
            tries: tries(file),
        }
    }

    /// Whether its counter reached 0.
    pub fn is_bad(&self) -> bool {
        matches!(self.tries, Some((0, _)))
    }
}

/// `+LEFT[-DONE]` before `.conf`, as systemd-boot parses any entry's name.
fn tries(file: &str) -> Option<(u32, u32)> {
    let stem = file.strip_suffix(".conf")?;
    let (_, counter) = stem.rsplit_once('+')?;
    let (left, done) = counter.split_once('-').unwrap_or((counter, "0"));
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    Some((num(left)?, num(done)?))
}

/// `entries` in systemd-boot 252's menu order.
pub fn boot_order(mut entries: Vec<EntryInfo>) -> Vec<EntryInfo> {
    entries.sort_by(compare);
    entries
}

fn compare(a: &EntryInfo, b: &EntryInfo) -> Ordering {
    a.is_bad()
        .cmp(&b.is_bad())
        .then_with(|| a.sort_key.is_none().cmp(&b.sort_key.is_none()))
        .then_with(|| {
            if a.sort_key.is_some() && b.sort_key.is_some() {
                a.sort_key
                    .cmp(&b.sort_key)
                    .then_with(|| a.machine_id.cmp(&b.machine_id))
                    .then_with(|| {
                        verscmp(
                            b.version.as_deref().unwrap_or(""),
                            a.version.as_deref().unwrap_or(""),
                        )
                    })
            } else {
                Ordering::Equal
            }
        })
        .then_with(|| verscmp(&b.id, &a.id))
        .then_with(|| match (a.tries, b.tries) {
            (Some((la, da)), Some((lb, db))) => lb.cmp(&la).then(da.cmp(&db)),
            _ => Ordering::Equal,
        })
}

/// The entry the next boot picks from `ordered` (in [`boot_order`]) with
/// loader.conf's `default` glob `pattern`.
pub fn default_entry<'a>(ordered: &'a [EntryInfo], pattern: Option<&str>) -> Option<&'a EntryInfo> {
    match pattern {
        None => ordered.first(),
        Some(p) => {
            let p = p.to_ascii_lowercase();
            ordered.iter().find(|e| glob(p.as_bytes(), e.id.as_bytes()))
        }
    }
}

/// fnmatch's `*` and `?` (kod's patterns use no brackets).
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((b'?', rest)) => !s.is_empty() && glob(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

/// The part of systemd's `strverscmp_improved` that kod's ids and versions
/// meet: runs of digits compare as numbers, runs of letters as text, a
/// number sorts above letters, other characters only separate, and a
/// string that runs out first is lower.
fn verscmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        a = skip_separators(a);
        b = skip_separators(b);
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let (da, db) = (x.is_ascii_digit(), y.is_ascii_digit());
                if da != db {
                    return da.cmp(&db);
                }
                let run = |s: &[u8]| {
                    s.iter()
                        .position(|c| c.is_ascii_digit() != da || !c.is_ascii_alphanumeric())
                        .unwrap_or(s.len())
                };
                let (ra, rb) = (run(a), run(b));
                let (sa, sb) = (&a[..ra], &b[..rb]);
                let o = if da {
                    let (ta, tb) = (trim_zeros(sa), trim_zeros(sb));
                    ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb))
                } else {
                    sa.cmp(sb)
                };
                if o != Ordering::Equal {
                    return o;
                }
                a = &a[ra..];
                b = &b[rb..];
            }
        }
    }
}

fn skip_separators(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|c| !c.is_ascii_alphanumeric()).count();
    &s[n..]
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|c| **c == b'0').count();
    &s[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(file: &str, version: &str) -> EntryInfo {
        EntryInfo::parse(
            file,
            &format!("title x\nsort-key kod\nversion {version}\nlinux /k\n"),
        )
    }

    fn ids(v: &[EntryInfo]) -> Vec<&str> {
        v.iter().map(|e| e.id.as_str()).collect()
    }

    #[test]
    fn versions_compare_by_number() {
        assert_eq!(verscmp("10.1", "9.5"), Ordering::Greater);
        assert_eq!(verscmp("3.10", "3.9"), Ordering::Greater);
        assert_eq!(verscmp("3.9", "3.9"), Ordering::Equal);
        assert_eq!(verscmp("3", "3.1"), Ordering::Less);
        assert_eq!(verscmp("007", "7"), Ordering::Equal);
    }

    #[test]
    fn with_sort_keys_the_highest_version_comes_first_and_bad_entries_last() {
        let order = boot_order(vec![
            entry("kod-3+0-3.conf", "9.3"),
            entry("kod-1.conf", "4.1"),
            EntryInfo::parse("kodextra-memtest.conf", "title memtest\nefi /m.efi\n"),
            entry("kod-2.conf", "8.2"),
            entry("kod-10+3.conf", "0.10"),
        ]);
        assert_eq!(
            ids(&order),
            [
                "kod-2.conf",
                "kod-1.conf",
                "kod-10+3.conf",
                "kodextra-memtest.conf",
                "kod-3+0-3.conf"
            ]
        );
        // The facts measured on bookworm: `kod-*` falls back past a bad
        // entry, a pattern naming one generation keeps booting it.
        assert_eq!(
            default_entry(&order, Some("kod-*")).unwrap().id,
            "kod-2.conf"
        );
        assert_eq!(
            default_entry(&order, Some("kod-3*")).unwrap().id,
            "kod-3+0-3.conf"
        );
        // In 252 the id includes the counter.
        assert!(default_entry(&order, Some("kod-10.conf")).is_none());
        assert_eq!(default_entry(&order, None).unwrap().id, "kod-2.conf");
    }

    #[test]
    fn without_sort_keys_file_names_decide_highest_first() {
        let order = boot_order(vec![
            EntryInfo::parse("gen-1+3.conf", "linux /k\n"),
            EntryInfo::parse("gen-2+1.conf", "linux /k\n"),
        ]);
        assert_eq!(ids(&order), ["gen-2+1.conf", "gen-1+3.conf"]);
        assert!(!order[0].is_bad());
        assert!(EntryInfo::parse("gen-2+0-1.conf", "").is_bad());
        assert_eq!(EntryInfo::parse("a.conf", "").tries, None);
    }
}
