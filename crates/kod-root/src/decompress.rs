//! Decompression, chosen in one place: by the data's first bytes, or by a
//! name's extension where a format names it (a `.deb`'s `data.tar.xz`).

use std::io::{self, BufRead, Read};

/// A compression kod reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed.
    Plain,
    /// gzip (concatenated members too).
    Gzip,
    /// xz (concatenated streams too).
    Xz,
    /// zstd.
    Zstd,
}

/// Data compressed in a way kod does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the data is {format}-compressed, which kod does not read (it reads gzip, xz and zstd); recompress it with one of those"
)]
pub struct UnknownCompression {
    /// The compression's name (`bzip2`), or the extension that names it.
    pub format: String,
}

impl Compression {
    /// The compression `head` (the first bytes of the data) starts with.
    /// Data without a known magic is plain; data with the magic of a
    /// compression kod does not read is an error naming it.
    pub fn sniff(head: &[u8]) -> Result<Compression, UnknownCompression> {
        let other = |format: &str| {
            Err(UnknownCompression {
                format: format.into(),
            })
        };
        if head.starts_with(&[0x1f, 0x8b]) {
            Ok(Compression::Gzip)
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Ok(Compression::Xz)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Ok(Compression::Zstd)
        } else if head.len() >= 10
            && head.starts_with(b"BZh")
            && (b'1'..=b'9').contains(&head[3])
            && head[4..10] == [0x31, 0x41, 0x59, 0x26, 0x53, 0x59]
        {
            other("bzip2")
        } else if head.starts_with(&[0x04, 0x22, 0x4d, 0x18]) {
            other("lz4")
        } else {
            Ok(Compression::Plain)
        }
    }

    /// The compression an extension names: empty (none), `gz`, `xz`,
    /// `zst`; another one is an error naming it.
    pub fn from_extension(ext: &str) -> Result<Compression, UnknownCompression> {
        match ext {
            "" => Ok(Compression::Plain),
            "gz" => Ok(Compression::Gzip),
            "xz" => Ok(Compression::Xz),
            "zst" => Ok(Compression::Zstd),
            other => Err(UnknownCompression {
                format: other.into(),
            }),
        }
    }
}

/// A reader that undoes a [`Compression`].
pub enum Decoder<R: BufRead> {
    /// Passed through.
    Plain(R),
    /// gzip.
    Gzip(flate2::bufread::MultiGzDecoder<R>),
    /// xz.
    Xz(liblzma::bufread::XzDecoder<R>),
    /// zstd.
    Zstd(zstd::stream::read::Decoder<'static, R>),
}

impl<R: BufRead> std::fmt::Debug for Decoder<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Decoder::Plain(_) => "Decoder::Plain",
            Decoder::Gzip(_) => "Decoder::Gzip",
            Decoder::Xz(_) => "Decoder::Xz",
            Decoder::Zstd(_) => "Decoder::Zstd",
        })
    }
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            Decoder::Xz(r) => r.read(buf),
            Decoder::Zstd(r) => r.read(buf),
        }
    }
}

/// Reads `r` through the decoder of `compression`.
pub fn decoder<R: BufRead>(compression: Compression, r: R) -> io::Result<Decoder<R>> {
    Ok(match compression {
        Compression::Plain => Decoder::Plain(r),
        Compression::Gzip => Decoder::Gzip(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Xz => Decoder::Xz(liblzma::bufread::XzDecoder::new_multi_decoder(r)),
        Compression::Zstd => Decoder::Zstd(zstd::stream::read::Decoder::with_buffer(r)?),
    })
}

/// Reads `r` decompressed, the compression chosen by its first bytes
/// ([`Compression::sniff`]); a compression kod does not read is an
/// [`io::ErrorKind::Unsupported`] error carrying [`UnknownCompression`].
pub fn decompress<R: BufRead>(mut r: R) -> io::Result<Decoder<R>> {
    let c = Compression::sniff(r.fill_buf()?)
        .map_err(|e| io::Error::new(io::ErrorKind::Unsupported, e))?;
    decoder(c, r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(data: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        decompress(data)?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn every_compression_is_recognised_by_content() {
        let plain = b"Package: hello\nVersion: 1\n\n".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&plain).unwrap();
        let zst = zstd::stream::encode_all(&plain[..], 1).unwrap();
        let (gz, xz) = (gz.finish().unwrap(), xz.finish().unwrap());
        assert_eq!(Compression::sniff(&gz), Ok(Compression::Gzip));
        assert_eq!(Compression::sniff(&xz), Ok(Compression::Xz));
        assert_eq!(Compression::sniff(&zst), Ok(Compression::Zstd));
        assert_eq!(Compression::sniff(&plain), Ok(Compression::Plain));
        assert_eq!(Compression::sniff(b""), Ok(Compression::Plain));
        for data in [&plain, &gz, &xz, &zst] {
            assert_eq!(read_all(data).unwrap(), plain);
        }
        // Concatenated gzip members and xz streams are one stream each.
        let twice = [&gz[..], &gz[..]].concat();
        assert_eq!(read_all(&twice).unwrap(), [&plain[..], &plain[..]].concat());
        let twice = [&xz[..], &xz[..]].concat();
        assert_eq!(read_all(&twice).unwrap(), [&plain[..], &plain[..]].concat());
    }

    #[test]
    fn unknown_compressions_are_named() {
        let bz2 = b"BZh91AY&SY\x00\x00";
        let e = read_all(bz2).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        assert!(e.to_string().contains("bzip2"), "{e}");
        let e = Compression::from_extension("bz2").unwrap_err();
        assert_eq!(e.format, "bz2");
        assert!(e.to_string().contains("bz2-compressed"), "{e}");
        assert_eq!(Compression::from_extension("zst"), Ok(Compression::Zstd));
        assert_eq!(Compression::from_extension(""), Ok(Compression::Plain));
        // Text that merely starts like a magic is plain.
        assert_eq!(Compression::sniff(b"BZh is text"), Ok(Compression::Plain));
    }

    #[test]
    fn damaged_data_is_an_error_not_plain() {
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&[7u8; 4096]).unwrap();
        let mut xz = xz.finish().unwrap();
        let n = xz.len();
        xz[n / 2] ^= 0xff;
        assert!(read_all(&xz).is_err());
    }
}
