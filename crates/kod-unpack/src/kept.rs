//! Decompressed data parts kept for packages unpacked more than once
//! (distri's idea, as files rather than trees): xz decompression is most of
//! the work of unpacking, and the same packages are unpacked again and
//! again (every bootstrap, every environment). A package's data.tar is kept
//! the second time it is unpacked and read from then on; a package unpacked
//! once costs an empty marker file, nothing more.
//!
//! Files in the directory, named by the SHA256 of the `.deb`:
//! - `<sha256>.seen`: the package was unpacked once;
//! - `<sha256>.tar`: its decompressed data.tar, renamed into place last;
//! - `<sha256>.tar.b3`: the BLAKE3 and length of that tar, checked on every
//!   read (a tar cut short or damaged on disk is an error, and removed).
//!
//! Each is written under kod's temporary name and renamed into place
//! ([`kod_root::AtomicFile`]); temporaries a killed kod left are removed
//! when a batch starts ([`clean`]). Installed roots never share these
//! files: unpacking copies entries out of the tar, so nothing written into
//! a root can reach the cache.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use kod_root::{AtomicFile, create_file, make_dirs, write_atomic};
use sha2::{Digest, Sha256};

/// What to do with one package's data part.
pub(crate) enum Plan {
    /// Decompress it from the `.deb`.
    Decompress,
    /// Decompress it from the `.deb` and keep it.
    Keep(Kept),
    /// Read the kept tar.
    Read(Kept),
}

/// The kept files of one package.
pub(crate) struct Kept {
    tar: PathBuf,
    sum: PathBuf,
}

/// What to do with `deb`'s data part, with kept data in `dir`. Errors of
/// the cache directory only mean decompressing as usual.
pub(crate) fn plan(dir: &Path, deb: &Path) -> Plan {
    let Ok(key) = sha256_of(deb) else {
        return Plan::Decompress;
    };
    let kept = Kept {
        tar: dir.join(format!("{key}.tar")),
        sum: dir.join(format!("{key}.tar.b3")),
    };
    if kept.tar.is_file() {
        return Plan::Read(kept);
    }
    let seen = dir.join(format!("{key}.seen"));
    if seen.is_file() {
        return Plan::Keep(kept);
    }
    // Writable by their owner only, whatever the umask: root reads these
    // back into the roots it installs.
    let made = make_dirs(dir).and_then(|()| create_file(&seen));
    if made.is_err() {
        tracing::debug!(dir = %dir.display(), "cannot mark a package as seen");
    }
    Plan::Decompress
}

/// Removes what killed kod processes left in `dir` while keeping data.
pub(crate) fn clean(dir: &Path) {
    if let Err(e) = kod_root::remove_stale_temporaries(dir) {
        tracing::debug!(dir = %dir.display(), "cannot clean the kept data: {e}");
    }
}

fn sha256_of(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    io::copy(&mut f, &mut h)?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// A reader that hashes and counts what passes through it.
pub(crate) struct Hashing<R> {
    inner: R,
    hasher: blake3::Hasher,
    len: u64,
}

impl<R: Read> Hashing<R> {
    pub(crate) fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: blake3::Hasher::new(),
            len: 0,
        }
    }

    /// Reads what the tar reader left (the end-of-archive padding), and
    /// returns the sum line of everything.
    fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(format!(
            "{} {}\n",
            self.hasher.finalize().to_hex(),
            self.len
        ))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// A reader that copies what passes through it into a file; a failure to
/// write only stops the copy (the unpacking goes on).
pub(crate) struct Tee<R> {
    inner: Hashing<R>,
    /// The copy, under a temporary name until kept.
    out: Option<BufWriter<AtomicFile>>,
}

impl<R: Read> Tee<R> {
    pub(crate) fn new(inner: R, kept: &Kept) -> Self {
        Tee {
            inner: Hashing::new(inner),
            out: AtomicFile::create(&kept.tar).map(BufWriter::new).ok(),
        }
    }

    /// After a successful unpack: the rest of the stream copied, the sum
    /// written, the tar renamed into place. Failing here is only logged
    /// (the temporaries are removed).
    pub(crate) fn keep(self, kept: &Kept) {
        if let Err(e) = self.finish_keeping(kept) {
            tracing::debug!(tar = %kept.tar.display(), "cannot keep the data part: {e}");
        }
    }

    fn finish_keeping(mut self, kept: &Kept) -> io::Result<()> {
        // The rest of the stream (the tar's end padding) goes through
        // `read`, into the copy.
        io::copy(&mut self, &mut io::sink())?;
        let out = self
            .out
            .take()
            .ok_or_else(|| io::Error::other("writing the copy failed"))?;
        let tar = out.into_inner().map_err(|e| e.into_error())?;
        let line = self.inner.finish()?;
        // The sum first, each renamed into place: a reader that finds the
        // tar finds its whole sum.
        write_atomic(&kept.sum, line.as_bytes())?;
        tar.commit()
    }

    /// After a failed unpack: the partial copy goes.
    pub(crate) fn discard(self) {
        drop(self.out);
    }
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(out) = &mut self.out
            && out.write_all(&buf[..n]).is_err()
        {
            self.out = None;
        }
        Ok(n)
    }
}

impl Kept {
    /// Opens the kept tar for reading through a [`Hashing`] reader.
    pub(crate) fn open(&self) -> io::Result<Hashing<io::BufReader<File>>> {
        Ok(Hashing::new(io::BufReader::with_capacity(
            64 * 1024,
            File::open(&self.tar)?,
        )))
    }

    /// After the tar was read: whether it was the one kept. A damaged one
    /// is removed, so that the next run decompresses (and keeps) again.
    pub(crate) fn check(&self, read: Hashing<io::BufReader<File>>) -> Result<(), String> {
        let line = read.finish().map_err(|e| e.to_string())?;
        let expected = fs::read_to_string(&self.sum).unwrap_or_default();
        if line == expected {
            return Ok(());
        }
        let _ = fs::remove_file(&self.tar);
        let _ = fs::remove_file(&self.sum);
        Err(format!(
            "the kept decompressed data {} did not match its sum {} (damaged on disk?); \
             removed it: run again to unpack from the package",
            self.tar.display(),
            self.sum.display()
        ))
    }
}
