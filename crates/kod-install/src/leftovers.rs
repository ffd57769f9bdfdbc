//! What killed transactions leave behind, found and dealt with by later
//! runs:
//!
//! - Beside each root: `.NAME.kod-tmp-*` (a new root or a snapshot being
//!   built), `.NAME.kod-txn-*` (an overlay's changes) and, inside an empty
//!   mount point, `.kod-tmp-*`. The next transaction on the same root
//!   removes them, or completes a commit that had begun (its marker).
//! - A journal (a directory the caller names, e.g. in kod's cache): every
//!   transaction records there which root and work directory it uses,
//!   and removes its record when it ends. The next transaction on *any*
//!   root with the same journal finds the records of processes that are
//!   gone and cleans their roots and work directories as above, so a
//!   killed `kod bootstrap DIR` does not wait for the next bootstrap of
//!   DIR. [`list`] shows what is pending without touching it.

use std::fs;
use std::path::{Path, PathBuf};

use kod_report::Report;

use crate::error::{Error, io_error};
use crate::lock;
use crate::overlay::Marks;
use crate::target::{COMMIT_MARKER, snapshot::discard_snapshot};
use crate::tree;

/// Finishes or throws away what an interrupted kod left for `root` (the
/// lock is held): staging and overlay directories without a commit marker
/// are removed; with one, their move onto the root is completed.
pub(crate) fn clean_root(root: &Path, report: &Report) -> Result<(), Error> {
    let (Some(parent), Some(name)) = (root.parent(), root.file_name()) else {
        return Ok(());
    };
    let name = name.to_string_lossy();
    let tmp_prefix = format!(".{name}.kod-tmp-");
    let txn_prefix = format!(".{name}.kod-txn-");
    let mut found: Vec<(PathBuf, bool)> = Vec::new();
    for e in fs::read_dir(parent).map_err(io_error("read", parent))? {
        let e = e.map_err(io_error("read", parent))?;
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&tmp_prefix) {
            found.push((e.path(), false));
        } else if n.starts_with(&txn_prefix) {
            found.push((e.path(), true));
        }
    }
    if root.is_dir() {
        for e in fs::read_dir(root).map_err(io_error("read", root))? {
            let e = e.map_err(io_error("read", root))?;
            if e.file_name().to_string_lossy().starts_with(".kod-tmp-") {
                found.push((e.path(), false));
            }
        }
    }
    for (dir, overlay) in found {
        let inside = dir.parent() == Some(root);
        if dir.join(COMMIT_MARKER).exists() && (overlay || inside) {
            let (from, marks) = if overlay {
                (dir.join("upper"), Some(Marks::of(&dir)))
            } else {
                (dir.clone(), None)
            };
            report.note(&format!(
                "completing the interrupted commit of {} into {}",
                dir.display(),
                root.display()
            ));
            tree::apply(&from, root, marks).map_err(io_error("complete the commit of", &dir))?;
            kod_root::tree::remove_tree(&dir).map_err(io_error("remove", &dir))?;
        } else {
            report.note(&format!(
                "removing {}, left by an interrupted transaction on {}",
                dir.display(),
                root.display()
            ));
            discard_snapshot(&dir, report);
        }
    }
    Ok(())
}

/// A transaction's record in the journal; removed when dropped.
#[derive(Debug)]
pub(crate) struct Record {
    path: PathBuf,
}

impl Record {
    /// Records that this process works on `root` (and in `work`, a
    /// directory of its own that holds nothing else).
    pub(crate) fn write(
        journal: &Path,
        root: Option<&Path>,
        work: Option<&Path>,
    ) -> Result<Record, Error> {
        fs::create_dir_all(journal).map_err(io_error("create", journal))?;
        let pid = std::process::id();
        let mut text = format!("pid {pid}\n");
        if let Some(r) = root {
            text.push_str(&format!("root {}\n", r.display()));
        }
        if let Some(w) = work {
            text.push_str(&format!("work {}\n", w.display()));
        }
        let path = journal.join(format!("{pid}-{}.txn", unique()));
        fs::write(&path, text).map_err(io_error("write", &path))?;
        Ok(Record { path })
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// A number unique in this process.
pub(crate) fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A record of a transaction whose process is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// The record's file.
    pub record: PathBuf,
    /// The process that wrote it.
    pub pid: u32,
    /// The root it worked on (none for an overlay that never writes its
    /// lower root).
    pub root: Option<PathBuf>,
    /// Its own work directory, if it had one apart from the root's.
    pub work: Option<PathBuf>,
}

fn parse(path: &Path) -> Option<Leftover> {
    let text = fs::read_to_string(path).ok()?;
    let mut pid = None;
    let mut root = None;
    let mut work = None;
    for l in text.lines() {
        match l.split_once(' ') {
            Some(("pid", v)) => pid = v.parse().ok(),
            Some(("root", v)) => root = Some(PathBuf::from(v)),
            Some(("work", v)) => work = Some(PathBuf::from(v)),
            _ => {}
        }
    }
    Some(Leftover {
        record: path.to_path_buf(),
        pid: pid?,
        root,
        work,
    })
}

/// The records in `journal` whose process is no longer running.
pub fn list(journal: &Path) -> Vec<Leftover> {
    let Ok(entries) = fs::read_dir(journal) else {
        return Vec::new();
    };
    let mut out: Vec<Leftover> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".txn"))
        .filter_map(|e| parse(&e.path()))
        .filter(|l| !Path::new(&format!("/proc/{}", l.pid)).exists())
        .collect();
    out.sort_by(|a, b| a.record.cmp(&b.record));
    out
}

/// Cleans what the dead processes recorded in `journal` left: their
/// roots' leftovers (when no other kod holds a root's lock now) and their
/// work directories. What cannot be cleaned now stays recorded.
pub(crate) fn clean_journal(journal: &Path, report: &Report) {
    for l in list(journal) {
        let cleaned = match &l.root {
            None => true,
            // Its directory is gone, and what was beside the root with it.
            Some(root) if !root.parent().is_some_and(Path::exists) => true,
            Some(root) => match lock::lock(root, false, report) {
                Ok(_held) => clean_root(root, report).is_ok(),
                // Another kod works on it now; it cleans the root itself.
                Err(Error::Locked { .. }) => true,
                Err(_) => false,
            },
        };
        if let Some(w) = &l.work
            && w.exists()
        {
            report.note(&format!(
                "removing {}, left by an interrupted kod (pid {})",
                w.display(),
                l.pid
            ));
            crate::target::remove_work(w, report);
        }
        if cleaned {
            let _ = fs::remove_file(&l.record);
        }
    }
}
