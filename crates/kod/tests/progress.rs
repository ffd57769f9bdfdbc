//! What `kod bootstrap` shows while it works (net and root tiers): on a
//! terminal (stderr on a pseudo-terminal) bars that are redrawn with
//! changing counts for fetch, unpack and configure; with stderr in a file,
//! plain lines when each stage starts and ends, and no control characters.

use std::collections::BTreeSet;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use kod_testkit::{Tier, tiers};
use regex::Regex;
use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::{OptionalActions, Winsize};

/// The stages whose progress a bootstrap shows.
const STAGES: [&str; 3] = ["fetch", "unpack", "configure"];

/// `kod bootstrap debian:bookworm DIR` (minbase) with a cache of its own
/// (so there is something to fetch), stderr to `stderr`.
fn bootstrap(dir: &Path, cache: &Path, stderr: Stdio) -> std::io::Result<std::process::Child> {
    Command::new(env!("CARGO_BIN_EXE_kod"))
        .env("KOD_CACHE_DIR", cache)
        // Downloads from a near mirror take a tenth of a second: redraw
        // often enough to see the fetch bar move.
        .env("KOD_PROGRESS_HZ", "255")
        .args(["bootstrap", "debian:bookworm"])
        .arg(dir)
        .args(["--variant", "minbase"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
}

fn check(out: &Output, stderr: &str, dir: &Path) {
    assert!(out.status.success(), "kod bootstrap failed:\n{stderr}");
    assert!(
        dir.join("var/lib/dpkg/status").is_file(),
        "no root in {}",
        dir.display()
    );
}

/// A pseudo-terminal of 120 columns that passes bytes through unchanged
/// (raw: no `\n` turned into `\r\n`, so every `\r` is kod's): the master,
/// and the terminal side to give the child.
fn pty() -> (OwnedFd, OwnedFd) {
    let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    rustix::pty::grantpt(&master).unwrap();
    rustix::pty::unlockpt(&master).unwrap();
    let name = rustix::pty::ptsname(&master, Vec::new()).unwrap();
    let side = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    let mut termios = rustix::termios::tcgetattr(&side).unwrap();
    termios.make_raw();
    rustix::termios::tcsetattr(&side, OptionalActions::Now, &termios).unwrap();
    rustix::termios::tcsetwinsize(
        &side,
        Winsize {
            ws_row: 40,
            ws_col: 120,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )
    .unwrap();
    (master, side)
}

/// Everything written to the terminal until its last writer closes it.
fn read_all(master: OwnedFd) -> Vec<u8> {
    let mut file = std::fs::File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 1 << 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // Linux answers EIO once no process has the terminal side open.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => break,
            Err(e) => panic!("reading the pseudo-terminal: {e}"),
        }
    }
    out
}

/// The frames drawn on a terminal: the text between carriage returns and
/// newlines, without escape sequences.
fn frames(raw: &str) -> Vec<String> {
    let escapes = Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]").unwrap();
    escapes
        .replace_all(raw, "\n")
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect()
}

/// The done counts that frames of `stage`'s bar show (`45/90 files`,
/// `12/90 packages`, or `12 packages` while the total is not known).
fn counts(frames: &[String], stage: &str) -> BTreeSet<u64> {
    let bar = Regex::new(&format!(
        r"^{stage}\s.*?\s(\d+)(?:/\d+)? (?:files?|packages?)\b"
    ))
    .unwrap();
    frames
        .iter()
        .filter_map(|f| bar.captures(f))
        .map(|c| c[1].parse().unwrap())
        .collect()
}

#[test]
fn net_root_bootstrap_redraws_bars_on_a_terminal_and_writes_plain_lines_to_a_file() {
    if !tiers(&[Tier::Root, Tier::Net]) {
        return;
    }
    let work = tempfile::tempdir_in("/var/tmp").unwrap();

    // stderr to a file.
    let log = work.path().join("stderr.log");
    let dir = work.path().join("plain");
    let cache = tempfile::tempdir().unwrap();
    let file = Stdio::from(std::fs::File::create(&log).unwrap());
    let out = bootstrap(&dir, cache.path(), file)
        .unwrap()
        .wait_with_output()
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    check(&out, &text, &dir);

    // stderr on a terminal.
    let dir = work.path().join("terminal");
    let cache = tempfile::tempdir().unwrap();
    let (master, side) = pty();
    let reader = std::thread::spawn(move || read_all(master));
    // Given away, `side` is only the child's: the reader ends when it exits.
    let out = bootstrap(&dir, cache.path(), Stdio::from(side))
        .unwrap()
        .wait_with_output()
        .unwrap();
    let raw = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    check(&out, &raw, &dir);
    let frames = frames(&raw);

    // In a file: nothing redrawn, no control characters.
    let control: Vec<char> = text
        .chars()
        .filter(|c| c.is_control() && *c != '\n' && *c != '\t')
        .collect();
    assert!(
        control.is_empty(),
        "control characters {control:?} in:\n{text}"
    );
    // On the terminal: bars drawn over themselves.
    assert!(
        raw.contains('\r') && raw.contains("\x1b["),
        "nothing was redrawn:\n{raw:?}"
    );
    // Stage by stage, in pipeline order (fetch is kod-fetch's; unpack and
    // configure are reported by kod-install).
    for stage in STAGES {
        let start = Regex::new(&format!(
            r"(?m)^kod: {stage}: \d+ (files|packages)(, .*B)?$"
        ))
        .unwrap();
        let end = Regex::new(&format!(
            r"(?m)^kod: {stage}: done, \d+ (files|packages)(, .*B)? in \d+\.\d\d s( \(.*/s\))?$"
        ))
        .unwrap();
        assert!(
            start.is_match(&text) && end.is_match(&text),
            "no start and end lines for {stage} in the file:\n{text}"
        );
        let seen = counts(&frames, stage);
        assert!(
            seen.len() >= 2,
            "the {stage} bar was not redrawn with changing counts (counts seen: {seen:?}); \
             frames:\n{}",
            frames.join("\n")
        );
        // The end line stays above the cleared bars.
        assert!(
            frames
                .iter()
                .any(|f| f.starts_with(&format!("kod: {stage}: done, "))),
            "no end line for {stage} on the terminal; frames:\n{}",
            frames.join("\n")
        );
    }
}

#[test]
fn frames_and_counts_read_indicatifs_redraws() {
    let raw = "\r\x1b[2K    fetch [00:00:01] ##-- 1.00 MB/9.00 MB 1.00 MB/s 3/40 files\
               \r\x1b[2K    fetch [00:00:02] ###- 5.00 MB/9.00 MB 2.50 MB/s 21/40 files\n\
               kod: fetch: done, 40 files, 9.00 MB in 3.10 s (2.90 MB/s)\n\
               \x1b[1A\x1b[2K   unpack [00:00:00] #--- 7/40 packages libc6\r\
               configure [00:00:01] - 12 packages dpkg";
    let frames = frames(raw);
    assert_eq!(counts(&frames, "fetch"), BTreeSet::from([3, 21]));
    assert_eq!(counts(&frames, "unpack"), BTreeSet::from([7]));
    assert_eq!(counts(&frames, "configure"), BTreeSet::from([12]));
    assert!(frames.contains(&"kod: fetch: done, 40 files, 9.00 MB in 3.10 s (2.90 MB/s)".into()));
}
