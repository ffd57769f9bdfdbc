//! What names a Debian repository: mirror, suites, components,
//! architecture, keys; where the mirror comes from; which suites a release
//! name stands for.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use deb822_fast::borrowed::iter_paragraphs_borrowed;

use super::Error;

/// One Debian repository to load: a mirror and the suites to read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebianSource {
    /// Base URL of the archive (the directory holding `dists/` and
    /// `pool/`), without a trailing `/`.
    pub mirror: String,
    /// Base URL for `*-security` (and `*/updates`) suites; `None` means
    /// `<mirror>-security`, as the Debian archive lays it out.
    pub security_mirror: Option<String>,
    /// Suites to load, in order (later suites do not hide earlier ones:
    /// every version is kept).
    pub suites: Vec<String>,
    /// Components (default `main`).
    pub components: Vec<String>,
    /// The native architecture (default: the host's).
    pub architecture: String,
    /// Keyring files to verify InRelease against; empty means the host's
    /// Debian archive keyring.
    pub signed_by: Vec<PathBuf>,
    /// Load without checking signatures. Off by default; when on, kod warns
    /// loudly on every load.
    pub trusted_without_signature: bool,
    /// Refuse a Release past its Valid-Until (the default). Turn off only
    /// for archives frozen in time (snapshots), as apt's
    /// `check-valid-until=no` does.
    pub check_valid_until: bool,
}

impl DebianSource {
    /// The suites `suites` of `mirror`, component `main`, the host's
    /// architecture, verified against the host's Debian archive keyring.
    pub fn new(mirror: &str, suites: &[&str]) -> DebianSource {
        DebianSource {
            mirror: mirror.trim_end_matches('/').to_string(),
            security_mirror: None,
            suites: suites.iter().map(|s| s.to_string()).collect(),
            components: vec!["main".to_string()],
            architecture: host_architecture().to_string(),
            signed_by: Vec::new(),
            trusted_without_signature: false,
            check_valid_until: true,
        }
    }

    /// `debian:SUITE`: the suites [`release_suites`] gives for `suite` on
    /// `mirror`, its security suite on `mirror.security` when known.
    pub fn release(mirror: &Mirror, suite: &str) -> DebianSource {
        let suites = release_suites(suite);
        let mut s = DebianSource::new(
            &mirror.url,
            &suites.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        s.security_mirror = mirror.security_url.clone();
        s.check_valid_until = mirror.check_valid_until;
        s
    }

    /// The base URL a suite is fetched from.
    pub fn base_url(&self, suite: &str) -> String {
        if is_security_suite(suite) {
            match &self.security_mirror {
                Some(m) => m.trim_end_matches('/').to_string(),
                None => format!("{}-security", self.mirror),
            }
        } else {
            self.mirror.clone()
        }
    }
}

fn is_security_suite(suite: &str) -> bool {
    suite.ends_with("-security") || suite.ends_with("/updates")
}

/// Debian suites that are stable releases (or their aliases), which get
/// `-updates` and a security suite as mmdebstrap gives them.
const STABLE_RELEASES: &[&str] = &[
    "stable",
    "oldstable",
    "oldoldstable",
    "jessie",
    "stretch",
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
];

/// Releases whose security suite is still `SUITE/updates` (before bullseye).
const OLD_SECURITY_LAYOUT: &[&str] = &["jessie", "stretch", "buster"];

/// What `debian:SUITE` stands for, following mmdebstrap's
/// `get_sourceslist_by_suite`: a stable release (or its alias) is SUITE,
/// SUITE-updates and SUITE-security (SUITE/updates before bullseye);
/// unstable, sid, testing, experimental and any other name are SUITE alone.
pub fn release_suites(suite: &str) -> Vec<String> {
    if !STABLE_RELEASES.contains(&suite) {
        return vec![suite.to_string()];
    }
    let security = if OLD_SECURITY_LAYOUT.contains(&suite) {
        format!("{suite}/updates")
    } else {
        format!("{suite}-security")
    };
    vec![suite.to_string(), format!("{suite}-updates"), security]
}

/// The host's dpkg architecture (`dpkg --print-architecture`), or the one
/// matching the CPU kod was built for when dpkg is absent.
pub fn host_architecture() -> &'static str {
    static ARCH: OnceLock<String> = OnceLock::new();
    ARCH.get_or_init(|| {
        std::process::Command::new("dpkg")
            .arg("--print-architecture")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| {
                match std::env::consts::ARCH {
                    "x86_64" => "amd64",
                    "x86" => "i386",
                    "aarch64" => "arm64",
                    "arm" => "armhf",
                    "powerpc64" => "ppc64el",
                    "s390x" => "s390x",
                    "riscv64" => "riscv64",
                    "loongarch64" => "loong64",
                    other => other,
                }
                .to_string()
            })
    })
}

/// Where a mirror URL came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorOrigin {
    /// Given on the command line or by the caller.
    Explicit,
    /// From kod's configuration.
    Configuration,
    /// From `KOD_DEBIAN_MIRROR`.
    Environment,
    /// From this apt sources file of the host.
    AptSources(PathBuf),
}

/// A Debian mirror and, when known, the security mirror beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// Base URL of the archive, no trailing `/`.
    pub url: String,
    /// Base URL of the security archive, when the host's apt sources name
    /// one (else `<url>-security` is used).
    pub security_url: Option<String>,
    /// False when the apt source says `check-valid-until=no` (snapshots).
    pub check_valid_until: bool,
    /// Where `url` came from.
    pub origin: MirrorOrigin,
}

/// Finds the Debian mirror: `explicit`, else `configured`, else
/// `KOD_DEBIAN_MIRROR`, else the host's apt sources (`/etc/apt`).
pub fn find_mirror(explicit: Option<&str>, configured: Option<&str>) -> Result<Mirror, Error> {
    let env = std::env::var("KOD_DEBIAN_MIRROR").ok();
    find_mirror_in(explicit, configured, env.as_deref(), Path::new("/etc/apt"))
}

/// [`find_mirror`] with the environment value and the apt directory given.
pub fn find_mirror_in(
    explicit: Option<&str>,
    configured: Option<&str>,
    env: Option<&str>,
    apt_dir: &Path,
) -> Result<Mirror, Error> {
    let given = |url: &str, origin| Mirror {
        url: url.trim_end_matches('/').to_string(),
        security_url: None,
        check_valid_until: true,
        origin,
    };
    fn nonempty(s: Option<&str>) -> Option<&str> {
        s.map(str::trim).filter(|s| !s.is_empty())
    }
    if let Some(url) = nonempty(explicit) {
        return Ok(given(url, MirrorOrigin::Explicit));
    }
    if let Some(url) = nonempty(configured) {
        return Ok(given(url, MirrorOrigin::Configuration));
    }
    if let Some(url) = nonempty(env) {
        return Ok(given(url, MirrorOrigin::Environment));
    }
    let entries = apt_entries(apt_dir);
    let is_debian = |suite: &str| {
        let base = suite.split(['-', '/']).next().unwrap_or(suite);
        STABLE_RELEASES.contains(&base)
            || matches!(base, "sid" | "unstable" | "testing" | "experimental")
    };
    let main = entries
        .iter()
        .find(|e| {
            e.suites
                .iter()
                .any(|s| is_debian(s) && !is_security_suite(s))
        })
        .ok_or(Error::NoMirror)?;
    let security = entries
        .iter()
        .find(|e| {
            e.suites
                .iter()
                .any(|s| is_debian(s) && is_security_suite(s))
        })
        .map(|e| e.uri.trim_end_matches('/').to_string());
    Ok(Mirror {
        url: main.uri.trim_end_matches('/').to_string(),
        security_url: security,
        check_valid_until: main.check_valid_until,
        origin: MirrorOrigin::AptSources(main.file.clone()),
    })
}

/// The repositories a root's own apt sources name (`ROOT/etc/apt`), one
/// source per entry, for installing into that root. Keyrings named by
/// `signed-by` are read inside the root.
pub fn apt_sources(root: &Path, architecture: &str) -> Result<Vec<DebianSource>, Error> {
    let entries = apt_entries(&root.join("etc/apt"));
    if entries.is_empty() {
        return Err(Error::Spec(format!(
            "{} has no apt sources (etc/apt/sources.list or etc/apt/sources.list.d/): kod reads \
             them to know where the root's packages come from; add a `deb` line",
            root.display()
        )));
    }
    Ok(entries
        .into_iter()
        .map(|e| {
            let uri = e.uri.trim_end_matches('/').to_string();
            DebianSource {
                mirror: uri.clone(),
                security_mirror: Some(uri),
                suites: e.suites,
                components: if e.components.is_empty() {
                    vec!["main".to_string()]
                } else {
                    e.components
                },
                architecture: architecture.to_string(),
                signed_by: e
                    .signed_by
                    .map(|k| root.join(k.strip_prefix("/").unwrap_or(&k)))
                    .into_iter()
                    .collect(),
                trusted_without_signature: false,
                check_valid_until: e.check_valid_until,
            }
        })
        .collect())
}

/// One enabled `deb` entry of the apt sources.
struct AptEntry {
    file: PathBuf,
    uri: String,
    suites: Vec<String>,
    components: Vec<String>,
    signed_by: Option<PathBuf>,
    check_valid_until: bool,
}

/// Whether an apt option value turns a check off (`no`, `false`, `0`).
fn is_off(v: &str) -> bool {
    matches!(v.trim().to_ascii_lowercase().as_str(), "no" | "false" | "0")
}

/// The enabled `deb` entries of `apt_dir`'s sources.list, sources.list.d/*.list
/// (one-line format) and sources.list.d/*.sources (deb822), in apt's order.
fn apt_entries(apt_dir: &Path) -> Vec<AptEntry> {
    let mut files = vec![apt_dir.join("sources.list")];
    if let Ok(dir) = std::fs::read_dir(apt_dir.join("sources.list.d")) {
        let mut more: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        more.sort();
        files.extend(more);
    }
    let mut out = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        match file.extension().and_then(|e| e.to_str()) {
            Some("sources") => deb822_entries(&file, &text, &mut out),
            Some("list") => one_line_entries(&file, &text, &mut out),
            _ if file.file_name().is_some_and(|n| n == "sources.list") => {
                one_line_entries(&file, &text, &mut out)
            }
            _ => {}
        }
    }
    out
}

fn one_line_entries(file: &Path, text: &str, out: &mut Vec<AptEntry>) {
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line
            .strip_prefix("deb ")
            .or_else(|| line.strip_prefix("deb\t"))
        else {
            continue;
        };
        let rest = rest.trim_start();
        // `[ options ]`: only check-valid-until matters here.
        let (options, rest) = match rest.strip_prefix('[') {
            Some(r) => match r.split_once(']') {
                Some((opts, after)) => (opts, after),
                None => continue,
            },
            None => ("", rest),
        };
        let option = |key: &str| {
            options
                .split_whitespace()
                .filter_map(|o| o.split_once('='))
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v)
        };
        let check_valid_until = !option("check-valid-until").is_some_and(is_off);
        let signed_by = option("signed-by").map(PathBuf::from);
        let mut w = rest.split_whitespace();
        if let (Some(uri), Some(suite)) = (w.next(), w.next()) {
            out.push(AptEntry {
                file: file.to_path_buf(),
                uri: uri.to_string(),
                suites: vec![suite.to_string()],
                components: w.map(str::to_string).collect(),
                signed_by,
                check_valid_until,
            });
        }
    }
}

fn deb822_entries(file: &Path, text: &str, out: &mut Vec<AptEntry>) {
    // Comment lines are dropped by the parser, including commented fields.
    for para in iter_paragraphs_borrowed(text).map_while(Result::ok) {
        let get = |name: &str| para.get(name).map(|lines| lines.join(" "));
        let types = get("Types").unwrap_or_default();
        if !types.split_whitespace().any(|t| t == "deb") {
            continue;
        }
        if get("Enabled").is_some_and(|e| e.trim().eq_ignore_ascii_case("no")) {
            continue;
        }
        let check_valid_until = !get("Check-Valid-Until").is_some_and(|v| is_off(&v));
        let suites: Vec<String> = get("Suites")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let components: Vec<String> = get("Components")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        // Signed-By is a keyring path, or an inline key (not a path).
        let signed_by = get("Signed-By")
            .map(|v| v.trim().to_string())
            .filter(|v| v.starts_with('/') && !v.contains(' '))
            .map(PathBuf::from);
        for uri in get("URIs").unwrap_or_default().split_whitespace() {
            out.push(AptEntry {
                file: file.to_path_buf(),
                uri: uri.to_string(),
                suites: suites.clone(),
                components: components.clone(),
                signed_by: signed_by.clone(),
                check_valid_until,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_roots_apt_sources_become_sources() {
        let root = tempfile::tempdir().unwrap();
        let apt = root.path().join("etc/apt");
        std::fs::create_dir_all(apt.join("sources.list.d")).unwrap();
        std::fs::write(
            apt.join("sources.list"),
            "deb http://mirror.invalid/debian bookworm main contrib\n\
             deb [signed-by=/usr/share/keyrings/k.gpg] http://mirror.invalid/debian-security bookworm-security main\n",
        )
        .unwrap();
        let sources = apt_sources(root.path(), "amd64").unwrap();
        assert_eq!(sources.len(), 2);
        assert_eq!(sources[0].suites, ["bookworm"]);
        assert_eq!(sources[0].components, ["main", "contrib"]);
        assert_eq!(
            sources[0].base_url("bookworm"),
            "http://mirror.invalid/debian"
        );
        assert_eq!(
            sources[1].base_url("bookworm-security"),
            "http://mirror.invalid/debian-security"
        );
        assert_eq!(
            sources[1].signed_by,
            [root.path().join("usr/share/keyrings/k.gpg")]
        );
        let empty = tempfile::tempdir().unwrap();
        let err = apt_sources(empty.path(), "amd64").unwrap_err().to_string();
        assert!(err.contains("has no apt sources"), "{err}");
    }

    #[test]
    fn release_names_expand_like_mmdebstrap() {
        assert_eq!(
            release_suites("bookworm"),
            ["bookworm", "bookworm-updates", "bookworm-security"]
        );
        assert_eq!(
            release_suites("stable"),
            ["stable", "stable-updates", "stable-security"]
        );
        assert_eq!(
            release_suites("buster"),
            ["buster", "buster-updates", "buster/updates"]
        );
        for alone in [
            "sid",
            "unstable",
            "experimental",
            "testing",
            "bookworm-backports",
        ] {
            assert_eq!(release_suites(alone), [alone]);
        }
        let m = Mirror {
            url: "http://example.org/debian".into(),
            security_url: None,
            check_valid_until: true,
            origin: MirrorOrigin::Explicit,
        };
        let s = DebianSource::release(&m, "trixie");
        assert_eq!(s.base_url("trixie-updates"), "http://example.org/debian");
        assert_eq!(
            s.base_url("trixie-security"),
            "http://example.org/debian-security"
        );
        assert_eq!(s.components, ["main"]);
    }

    #[test]
    fn mirror_precedence_and_apt_sources() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let none = find_mirror_in(None, None, None, d).unwrap_err();
        assert!(none.to_string().contains("KOD_DEBIAN_MIRROR"), "{none}");
        std::fs::create_dir(d.join("sources.list.d")).unwrap();
        std::fs::write(
            d.join("sources.list"),
            "# deb http://commented.example.org/debian bookworm main\n\
             deb-src http://src.example.org/debian bookworm main\n\
             deb [arch=amd64 signed-by=/x.gpg] http://other.example.org/apt nodistro main\n",
        )
        .unwrap();
        std::fs::write(
            d.join("sources.list.d/debian.sources"),
            "Types: deb\nURIs: http://disabled.example.org/debian\nSuites: bookworm\nEnabled: no\n\n\
             Types: deb deb-src\n# URIs: http://comment.example.org/debian\nURIs: http://mirror.example.org/debian/\n\
             Suites: bookworm bookworm-updates\nComponents: main\n\n\
             Types: deb\nURIs: http://mirror.example.org/debian-security\nSuites: bookworm-security\n",
        )
        .unwrap();
        std::fs::write(
            d.join("sources.list.d/x.list.disabled"),
            "deb http://no.example.org/ bookworm main\n",
        )
        .unwrap();
        let m = find_mirror_in(None, None, None, d).unwrap();
        assert_eq!(m.url, "http://mirror.example.org/debian");
        assert_eq!(
            m.security_url.as_deref(),
            Some("http://mirror.example.org/debian-security")
        );
        assert_eq!(
            m.origin,
            MirrorOrigin::AptSources(d.join("sources.list.d/debian.sources"))
        );
        let m = find_mirror_in(
            None,
            Some("http://c.example.org/d/"),
            Some("http://e.example.org"),
            d,
        )
        .unwrap();
        assert_eq!(
            (m.url.as_str(), m.origin),
            ("http://c.example.org/d", MirrorOrigin::Configuration)
        );
        let m = find_mirror_in(
            Some("http://x.example.org"),
            None,
            Some("http://e.example.org"),
            d,
        )
        .unwrap();
        assert_eq!(m.origin, MirrorOrigin::Explicit);
        let m = find_mirror_in(None, None, Some("http://e.example.org"), d).unwrap();
        assert_eq!(m.origin, MirrorOrigin::Environment);
        // One-line entries count too.
        std::fs::remove_file(d.join("sources.list.d/debian.sources")).unwrap();
        std::fs::write(
            d.join("sources.list.d/a.list"),
            "deb http://one.example.org/debian trixie main # c\n",
        )
        .unwrap();
        let m = find_mirror_in(None, None, None, d).unwrap();
        assert_eq!(m.url, "http://one.example.org/debian");
        assert!(m.check_valid_until);
        std::fs::write(
            d.join("sources.list.d/a.list"),
            "deb [check-valid-until=no] http://snap.example.org/debian/20250520T000000Z bookworm main\n",
        )
        .unwrap();
        assert!(
            !find_mirror_in(None, None, None, d)
                .unwrap()
                .check_valid_until
        );
        std::fs::remove_file(d.join("sources.list.d/a.list")).unwrap();
        std::fs::write(
            d.join("sources.list.d/s.sources"),
            "Types: deb\nURIs: http://snap.example.org/debian\nSuites: trixie\nCheck-Valid-Until: no\n",
        )
        .unwrap();
        assert!(
            !find_mirror_in(None, None, None, d)
                .unwrap()
                .check_valid_until
        );
    }
}
