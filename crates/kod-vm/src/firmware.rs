//! OVMF, the UEFI firmware qemu boots: its code read-only, and a copy of
//! its variable store per image so NVRAM (boot order, systemd-boot's
//! saved entry) persists between boots of that image.

use std::fs;
use std::path::{Path, PathBuf};

use crate::VmError;
use crate::error::io;

/// Where Debian's `ovmf` package puts the firmware.
pub const OVMF_DIR: &str = "/usr/share/OVMF";

/// The firmware files (the 4 MiB builds without Secure Boot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firmware {
    /// `OVMF_CODE_4M.fd`, mapped read-only.
    pub code: PathBuf,
    /// `OVMF_VARS_4M.fd`, the empty variable store copied per image.
    pub vars_template: PathBuf,
}

impl Firmware {
    /// The firmware in [`OVMF_DIR`].
    pub fn find() -> Result<Firmware, VmError> {
        Firmware::find_in(Path::new(OVMF_DIR))
    }

    /// The firmware in `dir`; an error naming the `ovmf` package when a
    /// file is missing.
    pub fn find_in(dir: &Path) -> Result<Firmware, VmError> {
        let fw = Firmware {
            code: dir.join("OVMF_CODE_4M.fd"),
            vars_template: dir.join("OVMF_VARS_4M.fd"),
        };
        for f in [&fw.code, &fw.vars_template] {
            if !f.is_file() {
                return Err(VmError::NoFirmware { missing: f.clone() });
            }
        }
        Ok(fw)
    }

    /// `IMAGE.efivars`, the image's variable store: made from the template
    /// on its first boot, reused after.
    pub fn vars_for(&self, image: &Path) -> Result<PathBuf, VmError> {
        let mut name = image.as_os_str().to_owned();
        name.push(".efivars");
        let vars = PathBuf::from(name);
        if !vars.exists() {
            fs::copy(&self.vars_template, &vars).map_err(io("make the variable store", &vars))?;
        }
        Ok(vars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_firmware_names_the_package() {
        let dir = tempfile::tempdir().unwrap();
        let err = Firmware::find_in(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("OVMF_CODE_4M.fd") && text.contains("ovmf package"),
            "{text}"
        );
    }

    #[test]
    fn the_variable_store_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("OVMF_CODE_4M.fd"), "code").unwrap();
        fs::write(dir.path().join("OVMF_VARS_4M.fd"), "empty").unwrap();
        let fw = Firmware::find_in(dir.path()).unwrap();
        let image = dir.path().join("vm.img");
        let vars = fw.vars_for(&image).unwrap();
        assert_eq!(vars, dir.path().join("vm.img.efivars"));
        assert_eq!(fs::read_to_string(&vars).unwrap(), "empty");
        fs::write(&vars, "boot order saved").unwrap();
        assert_eq!(fw.vars_for(&image).unwrap(), vars);
        assert_eq!(fs::read_to_string(&vars).unwrap(), "boot order saved");
    }
}
