//! Test support shared by kod's crates: the tier switches of DESIGN.md.
//!
//! A test that needs root, the network or a virtual machine starts with
//! `if !kod_testkit::tier(Tier::Root) { return; }`. With its switch off the
//! test is skipped, loudly; with its switch on it must run: a missing
//! prerequisite is a failure, never a quiet skip. `KOD_TEST_NO_SKIP=1` (set by
//! `.ci/run`) turns every skip into a failure, so CI cannot pass a tier it
//! did not run.
#![deny(missing_docs)]

pub mod apt;
pub mod btrfs;
pub mod debrepo;
pub mod debs;
pub mod fixtures;
pub mod golden;
pub mod http;
pub mod loopfs;
pub mod tree;

use std::env;

/// A test tier and the environment switch that enables it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Root, loop devices, btrfs, mounts, namespaces: `KOD_TEST_ROOT=1`.
    Root,
    /// The Debian archive through the host's apt sources: `KOD_TEST_NET=1`.
    Net,
    /// qemu and OVMF: `KOD_TEST_VM=1`.
    Vm,
}

impl Tier {
    /// The environment variable that switches this tier on.
    pub fn switch(self) -> &'static str {
        match self {
            Tier::Root => "KOD_TEST_ROOT",
            Tier::Net => "KOD_TEST_NET",
            Tier::Vm => "KOD_TEST_VM",
        }
    }

    fn enabled(self) -> bool {
        switch_on(self.switch())
    }
}

fn switch_on(name: &str) -> bool {
    matches!(env::var(name).as_deref(), Ok("1") | Ok("true") | Ok("yes"))
}

/// Whether every tier in `tiers` is switched on. When one is not, prints a
/// skip line naming the switch and returns false (the caller returns), or
/// panics when `KOD_TEST_NO_SKIP=1`. When all are on, checks that the process
/// runs as root if `Tier::Root` is among them, and panics if not.
pub fn tiers(tiers: &[Tier]) -> bool {
    for &t in tiers {
        if !t.enabled() {
            let msg = format!("KOD-TIER-SKIP: {} is not set to 1", t.switch());
            if switch_on("KOD_TEST_NO_SKIP") {
                panic!("{msg}, but KOD_TEST_NO_SKIP=1 forbids skipping");
            }
            eprintln!("{msg}");
            return false;
        }
    }
    if tiers.contains(&Tier::Root) && !is_root() {
        panic!("KOD_TEST_ROOT=1 but this test is not running as root");
    }
    true
}

/// Shorthand for [`tiers`] with one tier.
pub fn tier(t: Tier) -> bool {
    tiers(&[t])
}

/// Fails unless `text` contains `expected`, showing both.
#[track_caller]
pub fn assert_contains(text: &str, expected: &str) {
    assert!(text.contains(expected), "expected {expected:?} in:\n{text}");
}

/// Fails unless `differences` is empty, saying how many there are and
/// listing the first `shown` of them, under `what`.
pub fn assert_no_differences(what: &str, differences: &[String], shown: usize) {
    assert!(
        differences.is_empty(),
        "{what}: {} differences, the first {shown}:\n{}",
        differences.len(),
        differences[..differences.len().min(shown)].join("\n")
    );
}

fn is_root() -> bool {
    // The effective uid, read from /proc to keep this crate free of libc.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Runs `cmd`, which must succeed; its standard output (both outputs in
/// the panic otherwise).
pub fn run_ok(cmd: &mut std::process::Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
