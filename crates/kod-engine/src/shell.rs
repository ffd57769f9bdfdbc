//! `kod shell`: extra packages on a throwaway overlay of a root, and a
//! command run there as the caller.
//!
//! The packages are resolved against the root's own sources and database
//! first ([`InstallPlan`]), so an unknown one fails before anything is
//! mounted. They are installed by a throwaway transaction
//! ([`kod_install::Transaction::ephemeral`]) whose configured upper layer
//! is kept in this run's directory under [`SHELL_DIR`] (a tmpfs: overlayfs
//! refuses an upper layer inside its lower root). The command then runs
//! through kod-env's [`RunPlan`] in a sandbox whose overlay has the root
//! below that layer, with the host's `/dev`, `/proc`, `/sys`, `/home`,
//! `/tmp` and `/run` bound in: the overlay exists only in the command's
//! mount namespace, the command dies with kod, and what it starts runs in
//! a PID namespace that ends with it. The run's directory is
//! removed when the shell ends (its layer moved to `--keep DIR` first if
//! asked); the directories of killed runs are removed by the next shell.
//! Triggers that only refresh caches are switched off in the layer
//! ([`CACHE_TRIGGERS`]).

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use kod_env::EnvError;
use kod_env::run::RunPlan;
use kod_install::Transaction;
use kod_report::Report;
use kod_sandbox::{Ids, Overlay, OverlayMarks, Sandbox, Workdir};

use crate::EngineError;
use crate::packages::{InstallPlan, PlannedChange};

/// Where shells keep their layers while they run.
pub const SHELL_DIR: &str = "/run/kod/shell";

/// A shell's prepared layer: the packages installed and configured on top
/// of the root, ready to run commands on. Dropping it removes the layer.
#[derive(Debug)]
pub struct Shell {
    /// This run's directory (a kod temporary, named after this process).
    dir: PathBuf,
    lower: PathBuf,
    changes: Vec<PlannedChange>,
}

impl Shell {
    /// Removes what killed shells left, then installs `plan`'s changes
    /// into a new layer over `plan.root`; the root is never written.
    pub fn prepare(
        plan: &InstallPlan,
        options: &kod_install::Options,
        report: &Report,
    ) -> Result<Shell, EngineError> {
        let base = Path::new(SHELL_DIR);
        kod_root::make_dirs(base).map_err(|e| EngineError::io(base, e))?;
        for gone in
            kod_root::remove_stale_temporaries(base).map_err(|e| EngineError::io(base, e))?
        {
            report.verbose(|| format!("+ rm -rf {} (left by a killed kod shell)", gone.display()));
        }
        let dir = base.join(kod_root::temp_name("shell".as_ref()));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| EngineError::io(&dir, e))?;
        let mut shell = Shell {
            dir,
            lower: plan.root.clone(),
            changes: Vec::new(),
        };
        let skip = |t: &Transaction| skip_cache_triggers(t, report);
        shell.changes = plan.run_into_layer(&shell.dir, &shell.layer(), skip, options, report)?;
        Ok(shell)
    }

    /// What the layer adds to the root.
    pub fn changes(&self) -> &[PlannedChange] {
        &self.changes
    }

    fn layer(&self) -> PathBuf {
        self.dir.join("layer")
    }

    /// Plans running `command` (empty: the caller's shell) on the layer,
    /// as the caller, in their working directory, with their environment
    /// and terminal; killed (with its mounts) when kod dies.
    pub fn plan(&self, command: &[OsString]) -> Result<RunPlan, EnvError> {
        let (work, merged) = (self.dir.join("work"), self.dir.join("merged"));
        for d in [&work, &merged] {
            fs::create_dir(d).map_err(io("create", d))?;
        }
        let sandbox = Sandbox::new(&merged)
            .overlay(Overlay {
                lower: vec![self.lower.clone()],
                upper: self.layer(),
                work,
                marks: OverlayMarks::Trusted,
                // As the transaction made it: a plain tree of changes.
                plain_upper: true,
            })
            .share_host_dirs()
            .ids(Ids::Caller)
            .workdir(Workdir::Inherit {
                home: std::env::var_os("HOME").map(PathBuf::from),
            })
            .die_with_parent(true)
            .pid_namespace(true);
        let lower = kod_root::Root::open(&self.lower).map_err(io("open", &self.lower))?;
        RunPlan::new(&sandbox, &lower, command)
    }

    /// Moves the layer (the packages and whatever the command changed) to
    /// `to` (absent), copying it when `to` is on another file system.
    pub fn keep(&self, to: &Path, report: &Report) -> Result<(), EngineError> {
        let layer = self.layer();
        report.verbose(|| format!("+ mv {} {}", layer.display(), to.display()));
        match fs::rename(&layer, to) {
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) => {
                Ok(kod_install::clone_root(&layer, to, report)?)
            }
            r => r.map_err(|e| EngineError::io(to, e)),
        }
    }
}

/// Triggers that only refresh caches, each with the file whose absence
/// makes it skip its work (as the package's own configuration switch
/// does): a throwaway shell does without them (man-db's alone takes
/// seconds). The file is removed in the layer only.
const CACHE_TRIGGERS: [(&str, &str); 1] = [(
    "man-db's index of manual pages",
    "var/lib/man-db/auto-update",
)];

/// Switches off [`CACHE_TRIGGERS`] in the layer before it is configured,
/// saying which with `-v`.
fn skip_cache_triggers(t: &Transaction, report: &Report) -> Result<(), EngineError> {
    for (what, switch) in CACHE_TRIGGERS {
        let shown = Path::new("/").join(switch);
        let found = t
            .fs()
            .stat(switch)
            .map_err(|e| EngineError::io(&shown, e))?;
        if found.is_some() {
            t.fs()
                .remove_file(switch)
                .map_err(|e| EngineError::io(&shown, e))?;
            report.verbose(|| {
                format!(
                    "kod: skipping {what} (its trigger): {} removed in the shell",
                    shown.display()
                )
            });
        }
    }
    Ok(())
}

/// An I/O error of the run's set-up, as kod-env reports them.
fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> EnvError {
    let path = path.to_path_buf();
    move |source| EnvError::Io { op, path, source }
}

impl Drop for Shell {
    fn drop(&mut self) {
        // Nothing is mounted here in kod's namespace: the overlays lived in
        // the transaction's and the command's namespaces, gone with them.
        let _ = fs::remove_dir_all(&self.dir);
    }
}
