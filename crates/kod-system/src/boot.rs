//! The initramfs's extra modules: `boot.kernel.modules` in
//! initramfs-tools' `/etc/initramfs-tools/modules` (KodOS ignores them),
//! so the initramfs kod builds loads them at boot; with dracut, in a
//! configuration file of kod's own that also makes the image generic
//! (`hostonly="no"`: an image boots on other machines than the one that
//! built it).
//!
//! kod's lines are a block of their own after the distribution's: planning
//! again replaces the block, so a module taken out of the configuration
//! leaves the file too, and lines the administrator wrote stay.

use std::path::Path;

use crate::Input;
use crate::error::Error;
use crate::planner::Planner;

/// The configuration key of the modules (the key of its changes).
pub const KEY: &str = "boot.kernel.modules";
/// initramfs-tools' list of modules to add.
pub const MODULES_FILE: &str = "/etc/initramfs-tools/modules";
/// dracut's configuration file of kod's (read after the distribution's).
pub const DRACUT_FILE: &str = "/etc/dracut.conf.d/90-kod.conf";
/// The line that opens kod's block; everything after it is kod's.
const BLOCK: &str = "# Added by kod (boot.kernel.modules); kod rewrites what follows:";

/// Whether `name` is a module name: letters, digits, `_` and `-`.
fn valid(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The modules file with kod's block holding `modules`, after the
/// distribution's lines (an earlier block of kod's taken out first).
pub fn with_modules(text: &str, modules: &[String]) -> String {
    let mut out: String = text
        .lines()
        .take_while(|l| *l != BLOCK)
        .flat_map(|l| [l, "\n"])
        .collect();
    if !modules.is_empty() {
        out.push_str(BLOCK);
        out.push('\n');
        for m in modules {
            out.push_str(m);
            out.push('\n');
        }
    }
    out
}

/// kod's dracut configuration: a generic image with `modules` added.
pub fn dracut_conf(modules: &[String]) -> String {
    let mut out = String::from(
        "# Written by kod (boot.kernel); kod rewrites this file.\n\
         # A generic image, not one for the machine that built it.\nhostonly=\"no\"\n",
    );
    if !modules.is_empty() {
        out.push_str(&format!("add_drivers+=\" {} \"\n", modules.join(" ")));
    }
    out
}

/// Plans the modules file: only when the configuration names modules or
/// an earlier generation's block is there to take out.
pub(crate) fn plan(p: &mut Planner, input: &Input) -> Result<(), Error> {
    let modules = &input.plan.boot.kernel_modules;
    if let Some(bad) = modules.iter().find(|m| !valid(m)) {
        return Err(Error::BadValue {
            key: KEY.into(),
            value: bad.clone(),
            reason: "is no kernel module name (letters, digits, `_` and `-`)".into(),
        });
    }
    if input.plan.boot.kernel_package.is_some()
        && input.plan.boot.initramfs == kod_config::InitramfsTool::Dracut
    {
        p.dirs(KEY, Path::new("/etc/dracut.conf.d"), 0o755, (0, 0))?;
        p.write(KEY, DRACUT_FILE, dracut_conf(modules), 0o644, (0, 0))?;
        return Ok(());
    }
    let path = Path::new(MODULES_FILE);
    let Some(text) = p.read_text(path)? else {
        if modules.is_empty() {
            return Ok(());
        }
        return Err(Error::Missing {
            key: KEY.into(),
            path: path.into(),
            hint: "the modules go into initramfs-tools' list: set `boot.kernel.package` \
                   (kod then installs initramfs-tools) or remove `boot.kernel.modules`"
                .into(),
        });
    };
    p.write(
        KEY,
        MODULES_FILE,
        with_modules(&text, modules),
        0o644,
        (0, 0),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str =
        "# List of modules that you want to include in your initramfs.\n#\n# raid1\n";

    #[test]
    fn the_block_follows_the_distributions_lines_and_is_replaced_not_repeated() {
        let mods = vec!["virtio_blk".to_string(), "btrfs".to_string()];
        let once = with_modules(DEBIAN, &mods);
        assert!(once.starts_with(DEBIAN));
        assert!(once.ends_with(&format!("{BLOCK}\nvirtio_blk\nbtrfs\n")));
        assert_eq!(with_modules(&once, &mods), once);
        let fewer = with_modules(&once, &mods[1..]);
        assert_eq!(fewer, format!("{DEBIAN}{BLOCK}\nbtrfs\n"));
        assert_eq!(with_modules(&fewer, &[]), DEBIAN);
    }

    #[test]
    fn module_names_are_plain() {
        assert!(valid("virtio_pci") && valid("nvme-core"));
        assert!(!valid("") && !valid("a b") && !valid("x\ny") && !valid("../m"));
    }
}
