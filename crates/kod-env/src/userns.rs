//! Changing a user's own environments from inside their user namespace.
//!
//! Personal environments whose files are shifted into the caller's
//! subordinate ids are changed as root of the caller's user namespace, so
//! that extraction can chown and deletion can remove what the
//! environment's users own. The command runs again there (the caller gives
//! it: the same program with the same arguments), with the caller's store
//! ([`ENVS_DIR_ENV`]), the caller ([`CALLER_ENV`]) and the caller's
//! download cache pinned; [`kod_sandbox`] makes the namespace.

use std::process::Command;

use kod_sandbox::{CALLER_ENV, Caller, Ids, Sandbox, SubIds};

use crate::error::EnvError;
use crate::store::{ENVS_DIR_ENV, Locations, Scope};

/// Whether this process should change the caller's own store from inside
/// the caller's user namespace (a user, not already there).
pub fn wanted(loc: &Locations, caller: Caller) -> bool {
    !caller.is_root() && loc.writable.scope != Scope::System && !kod_sandbox::in_user_namespace()
}

/// Runs `command` as root of the caller's user namespace (through
/// `subids`), with the store, the caller and the cache pinned; returns its
/// exit status.
pub fn run_again(
    loc: &Locations,
    caller: Caller,
    subids: SubIds,
    mut command: Command,
) -> Result<u8, EnvError> {
    pin(&mut command, loc, caller);
    let status = Sandbox::host()
        .ids(Ids::SubIdRoot(subids))
        .prepare()?
        .run(command)?;
    Ok(kod_sandbox::exit_code(status))
}

/// What the command inside must see: this caller's writable store and
/// identity, and the cache the caller uses (inside, kod is root and would
/// pick the system cache) unless `KOD_CACHE_DIR` already says it.
fn pin(command: &mut Command, loc: &Locations, caller: Caller) {
    command
        .env(ENVS_DIR_ENV, &loc.writable.dir)
        .env(CALLER_ENV, caller.env_value());
    if std::env::var_os("KOD_CACHE_DIR").is_none() {
        command.env("KOD_CACHE_DIR", kod_fetch::cache_dir());
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    #[test]
    fn the_store_the_caller_and_the_cache_are_pinned() {
        let caller = Caller {
            uid: 1234,
            gid: 5678,
        };
        let loc = Locations::for_caller(caller);
        let mut command = Command::new("true");
        pin(&mut command, &loc, caller);
        let envs: Vec<(&OsStr, Option<&OsStr>)> = command.get_envs().collect();
        let get = |k: &str| {
            envs.iter()
                .find(|(n, _)| *n == OsStr::new(k))
                .and_then(|(_, v)| *v)
        };
        assert_eq!(get(ENVS_DIR_ENV), Some(loc.writable.dir.as_os_str()));
        assert_eq!(get(CALLER_ENV), Some(OsStr::new("1234:5678")));
        // Pinned unless the caller set it already (then it is inherited).
        let cache = std::env::var_os("KOD_CACHE_DIR");
        assert_eq!(
            get("KOD_CACHE_DIR").map(OsStr::to_os_string),
            cache
                .is_none()
                .then(|| kod_fetch::cache_dir().into_os_string())
        );
    }

    #[test]
    fn only_a_users_own_store_is_changed_in_their_namespace() {
        let root = Caller { uid: 0, gid: 0 };
        assert!(!wanted(&Locations::for_caller(root), root));
        let user = Caller {
            uid: 1234,
            gid: 1234,
        };
        let mut loc = Locations::for_caller(user);
        loc.writable.scope = Scope::Personal;
        assert_eq!(wanted(&loc, user), !kod_sandbox::in_user_namespace());
        loc.writable.scope = Scope::System;
        assert!(!wanted(&loc, user));
    }
}
