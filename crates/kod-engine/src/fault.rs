//! The tests' way to stop kod at a given point of building a generation,
//! as if it were killed there (`kill -9`): with `KOD_TEST_FAULT=POINT`
//! set, kod sends itself SIGKILL when it reaches POINT. Points, in order:
//! `allocated`, `snapshot`, `installed`, `configured`, `settled`,
//! `committed` (the root in place), `recorded` (the record complete, the
//! pointer not moved), `defaulted` (the pointer moved); then, in place
//! ([`crate::in_place`]), `kept` (the clone of the old root made),
//! `synced` (the old root brought to the new one), `swapped` (the first
//! of the two renames done).

/// The environment variable that names the point.
pub const FAULT_ENV: &str = "KOD_TEST_FAULT";

/// Kills this process when `KOD_TEST_FAULT` names `point`.
pub(crate) fn point(point: &str) {
    if std::env::var_os(FAULT_ENV).is_some_and(|v| v == point) {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
}
