//! KVM or TCG. /dev/kvm existing is not enough: on some hosts (nested
//! virtualisation) KVM runs trivial guests but OVMF dies at once under
//! it ("KVM internal error", or a failed MSR write). So KVM is used only
//! when the firmware itself boots under it: a probe starts OVMF with no
//! disk and waits for its boot manager's first line on the serial console
//! (well under a second with KVM; TCG needs about 4 s).

use std::fmt;
use std::fs::{self, OpenOptions};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::io;
use crate::qemu::{QEMU, escape};
use crate::{Firmware, VmError};

/// How long the probe gives OVMF under KVM to print its boot manager's line.
const PROBE_TIME: Duration = Duration::from_secs(5);

/// What OVMF's boot manager prints first on the console.
const BDS_LINE: &[u8] = b"BdsDxe";

/// qemu's accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualisation, `-accel kvm -cpu host`.
    Kvm,
    /// Software emulation, `-accel tcg`.
    Tcg,
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

/// The accelerator chosen, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The accelerator.
    pub accel: Accel,
    /// Why: what the probe saw.
    pub why: String,
}

/// Probes KVM with `firmware` in the scratch directory `dir`: KVM when
/// OVMF reaches its boot manager under it, else TCG.
pub fn choose(firmware: &Firmware, dir: &Path) -> Result<Choice, VmError> {
    let tcg = |why: String| Choice {
        accel: Accel::Tcg,
        why,
    };
    if OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return Ok(tcg("/dev/kvm cannot be opened".into()));
    }
    let vars = dir.join("probe.efivars");
    fs::copy(&firmware.vars_template, &vars)
        .map_err(io("copy the firmware's variables to", &vars))?;
    let console = dir.join("probe-console.log");
    let mut cmd = Command::new(QEMU);
    cmd.args([
        "-nodefaults",
        "-display",
        "none",
        "-nic",
        "none",
        "-no-reboot",
    ])
    .args([
        "-machine", "q35", "-accel", "kvm", "-cpu", "host", "-m", "256",
    ])
    .arg("-drive")
    .arg(format!(
        "if=pflash,format=raw,unit=0,readonly=on,file={}",
        escape(&firmware.code)
    ))
    .arg("-drive")
    .arg(format!(
        "if=pflash,format=raw,unit=1,file={}",
        escape(&vars)
    ))
    .arg("-serial")
    .arg(format!("file:{}", console.display()))
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| VmError::Spawn {
        program: QEMU.into(),
        package: "qemu-system-x86",
        source,
    })?;
    let started = Instant::now();
    let choice = loop {
        if fs::read(&console).is_ok_and(|c| c.windows(BDS_LINE.len()).any(|w| w == BDS_LINE)) {
            break Choice {
                accel: Accel::Kvm,
                why: format!(
                    "OVMF booted under KVM in {:.1} s",
                    started.elapsed().as_secs_f64()
                ),
            };
        }
        if child.try_wait().map_err(io("wait for", QEMU))?.is_some() {
            break tcg("OVMF fails under KVM on this host".into());
        }
        if started.elapsed() > PROBE_TIME {
            break tcg(format!(
                "OVMF printed nothing under KVM in {} s",
                PROBE_TIME.as_secs()
            ));
        }
        sleep(Duration::from_millis(50));
    };
    // Gone already, or no longer needed.
    let _ = child.kill();
    let out = child.wait_with_output().map_err(io("wait for", QEMU))?;
    Ok(match choice.accel {
        Accel::Tcg if !out.stderr.is_empty() => {
            let said = String::from_utf8_lossy(&out.stderr);
            let first = said.lines().next().unwrap_or_default().trim().to_string();
            tcg(format!("{}: {first}", choice.why))
        }
        _ => choice,
    })
}
