//! kod-root: writing files where kod writes them, one way.
//!
//! Its one job: the file operations every kod crate that writes into a
//! target root, a cache or a store shares, so that each rule exists once:
//!
//! - [`Root`]: a target root opened once by descriptor; every path beneath
//!   it is resolved with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`
//!   (`..`, absolute symlinks and symlinks climbing out stay inside, as for
//!   a process chrooted there), or refused when it would leave
//!   ([`Root::open_beneath`]); the last component is created or replaced
//!   with `*at` calls that never follow it.
//! - One atomic-write scheme ([`AtomicFile`], [`write_atomic`], and
//!   [`Root::write`]): a temporary beside the target, named uniquely per
//!   process, thread and call ([`temp_name`]), renamed over the target.
//!   Never fsynced: kod syncs once per transaction. The names say which
//!   process made them, so [`remove_stale_temporaries`] can remove what a
//!   killed kod left and keep what a running one is writing.
//! - The modes of kod's own files on the host ([`create_file`],
//!   [`make_dirs`]): never writable by other users, whatever the umask.
//! - Decompression chosen by magic bytes ([`decompress`]), or by a name's
//!   extension where a format names it ([`Compression::from_extension`]).
//! - Btrfs subvolumes: create, snapshot, delete ([`btrfs`]).
//! - Relative-path helpers ([`relative`], [`split`]); walking and removing
//!   trees without following links or crossing mounts ([`tree`]).
#![deny(missing_docs)]

mod atomic;
pub mod btrfs;
mod decompress;
mod paths;
mod root;
pub mod tree;

pub use atomic::{
    AtomicFile, create_file, make_dirs, remove_stale_temporaries, temp_name, write_atomic,
};
pub use decompress::{Compression, Decoder, UnknownCompression, decoder, decompress};
pub use paths::{relative, split};
pub use root::Root;
