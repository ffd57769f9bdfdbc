//! Running dpkg and maintainer scripts in the target: the environment
//! dpkg gives a script, services kept from starting while they run, and
//! dpkg's failure lines turned into an error that names the packages.

use kod_report::Report;

use super::status::{ADMIN, Status, dpkg_version};
use crate::{Error, Output, Ran, Root, Runner, io_error};

/// The environment dpkg gives maintainer script `script` of package
/// `name` (architecture `arch`).
pub(crate) fn script_env(
    status: &Status,
    name: &str,
    arch: &str,
    script: &str,
) -> Vec<(String, String)> {
    vec![
        ("DPKG_MAINTSCRIPT_PACKAGE".into(), name.into()),
        ("DPKG_MAINTSCRIPT_PACKAGE_REFCOUNT".into(), "1".into()),
        ("DPKG_MAINTSCRIPT_ARCH".into(), arch.into()),
        ("DPKG_MAINTSCRIPT_NAME".into(), script.into()),
        ("DPKG_MAINTSCRIPT_DEBUG".into(), "0".into()),
        ("DPKG_RUNNING_VERSION".into(), dpkg_version(status)),
        ("DPKG_ADMINDIR".into(), format!("/{ADMIN}")),
        ("DPKG_ROOT".into(), String::new()),
    ]
}

/// dpkg's error lines: `dpkg: error processing package X (--configure):`
/// followed by the reason.
fn dpkg_failures(lines: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if let Some(rest) = l.strip_prefix("dpkg: error processing package ") {
            let pkg = rest.split_whitespace().next().unwrap_or(rest);
            let why = lines.get(i + 1).map(|s| s.trim()).unwrap_or_default();
            out.push(format!("{pkg}: {why}"));
        } else if let Some(rest) = l.strip_prefix("dpkg: error processing archive ") {
            let why = lines.get(i + 1).map(|s| s.trim()).unwrap_or_default();
            out.push(format!("{rest} {why}"));
        }
    }
    out
}

/// Runs `argv` in the root with services kept from starting, its output
/// lines handed to `on_line`; a failure is an [`Error::Command`] for
/// `step`.
pub(crate) fn run_checked(
    fs: &Root,
    runner: &dyn Runner,
    report: &Report,
    step: String,
    argv: &[&str],
    env: &[(&str, &str)],
    on_line: &dyn Fn(&str),
) -> Result<(), Error> {
    let ran = {
        let _guard = NoServices::install(fs, report)?;
        runner.run_watching(&step, argv, env, on_line)?
    };
    if ran.success {
        return Ok(());
    }
    Err(failed(step, runner, argv, env, ran))
}

/// The error of a command that failed.
pub(crate) fn failed(
    step: String,
    runner: &dyn Runner,
    argv: &[&str],
    env: &[(&str, &str)],
    ran: Ran,
) -> Error {
    Error::Command {
        step,
        command: runner.show(argv, env),
        status: ran.status,
        packages: dpkg_failures(&ran.lines),
        output: Output(ran.tail),
    }
}

/// Keeps services from starting while maintainer scripts run, the way
/// mmdebstrap does: `/usr/sbin/policy-rc.d` exiting 101 and
/// `/sbin/start-stop-daemon` replaced by a stub. Anything already there is
/// moved aside and put back when the guard is dropped.
pub(crate) struct NoServices<'a> {
    fs: &'a Root,
    report: &'a Report,
    undo: Vec<Undo>,
}

enum Undo {
    Remove(&'static str),
    Restore { saved: String, to: &'static str },
}

const POLICY: &str = "usr/sbin/policy-rc.d";
const SSD: &str = "sbin/start-stop-daemon";
const SAVED: &str = ".kod-saved";

impl<'a> NoServices<'a> {
    pub(crate) fn install(fs: &'a Root, report: &'a Report) -> Result<NoServices<'a>, Error> {
        let mut guard = NoServices {
            fs,
            report,
            undo: Vec::new(),
        };
        report.verbose(|| {
            format!(
                "+ write {} (exit 101) and a stub {} for the duration",
                fs.show(POLICY).display(),
                fs.show(SSD).display()
            )
        });
        for (path, text) in [
            (POLICY, "#!/bin/sh\nexit 101\n"),
            (
                SSD,
                "#!/bin/sh\necho \"Warning: Fake start-stop-daemon called, doing nothing\" >&2\n",
            ),
        ] {
            // start-stop-daemon is stubbed only where dpkg installed one.
            if path == SSD && !fs.exists(path).map_err(io_error("stat", fs.show(path)))? {
                continue;
            }
            if !fs
                .exists("usr/sbin")
                .map_err(io_error("stat", fs.show("usr/sbin")))?
            {
                continue;
            }
            if fs.exists(path).map_err(io_error("stat", fs.show(path)))? {
                let saved = format!("{path}{SAVED}");
                fs.rename(path, &saved, true)
                    .map_err(io_error("move aside", fs.show(path)))?;
                guard.undo.push(Undo::Restore { saved, to: path });
            } else {
                guard.undo.push(Undo::Remove(path));
            }
            fs.write(path, text.as_bytes(), 0o755)
                .map_err(io_error("write", fs.show(path)))?;
        }
        Ok(guard)
    }
}

impl Drop for NoServices<'_> {
    fn drop(&mut self) {
        while let Some(u) = self.undo.pop() {
            let r = match &u {
                Undo::Remove(p) => self.fs.remove_file(p),
                Undo::Restore { saved, to } => self.fs.rename(saved, to, false),
            };
            if let Err(e) = r {
                self.report.warning(&format!(
                    "cannot undo the service stubs in {}: {e}",
                    self.fs.path().display()
                ));
            }
        }
    }
}
