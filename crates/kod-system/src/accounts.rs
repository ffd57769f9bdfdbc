//! Users and groups: `/etc/passwd`, `/etc/group`, `/etc/shadow` and
//! `/etc/gshadow` rewritten as files (existing entries and their order
//! kept), homes made from `/etc/skel`, `~/.ssh/authorized_keys`; ids from
//! the stable [`IdMap`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use kod_config::Password;

use crate::Input;
use crate::error::{Error, io_err};
use crate::ids::{self, IdMap};
use crate::password;
use crate::planner::{Node, Planner, read_link};

/// An account of the settled root, for the owners of helper files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: String,
}

/// The accounts of the root once settled, by name.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    /// Every user of the root's passwd, as it will be.
    pub users: BTreeMap<String, Account>,
    /// The shadow hash of each user whose clear password the
    /// configuration gives (for the stored copy of the configuration,
    /// which keeps the hash instead: `kod_config::sanitized`).
    pub hashes: BTreeMap<String, String>,
}

impl Accounts {
    /// `uid:gid` of `name` (`root` is always 0:0).
    pub fn owner(&self, name: &str) -> Option<(u32, u32)> {
        if name == "root" {
            return Some((0, 0));
        }
        self.users.get(name).map(|a| (a.uid, a.gid))
    }
}

/// One colon-separated account file, line by line.
struct Table {
    path: &'static str,
    lines: Vec<String>,
}

impl Table {
    fn load(
        p: &Planner,
        path: &'static str,
        fields: usize,
        required: bool,
    ) -> Result<Table, Error> {
        let text = match p.read_text(Path::new(path))? {
            Some(t) => t,
            None if !required => String::new(),
            None => {
                return Err(Error::Missing {
                    key: "users".into(),
                    path: path.into(),
                    hint: "the base system is not installed (Debian's base-passwd ships it)".into(),
                });
            }
        };
        let t = Table {
            path,
            lines: text.lines().map(str::to_string).collect(),
        };
        for (i, l) in t.lines.iter().enumerate() {
            if t.is_entry(l) && l.split(':').count() < fields {
                return Err(Error::BadAccountFile {
                    path: path.into(),
                    line: i + 1,
                    reason: format!("an entry needs {fields} fields separated by `:`"),
                });
            }
        }
        Ok(t)
    }

    /// Entries are lines that are not blank, comments or NIS `+`/`-` lines.
    fn is_entry(&self, l: &str) -> bool {
        !l.trim().is_empty() && !l.starts_with(['#', '+', '-'])
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.lines
            .iter()
            .position(|l| self.is_entry(l) && l.split(':').next() == Some(name))
    }

    fn get(&self, name: &str) -> Option<Vec<String>> {
        self.find(name)
            .map(|i| self.lines[i].split(':').map(str::to_string).collect())
    }

    /// Replaces the entry of `fields[0]`, or adds it at the end.
    fn put(&mut self, fields: &[String]) {
        let line = fields.join(":");
        match self.find(&fields[0]) {
            Some(i) => self.lines[i] = line,
            None => self.lines.push(line),
        }
    }

    /// Takes out the entry of `name`, if there.
    fn remove(&mut self, name: &str) {
        if let Some(i) = self.find(name) {
            self.lines.remove(i);
        }
    }

    /// Takes `user` out of every member list (field `index`).
    fn drop_member(&mut self, index: usize, user: &str) {
        for i in 0..self.lines.len() {
            if !self.is_entry(&self.lines[i]) {
                continue;
            }
            let mut f: Vec<String> = self.lines[i].split(':').map(str::to_string).collect();
            let members: Vec<&str> = f[index].split(',').filter(|m| !m.is_empty()).collect();
            if members.contains(&user) {
                f[index] = members
                    .into_iter()
                    .filter(|m| *m != user)
                    .collect::<Vec<_>>()
                    .join(",");
                self.lines[i] = f.join(":");
            }
        }
    }

    /// id (third field) -> name.
    fn ids(&self) -> BTreeMap<u32, String> {
        self.lines
            .iter()
            .filter(|l| self.is_entry(l))
            .filter_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let id = f.nth(1)?.parse().ok()?;
                Some((id, name.to_string()))
            })
            .collect()
    }

    fn text(&self) -> String {
        let mut s = self.lines.join("\n");
        if !s.is_empty() {
            s.push('\n');
        }
        s
    }
}

/// Adds `user` to the member list in field `index` of `fields`.
fn add_member(fields: &mut [String], index: usize, user: &str) {
    let mut members: Vec<&str> = fields[index].split(',').filter(|m| !m.is_empty()).collect();
    if !members.contains(&user) {
        members.push(user);
        fields[index] = members.join(",");
    }
}

fn check_field(key: String, value: &str) -> Result<(), Error> {
    if value.contains([':', '\n']) {
        return Err(Error::BadValue {
            key,
            value: value.to_string(),
            reason: "holds a `:` or a newline, which account files cannot".into(),
        });
    }
    Ok(())
}

fn today() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86400)
}

/// Plans the accounts; returns the updated id map and the accounts as
/// they will be.
pub(crate) fn plan(p: &mut Planner, input: &Input) -> Result<(IdMap, Accounts), Error> {
    let mut ids = input.ids.clone();
    let mut hashes = BTreeMap::new();
    let mut passwd = Table::load(p, "/etc/passwd", 7, true)?;
    let mut group = Table::load(p, "/etc/group", 4, true)?;
    let mut shadow = Table::load(p, "/etc/shadow", 9, false)?;
    let mut gshadow = Table::load(p, "/etc/gshadow", 4, false)?;

    let new_group = |name: &str,
                     prefer: Option<u32>,
                     ids: &mut IdMap,
                     group: &mut Table,
                     gshadow: &mut Table|
     -> Result<u32, Error> {
        let gid = ids::choose(
            name,
            ids.groups.get(name).copied(),
            prefer,
            &group.ids(),
            &ids.groups,
        )?;
        group.put(&[name.into(), "x".into(), gid.to_string(), String::new()]);
        gshadow.put(&[name.into(), "!".into(), String::new(), String::new()]);
        Ok(gid)
    };

    // Groups the users want that the root lacks.
    let wanted: BTreeSet<&String> = input.plan.users.values().flat_map(|u| &u.groups).collect();
    for g in wanted {
        check_field(format!("users.*.extra_groups ({g})"), g)?;
        match group.get(g) {
            Some(f) => {
                if let Ok(gid) = f[2].parse() {
                    ids.groups.insert(g.clone(), gid);
                }
            }
            None => {
                let gid = new_group(g, None, &mut ids, &mut group, &mut gshadow)?;
                ids.groups.insert(g.clone(), gid);
            }
        }
    }

    let days = today().to_string();
    let mut homes = Vec::new();
    for (name, plan) in &input.plan.users {
        let key = format!("users.{name}");
        check_field(key.clone(), name)?;
        let user = input.config.users.get(name);
        let full_name = user.and_then(|u| u.full_name.clone());
        if let Some(f) = &full_name {
            check_field(format!("{key}.name"), f)?;
        }
        if let Some(s) = &plan.shell {
            check_field(format!("{key}.shell"), s)?;
        }
        let (uid, gid, home) = match passwd.get(name) {
            Some(mut f) => {
                if let Some(fullname) = &full_name {
                    f[4] = fullname.clone();
                }
                if let Some(s) = &plan.shell {
                    f[6] = s.clone();
                }
                passwd.put(&f);
                let uid: u32 = f[2].parse().unwrap_or(0);
                let gid: u32 = f[3].parse().unwrap_or(0);
                (uid, gid, f[5].clone())
            }
            None => {
                let uid = ids::choose(
                    name,
                    ids.users.get(name).copied(),
                    None,
                    &passwd.ids(),
                    &ids.users,
                )?;
                let gid = match group.get(name) {
                    Some(f) => f[2].parse().unwrap_or(uid),
                    None => new_group(name, Some(uid), &mut ids, &mut group, &mut gshadow)?,
                };
                passwd.put(&[
                    name.clone(),
                    "x".into(),
                    uid.to_string(),
                    gid.to_string(),
                    full_name.clone().unwrap_or_default(),
                    plan.home.clone(),
                    plan.shell.clone().unwrap_or_else(|| "/bin/bash".into()),
                ]);
                (uid, gid, plan.home.clone())
            }
        };
        if uid != 0 {
            ids.users.insert(name.clone(), uid);
            ids.groups.insert(name.clone(), gid);
        }

        let current = shadow.get(name);
        let pw = user.map_or(&Password::Unset, |u| &u.password);
        let field = password::field(name, pw, current.as_ref().map(|f| f[1].as_str()))?;
        if matches!(pw, Password::Plain(_)) {
            hashes.insert(name.clone(), field.clone());
        }
        let mut f = current.unwrap_or_else(|| {
            [name.as_str(), "", "", "0", "99999", "7", "", "", ""]
                .map(str::to_string)
                .to_vec()
        });
        if f[1] != field || f[2].is_empty() {
            f[1] = field;
            f[2] = days.clone();
        }
        shadow.put(&f);

        for g in &plan.groups {
            if let Some(mut f) = group.get(g) {
                add_member(&mut f, 3, name);
                group.put(&f);
            }
            let mut f = gshadow
                .get(g)
                .unwrap_or_else(|| vec![g.clone(), "!".into(), String::new(), String::new()]);
            add_member(&mut f, 3, name);
            gshadow.put(&f);
        }
        homes.push((
            name.clone(),
            key,
            uid,
            gid,
            home,
            plan.ssh_authorized.clone(),
        ));
    }

    // Accounts the generation before configured and this configuration
    // does not: their entries go (their group too when it is theirs alone:
    // named after them, their primary group, with no other members); the
    // home stays in the shared /home, and the id stays reserved in the map.
    for gone in input.previous_users {
        if gone == "root" || input.plan.users.contains_key(gone) {
            continue;
        }
        let Some(entry) = passwd.get(gone) else {
            continue;
        };
        passwd.remove(gone);
        shadow.remove(gone);
        group.drop_member(3, gone);
        gshadow.drop_member(3, gone);
        let own = group
            .get(gone)
            .is_some_and(|g| g[2] == entry[3] && g[3].is_empty());
        if own {
            group.remove(gone);
            gshadow.remove(gone);
        }
    }

    let shadow_gid = group
        .get("shadow")
        .and_then(|f| f[2].parse().ok())
        .unwrap_or(0);
    p.write("users", passwd.path, passwd.text(), 0o644, (0, 0))?;
    p.write("users", group.path, group.text(), 0o644, (0, 0))?;
    p.write("users", shadow.path, shadow.text(), 0o640, (0, shadow_gid))?;
    p.write(
        "users",
        gshadow.path,
        gshadow.text(),
        0o640,
        (0, shadow_gid),
    )?;

    for (_, key, uid, gid, home, keys) in &homes {
        plan_home(p, key, Path::new(home), (*uid, *gid))?;
        if !keys.is_empty() {
            plan_ssh(
                p,
                &format!("{key}.ssh_authorized"),
                Path::new(home),
                keys,
                (*uid, *gid),
            )?;
        }
    }

    let mut accounts = Accounts {
        hashes,
        ..Accounts::default()
    };
    for l in passwd.lines.iter().filter(|l| passwd.is_entry(l)) {
        let f: Vec<&str> = l.split(':').collect();
        if let (Ok(uid), Ok(gid)) = (f[2].parse(), f[3].parse()) {
            accounts.users.insert(
                f[0].to_string(),
                Account {
                    uid,
                    gid,
                    home: f[5].to_string(),
                },
            );
        }
    }
    Ok((ids, accounts))
}

/// A missing home: made (0700, the user's) and filled from /etc/skel. An
/// existing one is left as it is (`/home` is shared by generations).
fn plan_home(p: &mut Planner, key: &str, home: &Path, owner: (u32, u32)) -> Result<(), Error> {
    if p.is_dir(home)? {
        return Ok(());
    }
    if let Some(parent) = home.parent() {
        p.dirs(key, parent, 0o755, (0, 0))?;
    }
    p.dir_exact(key, home, 0o700, owner)?;
    copy_skel(p, key, Path::new("/etc/skel"), home, owner)
}

fn copy_skel(
    p: &mut Planner,
    key: &str,
    from: &Path,
    to: &Path,
    owner: (u32, u32),
) -> Result<(), Error> {
    let root = p.root;
    let dir = match root.open_at(
        from,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
    ) {
        Ok(d) => d,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(io_err("open", root.show(from))(e.into())),
    };
    let mut names = kod_root::tree::names(&dir).map_err(io_err("list", root.show(from)))?;
    names.sort();
    for n in names {
        let src = from.join(&n);
        let dst: PathBuf = to.join(&n);
        let Some(st) = root
            .lstat(&src)
            .map_err(io_err("look at", root.show(&src)))?
        else {
            continue;
        };
        let mode = st.st_mode & 0o7777;
        match rustix::fs::FileType::from_raw_mode(st.st_mode) {
            rustix::fs::FileType::Directory => {
                p.dir_exact(key, &dst, mode, owner)?;
                copy_skel(p, key, &src, &dst, owner)?;
            }
            rustix::fs::FileType::RegularFile => {
                let data = root
                    .read(&src)
                    .map_err(io_err("read", root.show(&src)))?
                    .unwrap_or_default();
                p.write(key, dst, data, mode, owner)?;
            }
            rustix::fs::FileType::Symlink => {
                let t = read_link(root, &src)?;
                p.symlink(key, dst, t, owner)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// ~/.ssh (0700) and authorized_keys (0600), the user's.
fn plan_ssh(
    p: &mut Planner,
    key: &str,
    home: &Path,
    keys: &[String],
    owner: (u32, u32),
) -> Result<(), Error> {
    for k in keys {
        if k.contains('\n') || k.trim().is_empty() {
            return Err(Error::BadValue {
                key: key.into(),
                value: k.clone(),
                reason: "is not one public key on one line".into(),
            });
        }
    }
    let dir = home.join(".ssh");
    if matches!(
        p.node(&dir)?,
        Node::Symlink(_) | Node::File { .. } | Node::Other
    ) {
        return Err(Error::BadValue {
            key: key.into(),
            value: dir.display().to_string(),
            reason: "exists and is no directory; remove it".into(),
        });
    }
    p.dir_exact(key, &dir, 0o700, owner)?;
    let text: String = keys.iter().map(|k| format!("{}\n", k.trim())).collect();
    p.write(key, dir.join("authorized_keys"), text, 0o600, owner)?;
    Ok(())
}
