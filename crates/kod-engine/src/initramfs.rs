//! The initramfs of a generation's kernels, built once per install or
//! rebuild with the distribution's tool (its kernel hooks and triggers
//! were held back while the packages were configured), and only when its
//! inputs changed.
//!
//! The inputs of kernel VERSION's initramfs are written beside it, in
//! `/boot/.kod-initramfs-VERSION`: the tool and the kernel version, the
//! tool's configuration (every file under `/etc/initramfs-tools`, where
//! kod's `boot.kernel.modules` block is, or dracut's `/etc/dracut.conf`
//! and `/etc/dracut.conf.d`), and the versions of the packages that put
//! hooks or scripts into it (files under `/usr/share/initramfs-tools` or
//! `/etc/initramfs-tools`: initramfs-tools itself, udev, busybox,
//! btrfs-progs, ...; dracut's modules under `/usr/lib/dracut`). A rebuild starts from a snapshot holding the
//! parent's initramfs and its inputs: when they are still the same, the
//! initramfs is reused as it is (and so is its file on the ESP, named by
//! its content); when one changed (an upgraded hook package, other
//! modules), it is built again.

use std::collections::BTreeMap;
use std::path::Path;

use kod_config::InitramfsTool;
use kod_report::{Report, Stage, Work};
use kod_root::Root;
use sha2::{Digest, Sha256};

use crate::EngineError;

/// What kod needs to know of a tool.
struct Tool {
    name: &'static str,
    /// Its configuration, relative to the root.
    config: &'static [&'static str],
    /// Where packages put its hooks and scripts (as dpkg lists them).
    hooks: &'static [&'static str],
}

const INITRAMFS_TOOLS: Tool = Tool {
    name: "initramfs-tools",
    config: &["etc/initramfs-tools"],
    hooks: &["/usr/share/initramfs-tools/", "/etc/initramfs-tools/"],
};

const DRACUT: Tool = Tool {
    name: "dracut",
    config: &["etc/dracut.conf", "etc/dracut.conf.d"],
    hooks: &["/usr/lib/dracut/"],
};

impl Tool {
    fn of(tool: InitramfsTool) -> &'static Tool {
        match tool {
            InitramfsTool::InitramfsTools => &INITRAMFS_TOOLS,
            InitramfsTool::Dracut => &DRACUT,
        }
    }

    /// The command that builds kernel `version`'s initramfs; `exists`:
    /// one is there to replace.
    fn command(&self, version: &str, exists: bool) -> Vec<String> {
        let v = version.to_string();
        match self.name {
            "dracut" => vec![
                "dracut".into(),
                "--force".into(),
                format!("/boot/initrd.img-{v}"),
                v,
            ],
            _ => vec![
                "update-initramfs".into(),
                if exists { "-u" } else { "-c" }.into(),
                "-k".into(),
                v,
            ],
        }
    }
}

/// Builds the initramfs of each kernel in the root's `/boot` whose inputs
/// differ from the ones recorded beside it (or that has none);
/// `packages` are the root's installed packages with their versions.
pub(crate) fn build(
    fs: &Root,
    runner: &dyn kod_db::Runner,
    tool: InitramfsTool,
    packages: &[kod_install::PackageState],
    report: &Report,
) -> Result<(), EngineError> {
    let tool = Tool::of(tool);
    let kernels = kernel_versions(&fs.path().join("boot"))?;
    let mut todo = Vec::new();
    for v in &kernels {
        let want = inputs(fs, tool, v, packages)?;
        let have = fs
            .read(record_path(v))
            .map_err(|e| EngineError::io(&fs.show(record_path(v)), e))?;
        let exists = fs
            .exists(format!("boot/initrd.img-{v}"))
            .map_err(|e| EngineError::io(&fs.show("boot"), e))?;
        if !exists || have.as_deref() != Some(want.as_bytes()) {
            todo.push((v, exists, want));
        }
    }
    if todo.is_empty() {
        if !kernels.is_empty() {
            report.verbose(|| "+ initramfs: inputs unchanged, reused".to_string());
        }
        return Ok(());
    }
    let stage = report.stage(Stage::Initramfs, Work::items(todo.len() as u64));
    for (v, exists, want) in todo {
        let argv = tool.command(v, exists);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let ran = runner.run("build the initramfs", &argv, &[])?;
        if !ran.success {
            return Err(EngineError::Initramfs {
                status: ran.status,
                output: ran.tail.join("\n"),
            });
        }
        fs.write(record_path(v), want.as_bytes(), 0o644)
            .map_err(|e| EngineError::io(&fs.show(record_path(v)), e))?;
        stage.advance(Work::items(1), v);
    }
    Ok(())
}

/// Where the inputs of kernel `version`'s initramfs are recorded.
fn record_path(version: &str) -> String {
    format!("boot/.kod-initramfs-{version}")
}

/// The kernel versions in a root's `boot` directory (`vmlinuz-VERSION`),
/// sorted by name.
pub(crate) fn kernel_versions(boot: &Path) -> Result<Vec<String>, EngineError> {
    let mut kernels = Vec::new();
    // Names only; a /boot that is no directory (a link out) has none.
    if std::fs::symlink_metadata(boot).is_ok_and(|m| m.is_dir()) {
        for entry in std::fs::read_dir(boot).map_err(|e| EngineError::io(boot, e))? {
            let name = entry.map_err(|e| EngineError::io(boot, e))?.file_name();
            if let Some(v) = name.to_str().and_then(|n| n.strip_prefix("vmlinuz-")) {
                kernels.push(v.to_string());
            }
        }
    }
    kernels.sort();
    Ok(kernels)
}

/// The inputs of kernel `version`'s initramfs, as text (one per line).
fn inputs(
    fs: &Root,
    tool: &Tool,
    version: &str,
    packages: &[kod_install::PackageState],
) -> Result<String, EngineError> {
    let mut text = format!("tool {}\nkernel {version}\n", tool.name);
    for dir in tool.config {
        text.push_str(&format!("config {dir} {}\n", tree_hash(fs, dir)?));
    }
    let versions: BTreeMap<&str, &str> = packages
        .iter()
        .map(|p| (p.id.name.as_str(), p.id.version.as_str()))
        .collect();
    for name in hook_packages(fs, tool)? {
        let version = versions.get(name.as_str()).copied().unwrap_or("?");
        text.push_str(&format!("package {name} {version}\n"));
    }
    Ok(text)
}

/// The packages whose dpkg file lists have files in the tool's hook
/// directories, sorted.
fn hook_packages(fs: &Root, tool: &Tool) -> Result<Vec<String>, EngineError> {
    let info = fs.path().join("var/lib/dpkg/info");
    let mut names = Vec::new();
    let entries = match std::fs::read_dir(&info) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(EngineError::io(&info, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| EngineError::io(&info, e))?;
        let file = entry.file_name();
        let Some(package) = file.to_str().and_then(|n| n.strip_suffix(".list")) else {
            continue;
        };
        let list =
            std::fs::read_to_string(entry.path()).map_err(|e| EngineError::io(&entry.path(), e))?;
        if list
            .lines()
            .any(|l| tool.hooks.iter().any(|d| l.starts_with(d)))
        {
            // `NAME:ARCH.list` for a package of a foreign architecture.
            let name = package.split(':').next().unwrap_or(package);
            names.push(name.to_string());
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// A SHA-256 over the paths, modes and contents (symlinks' targets) of
/// the files under `dir` in the root (or of the file `dir`); of nothing
/// when it is absent.
fn tree_hash(fs: &Root, dir: &str) -> Result<String, EngineError> {
    let mut h = Sha256::new();
    let base = fs.path().join(dir);
    let mut stack = Vec::new();
    let mut files = Vec::new();
    match std::fs::symlink_metadata(&base) {
        Ok(m) if m.is_dir() => stack.push(base.clone()),
        Ok(_) => files.push(base.clone()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(EngineError::io(&base, e)),
    }
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(EngineError::io(&d, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| EngineError::io(&d, e))?;
            let t = entry.file_type().map_err(|e| EngineError::io(&d, e))?;
            if t.is_dir() {
                stack.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    for f in files {
        let rel = f.strip_prefix(&base).unwrap_or(&f);
        h.update(rel.as_os_str().as_encoded_bytes());
        h.update([0]);
        h.update(file_bytes(&f)?);
        h.update([0]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// A file's mode and contents, or a symlink's target (not followed: it
/// may point out of the root).
fn file_bytes(path: &Path) -> Result<Vec<u8>, EngineError> {
    use std::os::unix::fs::PermissionsExt;
    let m = std::fs::symlink_metadata(path).map_err(|e| EngineError::io(path, e))?;
    let mut out = format!("{:o} ", m.permissions().mode()).into_bytes();
    if m.file_type().is_symlink() {
        let target = std::fs::read_link(path).map_err(|e| EngineError::io(path, e))?;
        out.extend(target.as_os_str().as_encoded_bytes());
    } else {
        out.extend(std::fs::read(path).map_err(|e| EngineError::io(path, e))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str, version: &str) -> kod_install::PackageState {
        kod_install::PackageState {
            id: kod_db::PackageId {
                name: name.into(),
                version: version.into(),
                architecture: "amd64".into(),
            },
            state: "installed".into(),
        }
    }

    #[test]
    fn the_inputs_follow_the_configuration_and_the_hook_packages() {
        let dir = tempfile::tempdir().unwrap();
        let put = |rel: &str, text: &str| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        put("etc/initramfs-tools/modules", "btrfs\n");
        put(
            "var/lib/dpkg/info/udev.list",
            "/usr/share/initramfs-tools/hooks/udev\n/usr/bin/udevadm\n",
        );
        put(
            "var/lib/dpkg/info/busybox:amd64.list",
            "/etc/initramfs-tools/conf.d/busybox\n",
        );
        put("var/lib/dpkg/info/less.list", "/usr/bin/less\n");
        let fs = Root::open(dir.path()).unwrap();
        assert_eq!(
            hook_packages(&fs, &INITRAMFS_TOOLS).unwrap(),
            ["busybox", "udev"]
        );
        assert!(hook_packages(&fs, &DRACUT).unwrap().is_empty());

        let packages = [
            package("udev", "252.39-1"),
            package("busybox", "1:1.35.0-4"),
        ];
        let first = inputs(&fs, &INITRAMFS_TOOLS, "6.1.0-28-amd64", &packages).unwrap();
        assert!(
            first.starts_with(
                "tool initramfs-tools\nkernel 6.1.0-28-amd64\nconfig etc/initramfs-tools "
            ),
            "{first}"
        );
        assert!(
            first.ends_with("package busybox 1:1.35.0-4\npackage udev 252.39-1\n"),
            "{first}"
        );
        assert_eq!(
            inputs(&fs, &INITRAMFS_TOOLS, "6.1.0-28-amd64", &packages).unwrap(),
            first,
            "stable"
        );
        assert_ne!(
            inputs(&fs, &INITRAMFS_TOOLS, "6.1.0-29-amd64", &packages).unwrap(),
            first,
            "kernel"
        );
        // An upgraded hook package, then another module: other inputs.
        let upgraded = [
            package("udev", "252.40-1"),
            package("busybox", "1:1.35.0-4"),
        ];
        assert_ne!(
            inputs(&fs, &INITRAMFS_TOOLS, "6.1.0-28-amd64", &upgraded).unwrap(),
            first
        );
        put("etc/initramfs-tools/modules", "btrfs\nvirtio_blk\n");
        assert_ne!(
            inputs(&fs, &INITRAMFS_TOOLS, "6.1.0-28-amd64", &packages).unwrap(),
            first
        );
        // dracut's configuration is a file and a directory.
        let none = inputs(&fs, &DRACUT, "6.1.0-28-amd64", &packages).unwrap();
        put("etc/dracut.conf", "# nothing\n");
        assert_ne!(
            inputs(&fs, &DRACUT, "6.1.0-28-amd64", &packages).unwrap(),
            none
        );
        assert_eq!(
            DRACUT.command("6.1.0-28-amd64", true),
            [
                "dracut",
                "--force",
                "/boot/initrd.img-6.1.0-28-amd64",
                "6.1.0-28-amd64"
            ]
        );
        assert_eq!(
            INITRAMFS_TOOLS.command("6.1.0-28-amd64", false),
            ["update-initramfs", "-c", "-k", "6.1.0-28-amd64"]
        );
    }
}
