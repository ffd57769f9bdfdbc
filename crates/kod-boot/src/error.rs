use std::io;
use std::path::PathBuf;

/// What went wrong writing or reading boot entries, naming the file or
/// command and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// A local file (a kernel, an initramfs, a directory ESP) could not be
    /// read or written.
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        /// What kod was doing.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
    /// An mtools command failed on an image.
    #[error(
        "`{command}` failed ({status}): {output}; check that mtools is installed and that \
         the image holds a FAT filesystem at that offset"
    )]
    Mtools {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// Its standard error.
        output: String,
    },
    /// A path on the ESP was not absolute or climbed with `..`.
    #[error("ESP path {path:?} must be absolute and must not contain `..` or empty parts")]
    BadPath {
        /// The path.
        path: String,
    },
    /// A kernel version would not make a safe ESP directory name.
    #[error(
        "generation {generation}'s kernel version {version:?} has characters other than \
         letters, digits and `.+_-`; it names the kernel's directory on the ESP, so check \
         the kernel package's version"
    )]
    BadKernelVersion {
        /// The generation.
        generation: u64,
        /// Its kernel version.
        version: String,
    },
    /// An extra entry's name is not a plain file-name stem.
    #[error(
        "boot.loader.include entry name {name:?} must be letters, digits and `.+_-`, not \
         starting with `.` (it names loader/entries/kodextra-NAME.conf and /kod/NAME)"
    )]
    BadExtraName {
        /// The name.
        name: String,
    },
    /// The default generation was not among the generations passed.
    #[error(
        "the default generation {generation} is not among the generations given to the boot \
         plan; pass every generation that exists, the default included"
    )]
    DefaultMissing {
        /// The default generation.
        generation: u64,
    },
    /// Two generations with the same number were passed.
    #[error("generation {generation} was given twice to the boot plan")]
    Duplicate {
        /// The generation.
        generation: u64,
    },
    /// The generation's root lacks systemd-boot's EFI binary.
    #[error(
        "systemd-boot's EFI binary is missing at {}: add the `systemd-boot-efi` package \
         to the configuration",
        path.display()
    )]
    NoSystemdBoot {
        /// Where it was looked for.
        path: PathBuf,
    },
}

pub(crate) fn io(
    what: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> BootError {
    let path = path.into();
    move |source| BootError::Io { what, path, source }
}
