//! One boot of an image: its private directory (check disk, console
//! log, report port, a generation's kernel), qemu started, and for a
//! checked boot the wait for the guest's report, with what the console
//! shows watched for the ways a boot fails before it can report.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::io;
use crate::qemu::{Console, Machine, QEMU};
use crate::{Accel, CheckDisk, Firmware, Report, VmError, image};

/// How often the report and the console are read while waiting.
const POLL: Duration = Duration::from_millis(200);

/// How long a guest that reported and powers off gets to end qemu.
const POWEROFF_GRACE: Duration = Duration::from_secs(60);

/// How long qemu is left after the console showed a fatal failure (a
/// panicking kernel ends it itself through pvpanic).
const FAILURE_GRACE: Duration = Duration::from_secs(3);

/// The console lines kept for the end of a failed boot's message.
pub const TAIL_LINES: usize = 30;

/// Console texts that mean the boot failed and no report will come.
const FATAL: &[(&str, &str)] = &[
    ("Kernel panic", "the kernel panicked"),
    (
        "You are in emergency mode",
        "the guest went into emergency mode",
    ),
    ("You are in rescue mode", "the guest went into rescue mode"),
    (
        "Dropping to a shell",
        "the initramfs gave up and dropped to a shell",
    ),
];

/// What to boot.
#[derive(Debug, Clone)]
pub struct Request {
    /// The disk image.
    pub image: PathBuf,
    /// A generation to boot once directly, instead of the default entry.
    pub generation: Option<u64>,
    /// The check commands, for a checked boot; `None` for an interactive one.
    pub checks: Option<Vec<String>>,
    /// The accelerator.
    pub accel: Accel,
}

/// A boot ready to start.
#[derive(Debug)]
pub struct Boot {
    /// Its private directory; removed with the boot unless kept.
    pub dir: tempfile::TempDir,
    /// The machine qemu makes.
    pub machine: Machine,
    /// The generation asked for, checked against the report.
    pub generation: Option<u64>,
}

/// Something that shows a checked boot's progress (the binary draws it).
pub trait Watch {
    /// Called about five times a second while waiting.
    fn tick(&self, _elapsed: Duration) {}
    /// Each line the console prints, escape sequences removed.
    fn console(&self, _line: &str) {}
}

/// How a checked boot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ending {
    /// The guest booted and reported: no failed unit, every check passed.
    Booted,
    /// The guest failed: a panic, emergency mode, a failed unit or check.
    Failed,
    /// No report within the time allowed.
    Timeout,
}

/// A checked boot's result.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// How it ended.
    pub ending: Ending,
    /// Why it failed or timed out.
    pub reason: Option<String>,
    /// What the guest reported.
    pub report: Report,
    /// Seconds from starting qemu to the end.
    pub seconds: f64,
    /// The console log; its directory is kept when the boot did not pass.
    pub console_log: PathBuf,
    /// The console's last lines.
    pub console_tail: Vec<String>,
}

impl Outcome {
    /// `kod vm`'s exit status: 0 booted, 1 failed, 3 timed out.
    pub fn exit_code(&self) -> u8 {
        match self.ending {
            Ending::Booted => 0,
            Ending::Failed => 1,
            Ending::Timeout => 3,
        }
    }
}

impl Boot {
    /// Prepares `request`: the firmware, the image's variable store (a
    /// throwaway copy of it for a direct boot, which must leave the
    /// loader's state alone), a generation's kernel, the check disk.
    pub fn prepare(request: &Request, firmware: &Firmware) -> Result<Boot, VmError> {
        let dir = tempfile::Builder::new()
            .prefix("kod-vm-")
            .tempdir()
            .map_err(io("make a directory in", std::env::temp_dir()))?;
        fs::metadata(&request.image).map_err(io("read the image", &request.image))?;
        let mut vars = firmware.vars_for(&request.image)?;
        let direct = match request.generation {
            Some(n) => {
                let copy = dir.path().join("efivars");
                fs::copy(&vars, &copy).map_err(io("copy the variable store to", &copy))?;
                vars = copy;
                Some(image::generation_boot(&request.image, n, dir.path())?)
            }
            None => None,
        };
        let check_disk = match &request.checks {
            Some(commands) => Some(CheckDisk::create(dir.path(), commands, true)?.path),
            None => None,
        };
        let console = match request.checks {
            Some(_) => Console::File(dir.path().join("console.log")),
            None => Console::Terminal,
        };
        let machine = Machine {
            image: request.image.clone(),
            firmware_code: firmware.code.clone(),
            vars,
            accel: request.accel,
            direct,
            check_disk,
            console,
            report_port: dir.path().join("report"),
        };
        Ok(Boot {
            dir,
            machine,
            generation: request.generation,
        })
    }

    /// The qemu command.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(QEMU);
        cmd.args(self.machine.args());
        cmd
    }

    /// Boots with the console on the terminal until qemu ends: its status,
    /// and what the guest reported if it did.
    pub fn interactive(self) -> Result<(ExitStatus, Report), VmError> {
        let status = spawn(self.command())?
            .wait()
            .map_err(io("wait for", QEMU))?;
        let report = Report::parse(&fs::read(&self.machine.report_port).unwrap_or_default());
        Ok((status, report))
    }

    /// Boots, waits up to `timeout` for the report and for the guest to
    /// power off, and judges the boot. The private directory is kept when
    /// the boot did not pass, for its console log.
    pub fn check(self, timeout: Duration, watch: &dyn Watch) -> Result<Outcome, VmError> {
        let Console::File(log) = self.machine.console.clone() else {
            unreachable!("a checked boot's console goes to a file");
        };
        let qemu_log = self.dir.path().join("qemu.log");
        let mut cmd = self.command();
        let out = File::create(&qemu_log).map_err(io("make", &qemu_log))?;
        let err = out.try_clone().map_err(io("open", &qemu_log))?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let mut child = spawn(cmd)?;
        let started = Instant::now();
        let mut console = Tail::new(&log);
        let waited = wait(
            &mut child,
            &self.machine.report_port,
            &mut console,
            timeout,
            started,
            watch,
        );
        // Whatever happened, qemu does not outlive the check.
        let _ = child.kill();
        let status = child.wait().map_err(io("wait for", QEMU))?;
        console.read(watch);
        let (report, ended) = waited?;
        let qemu_said = fs::read_to_string(&qemu_log).unwrap_or_default();
        let (ending, reason) = judge(&report, ended, status, qemu_said.trim(), self.generation);
        let mut dir = self.dir;
        dir.disable_cleanup(ending != Ending::Booted);
        Ok(Outcome {
            ending,
            reason,
            report,
            seconds: started.elapsed().as_secs_f64(),
            console_log: log,
            console_tail: console.last.into_iter().collect(),
        })
    }
}

fn spawn(mut cmd: Command) -> Result<Child, VmError> {
    cmd.spawn().map_err(|source| VmError::Spawn {
        program: QEMU.into(),
        package: "qemu-system-x86",
        source,
    })
}

/// Why the waiting stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ended {
    /// The report's `end` came (and qemu ended or was given up on).
    Reported,
    /// qemu ended before the report did.
    QemuExited,
    /// The console showed a fatal failure.
    Console(&'static str),
    /// Time ran out.
    Timeout(Duration),
}

/// Polls the report and the console until the report is whole and qemu
/// ends, qemu ends, the console shows a fatal failure, or time runs out.
fn wait(
    child: &mut Child,
    port: &Path,
    console: &mut Tail,
    timeout: Duration,
    started: Instant,
    watch: &dyn Watch,
) -> Result<(Report, Ended), VmError> {
    let mut reported: Option<Instant> = None;
    let mut fatal: Option<(&'static str, Instant)> = None;
    loop {
        let exited = child.try_wait().map_err(io("wait for", QEMU))?.is_some();
        let report = Report::parse(&fs::read(port).unwrap_or_default());
        if fatal.is_none()
            && let Some(why) = console.read(watch)
        {
            fatal = Some((why, Instant::now()));
        }
        if report.complete {
            let at = *reported.get_or_insert_with(Instant::now);
            if exited || at.elapsed() > POWEROFF_GRACE {
                return Ok((report, Ended::Reported));
            }
        } else if let Some((why, at)) = fatal {
            if exited || at.elapsed() > FAILURE_GRACE {
                return Ok((report, Ended::Console(why)));
            }
        } else if exited {
            return Ok((report, Ended::QemuExited));
        }
        // A whole report has its own grace for the power-off.
        if !report.complete && started.elapsed() > timeout {
            return Ok((report, Ended::Timeout(timeout)));
        }
        watch.tick(started.elapsed());
        sleep(POLL);
    }
}

/// The verdict on a boot.
fn judge(
    report: &Report,
    ended: Ended,
    qemu: ExitStatus,
    qemu_said: &str,
    generation: Option<u64>,
) -> (Ending, Option<String>) {
    let failed = |why: String| (Ending::Failed, Some(why));
    match ended {
        Ended::Timeout(t) => {
            return (
                Ending::Timeout,
                Some(format!(
                    "no complete report from the guest within {} s",
                    t.as_secs()
                )),
            );
        }
        Ended::Console(why) => return failed(why.to_string()),
        // pvpanic: exit-failure ends qemu with status 1, saying nothing.
        Ended::QemuExited if qemu.code() == Some(1) && qemu_said.is_empty() => {
            return failed("the guest panicked (pvpanic)".into());
        }
        Ended::QemuExited => {
            let said = if qemu_said.is_empty() {
                String::new()
            } else {
                format!(": {qemu_said}")
            };
            return failed(format!(
                "qemu ended ({qemu}) before the guest reported{said}"
            ));
        }
        Ended::Reported => {}
    }
    if let (Some(want), Some(got)) = (generation, report.generation)
        && want != got
    {
        return failed(format!("generation {got} booted, not generation {want}"));
    }
    if !report.failed.is_empty() {
        return failed(format!("failed units: {}", report.failed.join(", ")));
    }
    let bad: Vec<String> = report
        .runs
        .iter()
        .filter(|r| r.status != Some(0))
        .map(|r| match r.status {
            Some(s) => format!("`{}` exited with status {s}", r.command),
            None => format!("`{}` did not finish", r.command),
        })
        .collect();
    if !bad.is_empty() {
        return failed(bad.join("; "));
    }
    (Ending::Booted, None)
}

/// The console log, read as it grows: whole lines, escapes removed, the
/// last [`TAIL_LINES`] kept.
struct Tail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    last: VecDeque<String>,
}

impl Tail {
    fn new(path: &Path) -> Tail {
        Tail {
            path: path.to_path_buf(),
            offset: 0,
            partial: Vec::new(),
            last: VecDeque::new(),
        }
    }

    /// Reads what was added; the first fatal text among its lines.
    fn read(&mut self, watch: &dyn Watch) -> Option<&'static str> {
        let mut bytes = Vec::new();
        if let Ok(mut f) = File::open(&self.path)
            && f.seek(SeekFrom::Start(self.offset)).is_ok()
        {
            let _ = f.read_to_end(&mut bytes);
        }
        self.offset += bytes.len() as u64;
        self.partial.extend(bytes);
        let mut fatal = None;
        while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = self.partial.drain(..=i).collect();
            let line = plain(&String::from_utf8_lossy(&raw));
            if fatal.is_none() {
                fatal = FATAL
                    .iter()
                    .find(|(text, _)| line.contains(text))
                    .map(|(_, why)| *why);
            }
            watch.console(&line);
            if self.last.len() == TAIL_LINES {
                self.last.pop_front();
            }
            self.last.push_back(line);
        }
        fatal
    }
}

/// A console line without its terminal escape sequences and control
/// characters (OVMF clears and positions the screen).
fn plain(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // ESC [ parameters final-byte, or ESC and one character.
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else if !c.is_control() || c == '\t' {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    fn status(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    fn report(text: &str) -> Report {
        Report::parse(text.as_bytes())
    }

    #[test]
    fn escapes_are_removed_from_console_lines() {
        assert_eq!(
            plain("\x1b[2J\x1b[01;01H\x1b[=3hBdsDxe: loading Boot0001\r\n"),
            "BdsDxe: loading Boot0001"
        );
        assert_eq!(plain("[    1.0] ok\t!"), "[    1.0] ok\t!");
    }

    #[test]
    fn verdicts() {
        let good = report(
            "kod-report: begin 1\nkod-report: generation 2\nkod-report: run 1 true\nkod-report: status 1 0\nkod-report: end\n",
        );
        assert_eq!(
            judge(&good, Ended::Reported, status(0), "", Some(2)),
            (Ending::Booted, None)
        );
        assert_eq!(
            judge(&good, Ended::Reported, status(0), "", None).0,
            Ending::Booted
        );
        let (e, why) = judge(&good, Ended::Reported, status(0), "", Some(3));
        assert_eq!(
            (e, why.unwrap()),
            (
                Ending::Failed,
                "generation 2 booted, not generation 3".into()
            )
        );

        let unit =
            report("kod-report: failed a.service\nkod-report: failed b.mount\nkod-report: end\n");
        assert_eq!(
            judge(&unit, Ended::Reported, status(0), "", None)
                .1
                .unwrap(),
            "failed units: a.service, b.mount"
        );
        let check = report(
            "kod-report: run 1 cowsay hi\nkod-report: status 1 127\nkod-report: run 2 sleep 9\nkod-report: end\n",
        );
        assert_eq!(
            judge(&check, Ended::Reported, status(0), "", None)
                .1
                .unwrap(),
            "`cowsay hi` exited with status 127; `sleep 9` did not finish"
        );

        let none = Report::default();
        assert_eq!(
            judge(&none, Ended::QemuExited, status(1), "", None),
            (Ending::Failed, Some("the guest panicked (pvpanic)".into()))
        );
        let (_, why) = judge(
            &none,
            Ended::QemuExited,
            status(1),
            "qemu: could not open disk",
            None,
        );
        assert!(
            why.unwrap()
                .ends_with("before the guest reported: qemu: could not open disk")
        );
        assert_eq!(
            judge(
                &none,
                Ended::Console("the kernel panicked"),
                status(0),
                "",
                None
            )
            .1
            .unwrap(),
            "the kernel panicked"
        );
        let (e, why) = judge(
            &none,
            Ended::Timeout(Duration::from_secs(5)),
            status(9),
            "",
            None,
        );
        assert_eq!(e, Ending::Timeout);
        assert!(why.unwrap().contains("within 5 s"));
    }

    #[test]
    fn the_console_is_read_in_whole_lines_as_it_grows() {
        struct Seen(std::cell::RefCell<Vec<String>>);
        impl Watch for Seen {
            fn console(&self, line: &str) {
                self.0.borrow_mut().push(line.to_string());
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let seen = Seen(Default::default());
        let mut tail = Tail::new(&log);
        assert_eq!(tail.read(&seen), None);
        fs::write(&log, "one\r\ntw").unwrap();
        assert_eq!(tail.read(&seen), None);
        fs::write(
            &log,
            "one\r\ntwo\n[ 3.1] Kernel panic - not syncing: Attempted to kill init!\n",
        )
        .unwrap();
        assert_eq!(tail.read(&seen), Some("the kernel panicked"));
        assert_eq!(seen.0.borrow().len(), 3);
        assert_eq!(seen.0.borrow()[1], "two");
        for i in 0..40 {
            let mut f = fs::OpenOptions::new().append(true).open(&log).unwrap();
            std::io::Write::write_all(&mut f, format!("line {i}\n").as_bytes()).unwrap();
        }
        tail.read(&seen);
        assert_eq!(tail.last.len(), TAIL_LINES);
        assert_eq!(tail.last.back().unwrap(), "line 39");
    }
}
