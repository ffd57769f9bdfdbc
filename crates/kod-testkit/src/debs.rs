//! Test `.deb` files built with the real tools: `dpkg-deb --build` for
//! well-formed packages, `tar` + `ar` by hand for malformed or malicious ones.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs a command, panicking with its output if it fails.
pub fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A minimal control file; `PKG` stands for the package name.
pub const CONTROL: &str = "Package: PKG\nVersion: 1.0-1\nArchitecture: all\nMaintainer: kod tests <kod@example.org>\nDescription: kod-unpack test fixture\n";

/// [`CONTROL`] for `pkg`, with `extra` fields appended.
pub fn control_for(pkg: &str, extra: &str) -> String {
    format!("{}{extra}", CONTROL.replace("PKG", pkg))
}

/// Builds a .deb by hand (`tar` + `ar`), so that its data.tar may hold
/// anything `dpkg-deb --build` would refuse. `tar_args` are passed to
/// `tar -cf data.tar -C stage` (names, `--transform`, `-P`, ...).
pub fn hand_deb(dir: &Path, name: &str, control: &str, stage: &Path, tar_args: &[&str]) -> PathBuf {
    let work = dir.join(format!("{name}.build"));
    fs::create_dir_all(work.join("ctl")).expect("mkdir ctl");
    fs::write(work.join("ctl/control"), control).expect("write control");
    fs::write(work.join("debian-binary"), "2.0\n").expect("write debian-binary");
    run(Command::new("tar")
        .arg("-czf")
        .arg(work.join("control.tar.gz"))
        .arg("-C")
        .arg(work.join("ctl"))
        .arg("--owner=0")
        .arg("--group=0")
        .arg("."));
    run(Command::new("tar")
        .arg("-cf")
        .arg(work.join("data.tar"))
        .arg("--owner=0")
        .arg("--group=0")
        .arg("-C")
        .arg(stage)
        .args(tar_args));
    run(Command::new("xz").arg("-f").arg(work.join("data.tar")));
    let deb = dir.join(format!("{name}.deb"));
    let _ = fs::remove_file(&deb);
    run(Command::new("ar")
        .arg("rc")
        .arg(&deb)
        .arg("debian-binary")
        .arg("control.tar.gz")
        .arg("data.tar.xz")
        .current_dir(&work));
    deb
}

/// Builds a .deb with `dpkg-deb --build` from `tree` (which holds DEBIAN/).
pub fn dpkg_deb_build(tree: &Path, out: &Path, compression: &str) -> PathBuf {
    run(Command::new("dpkg-deb")
        .arg("--root-owner-group")
        .arg(format!("-Z{compression}"))
        .arg("--build")
        .arg(tree)
        .arg(out));
    out.to_path_buf()
}
