//! The signed `Release` text of a suite (the plain text of `InRelease`):
//! its validity, architectures, components and the files it vouches for.

use std::collections::HashMap;

use deb822_fast::borrowed::iter_paragraphs_borrowed;

use crate::model::Sha256;

/// One file the Release vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileEntry {
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 digest.
    pub sha256: Sha256,
}

/// The fields of a Release file that kod uses.
#[derive(Debug, Clone, Default)]
pub struct Release {
    /// `Suite` (e.g. `stable`).
    pub suite: String,
    /// `Codename` (e.g. `bookworm`).
    pub codename: String,
    /// `Valid-Until`, as written, and as Unix time.
    pub valid_until: Option<(String, i64)>,
    /// `Architectures`.
    pub architectures: Vec<String>,
    /// `Components`.
    pub components: Vec<String>,
    /// `Acquire-By-Hash: yes`.
    pub by_hash: bool,
    /// `No-Support-for-Architecture-all: Packages`: the per-architecture
    /// indices already hold the `all` packages.
    pub all_in_arch_indices: bool,
    /// The `SHA256` list: path relative to the suite's directory.
    pub files: HashMap<String, FileEntry>,
}

impl Release {
    /// Parses the (already verified) Release text.
    pub fn parse(text: &str) -> Result<Release, String> {
        let para = iter_paragraphs_borrowed(text)
            .next()
            .ok_or("the Release file is empty")?
            .map_err(|e| e.to_string())?;
        let mut r = Release::default();
        for field in para.iter() {
            let lines = field.lines();
            let first = lines.first().copied().unwrap_or("").trim();
            match field.name() {
                "Suite" => r.suite = first.to_string(),
                "Codename" => r.codename = first.to_string(),
                "Valid-Until" => {
                    let t = parse_date(first)
                        .ok_or_else(|| format!("cannot read the Valid-Until date {first:?}"))?;
                    r.valid_until = Some((first.to_string(), t));
                }
                "Architectures" => r.architectures = words(first),
                "Components" => r.components = words(first),
                "Acquire-By-Hash" => r.by_hash = first.eq_ignore_ascii_case("yes"),
                "No-Support-for-Architecture-all" => r.all_in_arch_indices = first == "Packages",
                "SHA256" => {
                    for line in lines.iter().filter(|l| !l.trim().is_empty()) {
                        let mut w = line.split_whitespace();
                        let (Some(hash), Some(size), Some(path), None) =
                            (w.next(), w.next(), w.next(), w.next())
                        else {
                            return Err(format!("malformed SHA256 line {line:?}"));
                        };
                        let entry = FileEntry {
                            size: size
                                .parse()
                                .map_err(|_| format!("malformed size in SHA256 line {line:?}"))?,
                            sha256: Sha256::from_hex(hash)
                                .ok_or_else(|| format!("malformed hash in SHA256 line {line:?}"))?,
                        };
                        r.files.insert(path.to_string(), entry);
                    }
                }
                _ => {}
            }
        }
        if r.files.is_empty() {
            return Err("it lists no file with a SHA256".into());
        }
        Ok(r)
    }
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// Parses an RFC 2822 date as Release files write it
/// (`Sat, 10 Jun 2023 09:10:56 UTC`; the weekday is optional; `UTC`, `GMT`,
/// `Z` or a `+hhmm` offset) into Unix time.
pub fn parse_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let s = match s.split_once(',') {
        Some((_, rest)) => rest.trim(),
        None => s,
    };
    let mut w = s.split_whitespace();
    let day: i64 = w.next()?.parse().ok()?;
    let month = match w.next()?.to_ascii_lowercase().as_str() {
        "jan" => 1,
        "feb" => 2,
        "mar" => 3,
        "apr" => 4,
        "may" => 5,
        "jun" => 6,
        "jul" => 7,
        "aug" => 8,
        "sep" => 9,
        "oct" => 10,
        "nov" => 11,
        "dec" => 12,
        _ => return None,
    };
    let year: i64 = w.next()?.parse().ok()?;
    let mut hms = w.next()?.split(':');
    let (h, m, sec): (i64, i64, i64) = (
        hms.next()?.parse().ok()?,
        hms.next()?.parse().ok()?,
        hms.next().unwrap_or("0").parse().ok()?,
    );
    let offset = match w.next() {
        None | Some("UTC") | Some("GMT") | Some("Z") => 0,
        Some(z) => {
            let (sign, digits) = match z.as_bytes().first()? {
                b'+' => (1, &z[1..]),
                b'-' => (-1, &z[1..]),
                _ => return None,
            };
            if digits.len() != 4 {
                return None;
            }
            let n: i64 = digits.parse().ok()?;
            sign * ((n / 100) * 3600 + (n % 100) * 60)
        }
    };
    if !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86400 + h * 3600 + m * 60 + sec - offset)
}

/// Howard Hinnant's civil-to-days conversion.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Unix time as `YYYY-MM-DD HH:MM:SS UTC`, for messages.
pub fn format_time(t: i64) -> String {
    match jiff::Timestamp::from_second(t) {
        Ok(ts) => ts.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => format!("{t} s after 1970"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_as_release_files_write_them() {
        // 2001-09-09T01:46:40Z is Unix time 1_000_000_000.
        assert_eq!(
            parse_date("Sun, 09 Sep 2001 01:46:40 UTC"),
            Some(1_000_000_000)
        );
        assert_eq!(parse_date("9 Sep 2001 01:46:40 GMT"), Some(1_000_000_000));
        assert_eq!(
            parse_date("Sun, 09 Sep 2001 03:46:40 +0200"),
            Some(1_000_000_000)
        );
        assert_eq!(
            parse_date("Sun, 29 Feb 2032 00:00:00 UTC"),
            Some(1_961_625_600)
        );
        assert_eq!(parse_date("Sun, 09 Foo 2001 01:46:40 UTC"), None);
        assert_eq!(format_time(1_000_000_000), "2001-09-09 01:46:40 UTC");
    }

    #[test]
    fn release_fields() {
        let text = "Origin: Debian\nSuite: stable\nCodename: bookworm\n\
Valid-Until: Sun, 09 Sep 2001 01:46:40 UTC\nAcquire-By-Hash: yes\n\
No-Support-for-Architecture-all: Packages\nArchitectures: all amd64\nComponents: main contrib\n\
SHA256:\n 0000000000000000000000000000000000000000000000000000000000000001 12 main/binary-amd64/Packages.xz\n";
        let r = Release::parse(text).unwrap();
        assert_eq!(
            (r.suite.as_str(), r.codename.as_str()),
            ("stable", "bookworm")
        );
        assert_eq!(r.valid_until.as_ref().unwrap().1, 1_000_000_000);
        assert!(r.by_hash && r.all_in_arch_indices);
        assert_eq!(r.architectures, ["all", "amd64"]);
        assert_eq!(r.components, ["main", "contrib"]);
        assert_eq!(r.files["main/binary-amd64/Packages.xz"].size, 12);
        assert!(Release::parse("Suite: x\n").is_err());
    }
}
