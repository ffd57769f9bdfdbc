//! Stable user and group ids: a map kept beside the generations
//! (`store/var/kod`), since `/home` is shared by every generation and a
//! user's files must keep their owner.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The lowest id given to a new user or group.
pub const FIRST_ID: u32 = 1000;
/// The highest id given to a new user or group (Debian's `LAST_UID`
/// region ends below 60000).
pub const LAST_ID: u32 = 59999;

/// User and group names and the ids they got, as kept across
/// generations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    /// User name -> uid.
    #[serde(default)]
    pub users: BTreeMap<String, u32>,
    /// Group name -> gid.
    #[serde(default)]
    pub groups: BTreeMap<String, u32>,
}

impl IdMap {
    /// Reads the map at `path`; an absent file is an empty map.
    pub fn load(path: &Path) -> Result<IdMap, Error> {
        let bad = |reason: String| Error::IdMap {
            path: path.to_path_buf(),
            reason,
        };
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| bad(format!("not an id map: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(IdMap::default()),
            Err(e) => Err(bad(format!("cannot read it: {e}"))),
        }
    }

    /// Writes the map to `path` atomically (its directory must exist).
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let mut json = serde_json::to_vec_pretty(self).map_err(|e| Error::IdMap {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        json.push(b'\n');
        kod_root::write_atomic(path, &json).map_err(|e| Error::IdMap {
            path: path.to_path_buf(),
            reason: format!("cannot write it: {e}"),
        })
    }
}

/// The id for `name`: the one the map gives it when no other name of
/// `in_root` has taken it, else the next free one from [`FIRST_ID`] (not
/// in the root, not in the map), preferring `prefer` when free.
pub(crate) fn choose(
    name: &str,
    mapped: Option<u32>,
    prefer: Option<u32>,
    in_root: &BTreeMap<u32, String>,
    map: &BTreeMap<String, u32>,
) -> Result<u32, Error> {
    let taken_by_other = |id: u32| in_root.get(&id).is_some_and(|n| n != name);
    if let Some(id) = mapped.filter(|&id| !taken_by_other(id)) {
        return Ok(id);
    }
    let in_map: BTreeSet<u32> = map
        .iter()
        .filter(|(n, _)| *n != name)
        .map(|(_, &id)| id)
        .collect();
    let free = |id: u32| !in_root.contains_key(&id) && !in_map.contains(&id);
    if let Some(id) = prefer.filter(|&id| (FIRST_ID..=LAST_ID).contains(&id) && free(id)) {
        return Ok(id);
    }
    (FIRST_ID..=LAST_ID)
        .find(|&id| free(id))
        .ok_or_else(|| Error::NoFreeId {
            name: name.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_ids_are_kept_and_new_ones_skip_used_ids() {
        let in_root: BTreeMap<u32, String> = [(1000, "old".to_string())].into();
        let map: BTreeMap<String, u32> =
            [("ann".to_string(), 1005), ("bob".to_string(), 1001)].into();
        assert_eq!(
            choose("ann", Some(1005), None, &in_root, &map).unwrap(),
            1005
        );
        // 1000 is in the root, 1001 in the map: the next free one.
        assert_eq!(choose("cid", None, None, &in_root, &map).unwrap(), 1002);
        // A mapped id another name of the root holds is not taken.
        assert_eq!(
            choose("dan", Some(1000), None, &in_root, &map).unwrap(),
            1002
        );
        assert_eq!(
            choose("eve", None, Some(1003), &in_root, &map).unwrap(),
            1003
        );
        assert_eq!(
            choose("eve", None, Some(1001), &in_root, &map).unwrap(),
            1002
        );
    }

    #[test]
    fn load_and_save_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ids.json");
        assert_eq!(IdMap::load(&path).unwrap(), IdMap::default());
        let mut m = IdMap::default();
        m.users.insert("ann".into(), 1000);
        m.groups.insert("ann".into(), 1000);
        m.save(&path).unwrap();
        assert_eq!(IdMap::load(&path).unwrap(), m);
        std::fs::write(&path, "{ not json").unwrap();
        let e = IdMap::load(&path).unwrap_err().to_string();
        assert!(e.contains("not an id map"), "{e}");
    }
}
