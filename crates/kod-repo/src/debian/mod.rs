//! The Debian backend: apt repositories (InRelease, Packages), dpkg's
//! version ordering and relation syntax.

pub mod packages;
pub mod relations;
pub mod version;
