//! A generation's boot entry on the image's ESP, taken out for a direct
//! kernel boot: the ESP found in the image's GPT, the entry read with
//! kod-boot through mtools (no mount, no loop device), its kernel and
//! initramfs copied into the boot's private directory.

use std::fs;
use std::path::Path;

use kod_boot::{Esp, EspState, MtoolsEsp};

use crate::error::io;
use crate::{DirectBoot, VmError};

/// The byte offset of the image's EFI system partition.
pub fn esp_offset(image: &Path) -> Result<u64, VmError> {
    let parts = kod_disk::read_gpt(image).map_err(|source| VmError::Table {
        image: image.to_path_buf(),
        source,
    })?;
    parts
        .iter()
        .find(|p| p.type_guid == kod_disk::layout::gpt_types::ESP)
        .map(|p| p.offset)
        .ok_or_else(|| VmError::NoEsp {
            image: image.to_path_buf(),
        })
}

/// What a Boot Loader Specification entry boots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryBoot {
    /// `linux`: the kernel's path on the ESP.
    pub linux: Option<String>,
    /// `initrd` lines, in order (the kernel reads them concatenated).
    pub initrds: Vec<String>,
    /// `options` lines joined by spaces.
    pub options: String,
}

impl EntryBoot {
    /// Reads an entry's text: keys and values separated by whitespace,
    /// `#` comments.
    pub fn parse(text: &str) -> EntryBoot {
        let mut e = EntryBoot::default();
        let mut options = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once(char::is_whitespace)
                .map(|(k, v)| (k, v.trim()))
                .unwrap_or((line, ""));
            match key {
                "linux" => e.linux = Some(value.to_string()),
                "initrd" => e.initrds.push(value.to_string()),
                "options" if !value.is_empty() => options.push(value),
                _ => {}
            }
        }
        e.options = options.join(" ");
        e
    }
}

/// Generation `generation`'s kernel and initramfs from the image's ESP,
/// copied into `dir`, with its entry's command line.
pub fn generation_boot(image: &Path, generation: u64, dir: &Path) -> Result<DirectBoot, VmError> {
    let esp = MtoolsEsp::new(image, esp_offset(image)?);
    let state = EspState::read(&esp)?;
    let Some(file) = state.entry_file(generation) else {
        let mut have: Vec<u64> = state.kod_entries().iter().map(|e| e.generation).collect();
        have.sort_unstable();
        have.dedup();
        return Err(VmError::NoEntry {
            generation,
            image: image.to_path_buf(),
            have,
        });
    };
    let entry = EntryBoot::parse(&state.entries[file]);
    let missing = |key| VmError::BadEntry {
        entry: file.to_string(),
        image: image.to_path_buf(),
        key,
    };
    let linux = entry.linux.as_deref().ok_or_else(|| missing("linux"))?;
    if entry.initrds.is_empty() {
        return Err(missing("initrd"));
    }
    let kernel = dir.join("linux");
    fs::write(&kernel, esp.read(linux)?).map_err(io("write", &kernel))?;
    let mut initrd_bytes = Vec::new();
    for i in &entry.initrds {
        initrd_bytes.extend(esp.read(i)?);
    }
    let initrd = dir.join("initrd");
    fs::write(&initrd, initrd_bytes).map_err(io("write", &initrd))?;
    Ok(DirectBoot {
        kernel,
        initrd,
        append: entry.options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kod_entry_gives_its_files_and_options() {
        let text = "# Written by kod for generation 2; kod rewrites it, edit the configuration.\n\
                    title kod generation 2 (2026-01-01 10:00, Linux 6.1.0-28-amd64)\n\
                    sort-key kod\n\
                    version 2.2\n\
                    options root=UUID=abc rw rootflags=subvol=generations/2/rootfs quiet\n\
                    options   console=ttyS0  \n\
                    initrd /kod/6.1.0-28-amd64/initrd-0123456789abcdef\n\
                    linux /kod/6.1.0-28-amd64/vmlinuz-fedcba9876543210\n";
        assert_eq!(
            EntryBoot::parse(text),
            EntryBoot {
                linux: Some("/kod/6.1.0-28-amd64/vmlinuz-fedcba9876543210".into()),
                initrds: vec!["/kod/6.1.0-28-amd64/initrd-0123456789abcdef".into()],
                options:
                    "root=UUID=abc rw rootflags=subvol=generations/2/rootfs quiet console=ttyS0"
                        .into(),
            }
        );
        assert_eq!(EntryBoot::parse("title x\n"), EntryBoot::default());
    }

    #[test]
    fn an_image_without_a_table_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("blank.img");
        fs::write(&image, vec![0u8; 1 << 20]).unwrap();
        let err = esp_offset(&image).unwrap_err();
        assert!(err.to_string().contains("blank.img"), "{err}");
    }
}
