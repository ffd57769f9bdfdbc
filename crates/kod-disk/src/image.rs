//! Disk image files: `--size` values, a sparse image of that size, and the
//! image attached as a loop device (with autoclear) to provision like a disk.

use std::fs::OpenOptions;
use std::path::Path;

use crate::ProvisionError;
use crate::loopdev::Loop;

/// Why a size (`--size 8G`) was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not a size: write a whole number with K, M, G or T (binary: 8G = 8 GiB), e.g. `--size 8G`"
)]
pub struct SizeError {
    /// What was given.
    pub text: String,
}

/// Bytes in `8G`, `512M`, `2T`, `1048576` (binary units; a trailing `B` or
/// `iB` is allowed: `8GiB`, `8GB`).
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let err = || SizeError { text: text.into() };
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num.parse().map_err(|_| err())?;
    let unit = unit.trim().to_ascii_uppercase();
    let unit = unit
        .strip_suffix("IB")
        .or(unit.strip_suffix('B'))
        .unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(err()),
    };
    let bytes = n.checked_mul(1 << shift).ok_or_else(err)?;
    if bytes == 0 {
        return Err(err());
    }
    Ok(bytes)
}

/// Creates the image file `path` (which must not exist: an existing image
/// is never overwritten by accident) of `bytes` bytes, sparse: it takes
/// disk space only as it is written.
pub fn create_image(path: &Path, bytes: u64) -> Result<(), ProvisionError> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|source| ProvisionError::Io {
            what: format!("creating the image {}", path.display()),
            source,
        })?;
    f.set_len(bytes).map_err(|source| ProvisionError::Io {
        what: format!("sizing the image {} to {bytes} bytes", path.display()),
        source,
    })
}

/// Attaches the image file `path` as a loop device (autoclear: detached
/// once the returned handle and every user of the device are gone).
pub fn attach_image(path: &Path) -> Result<Loop, ProvisionError> {
    Loop::attach(path, 0, 0).map_err(|source| ProvisionError::Io {
        what: format!("attaching {} as a loop device", path.display()),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("8G"), Ok(8 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("8GiB"), Ok(8 << 30));
        assert_eq!(parse_size("8GB"), Ok(8 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        for bad in ["", "G", "8X", "-1G", "0", "1.5G", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
        assert!(
            parse_size("8X")
                .unwrap_err()
                .to_string()
                .contains("--size 8G")
        );
    }
}
