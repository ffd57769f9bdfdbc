//! Carrying out planned changes: files through the confined root, commands
//! through the target's runner.

use std::path::Path;

use kod_db::Runner;
use kod_report::{Report, Stage, Work};
use kod_root::Root;
use rustix::fs::{AtFlags, Mode};

use crate::change::{Action, Change};
use crate::error::{Error, io_err};

/// Makes `changes` in `root`, in order: files written atomically through
/// `root` (never leaving it), commands run through `runner`. Each change
/// is reported as a verbose line, the whole as the settle stage. Stops at
/// the first failure; the changes
/// made so far stay (each is idempotent: planning again finishes the job).
pub fn apply(
    root: &Root,
    runner: &dyn Runner,
    changes: &[Change],
    report: &Report,
) -> Result<(), Error> {
    let stage = report.stage(Stage::Settle, Work::items(changes.len() as u64));
    for c in changes {
        report.verbose(|| format!("settle: {c}"));
        match &c.action {
            Action::Write {
                path,
                content,
                mode,
                uid,
                gid,
            } => {
                root.write(path, content, *mode)
                    .map_err(io_err("write", root.show(path)))?;
                chown(root, path, *uid, *gid)?;
            }
            Action::Dir {
                path,
                mode,
                uid,
                gid,
            } => {
                root.create_dir_all(path, *mode)
                    .map_err(io_err("create the directory", root.show(path)))?;
                let (dir, name) = parent(root, path)?;
                rustix::fs::chmodat(&dir, name, Mode::from_raw_mode(*mode), AtFlags::empty())
                    .map_err(|e| io_err("set the mode of", root.show(path))(e.into()))?;
                chown(root, path, *uid, *gid)?;
            }
            Action::Symlink {
                path,
                target,
                uid,
                gid,
            } => {
                symlink(root, target, path)?;
                chown(root, path, *uid, *gid)?;
            }
            Action::Remove { path } => root
                .remove_file(path)
                .map_err(io_err("remove", root.show(path)))?,
            Action::Run { argv, why } => {
                let args: Vec<&str> = argv.iter().map(String::as_str).collect();
                let ran = runner.run(why, &args, &[])?;
                if !ran.success {
                    return Err(Error::Command {
                        why: format!("{}: {why}", c.key),
                        command: runner.show(&args, &[]),
                        status: ran.status,
                        output: kod_db::Output(ran.tail),
                    });
                }
            }
        }
        stage.advance(Work::items(1), &c.key);
    }
    Ok(())
}

/// The open directory of `path` in the root, and `path`'s last name.
pub(crate) fn parent<'a>(
    root: &Root,
    path: &'a Path,
) -> Result<(std::os::fd::OwnedFd, &'a std::ffi::OsStr), Error> {
    let (parent, name) = kod_root::split(path).ok_or_else(|| Error::Io {
        op: "name",
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"),
    })?;
    let dir = root
        .dir(parent)
        .map_err(io_err("open the directory of", root.show(path)))?;
    Ok((dir, name))
}

/// Sets the owner of `path` (not following a final symlink).
fn chown(root: &Root, path: &Path, uid: u32, gid: u32) -> Result<(), Error> {
    let (dir, name) = parent(root, path)?;
    let (u, g) = (
        rustix::fs::Uid::from_raw(uid),
        rustix::fs::Gid::from_raw(gid),
    );
    rustix::fs::chownat(&dir, name, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| io_err("set the owner of", root.show(path))(e.into()))
}

/// `path -> target`, replacing what is there: made under a temporary name
/// beside it and renamed over it.
fn symlink(root: &Root, target: &Path, path: &Path) -> Result<(), Error> {
    let name = path.file_name().ok_or_else(|| Error::Io {
        op: "name",
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"),
    })?;
    let tmp = path.with_file_name(kod_root::temp_name(name));
    root.remove_file(&tmp)
        .map_err(io_err("remove", root.show(&tmp)))?;
    root.symlink(target, &tmp)
        .map_err(io_err("create the symlink", root.show(&tmp)))?;
    root.rename(&tmp, path, false)
        .map_err(io_err("rename a symlink over", root.show(path)))
}
