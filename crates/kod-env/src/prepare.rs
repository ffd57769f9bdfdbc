//! Preparation, as distrorun's README asks by hand: the host's resolv.conf,
//! the users' passwd and group lines, `/etc/debian_chroot` holding the
//! environment's name, and the mount points kod run binds onto.

use std::path::Path;

use kod_sandbox::{Caller, HOST_DIRS};

use crate::error::EnvError;
use kod_root::Root;

/// One line of a passwd file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PasswdLine<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    line: &'a str,
}

fn passwd_lines(text: &str) -> Vec<PasswdLine<'_>> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split(':');
            let name = f.next()?;
            let uid = f.nth(1)?.parse().ok()?;
            let gid = f.next()?.parse().ok()?;
            Some(PasswdLine {
                name,
                uid,
                gid,
                line,
            })
        })
        .collect()
}

/// One line of a group file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupLine {
    name: String,
    password: String,
    gid: u32,
    members: Vec<String>,
}

impl GroupLine {
    fn parse(line: &str) -> Option<GroupLine> {
        let mut f = line.split(':');
        let name = f.next()?.to_string();
        let password = f.next()?.to_string();
        let gid = f.next()?.parse().ok()?;
        let members = f
            .next()
            .unwrap_or("")
            .split(',')
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .collect();
        Some(GroupLine {
            name,
            password,
            gid,
            members,
        })
    }

    fn render(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.name,
            self.password,
            self.gid,
            self.members.join(",")
        )
    }
}

/// The host accounts copied into an environment: the caller's; for root,
/// every regular account (UID_MIN..=UID_MAX of /etc/login.defs), so that
/// every user of a system-wide environment has a name in it.
pub fn accounts(caller: Caller, host_passwd: &str, login_defs: &str) -> Vec<u32> {
    if !caller.is_root() {
        return vec![caller.uid];
    }
    let get = |key: &str, default: u32| {
        login_defs
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                (w.next()? == key).then(|| w.next()?.parse().ok())?
            })
            .next_back()
            .unwrap_or(default)
    };
    let (min, max) = (get("UID_MIN", 1000), get("UID_MAX", 60000));
    passwd_lines(host_passwd)
        .into_iter()
        .map(|p| p.uid)
        .filter(|u| (min..=max).contains(u))
        .collect()
}

/// The environment's passwd with the host lines of `uids` added, replacing
/// lines of the same login name.
pub fn merge_passwd(env: &str, host: &str, uids: &[u32]) -> String {
    let host = passwd_lines(host);
    let adding: Vec<&PasswdLine<'_>> = host.iter().filter(|p| uids.contains(&p.uid)).collect();
    let mut out = String::new();
    for line in env.lines() {
        let name = line.split(':').next().unwrap_or("");
        if adding.iter().any(|a| a.name == name) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    for a in adding {
        out.push_str(a.line);
        out.push('\n');
    }
    out
}

/// The environment's group file with the groups of `uids` added: each
/// user's primary group and the host groups listing them as members. A
/// group the environment already has (same name and gid) gets the users
/// added to its members; one with the same gid under another name too; a
/// name the environment uses for another gid is left alone (and noted).
pub fn merge_group(
    env: &str,
    host_group: &str,
    host_passwd: &str,
    uids: &[u32],
) -> (String, Vec<String>) {
    let users: Vec<PasswdLine<'_>> = passwd_lines(host_passwd)
        .into_iter()
        .filter(|p| uids.contains(&p.uid))
        .collect();
    let mut lines: Vec<Result<GroupLine, String>> = env
        .lines()
        .map(|l| GroupLine::parse(l).ok_or_else(|| l.to_string()))
        .collect();
    let mut notes = Vec::new();
    for g in host_group.lines().filter_map(GroupLine::parse) {
        let primary_of: Vec<&str> = users
            .iter()
            .filter(|u| u.gid == g.gid)
            .map(|u| u.name)
            .collect();
        let listed: Vec<&str> = users
            .iter()
            .filter(|u| g.members.iter().any(|m| m == u.name))
            .map(|u| u.name)
            .collect();
        if primary_of.is_empty() && listed.is_empty() {
            continue;
        }
        let same_name = lines
            .iter_mut()
            .filter_map(|l| l.as_mut().ok())
            .find(|l| l.name == g.name);
        let target = match same_name {
            Some(l) if l.gid != g.gid => {
                notes.push(format!(
                    "group {} is gid {} in the environment but {} on the host; left as it is",
                    g.name, l.gid, g.gid
                ));
                continue;
            }
            Some(l) => Some(l),
            None => lines
                .iter_mut()
                .filter_map(|l| l.as_mut().ok())
                .find(|l| l.gid == g.gid),
        };
        match target {
            Some(l) => {
                for m in &listed {
                    if !l.members.iter().any(|x| x == m) {
                        l.members.push(m.to_string());
                    }
                }
            }
            None => lines.push(Ok(GroupLine {
                name: g.name.clone(),
                password: "x".into(),
                gid: g.gid,
                members: listed.iter().map(|m| m.to_string()).collect(),
            })),
        }
    }
    let mut out = String::new();
    for l in lines {
        match l {
            Ok(g) => out.push_str(&g.render()),
            Err(raw) => out.push_str(&raw),
        }
        out.push('\n');
    }
    (out, notes)
}

/// Prepares `root` for environment `name`: the mount points of
/// [`HOST_DIRS`], `/etc/resolv.conf` from the host, the passwd and group
/// lines of `caller` (all regular users when root), and
/// `/etc/debian_chroot`. Returns notes for the caller.
pub fn prepare(root: &Path, name: &str, caller: Caller) -> Result<Vec<String>, EnvError> {
    let r = Root::open(root).map_err(EnvError::io("open", root))?;
    let io = |op, rel: &str| EnvError::io(op, root.join(rel));
    // Written beside what is there and renamed over it (a symlink there is
    // replaced, not followed), the directory made if missing.
    let write = |rel: &str, data: &[u8]| {
        let parent = Path::new(rel).parent().unwrap_or(Path::new(""));
        r.make_dirs(parent)
            .and_then(|_| r.write(rel, data, 0o644))
            .map_err(io("write", rel))
    };
    for d in HOST_DIRS {
        let rel = Path::new(&d[1..]);
        if !matches!(r.stat(rel), Ok(Some(_))) {
            r.make_dirs(rel).map_err(io("create", &d[1..]))?;
            if d == "/tmp" {
                // World-writable and sticky, as every /tmp; the host's is
                // bound over it at run time anyway.
                let p = r.host_path(rel).map_err(io("resolve", "tmp"))?;
                std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o1777))
                    .map_err(io("chmod", "tmp"))?;
            }
        }
    }
    if let Ok(resolv) = std::fs::read("/etc/resolv.conf") {
        write("etc/resolv.conf", &resolv)?;
    }
    write("etc/debian_chroot", format!("{name}\n").as_bytes())?;

    let host_passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let host_group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let login_defs = std::fs::read_to_string("/etc/login.defs").unwrap_or_default();
    let uids = accounts(caller, &host_passwd, &login_defs);
    let read = |rel: &str| -> Result<String, EnvError> {
        match r.read(rel) {
            Ok(b) => Ok(String::from_utf8_lossy(&b.unwrap_or_default()).into_owned()),
            Err(e) => Err(io("read", rel)(e)),
        }
    };
    let passwd = merge_passwd(&read("etc/passwd")?, &host_passwd, &uids);
    write("etc/passwd", passwd.as_bytes())?;
    let (group, notes) = merge_group(&read("etc/group")?, &host_group, &host_passwd, &uids);
    write("etc/group", group.as_bytes())?;
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST_PASSWD: &str = "\
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice,,,:/home/alice:/bin/zsh
bob:x:1001:1001::/home/bob:/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
";
    const HOST_GROUP: &str = "\
root:x:0:
sudo:x:27:alice
audio:x:29:alice,bob
alice:x:1000:
bob:x:1001:
plugdev:x:46:bob
video:x:44:alice
kvm:x:993:alice
";

    #[test]
    fn root_copies_every_regular_account_a_user_only_their_own() {
        let defs = "UID_MIN\t\t\t 1000\nUID_MAX\t\t\t60000\n";
        assert_eq!(
            accounts(Caller { uid: 0, gid: 0 }, HOST_PASSWD, defs),
            [1000, 1001]
        );
        assert_eq!(
            accounts(
                Caller {
                    uid: 1001,
                    gid: 1001
                },
                HOST_PASSWD,
                defs
            ),
            [1001]
        );
        // Defaults without login.defs.
        assert_eq!(
            accounts(Caller { uid: 0, gid: 0 }, HOST_PASSWD, ""),
            [1000, 1001]
        );
    }

    #[test]
    fn passwd_lines_are_added_or_replace_the_same_login() {
        let env = "root:x:0:0:root:/root:/bin/bash\nalice:x:1234:1234::/home/old:/bin/sh\n_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\n";
        let merged = merge_passwd(env, HOST_PASSWD, &[1000]);
        assert_eq!(
            merged,
            "root:x:0:0:root:/root:/bin/bash\n_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\nalice:x:1000:1000:Alice,,,:/home/alice:/bin/zsh\n"
        );
        // Merging again changes nothing.
        assert_eq!(merge_passwd(&merged, HOST_PASSWD, &[1000]), merged);
    }

    #[test]
    fn groups_are_merged_by_name_and_gid() {
        let env = "\
root:x:0:
sudo:x:27:
audio:x:29:pulse
video:x:45:
render:x:993:
# a comment kept as it is
";
        let (merged, notes) = merge_group(env, HOST_GROUP, HOST_PASSWD, &[1000]);
        assert_eq!(
            merged,
            "\
root:x:0:
sudo:x:27:alice
audio:x:29:pulse,alice
video:x:45:
render:x:993:alice
# a comment kept as it is
alice:x:1000:
"
        );
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("video is gid 45"), "{notes:?}");
        // bob's groups are not touched for alice, and a second merge is a
        // no-op.
        assert!(!merged.contains("bob"));
        assert_eq!(
            merge_group(&merged, HOST_GROUP, HOST_PASSWD, &[1000]).0,
            merged
        );
    }
}
