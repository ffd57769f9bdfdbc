//! kod's boot report in every generation that boots: the unit and script
//! of `kod vm`'s protocol ([`kod_vm::guest`]), enabled for
//! `multi-user.target` as `systemctl enable` would. On a machine booted
//! outside `kod vm` it writes a few lines to a serial port nobody reads
//! and ends.

use std::path::Path;

use crate::Input;
use crate::error::Error;
use crate::planner::Planner;

/// The configuration key of these changes.
const KEY: &str = "boot";
/// Where the unit is enabled.
const WANTS: &str = "/etc/systemd/system/multi-user.target.wants";

/// Plans the report's files and its enabling link for a machine with a
/// kernel.
pub(crate) fn plan(p: &mut Planner, input: &Input) -> Result<(), Error> {
    if input.plan.boot.kernel_package.is_none() {
        return Ok(());
    }
    for (path, content, mode) in kod_vm::guest::FILES {
        let path = Path::new(path);
        p.dirs(KEY, path.parent().expect("a directory"), 0o755, (0, 0))?;
        p.write(KEY, path, *content, *mode, (0, 0))?;
    }
    let unit = kod_vm::guest::FILES
        .iter()
        .map(|(path, _, _)| *path)
        .find(|path| path.ends_with(kod_vm::guest::UNIT_NAME))
        .expect("the report's unit is among its files");
    p.dirs(KEY, Path::new(WANTS), 0o755, (0, 0))?;
    p.symlink(
        KEY,
        Path::new(WANTS).join(kod_vm::guest::UNIT_NAME),
        unit,
        (0, 0),
    )?;
    Ok(())
}
