//! Who runs: the caller's ids, and the subordinate ids of /etc/subuid and
//! /etc/subgid that a rootless build maps through `newuidmap`/`newgidmap`.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::SandboxError;

/// The environment variable through which a process that kod re-executed
/// inside a subordinate-id user namespace learns who its caller is on the
/// host (`UID:GID`). Honoured only inside a user namespace, where it grants
/// nothing: it only says whose passwd line to copy and whose files these are.
pub const CALLER_ENV: &str = "KOD_SANDBOX_CALLER";

/// The user on whose behalf kod runs, as the host sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// Real user id on the host.
    pub uid: u32,
    /// Real group id on the host.
    pub gid: u32,
}

impl Caller {
    /// The calling process's real ids; inside a user namespace that kod set
    /// up with [`crate::Ids::SubIdRoot`], the host ids recorded in
    /// [`CALLER_ENV`].
    pub fn current() -> Caller {
        if in_user_namespace()
            && let Some(c) = std::env::var(CALLER_ENV)
                .ok()
                .and_then(|v| parse_caller(&v))
        {
            return c;
        }
        Caller {
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
        }
    }

    /// Whether the caller is root on the host.
    pub fn is_root(self) -> bool {
        self.uid == 0
    }

    /// The value of [`CALLER_ENV`] for this caller.
    pub fn env_value(self) -> String {
        format!("{}:{}", self.uid, self.gid)
    }
}

fn parse_caller(v: &str) -> Option<Caller> {
    let (u, g) = v.split_once(':')?;
    Some(Caller {
        uid: u.parse().ok()?,
        gid: g.parse().ok()?,
    })
}

/// Whether this process runs in a user namespace other than the initial
/// one (whose uid_map is the identity over all 2^32-1 ids).
pub fn in_user_namespace() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => {
            let fields: Vec<&str> = map.split_whitespace().collect();
            fields != ["0", "0", "4294967295"]
        }
        Err(_) => false,
    }
}

/// A range of subordinate ids: `count` ids starting at `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First id of the range.
    pub start: u32,
    /// Number of ids.
    pub count: u32,
}

/// A user's subordinate uids and gids, as /etc/subuid and /etc/subgid grant
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubIds {
    /// The host uid that becomes root (0) in the namespace: the caller.
    pub uid: u32,
    /// The host gid that becomes group 0 in the namespace.
    pub gid: u32,
    /// Subordinate uid ranges, mapped from namespace id 1 on, in order.
    pub uids: Vec<IdRange>,
    /// Subordinate gid ranges, likewise.
    pub gids: Vec<IdRange>,
}

impl SubIds {
    /// The caller's subordinate ids from /etc/subuid and /etc/subgid.
    pub fn for_caller(caller: Caller) -> Result<SubIds, SandboxError> {
        let name = user_name(Path::new("/etc/passwd"), caller.uid);
        let read = |file: &str, id: u32| -> Result<Vec<IdRange>, SandboxError> {
            let path = PathBuf::from(file);
            let text = std::fs::read_to_string(&path).map_err(|e| SandboxError::SubIds {
                file: path.clone(),
                problem: format!("cannot be read: {e}"),
                user: display_user(name.as_deref(), caller.uid),
            })?;
            let ranges = parse_subid_file(&text, name.as_deref(), id);
            if ranges.is_empty() {
                return Err(SandboxError::SubIds {
                    file: path,
                    problem: "has no entry for you".into(),
                    user: display_user(name.as_deref(), caller.uid),
                });
            }
            Ok(ranges)
        };
        Ok(SubIds {
            uid: caller.uid,
            gid: caller.gid,
            uids: read("/etc/subuid", caller.uid)?,
            gids: read("/etc/subgid", caller.uid)?,
        })
    }

    /// How many ids the namespace has (root plus the subordinate ones),
    /// for uids.
    pub fn uid_count(&self) -> u64 {
        1 + self.uids.iter().map(|r| u64::from(r.count)).sum::<u64>()
    }

    /// The `newuidmap` arguments after the pid: `0 UID 1` then each range.
    pub fn uid_map_args(&self) -> Vec<String> {
        map_args(self.uid, &self.uids)
    }

    /// The `newgidmap` arguments after the pid.
    pub fn gid_map_args(&self) -> Vec<String> {
        map_args(self.gid, &self.gids)
    }
}

fn map_args(own: u32, ranges: &[IdRange]) -> Vec<String> {
    let mut args = vec!["0".to_string(), own.to_string(), "1".to_string()];
    let mut next: u64 = 1;
    for r in ranges {
        args.extend([next.to_string(), r.start.to_string(), r.count.to_string()]);
        next += u64::from(r.count);
    }
    args
}

fn display_user(name: Option<&str>, uid: u32) -> String {
    match name {
        Some(n) => format!("{n} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

/// The login name of `uid` in a passwd file, if it has one.
pub fn user_name(passwd: &Path, uid: u32) -> Option<String> {
    let text = std::fs::read_to_string(passwd).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_string())
    })
}

/// The ranges an /etc/subuid (or /etc/subgid) text grants the user named
/// `name` or numbered `id` (entries may use either), in file order. Lines
/// that are blank, comments or malformed are skipped, as shadow's tools do.
pub fn parse_subid_file(text: &str, name: Option<&str>, id: u32) -> Vec<IdRange> {
    let id_text = id.to_string();
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let mut f = line.split(':');
            let owner = f.next()?;
            let start: u32 = f.next()?.trim().parse().ok()?;
            let count: u32 = f.next()?.trim().parse().ok()?;
            if f.next().is_some() || count == 0 {
                return None;
            }
            (Some(owner) == name || owner == id_text).then_some(IdRange { start, count })
        })
        .collect()
}

impl fmt::Display for IdRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.start,
            u64::from(self.start) + u64::from(self.count) - 1
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subid_lines_by_name_or_number() {
        let text = "\
# comment
alice:100000:65536
bob:165536:65536
1001:231072:1000
alice:300000:10
broken:line
carol:1:0
";
        assert_eq!(
            parse_subid_file(text, Some("alice"), 1000),
            vec![
                IdRange {
                    start: 100000,
                    count: 65536
                },
                IdRange {
                    start: 300000,
                    count: 10
                }
            ]
        );
        assert_eq!(
            parse_subid_file(text, Some("dave"), 1001),
            vec![IdRange {
                start: 231072,
                count: 1000
            }]
        );
        assert!(parse_subid_file(text, Some("carol"), 1002).is_empty());
        assert!(parse_subid_file(text, None, 4242).is_empty());
    }

    #[test]
    fn map_arguments_put_the_caller_at_zero_and_ranges_after() {
        let s = SubIds {
            uid: 1000,
            gid: 1001,
            uids: vec![
                IdRange {
                    start: 100000,
                    count: 65536,
                },
                IdRange {
                    start: 300000,
                    count: 10,
                },
            ],
            gids: vec![IdRange {
                start: 200000,
                count: 5,
            }],
        };
        assert_eq!(
            s.uid_map_args(),
            [
                "0", "1000", "1", "1", "100000", "65536", "65537", "300000", "10"
            ]
        );
        assert_eq!(s.gid_map_args(), ["0", "1001", "1", "1", "200000", "5"]);
        assert_eq!(s.uid_count(), 65547);
        assert_eq!(s.uids[0].to_string(), "100000-165535");
    }

    #[test]
    fn caller_variable_round_trips() {
        let c = Caller {
            uid: 1000,
            gid: 100,
        };
        assert_eq!(parse_caller(&c.env_value()), Some(c));
        assert_eq!(parse_caller("x:1"), None);
        assert_eq!(parse_caller("5"), None);
    }

    #[test]
    fn user_names_come_from_the_passwd_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("passwd");
        std::fs::write(
            &p,
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/bash\n",
        )
        .unwrap();
        assert_eq!(user_name(&p, 1000).as_deref(), Some("alice"));
        assert_eq!(user_name(&p, 0).as_deref(), Some("root"));
        assert_eq!(user_name(&p, 7), None);
    }
}
