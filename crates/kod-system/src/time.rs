//! The timezone: `/etc/localtime` a symlink into the root's zoneinfo,
//! `/etc/timezone` its name (Debian's tzdata reads both).

use std::path::{Path, PathBuf};

use crate::Input;
use crate::error::Error;
use crate::planner::{Node, Planner};

const KEY: &str = "locale.timezone";

/// Plans the timezone; nothing when none is configured.
pub(crate) fn plan(p: &mut Planner, input: &Input) -> Result<(), Error> {
    let Some(zone) = &input.config.locale.timezone else {
        return Ok(());
    };
    let target = PathBuf::from("/usr/share/zoneinfo").join(zone);
    let plain = !zone.is_empty()
        && !zone.starts_with('/')
        && Path::new(zone)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    let exists = plain && matches!(p.node(&target)?, Node::File { .. } | Node::Symlink(_));
    if !exists {
        return Err(Error::UnknownTimezone {
            key: KEY.into(),
            zone: zone.clone(),
            path: target,
        });
    }
    p.symlink(KEY, "/etc/localtime", target, (0, 0))?;
    p.write(KEY, "/etc/timezone", format!("{zone}\n"), 0o644, (0, 0))?;
    Ok(())
}
