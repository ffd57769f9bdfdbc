//! The guest's side of the boot report: files kod installs into every
//! generation (kod-boot's caller enables [`UNIT_NAME`] by a symlink in
//! `multi-user.target.wants`).

/// The report unit's name.
pub const UNIT_NAME: &str = "kod-report.service";

/// The report script's path in the guest.
pub const SCRIPT: &str = "/usr/lib/kod/report";

/// Files of the guest's side: (absolute path in the root, content, mode).
pub const FILES: &[(&str, &str, u32)] = &[
    (
        "/usr/lib/systemd/system/kod-report.service",
        include_str!("../guest/kod-report.service"),
        0o644,
    ),
    (SCRIPT, include_str!("../guest/report"), 0o755),
];

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// The files written into a root directory, as an installer would.
    fn write_root(root: &std::path::Path) {
        use std::os::unix::fs::PermissionsExt;
        for (path, content, mode) in FILES {
            let p = root.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, content).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
        }
    }

    #[test]
    fn the_unit_is_named_and_installed_for_multi_user() {
        let (path, unit, _) = FILES[0];
        assert!(path.ends_with(UNIT_NAME));
        assert!(unit.contains("\nWantedBy=multi-user.target\n"));
        assert!(unit.contains("\nDefaultDependencies=no\n"));
        assert!(unit.contains("\nExecStart=-/usr/lib/kod/report\n"));
        assert!(
            !unit.contains("Requires="),
            "it must also run when the boot fails"
        );
    }

    #[test]
    fn the_script_is_posix_sh() {
        let dir = tempfile::tempdir().unwrap();
        write_root(dir.path());
        let script = dir.path().join(SCRIPT.trim_start_matches('/'));
        for shell in ["dash", "sh"] {
            let out = Command::new(shell).arg("-n").arg(&script).output().unwrap();
            assert!(
                out.status.success(),
                "{shell} -n: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(FILES[1].1.starts_with("#!/bin/sh\n"));
    }

    /// systemd's own check of the unit, in a root that has it: no
    /// ordering cycle, known keys, an executable ExecStart.
    #[test]
    fn systemd_analyze_verifies_the_unit() {
        let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
            eprintln!("systemd-analyze is not installed: skipped");
            return;
        };
        assert!(out.status.success());
        let dir = tempfile::tempdir().unwrap();
        write_root(dir.path());
        let unit = dir.path().join("usr/lib/systemd/system").join(UNIT_NAME);
        // --root: ExecStart is looked for in the root, which has the script.
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(format!("--root={}", dir.path().display()))
            .arg(&unit)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "systemd-analyze verify: {stderr}");
        assert!(!stderr.contains("cycle"), "{stderr}");
    }
}
