//! Against the real Debian archive, through the mirror of the host's apt
//! sources (or `KOD_DEBIAN_MIRROR`): metadata over HTTP and HTTPS, and a
//! download verified against the hash the archive's Release file gives.

use kod_fetch::{
    Cache, Client, ClientOptions, Conditional, Download, FetchError, Fetcher, sha256_from_hex,
};

/// The first Debian mirror and suite of the host's apt sources (deb822 and
/// one-line formats); `KOD_DEBIAN_MIRROR` overrides the mirror.
fn host_mirror() -> (String, String) {
    let mut texts = vec![std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default()];
    for e in std::fs::read_dir("/etc/apt/sources.list.d")
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = e.path();
        if matches!(
            p.extension().and_then(|x| x.to_str()),
            Some("sources" | "list")
        ) {
            texts.push(std::fs::read_to_string(&p).unwrap_or_default());
        }
    }
    let mut found = None;
    'texts: for text in &texts {
        // deb822 stanzas and one-line entries, in order.
        for stanza in text.split("\n\n") {
            let (mut uri, mut suite) = (None, None);
            for line in stanza.lines().map(str::trim) {
                if let Some(v) = line.strip_prefix("URIs:") {
                    uri = v.split_whitespace().next();
                } else if let Some(v) = line.strip_prefix("Suites:") {
                    suite = v.split_whitespace().next();
                } else if let Some(rest) = line.strip_prefix("deb ") {
                    // deb [options] URI SUITE COMPONENTS...
                    let rest = match rest.trim_start().strip_prefix('[') {
                        Some(r) => r.split_once(']').map_or("", |(_, r)| r),
                        None => rest,
                    };
                    let mut words = rest.split_whitespace();
                    if let (Some(u), Some(s)) = (words.next(), words.next())
                        && is_debian(u, s)
                    {
                        found = Some((u, s));
                        break 'texts;
                    }
                }
            }
            if let (Some(u), Some(s)) = (uri, suite)
                && is_debian(u, s)
            {
                found = Some((u, s));
                break 'texts;
            }
        }
    }
    let (uri, suite) = found.expect("a Debian mirror in the host's apt sources");
    let uri = std::env::var("KOD_DEBIAN_MIRROR")
        .ok()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| uri.to_string());
    (uri.trim_end_matches('/').to_string(), suite.to_string())
}

fn is_debian(uri: &str, suite: &str) -> bool {
    uri.starts_with("http") && uri.contains("debian") && !suite.contains('-')
}

/// The (size, SHA256) the Release file lists for `path`.
fn release_entry(release: &str, path: &str) -> (u64, [u8; 32]) {
    let section = release
        .split_once("\nSHA256:\n")
        .expect("a SHA256 section")
        .1;
    for line in section.lines().take_while(|l| l.starts_with(' ')) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [hash, size, p] = f[..]
            && p == path
        {
            return (size.parse().unwrap(), sha256_from_hex(hash).unwrap());
        }
    }
    panic!("{path} not listed in the Release file");
}

fn body(c: Conditional) -> Vec<u8> {
    match c {
        Conditional::Modified { body, .. } => body,
        Conditional::NotModified => panic!("no validators were sent"),
    }
}

#[test]
fn net_release_metadata_and_a_verified_download_from_the_real_archive() {
    if !kod_testkit::tier(kod_testkit::Tier::Net) {
        return;
    }
    let (mirror, suite) = host_mirror();
    let client = Client::new(ClientOptions::default());
    let url = format!("{mirror}/dists/{suite}/Release");
    let first = client.get_conditional(&url, None).unwrap();
    let Conditional::Modified {
        body: release,
        validators,
    } = first
    else {
        panic!("no validators were sent");
    };
    let release = String::from_utf8(release).unwrap();
    assert!(release.contains(&format!("Codename: {suite}")), "{url}");
    // Some paths to the mirror (proxies) send no validators at all.
    if validators.etag.is_some() || validators.last_modified.is_some() {
        let again = client.get_conditional(&url, Some(&validators)).unwrap();
        assert_eq!(again, Conditional::NotModified, "{validators:?}");
    } else {
        eprintln!("{url}: the server sent neither ETag nor Last-Modified");
    }

    // The same file over TLS, when the mirror is plain HTTP.
    if let Some(rest) = mirror.strip_prefix("http://") {
        let https = format!("https://{rest}/dists/{suite}/Release");
        let tls = String::from_utf8(body(client.get_conditional(&https, None).unwrap())).unwrap();
        assert!(tls.contains(&format!("Codename: {suite}")), "{https}");
    }

    // A file the Release lists, downloaded and checked against its hash.
    let path = "main/binary-all/Release";
    let (size, sha256) = release_entry(&release, path);
    let cache_dir = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(client, Cache::open(cache_dir.path()).unwrap());
    let item = Download {
        urls: vec![format!("{mirror}/dists/{suite}/{path}")],
        size,
        sha256,
        label: path.to_string(),
    };
    let paths = fetcher.fetch_all(std::slice::from_ref(&item)).unwrap();
    let got = std::fs::read_to_string(&paths[0]).unwrap();
    assert!(got.contains("Architecture: all"), "{got}");

    let mut wrong = item.clone();
    wrong.sha256[0] ^= 1;
    let err = fetcher.fetch_all(&[wrong.clone()]).unwrap_err();
    assert!(matches!(err, FetchError::HashMismatch { .. }), "{err:?}");
    assert!(!fetcher.cache().contains(&wrong.sha256));
}
