//! kod-env: environments of other distributions.
//!
//! Its one job: keep the roots of other distributions that kod runs
//! programs from, and everything around them:
//!
//! - where they live ([`Locations`]): system-wide in `/var/lib/kod/envs`
//!   (made by root, runnable by every user), personal in
//!   `$XDG_DATA_HOME/kod/envs`; `kod run NAME` looks in the caller's own
//!   first; `KOD_ENVS_DIR` replaces both;
//! - each one's record (`env.json`: distro label, creation time, packages
//!   asked for, exports, volumes, ownership) — [`Record`];
//! - making them: [`lifecycle::import`] adopts a root directory in place or
//!   extracts a root tarball confined to the new root ([`import`]);
//!   [`lifecycle::create`], [`lifecycle::install`] and [`lifecycle::remove`]
//!   go through the package engine supplied as an [`Engine`];
//! - preparing them as distrorun asks ([`prepare`]): the host's
//!   resolv.conf, the users' passwd and group lines, `/etc/debian_chroot`;
//! - running in them ([`run`]): distrorun's semantics through
//!   [`kod_sandbox`];
//! - status ([`status`]): distro, size, packages from the dpkg database,
//!   exports, view, conflicts;
//! - exports ([`export`]): launchers and rewritten desktop files; views
//!   ([`view`]): unified or isolated, behind one stable PATH entry;
//! - declarative sync ([`sync`]) of the configuration's `environments`;
//! - changing a user's own environments from inside their user namespace
//!   ([`userns`]): the command runs again there.
#![deny(missing_docs)]

pub mod cleanup;
pub mod desktop;
mod error;
pub mod export;
pub mod import;
pub mod lifecycle;
pub mod prepare;
pub mod run;
pub mod status;
mod store;
pub mod sync;
pub mod userns;
pub mod view;

pub use error::{EngineError, EnvError};
pub use lifecycle::Engine;
pub use store::{
    ENVS_DIR_ENV, Env, ExportedBin, Locations, Ownership, Record, SYSTEM_DIR, Scope, Store,
    format_utc, validate_name,
};
