//! The loaded package index: every record of the loaded repositories, with
//! lookups by name and by provided (virtual) name, and search.
//!
//! An index keeps its records encoded (postcard, one after the other) with
//! the tables lookups and search need beside them, and decodes a record the
//! first time it is asked for. Loading a stored index is therefore one read
//! of a file and a few table copies, whatever the number of records: a
//! solver only ever decodes the few hundred records it looks at.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::mapped::Mapped;
use crate::model::{Origin, OriginId, PackageRecord, Priority, Provide, Sha256, Text};

/// Identifies a record within one [`Index`] (its position in load order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordId(pub u32);

/// A span of the index's string table.
type Span = (u32, u32);

/// One Provides entry in the provides table: the provided name, and which
/// record and which of its Provides entries it is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct ProvideEntry {
    name: Span,
    record: u32,
    index: u32,
}

/// What choosing a distribution's base set (its Essential packages, those
/// of a priority) needs of a record, kept beside the bodies so that such a
/// scan over every record decodes none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseFacts {
    /// Where the record comes from.
    pub origin: OriginId,
    /// Its Priority.
    pub priority: Priority,
    /// Whether it is Essential.
    pub essential: bool,
    /// Whether its architecture is the native one or `all`.
    pub native_or_all: bool,
}

/// Everything of an index but the record bodies and the string table.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tables {
    architectures: Vec<Text>,
    origins: Vec<Origin>,
    /// Name of each record.
    names: Vec<Span>,
    /// Short description of each record.
    descriptions: Vec<Span>,
    /// Record ids sorted by (name, id).
    by_name: Vec<RecordId>,
    /// Provides entries sorted by (name, record, index).
    provides: Vec<ProvideEntry>,
    /// Base facts of each record.
    base: Vec<BaseFacts>,
    /// Where each record's body starts in the bodies; one more entry marks
    /// the end of the last.
    body_starts: Vec<u32>,
}

/// Bytes an index owns, or a stored index's file mapped in memory.
#[derive(Clone)]
enum Bytes {
    Owned(Vec<u8>),
    Mapped(Mapped),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Owned(v) => v,
            Bytes::Mapped(m) => m,
        }
    }
}

/// All records of the loaded repositories.
///
/// Records keep the order they were loaded in (repository by repository, in
/// file order). Lookups return records in that order.
#[derive(Clone)]
pub struct Index {
    tables: Tables,
    strings: String,
    /// The record bodies start at `bodies_at` (a loaded index keeps the
    /// whole file it mapped, to avoid copying the bodies out of it).
    bodies: Bytes,
    bodies_at: usize,
    decoded: Vec<OnceLock<Box<PackageRecord>>>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("architectures", &self.tables.architectures)
            .field("origins", &self.tables.origins)
            .field("records", &self.len())
            .finish()
    }
}

impl Default for Index {
    fn default() -> Self {
        Index::new(Vec::new(), Vec::new(), Vec::new())
    }
}

fn push_str(strings: &mut String, s: &str) -> Span {
    let start = strings.len() as u32;
    strings.push_str(s);
    (start, s.len() as u32)
}

impl Index {
    /// An index of `records` coming from `origins`, for a system whose
    /// architectures are `architectures` (the native one first).
    ///
    /// # Panics
    ///
    /// If a record names an origin that is not in `origins`, or the records
    /// take more than 4 GiB encoded.
    pub fn new(
        architectures: Vec<Text>,
        origins: Vec<Origin>,
        records: Vec<PackageRecord>,
    ) -> Index {
        assert!(
            records
                .iter()
                .all(|r| (r.origin.0 as usize) < origins.len()),
            "a record names an unknown origin"
        );
        // Encode in parallel, a chunk of records into one buffer each.
        let encoded: Vec<(Vec<u8>, Vec<u32>)> = records
            .par_chunks(1024)
            .map(|chunk| {
                let mut buf = Vec::with_capacity(chunk.len() * 256);
                let mut ends = Vec::with_capacity(chunk.len());
                for r in chunk {
                    buf = postcard::to_extend(r, buf).expect("a record always encodes");
                    ends.push(buf.len() as u32);
                }
                (buf, ends)
            })
            .collect();
        let total: usize = encoded.iter().map(|(b, _)| b.len()).sum();
        assert!(
            u32::try_from(total).is_ok(),
            "records too large for one index"
        );
        let mut bodies = Vec::with_capacity(total);
        let mut body_starts = Vec::with_capacity(records.len() + 1);
        body_starts.push(0);
        for (buf, ends) in &encoded {
            let base = bodies.len() as u32;
            body_starts.extend(ends.iter().map(|e| base + e));
            bodies.extend_from_slice(buf);
        }
        drop(encoded);

        let mut strings = String::new();
        let mut names = Vec::with_capacity(records.len());
        let mut descriptions = Vec::with_capacity(records.len());
        let mut provides = Vec::new();
        let native = architectures.first().map_or("", |a| a.as_str());
        let base = records
            .iter()
            .map(|r| BaseFacts {
                origin: r.origin,
                priority: r.priority,
                essential: r.essential,
                native_or_all: r.architecture == native || r.architecture == "all",
            })
            .collect();
        for (i, r) in records.iter().enumerate() {
            names.push(push_str(&mut strings, &r.name));
            descriptions.push(push_str(&mut strings, &r.description));
            for (j, p) in r.provides.iter().enumerate() {
                provides.push(ProvideEntry {
                    name: push_str(&mut strings, &p.name),
                    record: i as u32,
                    index: j as u32,
                });
            }
        }
        let text = |s: Span| &strings[s.0 as usize..(s.0 + s.1) as usize];
        let mut by_name: Vec<RecordId> = (0..records.len() as u32).map(RecordId).collect();
        by_name.sort_unstable_by(|a, b| {
            text(names[a.0 as usize])
                .cmp(text(names[b.0 as usize]))
                .then(a.cmp(b))
        });
        provides.sort_unstable_by(|a, b| {
            text(a.name)
                .cmp(text(b.name))
                .then(a.record.cmp(&b.record))
                .then(a.index.cmp(&b.index))
        });
        // Records are decoded again when asked for (few are): freeing the
        // parsed ones, hundreds of thousands of allocations, happens on a
        // thread of its own instead of delaying the caller.
        let mut decoded = Vec::with_capacity(records.len());
        decoded.resize_with(records.len(), OnceLock::new);
        std::thread::spawn(move || drop(records));
        Index {
            tables: Tables {
                architectures,
                origins,
                names,
                descriptions,
                by_name,
                provides,
                base,
                body_starts,
            },
            strings,
            bodies: Bytes::Owned(bodies),
            bodies_at: 0,
            decoded,
        }
    }

    fn text(&self, s: Span) -> &str {
        &self.strings[s.0 as usize..(s.0 + s.1) as usize]
    }

    /// The architectures the index was loaded for, the native one first.
    pub fn architectures(&self) -> &[Text] {
        &self.tables.architectures
    }

    /// The native architecture (e.g. `amd64`), empty if none was given.
    pub fn native_architecture(&self) -> &str {
        self.tables.architectures.first().map_or("", |a| a.as_str())
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.decoded.len()
    }

    /// Whether the index has no record.
    pub fn is_empty(&self) -> bool {
        self.decoded.is_empty()
    }

    /// The record with id `id`, decoded on first use.
    ///
    /// # Panics
    ///
    /// If `id` does not come from this index.
    pub fn record(&self, id: RecordId) -> &PackageRecord {
        let i = id.0 as usize;
        self.decoded[i].get_or_init(|| {
            let body = &self.bodies[self.bodies_at + self.tables.body_starts[i] as usize
                ..self.bodies_at + self.tables.body_starts[i + 1] as usize];
            // The bodies were encoded by `Index::new` in this process or
            // read from a stored index whose checksum matched.
            Box::new(postcard::from_bytes(body).expect("a checked index decodes"))
        })
    }

    /// The base facts of record `id`, without decoding the record.
    pub fn base_facts(&self, id: RecordId) -> BaseFacts {
        self.tables.base[id.0 as usize]
    }

    /// The name of record `id`, without decoding the record.
    pub fn name(&self, id: RecordId) -> &str {
        self.text(self.tables.names[id.0 as usize])
    }

    /// The short description of record `id`, without decoding the record.
    pub fn description(&self, id: RecordId) -> &str {
        self.text(self.tables.descriptions[id.0 as usize])
    }

    /// Every record with its id, in load order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (RecordId, &PackageRecord)> {
        (0..self.len() as u32).map(|i| (RecordId(i), self.record(RecordId(i))))
    }

    /// Every record, in load order.
    pub fn records(&self) -> impl ExactSizeIterator<Item = &PackageRecord> {
        self.iter().map(|(_, r)| r)
    }

    /// The origins (repository parts) records refer to.
    pub fn origins(&self) -> &[Origin] {
        &self.tables.origins
    }

    /// The origin with id `id`.
    ///
    /// # Panics
    ///
    /// If `id` does not come from this index.
    pub fn origin(&self, id: OriginId) -> &Origin {
        &self.tables.origins[id.0 as usize]
    }

    /// The URL to download `record`'s archive from.
    pub fn download_url(&self, record: &PackageRecord) -> String {
        format!(
            "{}/{}",
            self.origin(record.origin).base_url,
            record.location.path
        )
    }

    /// Ids of the records named `name` (every version, architecture and
    /// origin), in load order.
    pub fn ids_by_name(&self, name: &str) -> &[RecordId] {
        let ids = &self.tables.by_name;
        let start = ids.partition_point(|&id| self.name(id) < name);
        let end = start + ids[start..].partition_point(|&id| self.name(id) == name);
        &ids[start..end]
    }

    /// The records named `name`, in load order.
    pub fn by_name<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a PackageRecord> + 'a {
        self.ids_by_name(name).iter().map(|&id| self.record(id))
    }

    fn provides_range(&self, name: &str) -> Range<usize> {
        let p = &self.tables.provides;
        let start = p.partition_point(|e| self.text(e.name) < name);
        let end = start + p[start..].partition_point(|e| self.text(e.name) == name);
        start..end
    }

    /// The records that provide `name` (a virtual or a real name), each with
    /// the Provides entry that names it, in load order.
    pub fn providers<'a>(
        &'a self,
        name: &str,
    ) -> impl Iterator<Item = (RecordId, &'a PackageRecord, &'a Provide)> + 'a {
        self.tables.provides[self.provides_range(name)]
            .iter()
            .map(|e| {
                let r = self.record(RecordId(e.record));
                (RecordId(e.record), r, &r.provides[e.index as usize])
            })
    }

    /// Every distinct package name (not virtual names), sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        let mut last: Option<&str> = None;
        self.tables.by_name.iter().filter_map(move |&id| {
            let n = self.name(id);
            (last != Some(n)).then(|| {
                last = Some(n);
                n
            })
        })
    }

    /// Every name some record provides, sorted.
    pub fn provided_names(&self) -> impl Iterator<Item = &str> {
        let mut last: Option<&str> = None;
        self.tables.provides.iter().filter_map(move |e| {
            let n = self.text(e.name);
            (last != Some(n)).then(|| {
                last = Some(n);
                n
            })
        })
    }

    /// Records whose name or short description contains `needle`, ignoring
    /// ASCII case, in load order.
    pub fn search_substring(&self, needle: &str) -> Vec<RecordId> {
        let needle = needle.to_ascii_lowercase();
        self.ids()
            .filter(|&id| {
                contains_ignore_ascii_case(self.name(id), &needle)
                    || contains_ignore_ascii_case(self.description(id), &needle)
            })
            .collect()
    }

    /// Records whose name or short description matches `pattern`, in load
    /// order. Build the pattern case-insensitive (`(?i)`) to search as apt
    /// does.
    pub fn search_regex(&self, pattern: &regex::Regex) -> Vec<RecordId> {
        self.ids()
            .filter(|&id| pattern.is_match(self.name(id)) || pattern.is_match(self.description(id)))
            .collect()
    }

    fn ids(&self) -> impl Iterator<Item = RecordId> {
        (0..self.len() as u32).map(RecordId)
    }
}

/// `needle` must already be lower case.
fn contains_ignore_ascii_case(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    h.windows(n.len())
        .any(|w| w.iter().zip(n).all(|(a, b)| a.to_ascii_lowercase() == *b))
}

/// The first bytes of a stored index; bump the digit when the layout or
/// the model changes.
const MAGIC: &[u8; 8] = b"KODIDX4\n";

/// A stored index could not be written.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot write the parsed index {path}: {source} (check that the cache directory is writable)"
)]
pub struct StoreError {
    /// The file being written.
    pub path: PathBuf,
    /// What went wrong.
    #[source]
    pub source: std::io::Error,
}

impl Index {
    /// Writes the index to `path` in kod's binary form, tagged with `key`
    /// (a digest of everything the index was built from). The file is
    /// written beside `path` and renamed into place.
    ///
    /// Layout: magic, key, CRC-32 of the rest, length of the tables, the
    /// tables (postcard), the string table, the record bodies.
    pub fn store(&self, path: &Path, key: &Sha256) -> Result<(), StoreError> {
        let err = |source| StoreError {
            path: path.to_path_buf(),
            source,
        };
        let tables =
            postcard::to_stdvec(&self.tables).map_err(|e| err(std::io::Error::other(e)))?;
        let mut lens = [0u8; 16];
        lens[..8].copy_from_slice(&(tables.len() as u64).to_le_bytes());
        lens[8..].copy_from_slice(&(self.strings.len() as u64).to_le_bytes());
        let parts: [&[u8]; 4] = [
            &lens,
            &tables,
            self.strings.as_bytes(),
            &self.bodies[self.bodies_at..],
        ];
        let mut crc = crc32fast::Hasher::new();
        for p in parts {
            crc.update(p);
        }
        let crc = crc.finalize();
        if let Some(dir) = path.parent() {
            kod_root::make_dirs(dir).map_err(err)?;
            // What a killed kod left while storing an index.
            let _ = kod_root::remove_stale_temporaries(dir);
        }
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::io::BufWriter::new(kod_root::AtomicFile::create(path)?);
            f.write_all(MAGIC)?;
            f.write_all(&key.0)?;
            f.write_all(&crc.to_le_bytes())?;
            for p in parts {
                f.write_all(p)?;
            }
            f.into_inner().map_err(|e| e.into_error())?.commit()
        };
        write().map_err(err)
    }

    /// Reads an index written by [`Index::store`] with the same `key`.
    /// Returns `None` when the file is missing, was built from other
    /// inputs, or is damaged (the caller rebuilds it).
    pub fn load_stored(path: &Path, key: &Sha256) -> Option<Index> {
        let data = Mapped::open(path).ok()?;
        let index = decode(data, key);
        if index.is_none() {
            tracing::debug!("no usable parsed index at {}", path.display());
        }
        index
    }
}

fn decode(data: Mapped, key: &Sha256) -> Option<Index> {
    let rest = data.strip_prefix(MAGIC.as_slice())?;
    let (stored_key, rest) = rest.split_at_checked(32)?;
    if stored_key != key.0 {
        return None;
    }
    let (crc, rest) = rest.split_at_checked(4)?;
    if crc32fast::hash(rest).to_le_bytes() != crc {
        tracing::warn!("the stored parsed index is damaged; rebuilding it");
        return None;
    }
    let (lens, rest) = rest.split_at_checked(16)?;
    let tables_len = u64::from_le_bytes(lens[..8].try_into().ok()?) as usize;
    let strings_len = u64::from_le_bytes(lens[8..].try_into().ok()?) as usize;
    let (tables, rest) = rest.split_at_checked(tables_len)?;
    let tables: Tables = postcard::from_bytes(tables).ok()?;
    let (strings, bodies) = rest.split_at_checked(strings_len)?;
    let strings = std::str::from_utf8(strings).ok()?.to_string();
    let n = tables.names.len();
    let sound = tables.descriptions.len() == n
        && tables.by_name.len() == n
        && tables.base.len() == n
        && tables
            .base
            .iter()
            .all(|b| (b.origin.0 as usize) < tables.origins.len())
        && tables.body_starts.len() == n + 1
        && tables
            .body_starts
            .last()
            .is_some_and(|&e| e as usize == bodies.len())
        && tables.body_starts.windows(2).all(|w| w[0] <= w[1])
        && tables.by_name.iter().all(|id| (id.0 as usize) < n)
        && tables.provides.iter().all(|p| (p.record as usize) < n)
        && tables
            .names
            .iter()
            .chain(&tables.descriptions)
            .chain(tables.provides.iter().map(|p| &p.name))
            .all(|&(s, l)| {
                strings.is_char_boundary(s as usize)
                    && strings.is_char_boundary(s as usize + l as usize)
            });
    if !sound {
        return None;
    }
    let bodies_at = data.len() - bodies.len();
    let mut decoded = Vec::with_capacity(n);
    decoded.resize_with(n, OnceLock::new);
    Some(Index {
        tables,
        strings,
        bodies: Bytes::Mapped(data),
        bodies_at,
        decoded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debian::packages::parse_packages;
    use crate::debian::relations::Target;

    const TEXT: &str = "Package: b\nVersion: 1\nArchitecture: all\nProvides: v (= 2), w\nDescription: Bee thing\nFilename: b1\nSize: 1\nSHA256: 0000000000000000000000000000000000000000000000000000000000000001\n\n\
Package: a\nVersion: 1\nArchitecture: amd64\nProvides: v\nDescription: ay\nFilename: a\nSize: 1\nSHA256: 0000000000000000000000000000000000000000000000000000000000000002\n\n\
Package: b\nVersion: 2\nArchitecture: all\nDescription: Bee thing, newer\nFilename: b2\nSize: 1\nSHA256: 0000000000000000000000000000000000000000000000000000000000000003\n\n\
Package: e\nVersion: 1\nArchitecture: amd64\nEssential: yes\nPriority: required\nDescription: ee\nFilename: e\nSize: 1\nSHA256: 0000000000000000000000000000000000000000000000000000000000000004\n\n\
Package: f\nVersion: 1\nArchitecture: i386\nPriority: important\nDescription: ef\nFilename: f\nSize: 1\nSHA256: 0000000000000000000000000000000000000000000000000000000000000005\n";

    fn index() -> Index {
        let target = Target {
            architecture: "amd64",
            profiles: &[],
        };
        let records = parse_packages(TEXT, OriginId(0), target).unwrap();
        let origin = Origin {
            base_url: "http://example.org/debian".into(),
            suite: "s".into(),
            codename: "s".into(),
            component: "main".into(),
            architecture: "amd64".into(),
        };
        Index::new(vec!["amd64".into()], vec![origin], records)
    }

    #[test]
    fn index_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Index>();
    }

    #[test]
    fn lookups_keep_load_order() {
        let idx = index();
        assert_eq!(idx.ids_by_name("b"), [RecordId(0), RecordId(2)]);
        assert_eq!(idx.ids_by_name("a"), [RecordId(1)]);
        assert!(idx.ids_by_name("c").is_empty());
        let v: Vec<_> = idx
            .providers("v")
            .map(|(id, _, p)| (id, p.version.clone()))
            .collect();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].0, RecordId(0));
        assert_eq!(v[0].1.as_ref().unwrap().as_str(), "2");
        assert_eq!((v[1].0, v[1].1.is_none()), (RecordId(1), true));
        assert_eq!(idx.names().collect::<Vec<_>>(), ["a", "b", "e", "f"]);
        assert_eq!(idx.provided_names().collect::<Vec<_>>(), ["v", "w"]);
        assert_eq!(idx.search_substring("BEE"), [RecordId(0), RecordId(2)]);
        assert_eq!(idx.description(RecordId(2)), "Bee thing, newer");
        assert_eq!(idx.record(RecordId(2)).location.path, "b2");
        assert_eq!(
            idx.download_url(idx.record(RecordId(1))),
            "http://example.org/debian/a"
        );
    }

    #[test]
    fn stored_index_round_trips_and_refuses_other_keys_and_damage() {
        let idx = index();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/i.kodidx");
        let key = Sha256::digest(b"inputs");
        idx.store(&path, &key).unwrap();
        let back = Index::load_stored(&path, &key).unwrap();
        assert!(back.records().eq(idx.records()));
        assert_eq!(back.ids_by_name("b"), idx.ids_by_name("b"));
        assert_eq!(back.origins(), idx.origins());
        assert_eq!(back.native_architecture(), "amd64");
        let facts: Vec<BaseFacts> = (0..5).map(|i| back.base_facts(RecordId(i))).collect();
        assert_eq!(
            facts,
            (0..5)
                .map(|i| idx.base_facts(RecordId(i)))
                .collect::<Vec<_>>()
        );
        let fact = |priority, essential, native_or_all| BaseFacts {
            origin: OriginId(0),
            priority,
            essential,
            native_or_all,
        };
        assert_eq!(
            facts,
            [
                fact(Priority::Optional, false, true),
                fact(Priority::Optional, false, true),
                fact(Priority::Optional, false, true),
                fact(Priority::Required, true, true),
                fact(Priority::Important, false, false),
            ]
        );
        assert!(Index::load_stored(&path, &Sha256::digest(b"other")).is_none());
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(
            Index::load_stored(&path, &key).is_none(),
            "damage went unnoticed"
        );
        assert!(Index::load_stored(&dir.path().join("missing"), &key).is_none());
    }
}
