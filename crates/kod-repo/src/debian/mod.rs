//! The Debian backend: apt repositories (InRelease, Packages), dpkg's
//! version ordering and relation syntax.

pub mod version;
