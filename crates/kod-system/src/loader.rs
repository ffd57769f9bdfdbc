//! The target's own boot-loader automation kept from fighting kod over the
//! ESP, and systemd's boot assessment switched on, for a machine kod boots
//! with systemd-boot.
//!
//! Only kod writes to the ESP: it copies each generation's kernel under a
//! content-derived name and writes one entry per generation. Debian's
//! `systemd-boot` package would also do it, from inside the generation:
//! its kernel hooks (`zz-systemd-boot`) run `kernel-install add`, which
//! writes an entry of its own per kernel version, and
//! `systemd-boot-update.service` replaces the loader on the ESP at boot.
//! `layout=other` in `/etc/kernel/install.conf` makes `kernel-install`
//! leave the ESP alone (its `90-loaderentry` plugin acts only for the
//! `bls` layout), and the update service is masked.
//!
//! Boot counting needs `systemd-boot-check-no-failures.service` (Debian's
//! preset leaves it disabled): it is what fails `boot-complete.target`
//! when a unit failed, so that the boot is not blessed. It is linked into
//! `boot-complete.target.requires/` as its `[Install]` section says
//! (`RequiredBy=boot-complete.target`), and unlinked again when the
//! configuration turns counting off (`boot.loader.tries = 0`).

use std::path::{Path, PathBuf};

use kod_config::LoaderKind;

use crate::Input;
use crate::error::Error;
use crate::planner::{Node, Planner};
use crate::units;

/// The configuration key of these changes.
pub const KEY: &str = "boot.loader";
/// kernel-install's configuration.
pub const INSTALL_CONF: &str = "/etc/kernel/install.conf";
/// Its text: kernel-install installs no entries; kod does.
pub const INSTALL_CONF_TEXT: &str = "# Written by kod: kod writes the boot entries on the ESP, one per\n\
     # generation, so kernel-install must not (layout=other: no entries).\n\
     layout=other\n";
/// The unit that would replace systemd-boot on the ESP at boot.
pub const UPDATE_UNIT: &str = "systemd-boot-update.service";
/// The unit that keeps a boot with failed units from being blessed.
pub const CHECK_UNIT: &str = "systemd-boot-check-no-failures.service";
/// Where the check is linked to be required by `boot-complete.target`.
pub const CHECK_LINK: &str =
    "/etc/systemd/system/boot-complete.target.requires/systemd-boot-check-no-failures.service";

/// Plans the changes for a machine booted by systemd-boot with a kernel;
/// nothing for others.
pub(crate) fn plan(p: &mut Planner, input: &Input) -> Result<(), Error> {
    let boot = &input.plan.boot;
    if boot.kernel_package.is_none() || boot.loader != LoaderKind::SystemdBoot {
        return Ok(());
    }
    p.dirs(KEY, Path::new("/etc/kernel"), 0o755, (0, 0))?;
    p.write(KEY, INSTALL_CONF, INSTALL_CONF_TEXT, 0o644, (0, 0))?;
    let mask = Path::new(units::SYSTEM_DIRS[0]).join(UPDATE_UNIT);
    p.symlink(KEY, mask, "/dev/null", (0, 0))?;
    plan_check(p, boot.tries > 0)
}

/// Links the no-failures check when boots are counted, unlinks it when
/// they are not.
fn plan_check(p: &mut Planner, counting: bool) -> Result<(), Error> {
    let link = PathBuf::from(CHECK_LINK);
    let key = "boot.loader.tries";
    if !counting {
        if p.node(&link)? != Node::Absent {
            p.remove(key, link);
        }
        return Ok(());
    }
    let dirs: Vec<PathBuf> = units::SYSTEM_DIRS.iter().map(PathBuf::from).collect();
    let Some(unit) = units::find(p, &dirs, CHECK_UNIT)? else {
        return Err(Error::Missing {
            key: key.into(),
            path: PathBuf::from("/lib/systemd/system").join(CHECK_UNIT),
            hint: "boot counting needs systemd's no-failures check (package `systemd`, 250 \
                   or later): install systemd or set `boot.loader.tries = 0`"
                .into(),
        });
    };
    p.dirs(key, link.parent().expect("a directory"), 0o755, (0, 0))?;
    p.symlink(key, link, &unit.path, (0, 0))?;
    Ok(())
}
