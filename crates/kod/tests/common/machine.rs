//! Helpers of the machine tests (`install --target`, `rebuild`): a loop
//! Btrfs for a machine, and reading a generation back.

use std::path::Path;
use std::process::Command as Process;

use kod_testkit::btrfs::Btrfs;

use super::run_ok;

/// The text of `rel` under `dir`, which must be there.
pub fn text(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A new machine's disk (a fresh Btrfs of `size` bytes) and an empty cache.
pub fn new_machine(size: u64) -> (Btrfs, tempfile::TempDir) {
    (Btrfs::with_size(size), tempfile::tempdir().unwrap())
}

/// `-c CONFIG install --target TOP`.
pub fn install_args(config: &Path, top: &Path) -> Vec<std::ffi::OsString> {
    vec![
        "-c".into(),
        config.into(),
        "install".into(),
        "--target".into(),
        top.into(),
    ]
}

/// The sorted `dpkg-query -W` lines of `root`, as `packages.lock` has them.
pub fn dpkg_lines(root: &Path) -> Vec<String> {
    let mut listed: Vec<String> = in_root(
        root,
        &[
            "dpkg-query",
            "-W",
            "-f",
            "${Package} ${Version} ${Architecture}\\n",
        ],
    )
    .lines()
    .map(str::to_string)
    .collect();
    listed.sort();
    listed
}

pub fn lock_lines(generation: &Path) -> Vec<String> {
    text(generation, "packages.lock")
        .lines()
        .map(str::to_string)
        .collect()
}

pub fn in_root(root: &Path, args: &[&str]) -> String {
    run_ok(Process::new("chroot").arg(root).args(args))
}

/// Every path under `dir` with its kind and size, sorted: what a dry run
/// must leave as it was.
pub fn manifest(dir: &Path) -> String {
    run_ok(
        Process::new("find")
            .arg(dir)
            .args(["-printf", "%P %y %s %m\n"]),
    )
    .lines()
    .collect::<std::collections::BTreeSet<_>>()
    .into_iter()
    .collect::<Vec<_>>()
    .join("\n")
}

/// Every path under `dir` with its kind, mode, owner, mtime, size, link
/// target and, for files, content hash, sorted: a tree compared byte for
/// byte.
pub fn full_manifest(dir: &Path) -> String {
    let meta = run_ok(
        Process::new("find")
            .arg(dir)
            .args(["-printf", "%P %y %m %U:%G %T@ %s %l\n"]),
    );
    let hashes = run_ok(Process::new("sh").arg("-c").arg(format!(
        "cd '{}' && find . -type f -print0 | xargs -0 -r sha256sum",
        dir.display()
    )));
    let mut lines: Vec<&str> = meta.lines().chain(hashes.lines()).collect();
    lines.sort_unstable();
    lines.join("\n")
}

/// Fails, showing only the lines that differ, unless two manifests are
/// the same.
pub fn assert_same(what: &str, before: &str, after: &str) {
    let a: std::collections::BTreeSet<&str> = before.lines().collect();
    let b: std::collections::BTreeSet<&str> = after.lines().collect();
    let gone: Vec<&&str> = a.difference(&b).take(20).collect();
    let came: Vec<&&str> = b.difference(&a).take(20).collect();
    assert!(
        gone.is_empty() && came.is_empty(),
        "{what} changed:\n  before only: {gone:#?}\n  after only: {came:#?}"
    );
}
