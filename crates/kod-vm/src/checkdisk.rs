//! The check disk: a small ext2 image labelled `kodchecks` that the
//! guest's report script mounts read-only, holding the commands to run
//! (`commands`, one a line) and, when the guest should power off after
//! reporting, a file `poweroff`. Made with mke2fs -d: no mount, no root.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::VmError;
use crate::error::io;

/// The check disk's filesystem label, which the guest looks for.
pub const LABEL: &str = "kodchecks";

/// A check disk image.
#[derive(Debug, Clone)]
pub struct CheckDisk {
    /// The image file.
    pub path: PathBuf,
}

impl CheckDisk {
    /// Makes `dir/checks.img` with `commands` and, if `poweroff`, the
    /// `poweroff` file. A command must be one non-empty line.
    pub fn create(dir: &Path, commands: &[String], poweroff: bool) -> Result<CheckDisk, VmError> {
        for c in commands {
            check_command(c)?;
        }
        let tree = dir.join("checks");
        fs::create_dir_all(&tree).map_err(io("make the directory", &tree))?;
        let mut text = commands.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        let file = tree.join("commands");
        fs::write(&file, text).map_err(io("write", &file))?;
        if poweroff {
            let file = tree.join("poweroff");
            fs::write(&file, "").map_err(io("write", &file))?;
        }
        let path = dir.join("checks.img");
        let mut cmd = Command::new("mke2fs");
        cmd.args(["-q", "-t", "ext2", "-L", LABEL, "-d"])
            .arg(&tree)
            .arg(&path)
            .arg("4M");
        run(cmd, "e2fsprogs")?;
        Ok(CheckDisk { path })
    }
}

fn check_command(c: &str) -> Result<(), VmError> {
    let why = if c.trim().is_empty() {
        "it is empty"
    } else if c.contains(['\n', '\r']) {
        "it has a line break (the check disk holds one command a line; join them with ';')"
    } else {
        return Ok(());
    };
    Err(VmError::BadCommand {
        command: c.to_string(),
        why,
    })
}

/// Runs `cmd`, which must succeed.
pub(crate) fn run(mut cmd: Command, package: &'static str) -> Result<Vec<u8>, VmError> {
    let line = format!("{cmd:?}");
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.output().map_err(|source| VmError::Spawn {
        program,
        package,
        source,
    })?;
    if !out.status.success() {
        return Err(VmError::Command {
            command: line,
            status: out.status.to_string(),
            output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn debugfs(img: &Path, request: &str) -> String {
        let mut cmd = Command::new("debugfs");
        cmd.arg("-R").arg(request).arg(img);
        String::from_utf8(run(cmd, "e2fsprogs").unwrap()).unwrap()
    }

    #[test]
    fn the_disk_holds_the_commands_and_the_label() {
        let dir = tempfile::tempdir().unwrap();
        let commands = vec![
            "cowsay hi".to_string(),
            "systemctl is-system-running; echo $?".into(),
        ];
        let disk = CheckDisk::create(dir.path(), &commands, true).unwrap();
        assert_eq!(
            debugfs(&disk.path, "cat /commands"),
            "cowsay hi\nsystemctl is-system-running; echo $?\n"
        );
        assert!(debugfs(&disk.path, "ls -l /").contains("poweroff"));
        let mut label = Command::new("e2label");
        label.arg(&disk.path);
        assert_eq!(
            String::from_utf8(run(label, "e2fsprogs").unwrap())
                .unwrap()
                .trim(),
            LABEL
        );
    }

    #[test]
    fn without_poweroff_or_commands() {
        let dir = tempfile::tempdir().unwrap();
        let disk = CheckDisk::create(dir.path(), &[], false).unwrap();
        assert_eq!(debugfs(&disk.path, "cat /commands"), "");
        assert!(!debugfs(&disk.path, "ls -l /").contains("poweroff"));
    }

    #[test]
    fn a_command_is_one_line() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", "  ", "echo a\necho b"] {
            let err = CheckDisk::create(dir.path(), &[bad.to_string()], true).unwrap_err();
            assert!(matches!(err, VmError::BadCommand { .. }), "{bad:?}: {err}");
        }
    }
}
