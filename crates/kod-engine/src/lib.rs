//! kod's package engine: turns package requests into transactions on a
//! target root. It picks the repositories (from a `DISTRO:RELEASE` spec or
//! a configuration), loads their index, resolves, fetches, unpacks,
//! registers and configures through the crates that do each step.
#![deny(missing_docs)]

pub mod bootstrap;
mod error;
pub mod packages;
pub mod sources;

pub use error::EngineError;
