//! The content-addressed download cache, and the partial files downloads
//! are written to before they are verified.
//!
//! Layout under the cache directory:
//! - `blobs/sha256/<2 hex>/<62 hex>`: verified files, named by their SHA256.
//!   A file only ever gets such a name by a rename of a complete file whose
//!   hash was checked, so a crash cannot leave an unverified one there.
//! - `partial/<64 hex>.part`: downloads in progress, kept between attempts and
//!   across runs for resume; each is locked (`flock`) by the one download that
//!   writes it, so several kod processes can share the cache.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use kod_root::make_dirs;
use rustix::fs::{FlockOperation, flock};
use sha2::{Digest, Sha256};

use crate::{FetchError, to_hex};

/// The content-addressed download cache shared by every target.
#[derive(Clone, Debug)]
pub struct Cache {
    dir: PathBuf,
}

/// The SHA256 (hex) of the blob at `path` (`.../<2 hex>/<62 hex>`).
fn blob_hex(path: &Path) -> Option<String> {
    let shard = path.parent()?.file_name()?.to_str()?;
    let rest = path.file_name()?.to_str()?;
    Some(format!("{shard}{rest}"))
}

fn cache_err(path: &Path) -> impl FnOnce(io::Error) -> FetchError + '_ {
    move |source| FetchError::Cache {
        path: path.to_path_buf(),
        source,
    }
}

impl Cache {
    /// Opens (creating as needed) the cache at `dir`, e.g. [`crate::cache_dir`].
    pub fn open(dir: &Path) -> Result<Cache, FetchError> {
        for sub in ["blobs/sha256", "partial"] {
            let d = dir.join(sub);
            make_dirs(&d).map_err(cache_err(&d))?;
        }
        Ok(Cache {
            dir: dir.to_path_buf(),
        })
    }

    /// The cache's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the file with this SHA256 is (or would be) kept.
    pub fn path_of(&self, sha256: &[u8; 32]) -> PathBuf {
        let hex = to_hex(sha256);
        self.dir
            .join("blobs/sha256")
            .join(&hex[..2])
            .join(&hex[2..])
    }

    /// Whether the file with this SHA256 is in the cache (verified when it
    /// was put there).
    pub fn contains(&self, sha256: &[u8; 32]) -> bool {
        self.path_of(sha256).is_file()
    }

    /// Whether the cache holds this SHA256 with this size. A cached file of
    /// another size can only be left by a crash before the cache was synced;
    /// it is removed so that it gets downloaded again.
    pub(crate) fn holds(&self, sha256: &[u8; 32], size: u64) -> bool {
        let path = self.path_of(sha256);
        match fs::metadata(&path) {
            Ok(m) if m.len() == size => true,
            Ok(_) => {
                tracing::warn!(path = %path.display(), "cached file has the wrong size; removing it");
                let _ = fs::remove_file(&path);
                false
            }
            Err(_) => false,
        }
    }

    /// Flushes the cache's file system to disk (`syncfs`): what a transaction
    /// calls once at its end, instead of one fsync per file.
    pub fn sync(&self) -> Result<(), FetchError> {
        let dir = File::open(&self.dir).map_err(cache_err(&self.dir))?;
        rustix::fs::syncfs(&dir).map_err(|e| FetchError::Cache {
            path: self.dir.clone(),
            source: e.into(),
        })
    }

    /// Every verified file in the cache: its path and size (with the data
    /// kept for it, see [`crate::kept_data_dir`]).
    pub fn files(&self) -> Result<Vec<(PathBuf, u64)>, FetchError> {
        let root = self.dir.join("blobs/sha256");
        // Sizes of the kept files, by the SHA256 their names start with.
        let mut kept: HashMap<String, u64> = HashMap::new();
        for (hex, e) in self.kept_files() {
            if let Ok(m) = e.metadata() {
                *kept.entry(hex).or_default() += m.len();
            }
        }
        let mut out = Vec::new();
        for shard in fs::read_dir(&root).map_err(cache_err(&root))? {
            let shard = shard.map_err(cache_err(&root))?.path();
            if !shard.is_dir() {
                continue;
            }
            for f in fs::read_dir(&shard).map_err(cache_err(&shard))? {
                let f = f.map_err(cache_err(&shard))?;
                let meta = f.metadata().map_err(cache_err(&f.path()))?;
                if meta.is_file() {
                    let kept = blob_hex(&f.path())
                        .and_then(|hex| kept.get(&hex))
                        .copied()
                        .unwrap_or(0);
                    out.push((f.path(), meta.len() + kept));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes files [`files`](Cache::files) listed, with the data kept
    /// for them; a file already gone is fine (another kod may have removed
    /// it).
    pub fn remove(&self, paths: &[PathBuf]) -> Result<(), FetchError> {
        let blobs = self.dir.join("blobs/sha256");
        if let Some(p) = paths.iter().find(|p| !p.starts_with(&blobs)) {
            return Err(FetchError::Cache {
                path: p.clone(),
                source: std::io::Error::other("not a file of this cache"),
            });
        }
        let hexes: HashSet<String> = paths.iter().filter_map(|p| blob_hex(p)).collect();
        let kept: Vec<PathBuf> = self
            .kept_files()
            .filter(|(hex, _)| hexes.contains(hex))
            .map(|(_, e)| e.path())
            .collect();
        for f in kept.iter().chain(paths) {
            match fs::remove_file(f) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(cache_err(f)(e));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The files kept beside the cache (`<sha256>.*` in
    /// [`crate::kept_data_dir`]), with the SHA256 their names start with:
    /// one scan of the directory.
    fn kept_files(&self) -> impl Iterator<Item = (String, fs::DirEntry)> {
        fs::read_dir(crate::kept_data_dir(&self.dir))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let (hex, _) = name.split_once('.')?;
                Some((hex.to_string(), e))
            })
    }

    fn partial_path(&self, sha256: &[u8; 32]) -> PathBuf {
        self.dir
            .join("partial")
            .join(format!("{}.part", to_hex(sha256)))
    }
}

/// A download in progress: the locked partial file and the hash of what it
/// holds so far.
pub(crate) struct Partial {
    path: PathBuf,
    file: File,
    len: u64,
    hasher: Sha256,
    /// Whether the bytes it holds came from an earlier attempt, run or mirror
    /// (reset when the file is emptied).
    resumed: bool,
}

impl Partial {
    /// Opens and locks the partial file for `sha256`, waiting while another
    /// process writes it. `None` when, once the lock is held, the cache
    /// already holds the file (another process finished it meanwhile).
    pub(crate) fn lock(
        cache: &Cache,
        sha256: &[u8; 32],
        size: u64,
    ) -> Result<Option<Partial>, FetchError> {
        let path = cache.partial_path(sha256);
        let file = loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(&path)
                .map_err(cache_err(&path))?;
            flock(&file, FlockOperation::LockExclusive).map_err(|e| FetchError::Cache {
                path: path.clone(),
                source: e.into(),
            })?;
            // The holder before us may have renamed or removed the file we
            // opened; then lock the one now at the path.
            let ours = file.metadata().map_err(cache_err(&path))?;
            match fs::metadata(&path) {
                Ok(now) if now.ino() == ours.ino() && now.dev() == ours.dev() => break file,
                _ => continue,
            }
        };
        if cache.holds(sha256, size) {
            fs::remove_file(&path).map_err(cache_err(&path))?;
            return Ok(None);
        }
        let mut part = Partial {
            path,
            file,
            len: 0,
            hasher: Sha256::new(),
            resumed: false,
        };
        let on_disk = part.file.metadata().map_err(cache_err(&part.path))?.len();
        if on_disk > size {
            part.reset()?;
        } else if on_disk > 0 {
            part.hash_prefix()?;
        }
        Ok(Some(part))
    }

    /// Hashes what the file already holds and positions at its end.
    fn hash_prefix(&mut self) -> Result<(), FetchError> {
        let mut buf = vec![0u8; 256 * 1024];
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(cache_err(&self.path))?;
        loop {
            let n = self.file.read(&mut buf).map_err(cache_err(&self.path))?;
            if n == 0 {
                break;
            }
            self.hasher.update(&buf[..n]);
            self.len += n as u64;
        }
        self.resumed = self.len > 0;
        Ok(())
    }

    /// Bytes held so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Whether the bytes held came from before the current attempt series.
    pub(crate) fn resumed(&self) -> bool {
        self.resumed
    }

    /// Appends bytes.
    pub(crate) fn write(&mut self, buf: &[u8]) -> Result<(), FetchError> {
        self.file.write_all(buf).map_err(cache_err(&self.path))?;
        self.hasher.update(buf);
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Empties the file, to start over.
    pub(crate) fn reset(&mut self) -> Result<(), FetchError> {
        self.file.set_len(0).map_err(cache_err(&self.path))?;
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(cache_err(&self.path))?;
        self.hasher = Sha256::new();
        self.len = 0;
        self.resumed = false;
        Ok(())
    }

    /// The SHA256 of the bytes held.
    pub(crate) fn digest(&self) -> [u8; 32] {
        self.hasher.clone().finalize().into()
    }

    /// Puts the complete, verified file into the cache under its hash: the
    /// rename is the commit.
    pub(crate) fn commit(self, dest: &Path) -> Result<(), FetchError> {
        if let Some(parent) = dest.parent() {
            make_dirs(parent).map_err(cache_err(parent))?;
        }
        fs::rename(&self.path, dest).map_err(cache_err(dest))
    }

    /// Removes the file (after a verification failure: its bytes are wrong).
    pub(crate) fn discard(self) -> Result<(), FetchError> {
        fs::remove_file(&self.path).map_err(cache_err(&self.path))
    }
}
