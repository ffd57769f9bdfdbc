//! What can go wrong, each saying on what and what to do next.

use std::path::{Path, PathBuf};

/// An error of kod-vm.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// A file operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A program could not be started.
    #[error("cannot run {program}: {source} (install the {package} package)")]
    Spawn {
        /// The program.
        program: String,
        /// The Debian package that has it.
        package: &'static str,
        /// Why it could not start.
        source: std::io::Error,
    },
    /// A program ran and failed.
    #[error("{command} failed ({status}): {output}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it said on stderr.
        output: String,
    },
    /// The UEFI firmware files are not there.
    #[error(
        "no UEFI firmware: {} is missing (install the ovmf package: apt-get install ovmf)",
        missing.display()
    )]
    NoFirmware {
        /// The file looked for.
        missing: PathBuf,
    },
    /// A check command cannot be put on the check disk.
    #[error("cannot run {command:?} in the guest: {why}")]
    BadCommand {
        /// The command.
        command: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The image's partition table could not be read.
    #[error("cannot read the partition table of {}: {source} (is it a disk image kod installed?)", image.display())]
    Table {
        /// The image.
        image: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The image has no EFI system partition.
    #[error("{} has no EFI system partition (GPT type C12A7328-F81F-11D2-BA4B-00A0C93EC93B): it does not boot under UEFI", image.display())]
    NoEsp {
        /// The image.
        image: PathBuf,
    },
    /// The ESP has no entry for the generation asked for.
    #[error("generation {generation} has no boot entry on the ESP of {}; {}", image.display(), have_entries(have))]
    NoEntry {
        /// The generation asked for.
        generation: u64,
        /// The image.
        image: PathBuf,
        /// The generations that have an entry.
        have: Vec<u64>,
    },
    /// A generation's entry lacks a line a direct boot needs.
    #[error("the entry {entry} on the ESP of {} has no `{key}` line: cannot boot it directly", image.display())]
    BadEntry {
        /// The entry's file name.
        entry: String,
        /// The image.
        image: PathBuf,
        /// The missing key.
        key: &'static str,
    },
    /// Reading the ESP failed.
    #[error(transparent)]
    Boot(#[from] kod_boot::BootError),
}

fn have_entries(have: &[u64]) -> String {
    if have.is_empty() {
        "it has no kod entries at all".into()
    } else {
        let list: Vec<String> = have.iter().map(u64::to_string).collect();
        format!("generations with entries: {}", list.join(", "))
    }
}

/// A mapper of an io error on `path` while doing `action`.
pub(crate) fn io(
    action: &'static str,
    path: impl AsRef<Path>,
) -> impl FnOnce(std::io::Error) -> VmError {
    let path = path.as_ref().to_path_buf();
    move |source| VmError::Io {
        action,
        path,
        source,
    }
}
