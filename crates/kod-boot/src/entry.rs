//! What an entry says: the generation's kernel, initramfs and command line,
//! and where its files go on the ESP.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::BootError;
use crate::error::io;

/// A local file to place on the ESP, with the SHA-256 of its contents,
/// which names it there: generations with the same kernel share one copy,
/// and a name that exists already holds exactly these bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// The file (in the generation's root, as the caller reaches it).
    pub source: PathBuf,
    /// Lower-case hex SHA-256 of its contents.
    pub sha256: String,
}

impl Blob {
    /// Hashes `source`.
    pub fn hash(source: impl Into<PathBuf>) -> Result<Blob, BootError> {
        let source = source.into();
        let mut file = File::open(&source).map_err(io("open", &source))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0; 1 << 16];
        loop {
            let n = file.read(&mut buf).map_err(io("read", &source))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let sha256 = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Blob { source, sha256 })
    }

    /// The first 16 hex digits: 64 bits tell kernels apart.
    fn short(&self) -> &str {
        &self.sha256[..self.sha256.len().min(16)]
    }
}

/// One generation as its boot entry needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// Its number (`generations/N`).
    pub number: u64,
    /// The kernel's version (`6.1.0-28-amd64`): the ESP directory of its files.
    pub kernel_version: String,
    /// The kernel image.
    pub kernel: Blob,
    /// The initramfs image.
    pub initrd: Blob,
    /// The Btrfs root filesystem's UUID.
    pub root_uuid: String,
    /// `boot.kernel.options`, after kod's own.
    pub options: Vec<String>,
    /// When it was committed, as shown in the menu (`2026-12-04 03:00`).
    pub date: String,
}

impl Generation {
    /// The kernel's path on the ESP: `/kod/KVER/vmlinuz-HASH`.
    pub fn kernel_path(&self) -> String {
        format!(
            "/kod/{}/vmlinuz-{}",
            self.kernel_version,
            self.kernel.short()
        )
    }

    /// The initramfs's path on the ESP: `/kod/KVER/initrd-HASH`.
    pub fn initrd_path(&self) -> String {
        format!(
            "/kod/{}/initrd-{}",
            self.kernel_version,
            self.initrd.short()
        )
    }

    pub(crate) fn check(&self) -> Result<(), BootError> {
        if self.kernel_version.is_empty()
            || self.kernel_version.starts_with('.')
            || !self.kernel_version.bytes().all(name_byte)
        {
            return Err(BootError::BadKernelVersion {
                generation: self.number,
                version: self.kernel_version.clone(),
            });
        }
        Ok(())
    }

    /// The entry's text. `rank` makes the `version`: systemd-boot orders
    /// entries that all have a `sort-key` by `version`, highest first, so
    /// the default generation gets the highest rank. The kernel line is
    /// last, so a file cut short never boots without its options.
    pub(crate) fn render(&self, rank: u64) -> String {
        let mut options = format!(
            "root=UUID={} rw rootflags=subvol=generations/{}/rootfs",
            self.root_uuid, self.number
        );
        for o in &self.options {
            options.push(' ');
            options.push_str(o);
        }
        format!(
            "# Written by kod for generation {n}; kod rewrites it, edit the configuration.\n\
             title kod generation {n} ({date}, Linux {kver})\n\
             sort-key kod\n\
             version {rank}.{n}\n\
             options {options}\n\
             initrd {initrd}\n\
             linux {linux}\n",
            n = self.number,
            date = self.date,
            kver = self.kernel_version,
            initrd = self.initrd_path(),
            linux = self.kernel_path(),
        )
    }
}

pub(crate) fn name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'_' | b'-')
}

/// A `boot.loader.include` entry: an EFI program from a package in the
/// generation (memtest86+'s `memtest86+x64.efi`, a UEFI shell), copied to
/// the ESP under a content-derived name like the kernels, with an entry
/// `loader/entries/kodextra-NAME.conf`. Its name does not match kod's
/// `default` pattern and it has no `sort-key`, so systemd-boot lists it
/// after every kod entry and never picks it by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extra {
    /// Its name (the package's: `memtest86+`): the entry's file and the
    /// program's ESP directory.
    pub name: String,
    /// The menu's title.
    pub title: String,
    /// The EFI program.
    pub efi: Blob,
}

impl Extra {
    pub(crate) fn file(&self) -> Result<String, BootError> {
        if self.name.is_empty() || self.name.starts_with('.') || !self.name.bytes().all(name_byte) {
            return Err(BootError::BadExtraName {
                name: self.name.clone(),
            });
        }
        Ok(format!("kodextra-{}.conf", self.name))
    }

    /// The program's path on the ESP: `/kod/NAME/NAME-HASH.efi`.
    pub fn efi_path(&self) -> String {
        format!("/kod/{n}/{n}-{}.efi", self.efi.short(), n = self.name)
    }

    pub(crate) fn render(&self) -> String {
        format!(
            "# Written by kod from boot.loader.include {:?}.\ntitle {}\nefi {}\n",
            self.name,
            self.title,
            self.efi_path()
        )
    }
}

/// The `boot.loader` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `timeout`: seconds the menu shows; `None` leaves systemd-boot's
    /// default (no menu unless a key is held).
    pub timeout: Option<u32>,
    /// `tries`: boots a new entry gets before it counts as bad; 0 turns
    /// boot counting off.
    pub tries: u32,
    /// `max_entries`: kod entries kept on the ESP.
    pub max_entries: usize,
    /// `include`: extra entries.
    pub extras: Vec<Extra>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            timeout: None,
            tries: 3,
            max_entries: 10,
            extras: Vec::new(),
        }
    }
}

impl Settings {
    /// `loader/loader.conf`. Its `default` matches every kod entry: in
    /// systemd 252 an entry's id includes its counter, and a bad entry only
    /// sorts last, so a pattern naming one generation would keep booting it
    /// when it fails; the order of the entries picks the default instead.
    pub(crate) fn render_loader(&self) -> String {
        let mut text = String::from("# Written by kod; edit boot.loader in the configuration.\n");
        if let Some(t) = self.timeout {
            text.push_str(&format!("timeout {t}\n"));
        }
        text.push_str("default kod-*\n");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generation(n: u64) -> Generation {
        Generation {
            number: n,
            kernel_version: "6.1.0-28-amd64".into(),
            kernel: Blob {
                source: "/gen/boot/vmlinuz".into(),
                sha256: "ab".repeat(32),
            },
            initrd: Blob {
                source: "/gen/boot/initrd.img".into(),
                sha256: "cd".repeat(32),
            },
            root_uuid: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".into(),
            options: vec!["console=ttyS0".into(), "quiet".into()],
            date: "2026-12-04 03:00".into(),
        }
    }

    #[test]
    fn an_entry_names_its_generations_subvolume_and_content_named_files() {
        let text = generation(5).render(7);
        let lines: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(
            lines,
            [
                "title kod generation 5 (2026-12-04 03:00, Linux 6.1.0-28-amd64)",
                "sort-key kod",
                "version 7.5",
                "options root=UUID=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 rw \
                 rootflags=subvol=generations/5/rootfs console=ttyS0 quiet",
                "initrd /kod/6.1.0-28-amd64/initrd-cdcdcdcdcdcdcdcd",
                "linux /kod/6.1.0-28-amd64/vmlinuz-abababababababab",
            ]
        );
    }

    #[test]
    fn hashes_file_contents() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k");
        std::fs::write(&f, b"abc").unwrap();
        // SHA-256("abc") from FIPS 180-2.
        assert_eq!(
            Blob::hash(&f).unwrap().sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let err = Blob::hash(dir.path().join("missing")).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn unsafe_names_are_refused() {
        let mut g = generation(1);
        g.kernel_version = "../6.1".into();
        assert!(matches!(g.check(), Err(BootError::BadKernelVersion { .. })));
        g.kernel_version = "6.1 x".into();
        assert!(g.check().is_err());
        let extra = Extra {
            name: "mem/test".into(),
            title: "memtest".into(),
            efi: generation(1).kernel,
        };
        assert!(matches!(extra.file(), Err(BootError::BadExtraName { .. })));
    }

    #[test]
    fn loader_conf_matches_every_kod_entry() {
        let s = Settings {
            timeout: Some(5),
            ..Settings::default()
        };
        let text = s.render_loader();
        assert!(text.lines().any(|l| l == "timeout 5"), "{text}");
        assert!(text.lines().any(|l| l == "default kod-*"), "{text}");
        assert!(!Settings::default().render_loader().contains("timeout"));
    }
}
