//! The loaded package index: every record of the loaded repositories, with
//! lookups by name and by provided (virtual) name, and search.

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use smallvec::{SmallVec, smallvec};

use crate::model::{Origin, OriginId, PackageRecord, Provide, Text};

/// Identifies a record within one [`Index`] (its position in
/// [`Index::records`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordId(pub u32);

/// All records of the loaded repositories.
///
/// Records keep the order they were loaded in (repository by repository, in
/// file order). Lookups return records in that order.
#[derive(Debug, Clone, Default)]
pub struct Index {
    architectures: Vec<Text>,
    origins: Vec<Origin>,
    records: Vec<PackageRecord>,
    by_name: FxHashMap<Text, SmallVec<[RecordId; 2]>>,
    by_provides: FxHashMap<Text, SmallVec<[(RecordId, u32); 1]>>,
}

impl Index {
    /// An index of `records` coming from `origins`, for a system whose
    /// architectures are `architectures` (the native one first).
    ///
    /// # Panics
    ///
    /// If a record names an origin that is not in `origins`, or there are
    /// more than `u32::MAX` records.
    pub fn new(
        architectures: Vec<Text>,
        origins: Vec<Origin>,
        records: Vec<PackageRecord>,
    ) -> Index {
        assert!(u32::try_from(records.len()).is_ok(), "too many records");
        assert!(
            records
                .iter()
                .all(|r| (r.origin.0 as usize) < origins.len()),
            "a record names an unknown origin"
        );
        let mut by_name: FxHashMap<Text, SmallVec<[RecordId; 2]>> = FxHashMap::default();
        let mut by_provides: FxHashMap<Text, SmallVec<[(RecordId, u32); 1]>> = FxHashMap::default();
        by_name.reserve(records.len());
        for (i, r) in records.iter().enumerate() {
            let id = RecordId(i as u32);
            match by_name.get_mut(&r.name) {
                Some(v) => v.push(id),
                None => {
                    by_name.insert(r.name.clone(), smallvec![id]);
                }
            }
            for (j, p) in r.provides.iter().enumerate() {
                match by_provides.get_mut(&p.name) {
                    Some(v) => v.push((id, j as u32)),
                    None => {
                        by_provides.insert(p.name.clone(), smallvec![(id, j as u32)]);
                    }
                }
            }
        }
        Index {
            architectures,
            origins,
            records,
            by_name,
            by_provides,
        }
    }

    /// The architectures the index was loaded for, the native one first.
    pub fn architectures(&self) -> &[Text] {
        &self.architectures
    }

    /// The native architecture (e.g. `amd64`), empty if none was given.
    pub fn native_architecture(&self) -> &str {
        self.architectures.first().map_or("", |a| a.as_str())
    }

    /// Every record, in load order.
    pub fn records(&self) -> &[PackageRecord] {
        &self.records
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the index has no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The record with id `id`.
    ///
    /// # Panics
    ///
    /// If `id` does not come from this index.
    pub fn record(&self, id: RecordId) -> &PackageRecord {
        &self.records[id.0 as usize]
    }

    /// Every record with its id, in load order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (RecordId, &PackageRecord)> {
        self.records
            .iter()
            .enumerate()
            .map(|(i, r)| (RecordId(i as u32), r))
    }

    /// The origins (repository parts) records refer to.
    pub fn origins(&self) -> &[Origin] {
        &self.origins
    }

    /// The origin with id `id`.
    ///
    /// # Panics
    ///
    /// If `id` does not come from this index.
    pub fn origin(&self, id: OriginId) -> &Origin {
        &self.origins[id.0 as usize]
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
        self.by_name.get(name).map_or(&[], |v| v.as_slice())
    }

    /// The records named `name`, in load order.
    pub fn by_name<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a PackageRecord> + 'a {
        self.ids_by_name(name).iter().map(|&id| self.record(id))
    }

    /// The records that provide `name` (a virtual or a real name), each with
    /// the Provides entry that names it, in load order.
    pub fn providers<'a>(
        &'a self,
        name: &str,
    ) -> impl Iterator<Item = (RecordId, &'a PackageRecord, &'a Provide)> + 'a {
        self.by_provides
            .get(name)
            .map_or(&[][..], |v| v.as_slice())
            .iter()
            .map(|&(id, j)| {
                let r = self.record(id);
                (id, r, &r.provides[j as usize])
            })
    }

    /// Every distinct package name (not virtual names), in no set order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(|k| k.as_str())
    }

    /// Every name some record provides, in no set order.
    pub fn provided_names(&self) -> impl Iterator<Item = &str> {
        self.by_provides.keys().map(|k| k.as_str())
    }

    /// Records whose name or short description contains `needle`, ignoring
    /// ASCII case, in load order.
    pub fn search_substring(&self, needle: &str) -> Vec<RecordId> {
        let needle = needle.to_ascii_lowercase();
        self.iter()
            .filter(|(_, r)| {
                contains_ignore_ascii_case(&r.name, &needle)
                    || contains_ignore_ascii_case(&r.description, &needle)
            })
            .map(|(id, _)| id)
            .collect()
    }

    /// Records whose name or short description matches `pattern`, in load
    /// order. Build the pattern case-insensitive (`(?i)`) to search as apt
    /// does.
    pub fn search_regex(&self, pattern: &regex::Regex) -> Vec<RecordId> {
        self.iter()
            .filter(|(_, r)| pattern.is_match(&r.name) || pattern.is_match(&r.description))
            .map(|(id, _)| id)
            .collect()
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

/// The first bytes of a stored index; bump the digit when the layout of
/// the model changes.
const MAGIC: &[u8; 8] = b"KODIDX2\n";

/// Records per independently decoded chunk of a stored index.
const CHUNK: usize = 4096;

/// A stored index could not be written.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot write the parsed index {path}: {source} (check that the cache directory is writable)"
)]
pub struct StoreError {
    /// The file being written.
    pub path: std::path::PathBuf,
    /// What went wrong.
    #[source]
    pub source: std::io::Error,
}

/// The head of a stored index: everything but the records, and where each
/// chunk of records lies in the body.
#[derive(Serialize, Deserialize)]
struct StoredHead {
    architectures: Vec<Text>,
    origins: Vec<Origin>,
    /// (records in the chunk, bytes of the chunk), in order.
    chunks: Vec<(u32, u64)>,
}

impl Index {
    /// Writes the index to `path` in kod's binary form, tagged with `key`
    /// (a digest of everything the index was built from). The file is
    /// written beside `path` and renamed into place.
    ///
    /// The layout: magic, key, the length of the head, the head (postcard),
    /// then the records in chunks (postcard, one record after the other) so
    /// that [`Index::load_stored`] decodes them on all cores.
    pub fn store(&self, path: &std::path::Path, key: &crate::Sha256) -> Result<(), StoreError> {
        let err = |source| StoreError {
            path: path.to_path_buf(),
            source,
        };
        let postcard_err = |e: postcard::Error| err(std::io::Error::other(e));
        let bodies: Vec<Vec<u8>> = self
            .records
            .par_chunks(CHUNK)
            .map(|chunk| {
                let mut out = Vec::with_capacity(chunk.len() * 400);
                for r in chunk {
                    out = postcard::to_extend(r, out)?;
                }
                Ok(out)
            })
            .collect::<Result<_, postcard::Error>>()
            .map_err(postcard_err)?;
        let head = StoredHead {
            architectures: self.architectures.clone(),
            origins: self.origins.clone(),
            chunks: self
                .records
                .chunks(CHUNK)
                .zip(&bodies)
                .map(|(c, b)| (c.len() as u32, b.len() as u64))
                .collect(),
        };
        let head = postcard::to_stdvec(&head).map_err(postcard_err)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let tmp = path.with_extension("tmp");
        let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(err)?);
        use std::io::Write;
        file.write_all(MAGIC).map_err(err)?;
        file.write_all(&key.0).map_err(err)?;
        file.write_all(&(head.len() as u64).to_le_bytes())
            .map_err(err)?;
        file.write_all(&head).map_err(err)?;
        for b in &bodies {
            file.write_all(b).map_err(err)?;
        }
        file.into_inner()
            .map_err(|e| err(e.into_error()))?
            .sync_all()
            .map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }

    /// Reads an index written by [`Index::store`] with the same `key`.
    /// Returns `None` when the file is missing, was built from other
    /// inputs, or cannot be decoded (the caller rebuilds it).
    pub fn load_stored(path: &std::path::Path, key: &crate::Sha256) -> Option<Index> {
        let data = std::fs::read(path).ok()?;
        match decode(&data, key) {
            Ok(index) => index,
            Err(e) => {
                tracing::warn!("ignoring unreadable parsed index {}: {e}", path.display());
                None
            }
        }
    }
}

/// Decodes a stored index; `Ok(None)` when it is not one or has another key.
fn decode(data: &[u8], key: &crate::Sha256) -> Result<Option<Index>, postcard::Error> {
    let Some(rest) = data.strip_prefix(MAGIC.as_slice()) else {
        return Ok(None);
    };
    let Some((stored_key, rest)) = rest.split_at_checked(32) else {
        return Ok(None);
    };
    if stored_key != key.0 {
        return Ok(None);
    }
    let bad = postcard::Error::DeserializeUnexpectedEnd;
    let (len, rest) = rest.split_at_checked(8).ok_or(bad.clone())?;
    let len = u64::from_le_bytes(len.try_into().map_err(|_| bad.clone())?) as usize;
    let (head, mut body) = rest.split_at_checked(len).ok_or(bad.clone())?;
    let head: StoredHead = postcard::from_bytes(head)?;
    let mut slices = Vec::with_capacity(head.chunks.len());
    for &(n, bytes) in &head.chunks {
        let (this, next) = body.split_at_checked(bytes as usize).ok_or(bad.clone())?;
        slices.push((n as usize, this));
        body = next;
    }
    let chunks: Vec<Vec<PackageRecord>> = slices
        .into_par_iter()
        .map(|(n, mut bytes)| {
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let (r, rest) = postcard::take_from_bytes(bytes)?;
                out.push(r);
                bytes = rest;
            }
            Ok(out)
        })
        .collect::<Result<_, postcard::Error>>()?;
    let mut records = Vec::with_capacity(chunks.iter().map(Vec::len).sum());
    for c in chunks {
        records.extend(c);
    }
    Ok(Some(Index::new(head.architectures, head.origins, records)))
}
