//! Helpers shared by the kod binary's tests.
#![allow(dead_code)] // each test binary uses part of this module

use std::ffi::OsStr;
use std::path::Path;
use std::process::Output;

use assert_cmd::Command;

pub mod backend;
pub mod machine;

/// `kod ARGS...` with `cache` as its cache; any outcome.
pub fn kod<I, S>(cache: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::cargo_bin("kod")
        .unwrap()
        .env("KOD_CACHE_DIR", cache)
        .args(args)
        .output()
        .unwrap()
}

/// `kod ARGS...` that must succeed; its stdout.
pub fn kod_ok<I, S>(cache: &Path, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<S> = args.into_iter().collect();
    let out = kod(cache, &args);
    assert!(
        out.status.success(),
        "kod {:?} failed:\n{}",
        args.iter().map(|a| a.as_ref()).collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A program that must succeed; its stdout (both outputs in the panic).
pub fn run_ok(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
