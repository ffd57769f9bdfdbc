//! The ESP kept in step with the machine's generations: after a commit
//! (install, rebuild), a rollback or a delete, every committed generation
//! that has a kernel is described to kod-boot, which plans the entries,
//! kernels and loader.conf the ESP must hold and writes them in an order
//! that leaves it bootable if interrupted (see kod-boot's README).
//!
//! The settings (`timeout`, `tries`, `max_entries`, `include`) are the
//! default generation's; each entry's kernel options are its own
//! generation's, from its record, so an old generation boots as it was
//! built.

use std::path::{Path, PathBuf};

use kod_boot::{Blob, Esp, EspState, Extra, Generation, Roles, Settings};
use kod_gen::{BootMarks, Record, Top};
use kod_report::Report;

use crate::error::EngineError;

/// Where a machine's ESP is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EspAt {
    /// Mounted (a running machine's `/efi`).
    Dir(PathBuf),
    /// A FAT filesystem at a byte offset of an image file or device
    /// (written with mtools: this machine cannot mount FAT).
    Fat {
        /// The image or partition device.
        file: PathBuf,
        /// Where the filesystem starts in it.
        offset: u64,
    },
}

impl EspAt {
    fn open(&self) -> Box<dyn Esp> {
        match self {
            EspAt::Dir(dir) => Box::new(kod_boot::DirEsp::new(dir)),
            EspAt::Fat { file, offset } => Box::new(kod_boot::MtoolsEsp::new(file, *offset)),
        }
    }
}

impl std::fmt::Display for EspAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EspAt::Dir(dir) => write!(f, "{}", dir.display()),
            EspAt::Fat { file, offset: 0 } => write!(f, "{}", file.display()),
            EspAt::Fat { file, offset } => write!(f, "{} at byte {offset}", file.display()),
        }
    }
}

/// The running system's ESP: `/efi` under `root` when a filesystem is
/// mounted there (kod's fstab line; gpt-auto's automount counts once
/// it is reached).
pub fn mounted_esp(root: &Path) -> Option<EspAt> {
    use std::os::unix::fs::MetadataExt;
    let efi = root.join("efi");
    let (Ok(at), Ok(above)) = (std::fs::metadata(&efi), std::fs::metadata(root)) else {
        return None;
    };
    (at.is_dir() && at.dev() != above.dev()).then_some(EspAt::Dir(efi))
}

/// The ESP of the machine at `top` as its default generation's fstab
/// names it (`UUID=… /efi`), when a device with that UUID is on this
/// system (`--target` on a machine's disk attached here).
pub fn esp_in_fstab(top: &Top) -> Result<Option<EspAt>, EngineError> {
    let Some(default) = top.default()? else {
        return Ok(None);
    };
    let fstab = top.rootfs(default).join("etc/fstab");
    let Ok(text) = std::fs::read_to_string(&fstab) else {
        return Ok(None);
    };
    let Some(uuid) = uuid_mounted_at(&text, "/efi") else {
        return Ok(None);
    };
    let found = std::process::Command::new("blkid")
        .args(["-U", uuid])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|d| !d.is_empty());
    Ok(found.map(|device| EspAt::Fat {
        file: PathBuf::from(device),
        offset: 0,
    }))
}

/// Where the running firmware's EFI variables are.
pub const EFIVARS: &str = "/sys/firmware/efi/efivars";

/// Whether the firmware whose variables are in `efivars` enforces Secure
/// Boot: its `SecureBoot` variable (a 4-byte attribute header, then one
/// byte) is 1. No variable (BIOS, or no efivarfs) means no.
pub fn secure_boot_on(efivars: &Path) -> bool {
    let var = efivars.join("SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c");
    std::fs::read(var).is_ok_and(|b| b.len() == 5 && b[4] == 1)
}

/// What an update of the entries did (or, for a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct EntriesReport {
    /// The ESP.
    pub esp: String,
    /// The operations, one line each, in their order.
    pub operations: Vec<String>,
    /// The generations with an entry afterwards.
    pub entries: Vec<u64>,
    /// The systemd-boot files written (none when current).
    pub loader_files: Vec<String>,
}

/// What the entries on the ESP at `at` say of the generations' boots:
/// which systemd blessed, which used up their tries.
pub fn boot_marks(at: &EspAt) -> Result<BootMarks, EngineError> {
    let state = EspState::read(at.open().as_ref())?;
    let mut marks = BootMarks::default();
    for e in state.kod_entries() {
        if e.is_bad() {
            marks.bad.push(e.generation);
        } else if e.is_blessed() {
            marks.blessed.push(e.generation);
        }
    }
    Ok(marks)
}

/// Brings the entries on the ESP at `at` in step with `top`'s committed
/// generations and default; `booted` is the running generation on the
/// machine itself. With `dry_run` it only plans. Places systemd-boot
/// (from the default generation's root) unless `dry_run`.
pub fn update(
    top: &Top,
    at: &EspAt,
    booted: Option<u64>,
    dry_run: bool,
    report: &Report,
) -> Result<EntriesReport, EngineError> {
    let Some(default) = top.default()? else {
        return Ok(EntriesReport::default());
    };
    let esp = at.open();
    let mut generations = Vec::new();
    for n in top.generations()? {
        if let Some(g) = describe(top, n)? {
            generations.push(g);
        }
    }
    if !generations.iter().any(|g| g.number == default) {
        return Err(EngineError::Machine {
            path: top.rootfs(default),
            reason: format!(
                "generation {default} is the default but has no kernel in /boot to boot: \
                 set `boot.kernel.package` and rebuild"
            ),
        });
    }
    let record = Record::read(top, default)?;
    let settings = settings(&record, &top.rootfs(default))?;
    let state = EspState::read(esp.as_ref())?;
    let roles = Roles {
        default,
        booted,
        last_good: (settings.tries > 0)
            .then(|| state.newest_blessed())
            .flatten(),
    };
    let plan = kod_boot::plan(&state, &generations, &roles, &settings)?;
    let mut out = EntriesReport {
        esp: at.to_string(),
        operations: plan.ops.iter().map(ToString::to_string).collect(),
        entries: Vec::new(),
        loader_files: Vec::new(),
    };
    if dry_run {
        return Ok(out);
    }
    out.loader_files = kod_boot::place_systemd_boot(esp.as_ref(), &top.rootfs(default))?;
    plan.apply(esp.as_ref())?;
    let after = EspState::read(esp.as_ref())?;
    out.entries = after.kod_entries().iter().map(|e| e.generation).collect();
    out.entries.sort_unstable();
    out.entries.dedup();
    report.verbose(|| {
        format!(
            "+ boot entries on {at}: {} operations, entries for {:?}",
            out.operations.len(),
            out.entries
        )
    });
    Ok(out)
}

/// Generation `n` as its entry needs it, `None` when its root has no
/// kernel (a machine built without one).
fn describe(top: &Top, n: u64) -> Result<Option<Generation>, EngineError> {
    let root = top.rootfs(n);
    let Some(kernel_version) = newest_kernel(&root.join("boot"))? else {
        return Ok(None);
    };
    let initrd = root.join(format!("boot/initrd.img-{kernel_version}"));
    if !initrd.exists() {
        return Err(EngineError::Machine {
            path: initrd,
            reason: format!(
                "generation {n} has kernel {kernel_version} but no initramfs for it: \
                 rebuild the generation"
            ),
        });
    }
    let record = Record::read(top, n)?;
    let committed = kod_gen::utc(top.committed_at(n)?);
    Ok(Some(Generation {
        number: n,
        kernel: Blob::hash(root.join(format!("boot/vmlinuz-{kernel_version}")))?,
        initrd: Blob::hash(initrd)?,
        kernel_version,
        root_uuid: root_uuid(&root)?,
        options: strings(&record.configuration, "/boot/kernel_options"),
        // `2026-12-04T03:00:00Z` as the menu shows it: `2026-12-04 03:00`.
        date: committed
            .get(..16)
            .unwrap_or(&committed)
            .replacen('T', " ", 1),
    }))
}

/// The newest kernel version in `boot` (`vmlinuz-VERSION`), by Debian's
/// version order.
fn newest_kernel(boot: &Path) -> Result<Option<String>, EngineError> {
    let mut versions = crate::initramfs::kernel_versions(boot)?;
    // Kernel versions are dpkg versions (`6.1.0-28-amd64`); one that is not
    // sorts first.
    let order =
        |v: &String| kod_repo::version::Version::parse(kod_repo::version::Scheme::Debian, v).ok();
    versions.sort_by_cached_key(order);
    Ok(versions.pop())
}

/// The UUID of the filesystem an fstab's `UUID=…` line mounts at `at`.
fn uuid_mounted_at<'t>(fstab: &'t str, at: &str) -> Option<&'t str> {
    fstab
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 1 && f[1] == at && !f[0].starts_with('#'))
        .and_then(|f| f[0].strip_prefix("UUID="))
}

/// The root filesystem's UUID, from the generation's fstab line for `/`.
fn root_uuid(root: &Path) -> Result<String, EngineError> {
    let fstab = root.join("etc/fstab");
    let text = std::fs::read_to_string(&fstab).map_err(|e| EngineError::io(&fstab, e))?;
    uuid_mounted_at(&text, "/")
        .map(str::to_string)
        .ok_or_else(|| EngineError::Machine {
            path: fstab,
            reason: "has no `UUID=… /` line for the root: the entry could not name its root".into(),
        })
}

/// The loader settings of a generation's record, with the EFI programs of
/// its `boot.loader.include` packages from its root.
fn settings(record: &Record, root: &Path) -> Result<Settings, EngineError> {
    let plan = &record.configuration;
    let defaults = Settings::default();
    let number = |key: &str| plan.pointer(key).and_then(serde_json::Value::as_u64);
    let mut extras = Vec::new();
    for name in strings(plan, "/boot/extra_entries") {
        extras.push(Extra {
            title: name.clone(),
            efi: Blob::hash(extra_program(root, &name)?)?,
            name,
        });
    }
    Ok(Settings {
        timeout: number("/boot/timeout").map(|t| t as u32),
        tries: number("/boot/tries").map_or(defaults.tries, |t| t as u32),
        max_entries: number("/boot/max_entries").map_or(defaults.max_entries, |m| m as usize),
        extras,
    })
}

/// The EFI program an extra entry's package puts in `/boot`
/// (memtest86+'s `memtest86+x64.efi`).
fn extra_program(root: &Path, package: &str) -> Result<PathBuf, EngineError> {
    let boot = root.join("boot");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&boot)
        .map_err(|e| EngineError::io(&boot, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(package) && n.ends_with(".efi"))
        })
        .collect();
    found.sort();
    // A 64-bit program where a package ships several.
    let pick = found
        .iter()
        .position(|p| p.to_string_lossy().contains("x64"))
        .unwrap_or(0);
    found
        .into_iter()
        .nth(pick)
        .ok_or_else(|| EngineError::Machine {
            path: boot,
            reason: format!(
                "boot.loader.include: package {package:?} put no EFI program ({package}*.efi) \
                 in /boot: name a package that ships one, such as memtest86+"
            ),
        })
}

/// The strings of the array at `pointer` in a record's plan; none when
/// it is absent (a record of an older kod).
fn strings(plan: &serde_json::Value, pointer: &str) -> Vec<String> {
    plan.pointer(pointer)
        .and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_boot_is_read_from_its_variable() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!secure_boot_on(dir.path()), "no variable: off");
        let var = dir
            .path()
            .join("SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c");
        std::fs::write(&var, [6, 0, 0, 0, 1]).unwrap();
        assert!(secure_boot_on(dir.path()));
        std::fs::write(&var, [6, 0, 0, 0, 0]).unwrap();
        assert!(!secure_boot_on(dir.path()));
    }

    #[test]
    fn the_root_uuid_comes_from_the_generations_fstab() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/fstab"),
            "# / was here\nUUID=abc /kod btrfs subvolid=5 0 0\n\
             UUID=1234-5678 / btrfs subvol=generations/3/rootfs 0 0\n",
        )
        .unwrap();
        assert_eq!(root_uuid(dir.path()).unwrap(), "1234-5678");
        std::fs::write(
            dir.path().join("etc/fstab"),
            "/dev/vda2 / btrfs defaults 0 0\n",
        )
        .unwrap();
        assert!(
            root_uuid(dir.path())
                .unwrap_err()
                .to_string()
                .contains("UUID=")
        );
    }

    #[test]
    fn the_newest_kernel_is_taken_in_debian_order() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(newest_kernel(&dir.path().join("none")).unwrap(), None);
        for v in ["6.1.0-9-amd64", "6.1.0-28-amd64", "6.1.0-10-amd64"] {
            std::fs::write(dir.path().join(format!("vmlinuz-{v}")), "").unwrap();
        }
        std::fs::write(dir.path().join("config-6.1.0-99-amd64"), "").unwrap();
        assert_eq!(
            newest_kernel(dir.path()).unwrap().as_deref(),
            Some("6.1.0-28-amd64")
        );
    }
}
