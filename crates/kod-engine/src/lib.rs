//! kod's package engine: turns package requests into transactions on a
//! target root. It picks the repositories (from a `DISTRO:RELEASE` spec or
//! a configuration), loads their index, resolves, fetches, unpacks,
//! registers and configures through the crates that do each step, and
//! serves kod-env's environments as their [`kod_env::Engine`] ([`env`]).
#![deny(missing_docs)]

pub mod boot_entries;
pub mod bootstrap;
pub mod env;
mod error;
pub mod fault;
pub mod image;
pub mod in_place;
mod initramfs;
pub mod machine;
pub mod packages;
pub mod rebuild;
pub mod shell;
pub mod sources;

pub use error::EngineError;
