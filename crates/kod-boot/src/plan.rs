//! From the ESP as it is and the generations that exist to the operations
//! that bring it to the wanted entries, in an order that leaves a bootable
//! ESP when stopped after any of them.
//!
//! FAT has no atomic rename over an existing name, so:
//! 1. kernels and initramfs images first, each copied to `NAME.part` and
//!    renamed (a name without `.part` is always whole); names that exist
//!    already hold the same bytes (they are content-derived) and are not
//!    copied again;
//! 2. entries next, each written to `NAME.conf.part` (systemd-boot reads
//!    only `*.conf`) and renamed to a name that does not exist: an entry
//!    that moves up gets a new name (its rank is in it), and the old one is
//!    removed with the removals; the default generation's
//!    entry is the first of them: it is the switch, since its `version`
//!    sorts it first, and the entries written after it sort below it, so
//!    the next boot changes once, from what booted before to the default;
//! 3. loader.conf, when its text changes (the first time, or a new timeout);
//! 4. removals: entries no longer kept, then files no kept entry names,
//!    then directories left empty, then leftovers of stopped runs.
//!
//! Only kod's names are touched: `loader/entries/kod-*.conf`,
//! `loader/entries/kodextra-*.conf`, `loader/loader.conf` and `/kod`
//! (kernels and initramfs images under `/kod/KVER`, extras' programs
//! under `/kod/NAME`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use crate::esp::{Esp, Source};
use crate::order::{EntryInfo, boot_order, default_entry};
use crate::{BootError, EntryName, Generation, Settings, retain};

const ENTRIES: &str = "/loader/entries";
const LOADER: &str = "/loader/loader.conf";

/// The generations an entry must not be dropped for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// The default generation: its entry sorts first.
    pub default: u64,
    /// The generation running now, if it is one of this machine's.
    pub booted: Option<u64>,
    /// The newest generation whose boot was blessed, if any.
    pub last_good: Option<u64>,
}

/// What kod manages on an ESP, as read from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EspState {
    /// kod's entries (`kod-N….conf`, `kodextra-NAME.conf`) by file name, with their text.
    pub entries: BTreeMap<String, String>,
    /// Files under `/kod`, and `.part` leftovers of kod's entries and loader.conf.
    pub files: BTreeSet<String>,
    /// Which of `/kod`, its subdirectories (and theirs), `/loader` and
    /// `/loader/entries` exist.
    pub dirs: BTreeSet<String>,
    /// loader.conf's text.
    pub loader: Option<String>,
}

fn is_ours(entry_file: &str) -> bool {
    EntryName::parse(entry_file).is_some()
        || (entry_file.starts_with("kodextra-") && entry_file.ends_with(".conf"))
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

impl EspState {
    /// Reads kod's part of `esp`.
    pub fn read(esp: &dyn Esp) -> Result<EspState, BootError> {
        let mut state = EspState::default();
        let top = esp.list("/")?;
        let has =
            |list: &[crate::DirEntry], name: &str| list.iter().any(|e| e.is_dir && e.name == name);
        if has(&top, "loader") {
            state.dirs.insert("/loader".into());
            let loader = esp.list("/loader")?;
            for e in &loader {
                if e.is_dir && e.name == "entries" {
                    state.dirs.insert(ENTRIES.into());
                } else if !e.is_dir && e.name == "loader.conf" {
                    state.loader = Some(text(esp.read(LOADER)?));
                } else if !e.is_dir && e.name == "loader.conf.part" {
                    state.files.insert(format!("{LOADER}.part"));
                }
            }
            for e in esp.list(ENTRIES)? {
                let path = format!("{ENTRIES}/{}", e.name);
                if e.is_dir {
                    continue;
                }
                if is_ours(&e.name) {
                    state.entries.insert(e.name, text(esp.read(&path)?));
                } else if e.name.strip_suffix(".part").is_some_and(is_ours) {
                    state.files.insert(path);
                }
            }
        }
        if has(&top, "kod") {
            state.dirs.insert("/kod".into());
            for e in esp.list("/kod")? {
                let path = format!("/kod/{}", e.name);
                if !e.is_dir {
                    state.files.insert(path);
                    continue;
                }
                for f in esp.list(&path)? {
                    let inner = format!("{path}/{}", f.name);
                    if f.is_dir {
                        state.dirs.insert(inner);
                    } else {
                        state.files.insert(inner);
                    }
                }
                state.dirs.insert(path);
            }
        }
        Ok(state)
    }

    /// kod's generation entries with their tries counters: what
    /// `generations list` marks bad or blessed.
    pub fn kod_entries(&self) -> Vec<EntryName> {
        self.entries
            .keys()
            .filter_map(|n| EntryName::parse(n))
            .collect()
    }

    /// The file name of `generation`'s entry (the highest-ranked, should a
    /// stopped run have left two): what `LoaderEntryOneShot` or
    /// `bootctl set-oneshot` must name to boot it once, since in systemd
    /// 252 an entry's id is its file name with the counter.
    pub fn entry_file(&self, generation: u64) -> Option<&str> {
        self.entries
            .keys()
            .filter_map(|f| EntryName::parse(f).map(|e| (e, f)))
            .filter(|(e, _)| e.generation == generation)
            .max_by_key(|(e, _)| e.rank)
            .map(|(_, f)| f.as_str())
    }

    /// The newest generation whose entry is blessed (`kod-N_RANK.conf`):
    /// a boot of it reached `boot-complete.target`. With `tries = 0`
    /// every entry is written blessed, so this then says nothing.
    pub fn newest_blessed(&self) -> Option<u64> {
        self.kod_entries()
            .iter()
            .filter(|e| e.is_blessed())
            .map(|e| e.generation)
            .max()
    }

    /// The generation the next boot picks (no one-shot or saved EFI
    /// variable), by systemd-boot 252's order.
    pub fn next_boot(&self) -> Option<u64> {
        let infos: Vec<EntryInfo> = self
            .entries
            .iter()
            .map(|(name, text)| EntryInfo::parse(name, text))
            .collect();
        let pattern = self.loader.as_deref().and_then(|t| {
            t.lines()
                .find_map(|l| l.trim().strip_prefix("default "))
                .map(str::trim)
        });
        let ordered = boot_order(infos);
        let chosen = default_entry(&ordered, pattern)?;
        let name = self
            .entries
            .keys()
            .find(|n| n.to_ascii_lowercase() == chosen.id)?;
        EntryName::parse(name).map(|e| e.generation)
    }
}

/// One change to the ESP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Make a directory.
    Mkdir(String),
    /// Copy a local file (a kernel, an initramfs) to this ESP path.
    Copy {
        /// The local file.
        from: PathBuf,
        /// The ESP path.
        to: String,
    },
    /// Write this text to an ESP path.
    Write {
        /// The ESP path.
        path: String,
        /// The text.
        text: String,
    },
    /// Rename a file within its directory.
    Rename {
        /// The old path.
        from: String,
        /// The new path.
        to: String,
    },
    /// Remove a file.
    Remove(String),
    /// Remove an empty directory.
    RemoveDir(String),
}

impl Op {
    /// Carries the operation out on `esp`.
    pub fn apply(&self, esp: &dyn Esp) -> Result<(), BootError> {
        match self {
            Op::Mkdir(p) => esp.mkdir(p),
            Op::Copy { from, to } => esp.write(to, Source::File(from)),
            Op::Write { path, text } => esp.write(path, Source::Bytes(text.as_bytes())),
            Op::Rename { from, to } => esp.rename(from, to),
            Op::Remove(p) => esp.remove(p),
            Op::RemoveDir(p) => esp.remove_dir(p),
        }
    }
}

impl fmt::Display for Op {
    /// One line for `--dry-run`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Mkdir(p) => write!(f, "make directory {p}"),
            Op::Copy { from, to } => write!(f, "copy {} to {to}", from.display()),
            Op::Write { path, .. } => write!(f, "write {path}"),
            Op::Rename { from, to } => write!(f, "rename {from} to {to}"),
            Op::Remove(p) => write!(f, "remove {p}"),
            Op::RemoveDir(p) => write!(f, "remove directory {p}"),
        }
    }
}

/// The operations, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Applied first to last.
    pub ops: Vec<Op>,
}

impl Plan {
    /// Whether the ESP is as wanted already.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Carries every operation out on `esp`, in order, stopping at the
    /// first error (the ESP then still boots; planning again finishes).
    pub fn apply(&self, esp: &dyn Esp) -> Result<(), BootError> {
        self.ops.iter().try_for_each(|op| op.apply(esp))
    }
}

struct Builder<'a> {
    state: &'a EspState,
    ops: Vec<Op>,
    /// `.part` names this plan writes and renames away.
    parts: BTreeSet<String>,
    dirs: BTreeSet<String>,
}

impl Builder<'_> {
    fn mkdir(&mut self, dir: &str) {
        if !self.state.dirs.contains(dir) && self.dirs.insert(dir.into()) {
            self.ops.push(Op::Mkdir(dir.into()));
        }
    }

    /// `text` at `path` through `path.part`; `replacing` removes the old
    /// file (under the same or another name) just before the rename.
    fn write(&mut self, path: String, replacing: Option<String>, text: String) {
        let part = format!("{path}.part");
        self.ops.push(Op::Write {
            path: part.clone(),
            text,
        });
        if let Some(old) = replacing {
            self.ops.push(Op::Remove(old));
        }
        self.ops.push(Op::Rename {
            from: part.clone(),
            to: path,
        });
        self.parts.insert(part);
    }
}

/// The operations that bring `state` to one entry per kept generation
/// (see [`retain`]) of `generations` (every generation that exists),
/// `settings`' extras and loader.conf, with `roles.default` booted next.
///
/// The default's entry gets a rank (`version`, and in its name) above
/// every other entry's, and the others keep theirs: a rebuild or rollback
/// writes only the new default's entry, and systemd-boot falls back to the
/// generation that was the default most recently. A new entry gets
/// `settings.tries`; an entry that moves up keeps its counter (blessed,
/// bad) in its new name.
pub fn plan(
    state: &EspState,
    generations: &[Generation],
    roles: &Roles,
    settings: &Settings,
) -> Result<Plan, BootError> {
    let mut by_number: BTreeMap<u64, &Generation> = BTreeMap::new();
    for g in generations {
        g.check()?;
        if by_number.insert(g.number, g).is_some() {
            return Err(BootError::Duplicate {
                generation: g.number,
            });
        }
    }
    if !by_number.contains_key(&roles.default) {
        return Err(BootError::DefaultMissing {
            generation: roles.default,
        });
    }
    let extras = settings
        .extras
        .iter()
        .map(|e| Ok((e.file()?, e.render())))
        .collect::<Result<BTreeMap<String, String>, BootError>>()?;
    let numbers: Vec<u64> = by_number.keys().copied().collect();
    let protected: Vec<u64> = [Some(roles.default), roles.booted, roles.last_good]
        .into_iter()
        .flatten()
        .collect();
    let kept = retain(&numbers, &protected, settings.max_entries);

    // Existing entries per generation: the one with the highest rank is
    // the entry, any other (left by a stopped run) is removed.
    let mut existing: BTreeMap<u64, (EntryName, &String)> = BTreeMap::new();
    for file in state.entries.keys() {
        if let Some(e) = EntryName::parse(file) {
            let slot = existing.entry(e.generation).or_insert((e, file));
            if e.rank > slot.0.rank {
                *slot = (e, file);
            }
        }
    }
    let top_other = existing
        .values()
        .filter(|(e, _)| e.generation != roles.default)
        .map(|(e, _)| e.rank)
        .max()
        .unwrap_or(0);
    let default_rank = match existing.get(&roles.default) {
        Some((e, _)) if e.rank > top_other => e.rank,
        _ => top_other + 1,
    };

    let mut b = Builder {
        state,
        ops: Vec::new(),
        parts: BTreeSet::new(),
        dirs: BTreeSet::new(),
    };

    // 1. Files.
    let mut blobs: BTreeMap<String, PathBuf> = BTreeMap::new();
    for g in kept.iter().map(|n| by_number[n]) {
        blobs.insert(g.kernel_path(), g.kernel.source.clone());
        blobs.insert(g.initrd_path(), g.initrd.source.clone());
    }
    for e in &settings.extras {
        blobs.insert(e.efi_path(), e.efi.source.clone());
    }
    let wanted_dirs: BTreeSet<String> = blobs
        .keys()
        .filter_map(|p| p.rsplit_once('/').map(|(d, _)| d.to_string()))
        .collect();
    if !blobs.is_empty() {
        b.mkdir("/kod");
    }
    for d in &wanted_dirs {
        b.mkdir(d);
    }
    for (path, source) in &blobs {
        if !state.files.contains(path) {
            let part = format!("{path}.part");
            b.ops.push(Op::Copy {
                from: source.clone(),
                to: part.clone(),
            });
            b.ops.push(Op::Rename {
                from: part.clone(),
                to: path.clone(),
            });
            b.parts.insert(part);
        }
    }

    // 2. Entries, the default's first: it is the switch, and entries
    //    written after it sort below it.
    b.mkdir("/loader");
    b.mkdir(ENTRIES);
    let mut wanted_entries: BTreeSet<String> = BTreeSet::new();
    let others = kept.iter().copied().filter(|g| *g != roles.default);
    for g in [roles.default].into_iter().chain(others) {
        let old = existing.get(&g);
        let rank = match old {
            _ if g == roles.default => default_rank,
            Some((e, _)) => e.rank,
            None => 0,
        };
        let text = by_number[&g].render(rank);
        // A new rank is a new name (the old entry goes with the removals,
        // once the new one is whole); the counter stays.
        let name = match old {
            Some((e, _)) => EntryName { rank, ..*e },
            None => EntryName::new(g, rank, settings.tries),
        };
        let file = match old {
            Some((e, f)) if e.rank == rank => (*f).clone(),
            _ => name.to_string(),
        };
        let path = format!("{ENTRIES}/{file}");
        match state.entries.get(&file) {
            Some(t) if *t == text => {}
            // Only when kod's entry text itself changes: the one rewrite
            // under the same name, missing between remove and rename.
            Some(_) => b.write(path.clone(), Some(path), text),
            None => b.write(path, None, text),
        }
        wanted_entries.insert(file);
    }
    for (file, text) in &extras {
        wanted_entries.insert(file.clone());
        let old = state.entries.get(file);
        if old != Some(text) {
            let path = format!("{ENTRIES}/{file}");
            b.write(path.clone(), old.map(|_| path.clone()), text.clone());
        }
    }

    // 3. loader.conf.
    let loader = settings.render_loader();
    if state.loader.as_ref() != Some(&loader) {
        b.write(
            LOADER.into(),
            state.loader.as_ref().map(|_| LOADER.into()),
            loader,
        );
    }

    // 4. Removals.
    for name in state.entries.keys() {
        if !wanted_entries.contains(name) {
            b.ops.push(Op::Remove(format!("{ENTRIES}/{name}")));
        }
    }
    for f in &state.files {
        if !blobs.contains_key(f) && !b.parts.contains(f) {
            b.ops.push(Op::Remove(f.clone()));
        }
    }
    // Only `/kod/KVER`, and only when it holds no directory (which kod
    // never makes and does not list).
    for d in &state.dirs {
        let inside = format!("{d}/");
        let kver_dir = d.starts_with("/kod/") && d.matches('/').count() == 2;
        let holds_dirs = state.dirs.iter().any(|o| o.starts_with(&inside));
        if kver_dir && !wanted_dirs.contains(d) && !holds_dirs {
            b.ops.push(Op::RemoveDir(d.clone()));
        }
    }
    Ok(Plan { ops: b.ops })
}
