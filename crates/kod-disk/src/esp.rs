//! Filling a FAT filesystem (the ESP) without mounting it, with mtools on
//! the partition's device: the kernels of the machines kod is built and
//! tested on have no vfat driver, and the same path works on every machine.

use std::fs;
use std::path::{Component, Path};
use std::process::Command;

use crate::ProvisionError;
use crate::fs::run;

/// A FAT filesystem on a device (the ESP of a [`Provisioned`] disk, valid
/// while that lives), written through mtools.
///
/// [`Provisioned`]: crate::Provisioned
#[derive(Debug, Clone, Copy)]
pub struct Esp<'a> {
    device: &'a Path,
}

/// An mtools command on `dev`: mtools refuses a filesystem whose geometry
/// is not a whole number of tracks unless told not to check.
fn mtool(tool: &str, dev: &Path) -> Command {
    let mut c = Command::new(tool);
    c.env("MTOOLS_SKIP_CHECK", "1").arg("-i").arg(dev);
    c
}

/// `::/a/b` for the FAT path `a/b` (or `/a/b`); `..` is refused.
fn fat_path(path: &str) -> Result<String, ProvisionError> {
    let mut out = String::from("::");
    for c in Path::new(path).components() {
        match c {
            Component::Normal(s) => {
                out.push('/');
                out.push_str(&s.to_string_lossy());
            }
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(ProvisionError::BadEspPath { path: path.into() });
            }
        }
    }
    if out == "::" {
        out.push('/');
    }
    Ok(out)
}

impl<'a> Esp<'a> {
    /// The FAT filesystem on `device`.
    pub fn new(device: &'a Path) -> Esp<'a> {
        Esp { device }
    }

    /// The device it is on.
    pub fn device(&self) -> &Path {
        self.device
    }

    /// Makes the directory `path` (absolute within the FAT, `/EFI/BOOT`) and
    /// its parents, if missing.
    pub fn create_dir_all(&self, path: &str) -> Result<(), ProvisionError> {
        let full = fat_path(path)?;
        let mut cur = String::from("::");
        for part in full
            .trim_start_matches("::/")
            .split('/')
            .filter(|s| !s.is_empty())
        {
            cur.push('/');
            cur.push_str(part);
            if !self.exists(&cur) {
                run(mtool("mmd", self.device).arg(&cur))?;
            }
        }
        self.sync()
    }

    /// Writes out what mtools left in the device's page cache, so the
    /// disk (and an image file under a loop device) has it at once.
    fn sync(&self) -> Result<(), ProvisionError> {
        fs::File::open(self.device)
            .and_then(|f| f.sync_all())
            .map_err(|e| ProvisionError::Io {
                what: format!("syncing {}", self.device.display()),
                source: e,
            })
    }

    fn exists(&self, fat: &str) -> bool {
        mtool("mdir", self.device)
            .args(["-b", fat])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Writes `bytes` to the file `path` (absolute within the FAT), making
    /// its directories and replacing a file already there.
    pub fn write_file(&self, path: &str, bytes: &[u8]) -> Result<(), ProvisionError> {
        let tmp = tempfile::NamedTempFile::new().map_err(|e| ProvisionError::Io {
            what: "a temporary file for the ESP".into(),
            source: e,
        })?;
        fs::write(tmp.path(), bytes).map_err(|e| ProvisionError::Io {
            what: format!("writing {}", tmp.path().display()),
            source: e,
        })?;
        self.copy_file(tmp.path(), path)
    }

    /// Copies the local file `from` to `path` (absolute within the FAT),
    /// making its directories and replacing a file already there.
    pub fn copy_file(&self, from: &Path, path: &str) -> Result<(), ProvisionError> {
        let fat = fat_path(path)?;
        if let Some(parent) = Path::new(path).parent() {
            self.create_dir_all(&parent.to_string_lossy())?;
        }
        // -D o: overwrite a name that exists instead of asking.
        run(mtool("mcopy", self.device)
            .args(["-D", "o"])
            .arg(from)
            .arg(&fat))?;
        self.sync()
    }

    /// Copies the local directory tree `from` into `path` (absolute within
    /// the FAT): `from/x/y` becomes `path/x/y`. Symbolic links are followed.
    pub fn copy_dir(&self, from: &Path, path: &str) -> Result<(), ProvisionError> {
        self.create_dir_all(path)?;
        let entries = fs::read_dir(from).map_err(|e| ProvisionError::Io {
            what: format!("reading {}", from.display()),
            source: e,
        })?;
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let dest = format!("{}/{name}", path.trim_end_matches('/'));
            if e.path().is_dir() {
                self.copy_dir(&e.path(), &dest)?;
            } else {
                self.copy_file(&e.path(), &dest)?;
            }
        }
        Ok(())
    }

    /// The contents of the file `path` (absolute within the FAT).
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>, ProvisionError> {
        let fat = fat_path(path)?;
        let out = mtool("mcopy", self.device)
            .args(["-n"])
            .arg(&fat)
            .arg("-")
            .output()
            .map_err(|e| ProvisionError::Io {
                what: "running mcopy".into(),
                source: e,
            })?;
        if !out.status.success() {
            return Err(ProvisionError::Command {
                command: format!("mcopy -i {} {fat} -", self.device.display()),
                status: out.status.to_string(),
                output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(out.stdout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fat_paths_are_rooted_and_never_climb() {
        assert_eq!(
            fat_path("/EFI/BOOT/BOOTX64.EFI").unwrap(),
            "::/EFI/BOOT/BOOTX64.EFI"
        );
        assert_eq!(
            fat_path("loader/loader.conf").unwrap(),
            "::/loader/loader.conf"
        );
        assert_eq!(fat_path("/").unwrap(), "::/");
        assert!(fat_path("/EFI/../x").is_err());
    }
}
