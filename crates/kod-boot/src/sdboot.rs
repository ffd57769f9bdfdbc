//! systemd-boot's EFI binary on the ESP, from the generation's own
//! `systemd-boot-efi` package, at the path systemd's `bootctl install`
//! uses and at the firmware's fallback path, so no EFI variable is needed
//! (kod never writes the build machine's, or any machine's, variables).

use std::fs;
use std::path::Path;

use crate::BootError;
use crate::error::io;
use crate::esp::{Esp, Source};

/// Where `systemd-boot-efi` puts the binary, relative to a root.
pub const SYSTEMD_BOOT: &str = "usr/lib/systemd/boot/efi/systemd-bootx64.efi";

const TARGETS: [(&str, &str, &str); 2] = [
    (
        "/EFI/systemd",
        "systemd-bootx64.efi",
        "/EFI/systemd/systemd-bootx64.efi",
    ),
    ("/EFI/BOOT", "BOOTX64.EFI", "/EFI/BOOT/BOOTX64.EFI"),
];

/// Copies `root`'s systemd-boot binary to `EFI/systemd/systemd-bootx64.efi`
/// and `EFI/BOOT/BOOTX64.EFI` where their bytes differ, and returns the
/// ESP paths it wrote (none when both were current).
///
/// Each goes through `NAME.part`: the old binary is removed only when the
/// new one is whole, just before the rename; `EFI/systemd` is done first,
/// so the fallback path is replaced only once the other copy is current.
pub fn place_systemd_boot(esp: &dyn Esp, root: &Path) -> Result<Vec<String>, BootError> {
    let source = root.join(SYSTEMD_BOOT);
    let bytes = match fs::read(&source) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BootError::NoSystemdBoot { path: source });
        }
        Err(e) => return Err(io("read", &source)(e)),
    };
    let mut written = Vec::new();
    for (dir, name, path) in TARGETS {
        let (parent, leaf) = dir.rsplit_once('/').unwrap_or(("", dir));
        let parent = if parent.is_empty() { "/" } else { parent };
        if !esp
            .list(parent)?
            .iter()
            .any(|e| e.is_dir && e.name.eq_ignore_ascii_case(leaf))
        {
            if parent != "/"
                && esp
                    .list("/")?
                    .iter()
                    .all(|e| !e.name.eq_ignore_ascii_case("EFI"))
            {
                esp.mkdir(parent)?;
            }
            esp.mkdir(dir)?;
        }
        let present = esp
            .list(dir)?
            .iter()
            .any(|e| !e.is_dir && e.name.eq_ignore_ascii_case(name));
        if present && esp.read(path)? == bytes {
            continue;
        }
        let part = format!("{path}.part");
        esp.write(&part, Source::File(&source))?;
        if present {
            esp.remove(path)?;
        }
        esp.rename(&part, path)?;
        written.push(path.to_string());
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DirEsp;

    #[test]
    fn copies_when_changed_only() {
        let root = tempfile::tempdir().unwrap();
        let esp_dir = tempfile::tempdir().unwrap();
        let esp = DirEsp::new(esp_dir.path());
        let err = place_systemd_boot(&esp, root.path()).unwrap_err();
        assert!(err.to_string().contains("systemd-boot-efi"), "{err}");

        let bin = root.path().join(SYSTEMD_BOOT);
        fs::create_dir_all(bin.parent().unwrap()).unwrap();
        fs::write(&bin, b"MZ systemd-boot 252").unwrap();
        assert_eq!(
            place_systemd_boot(&esp, root.path()).unwrap(),
            ["/EFI/systemd/systemd-bootx64.efi", "/EFI/BOOT/BOOTX64.EFI"]
        );
        for p in ["EFI/systemd/systemd-bootx64.efi", "EFI/BOOT/BOOTX64.EFI"] {
            assert_eq!(
                fs::read(esp_dir.path().join(p)).unwrap(),
                b"MZ systemd-boot 252"
            );
        }
        assert!(place_systemd_boot(&esp, root.path()).unwrap().is_empty());

        // Only the copy that differs is rewritten, and no .part is left.
        fs::write(esp_dir.path().join("EFI/BOOT/BOOTX64.EFI"), b"other loader").unwrap();
        assert_eq!(
            place_systemd_boot(&esp, root.path()).unwrap(),
            ["/EFI/BOOT/BOOTX64.EFI"]
        );
        assert_eq!(
            fs::read(esp_dir.path().join("EFI/BOOT/BOOTX64.EFI")).unwrap(),
            b"MZ systemd-boot 252"
        );
        let mut names: Vec<String> = fs::read_dir(esp_dir.path().join("EFI/BOOT"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["BOOTX64.EFI"]);
    }
}
