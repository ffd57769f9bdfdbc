//! The boot plan against an ESP held in memory: what a rebuild, a rollback,
//! a delete and retention write, and that stopping after any operation
//! leaves an ESP whose every entry has its files and whose next boot is
//! the one before the run or the one after it.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kod_boot::{
    Blob, BootError, Counter, DirEntry, EntryName, Esp, EspState, Extra, Generation, Op, Roles,
    Settings, Source, plan,
};
use proptest::prelude::*;

/// An ESP in memory; a copied file's contents are "copy of SOURCE".
#[derive(Default, Clone)]
struct MemEsp {
    files: RefCell<BTreeMap<String, Vec<u8>>>,
    dirs: RefCell<BTreeSet<String>>,
}

fn parent(path: &str) -> String {
    let (p, _) = path.rsplit_once('/').unwrap();
    if p.is_empty() { "/".into() } else { p.into() }
}

impl MemEsp {
    fn check_parent(&self, path: &str) {
        let p = parent(path);
        assert!(
            p == "/" || self.dirs.borrow().contains(&p),
            "{path}: no directory {p}"
        );
    }
    fn text(&self, path: &str) -> String {
        String::from_utf8(self.files.borrow()[path].clone()).unwrap()
    }
}

impl Esp for MemEsp {
    fn list(&self, dir: &str) -> Result<Vec<DirEntry>, BootError> {
        let mut out = Vec::new();
        let dir = dir.trim_end_matches('/');
        for f in self.files.borrow().keys() {
            if parent(f) == if dir.is_empty() { "/" } else { dir } {
                out.push(DirEntry {
                    name: f.rsplit_once('/').unwrap().1.into(),
                    is_dir: false,
                });
            }
        }
        for d in self.dirs.borrow().iter() {
            if parent(d) == if dir.is_empty() { "/" } else { dir } {
                out.push(DirEntry {
                    name: d.rsplit_once('/').unwrap().1.into(),
                    is_dir: true,
                });
            }
        }
        out.sort();
        Ok(out)
    }
    fn read(&self, path: &str) -> Result<Vec<u8>, BootError> {
        Ok(self
            .files
            .borrow()
            .get(path)
            .unwrap_or_else(|| panic!("read {path}: missing"))
            .clone())
    }
    fn write(&self, path: &str, from: Source<'_>) -> Result<(), BootError> {
        self.check_parent(path);
        let bytes = match from {
            Source::Bytes(b) => b.to_vec(),
            Source::File(f) => format!("copy of {}", f.display()).into_bytes(),
        };
        self.files.borrow_mut().insert(path.into(), bytes);
        Ok(())
    }
    fn rename(&self, from: &str, to: &str) -> Result<(), BootError> {
        assert_eq!(parent(from), parent(to));
        assert!(!self.files.borrow().contains_key(to), "rename over {to}");
        let b = self
            .files
            .borrow_mut()
            .remove(from)
            .unwrap_or_else(|| panic!("rename {from}: missing"));
        self.files.borrow_mut().insert(to.into(), b);
        Ok(())
    }
    fn remove(&self, path: &str) -> Result<(), BootError> {
        assert!(
            self.files.borrow_mut().remove(path).is_some(),
            "remove {path}: missing"
        );
        Ok(())
    }
    fn remove_dir(&self, path: &str) -> Result<(), BootError> {
        let inside = format!("{path}/");
        assert!(
            !self.files.borrow().keys().any(|f| f.starts_with(&inside)),
            "{path} not empty"
        );
        assert!(
            !self.dirs.borrow().iter().any(|f| f.starts_with(&inside)),
            "{path} not empty"
        );
        assert!(self.dirs.borrow_mut().remove(path));
        Ok(())
    }
    fn mkdir(&self, path: &str) -> Result<(), BootError> {
        self.check_parent(path);
        assert!(
            self.dirs.borrow_mut().insert(path.into()),
            "mkdir {path}: exists"
        );
        Ok(())
    }
}

const KERNELS: [(&str, &str); 3] = [
    ("6.1.0-27-amd64", "aa"),
    ("6.1.0-28-amd64", "bb"),
    ("6.1.0-28-amd64", "cc"),
];

/// Generation `n` with kernel `k` of [`KERNELS`] and initramfs `i`.
fn generation(n: u64, k: usize, i: usize) -> Generation {
    let (kver, hash) = KERNELS[k];
    Generation {
        number: n,
        kernel_version: kver.into(),
        kernel: Blob {
            source: format!("/gens/{n}/boot/vmlinuz-{kver}").into(),
            sha256: hash.repeat(32),
        },
        initrd: Blob {
            source: format!("/gens/{n}/boot/initrd.img-{kver}").into(),
            sha256: format!("{i:02}").repeat(32),
        },
        root_uuid: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".into(),
        options: vec!["console=ttyS0".into()],
        date: "2026-12-04".into(),
    }
}

fn roles(default: u64) -> Roles {
    Roles {
        default,
        booted: None,
        last_good: None,
    }
}

fn sync(esp: &MemEsp, gens: &[Generation], roles: &Roles, settings: &Settings) -> Vec<Op> {
    let state = EspState::read(esp).unwrap();
    let p = plan(&state, gens, roles, settings).unwrap();
    p.apply(esp).unwrap();
    p.ops
}

fn entry_names(esp: &MemEsp) -> Vec<String> {
    esp.files
        .borrow()
        .keys()
        .filter_map(|f| f.strip_prefix("/loader/entries/"))
        .map(String::from)
        .collect()
}

fn kod_files(esp: &MemEsp) -> Vec<String> {
    esp.files
        .borrow()
        .keys()
        .filter(|f| f.starts_with("/kod/"))
        .cloned()
        .collect()
}

/// The `key` line of `text`.
fn line<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
}

/// Every kod entry's files exist, no `.part` is an entry, and the next
/// boot's entry exists.
fn check_bootable(state: &EspState) -> Result<(), String> {
    for (name, text) in &state.entries {
        if EntryName::parse(name).is_none() {
            continue;
        }
        for key in ["linux", "initrd"] {
            let f = line(text, key);
            if !state.files.contains(f) {
                return Err(format!("{name}: {key} {f} is missing"));
            }
        }
        if !text.contains("rootflags=subvol=generations/") {
            return Err(format!("{name} has no root subvolume"));
        }
    }
    Ok(())
}

#[test]
fn first_install_writes_files_then_the_entry_then_loader_conf() {
    let esp = MemEsp::default();
    let settings = Settings {
        timeout: Some(3),
        ..Settings::default()
    };
    let ops = sync(&esp, &[generation(0, 0, 0)], &roles(0), &settings);
    let shown: Vec<String> = ops.iter().map(|o| o.to_string()).collect();
    assert_eq!(
        shown,
        [
            "make directory /kod",
            "make directory /kod/6.1.0-27-amd64",
            "copy /gens/0/boot/initrd.img-6.1.0-27-amd64 to /kod/6.1.0-27-amd64/initrd-0000000000000000.part",
            "rename /kod/6.1.0-27-amd64/initrd-0000000000000000.part to /kod/6.1.0-27-amd64/initrd-0000000000000000",
            "copy /gens/0/boot/vmlinuz-6.1.0-27-amd64 to /kod/6.1.0-27-amd64/vmlinuz-aaaaaaaaaaaaaaaa.part",
            "rename /kod/6.1.0-27-amd64/vmlinuz-aaaaaaaaaaaaaaaa.part to /kod/6.1.0-27-amd64/vmlinuz-aaaaaaaaaaaaaaaa",
            "make directory /loader",
            "make directory /loader/entries",
            "write /loader/entries/kod-0_1+3.conf.part",
            "rename /loader/entries/kod-0_1+3.conf.part to /loader/entries/kod-0_1+3.conf",
            "write /loader/loader.conf.part",
            "rename /loader/loader.conf.part to /loader/loader.conf",
        ]
    );
    let entry = esp.text("/loader/entries/kod-0_1+3.conf");
    assert_eq!(
        line(&entry, "linux"),
        "/kod/6.1.0-27-amd64/vmlinuz-aaaaaaaaaaaaaaaa"
    );
    assert_eq!(
        line(&entry, "options"),
        "root=UUID=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 rw rootflags=subvol=generations/0/rootfs console=ttyS0"
    );
    assert_eq!(line(&entry, "sort-key"), "kod");
    assert_eq!(
        esp.text("/kod/6.1.0-27-amd64/vmlinuz-aaaaaaaaaaaaaaaa"),
        "copy of /gens/0/boot/vmlinuz-6.1.0-27-amd64"
    );
    let loader = esp.text("/loader/loader.conf");
    assert_eq!(line(&loader, "timeout"), "3");
    assert_eq!(line(&loader, "default"), "kod-*");
    // Nothing left to do.
    let state = EspState::read(&esp).unwrap();
    assert!(
        plan(&state, &[generation(0, 0, 0)], &roles(0), &settings)
            .unwrap()
            .is_empty()
    );
    assert_eq!(state.next_boot(), Some(0));
}

#[test]
fn a_rebuild_writes_one_entry_and_shares_the_kernel() {
    let esp = MemEsp::default();
    let s = Settings::default();
    sync(&esp, &[generation(0, 1, 0)], &roles(0), &s);
    // Generation 1: same kernel, new initramfs.
    let gens = [generation(0, 1, 0), generation(1, 1, 1)];
    let ops = sync(&esp, &gens, &roles(1), &s);
    let writes: Vec<&Op> = ops
        .iter()
        .filter(|o| matches!(o, Op::Write { .. } | Op::Copy { .. }))
        .collect();
    assert_eq!(writes.len(), 2, "one initramfs and one entry: {ops:#?}");
    assert!(
        !ops.iter().any(|o| matches!(o, Op::Remove(_))),
        "nothing rewritten: {ops:#?}"
    );
    assert_eq!(entry_names(&esp), ["kod-0_1+3.conf", "kod-1_2+3.conf"]);
    let (e0, e1) = (
        esp.text("/loader/entries/kod-0_1+3.conf"),
        esp.text("/loader/entries/kod-1_2+3.conf"),
    );
    assert_eq!(line(&e1, "version"), "2.1");
    assert_eq!(line(&e0, "linux"), line(&e1, "linux"));
    assert_ne!(line(&e0, "initrd"), line(&e1, "initrd"));
    assert_eq!(EspState::read(&esp).unwrap().next_boot(), Some(1));
}

#[test]
fn rollback_rewrites_only_the_new_defaults_entry_and_keeps_its_counter() {
    let esp = MemEsp::default();
    let s = Settings::default();
    let gens: Vec<Generation> = (0..3).map(|n| generation(n, 1, n as usize)).collect();
    for n in 0..3 {
        sync(&esp, &gens[..=n as usize], &roles(n), &s);
    }
    // The boot of 0 was blessed, 2 failed all its tries.
    esp.rename(
        "/loader/entries/kod-0_1+3.conf",
        "/loader/entries/kod-0_1.conf",
    )
    .unwrap();
    esp.rename(
        "/loader/entries/kod-2_3+3.conf",
        "/loader/entries/kod-2_3+0-3.conf",
    )
    .unwrap();
    // Fallback: 1 was the default most recently before 2.
    assert_eq!(EspState::read(&esp).unwrap().next_boot(), Some(1));

    let ops = sync(
        &esp,
        &gens,
        &Roles {
            default: 0,
            booted: Some(1),
            last_good: Some(0),
        },
        &s,
    );
    let touched: Vec<String> = ops.iter().map(|o| o.to_string()).collect();
    assert_eq!(
        touched,
        [
            "write /loader/entries/kod-0_4.conf.part",
            "rename /loader/entries/kod-0_4.conf.part to /loader/entries/kod-0_4.conf",
            "remove /loader/entries/kod-0_1.conf",
        ]
    );
    let state = EspState::read(&esp).unwrap();
    assert_eq!(state.next_boot(), Some(0));
    let bad: Vec<u64> = state
        .kod_entries()
        .iter()
        .filter(|e| e.is_bad())
        .map(|e| e.generation)
        .collect();
    assert_eq!(bad, [2]);
    assert_eq!(state.newest_blessed(), Some(0));
    assert_eq!(state.entry_file(2), Some("kod-2_3+0-3.conf"));
    assert_eq!(state.entry_file(0), Some("kod-0_4.conf"));
    assert_eq!(state.entry_file(7), None);
}

#[test]
fn retention_and_delete_remove_entries_then_unused_files() {
    let esp = MemEsp::default();
    let s = Settings {
        max_entries: 2,
        ..Settings::default()
    };
    // Three rebuilds on 0, each with a new kernel or initramfs.
    let gens = [
        generation(0, 0, 0),
        generation(1, 1, 1),
        generation(2, 2, 2),
        generation(3, 2, 3),
    ];
    for n in 0..4 {
        let r = Roles {
            default: n as u64,
            booted: None,
            last_good: Some(0),
        };
        sync(&esp, &gens[..=n], &r, &s);
    }
    // The check: exactly two entries, the default among them, and
    // no file no entry uses.
    assert_eq!(entry_names(&esp), ["kod-0_1+3.conf", "kod-3_4+3.conf"]);
    let used: BTreeSet<String> = entry_names(&esp)
        .iter()
        .flat_map(|n| {
            let t = esp.text(&format!("/loader/entries/{n}"));
            [
                line(&t, "linux").to_string(),
                line(&t, "initrd").to_string(),
            ]
        })
        .collect();
    assert_eq!(kod_files(&esp).into_iter().collect::<BTreeSet<_>>(), used);
    // 6.1.0-27's directory stays for generation 0; nothing else lingers.
    assert_eq!(
        esp.dirs
            .borrow()
            .iter()
            .filter(|d| d.starts_with("/kod/"))
            .count(),
        2
    );

    // Deleting generation 0 removes its entry and its kernel's directory.
    let ops = sync(&esp, &gens[1..], &roles(3), &Settings::default());
    assert!(
        ops.contains(&Op::RemoveDir("/kod/6.1.0-27-amd64".into())),
        "{ops:#?}"
    );
    assert_eq!(
        entry_names(&esp),
        ["kod-1_0+3.conf", "kod-2_0+3.conf", "kod-3_4+3.conf"]
    );
}

#[test]
fn extras_are_written_after_kod_entries_and_never_match_the_default() {
    let esp = MemEsp::default();
    let mut s = Settings::default();
    s.extras.push(Extra {
        name: "memtest86+".into(),
        title: "Memory test (memtest86+)".into(),
        efi: Blob {
            source: "/gens/0/boot/memtest86+x64.efi".into(),
            sha256: "ef".repeat(32),
        },
    });
    sync(&esp, &[generation(0, 0, 0)], &roles(0), &s);
    assert_eq!(
        entry_names(&esp),
        ["kod-0_1+3.conf", "kodextra-memtest86+.conf"]
    );
    let extra = esp.text("/loader/entries/kodextra-memtest86+.conf");
    assert_eq!(line(&extra, "title"), "Memory test (memtest86+)");
    assert_eq!(
        line(&extra, "efi"),
        "/kod/memtest86+/memtest86+-efefefefefefefef.efi"
    );
    assert_eq!(
        esp.text("/kod/memtest86+/memtest86+-efefefefefefefef.efi"),
        "copy of /gens/0/boot/memtest86+x64.efi"
    );
    assert_eq!(EspState::read(&esp).unwrap().next_boot(), Some(0));
    // Dropped from the configuration: its entry, program and directory go.
    s.extras.clear();
    sync(&esp, &[generation(0, 0, 0)], &roles(0), &s);
    assert_eq!(entry_names(&esp), ["kod-0_1+3.conf"]);
    assert!(kod_files(&esp).iter().all(|f| !f.contains("memtest")));
    assert!(!esp.dirs.borrow().contains("/kod/memtest86+"));
}

#[test]
fn leftovers_of_a_stopped_run_are_finished_or_removed() {
    let esp = MemEsp::default();
    let s = Settings::default();
    let gens = [generation(0, 0, 0), generation(1, 1, 1)];
    sync(&esp, &gens[..1], &roles(0), &s);
    let state = EspState::read(&esp).unwrap();
    let ops = plan(&state, &gens, &roles(1), &s).unwrap().ops;
    // Stop right after the new kernel's copy.
    let stop = ops
        .iter()
        .position(|o| matches!(o, Op::Copy { to, .. } if to.contains("vmlinuz")))
        .unwrap();
    for op in &ops[..=stop] {
        op.apply(&esp).unwrap();
    }
    // The next run re-copies the partial file and leaves no .part.
    sync(&esp, &gens, &roles(1), &s);
    assert!(esp.files.borrow().keys().all(|f| !f.ends_with(".part")));
    // A run that wants generation 0 only removes a stray .part too.
    esp.write("/loader/entries/kod-5+3.conf.part", Source::Bytes(b"half"))
        .unwrap();
    sync(&esp, &gens[..1], &roles(0), &s);
    assert!(esp.files.borrow().keys().all(|f| !f.ends_with(".part")));
    // 0 moved above 1 (rank 2) again.
    assert_eq!(entry_names(&esp), ["kod-0_3+3.conf"]);
}

#[test]
fn refusals_name_the_culprit() {
    let state = EspState::default();
    let s = Settings::default();
    let err = plan(&state, &[generation(0, 0, 0)], &roles(4), &s).unwrap_err();
    assert!(err.to_string().contains("default generation 4"), "{err}");
    let err = plan(
        &state,
        &[generation(1, 0, 0), generation(1, 1, 0)],
        &roles(1),
        &s,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("generation 1 was given twice"),
        "{err}"
    );
    let mut g = generation(0, 0, 0);
    g.kernel_version = "../../x".into();
    assert!(matches!(
        plan(&state, &[g], &roles(0), &s),
        Err(BootError::BadKernelVersion { .. })
    ));
    assert!(Path::new("/").is_absolute());
}

/// One step of a random history: the generations that exist, the roles,
/// and what systemd did to the counters since the last run.
#[derive(Debug, Clone)]
struct Step {
    gens: Vec<u64>,
    default_pick: usize,
    booted_pick: Option<usize>,
    good_pick: Option<usize>,
    max: usize,
    tries: u32,
    /// (entry pick, blessed or failed)
    counters: Vec<(usize, bool)>,
    /// A run stopped after this many operations (modulo their number)
    /// before the run that finishes.
    stop: Option<usize>,
}

fn step() -> impl Strategy<Value = Step> {
    (
        prop::collection::btree_set(0u64..12, 1..7),
        0usize..7,
        prop::option::of(0usize..7),
        prop::option::of(0usize..7),
        0usize..5,
        0u32..4,
        prop::collection::vec((0usize..7, any::<bool>()), 0..3),
        prop::option::of(0usize..40),
    )
        .prop_map(|(g, d, b, l, max, tries, counters, stop)| Step {
            gens: g.into_iter().collect(),
            default_pick: d,
            booted_pick: b,
            good_pick: l,
            max,
            tries,
            counters,
            stop,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Every prefix of every plan of a random history keeps the ESP
    /// bootable, and its next boot is the one before the run or after it.
    #[test]
    fn stopping_after_any_operation_leaves_a_bootable_esp(
        // A generation's kernel and initramfs are fixed when it is committed.
        files in prop::collection::vec((0usize..3, 0usize..3), 12),
        steps in prop::collection::vec(step(), 1..5),
    ) {
        let esp = MemEsp::default();
        for st in steps {
            // systemd's renames since the last run.
            for (pick, blessed) in &st.counters {
                let names: Vec<String> = entry_names(&esp).into_iter().filter(|n| n.starts_with("kod-")).collect();
                if let Some(name) = names.get(pick % names.len().max(1)) {
                    let e = EntryName::parse(name).unwrap();
                    let counter = if *blessed { Counter::Blessed } else { Counter::Counting { left: 0, done: 3 } };
                    let to = EntryName { counter, ..e }.to_string();
                    if to != *name {
                        esp.rename(&format!("/loader/entries/{name}"), &format!("/loader/entries/{to}")).unwrap();
                    }
                }
            }
            let gens: Vec<Generation> = st.gens.iter().map(|&n| {
                let (k, i) = files[n as usize];
                generation(n, k, i)
            }).collect();
            let pick = |i: usize| gens[i % gens.len()].number;
            let roles = Roles {
                default: pick(st.default_pick),
                booted: st.booted_pick.map(pick),
                last_good: st.good_pick.map(pick),
            };
            let settings = Settings { max_entries: st.max, tries: st.tries, ..Settings::default() };
            if let Some(stop) = st.stop {
                let state = EspState::read(&esp).unwrap();
                let stopped = plan(&state, &gens, &roles, &settings).unwrap().ops;
                for op in &stopped[..stop % (stopped.len() + 1)] {
                    op.apply(&esp).unwrap();
                    let now = EspState::read(&esp).unwrap();
                    prop_assert!(check_bootable(&now).is_ok(), "after {op}: {:?}", check_bootable(&now));
                }
            }
            let before = EspState::read(&esp).unwrap();
            let p = plan(&before, &gens, &roles, &settings).unwrap();

            // Apply one operation at a time, checking after each.
            let mut seen = vec![before.next_boot()];
            for (k, op) in p.ops.iter().enumerate() {
                op.apply(&esp).unwrap();
                let now = EspState::read(&esp).unwrap();
                prop_assert!(check_bootable(&now).is_ok(), "after op {k} ({op}): {:?}", check_bootable(&now));
                if before.next_boot().is_some() {
                    prop_assert!(now.next_boot().is_some(), "nothing boots after op {k} ({op})");
                }
                seen.push(now.next_boot());
            }
            let after = EspState::read(&esp).unwrap();
            let first = seen[0];
            let last = after.next_boot();
            // Before the run something booted: that until the switch,
            // the new default after it. On a fresh ESP, entries that are
            // not the default may boot before the switch; with a bad
            // default, any good entry may (systemd-boot's fallback).
            let default_bad = after.kod_entries().iter().any(|e| e.generation == roles.default && e.is_bad());
            if first.is_some() && !default_bad {
                prop_assert!(seen.iter().all(|s| *s == first || *s == last), "next boots along the way: {seen:?}");
            }
            if !default_bad {
                let switched = seen.iter().position(|s| *s == last).unwrap();
                prop_assert!(seen[switched..].iter().all(|s| *s == last), "next boots along the way: {seen:?}");
            }

            // The outcome: the kept entries, the default booted unless bad,
            // exactly the files they use, and nothing more to do.
            let kept = kod_boot::retain(&gens.iter().map(|g| g.number).collect::<Vec<_>>(),
                &[Some(roles.default), roles.booted, roles.last_good].into_iter().flatten().collect::<Vec<_>>(), st.max);
            let entries: BTreeSet<u64> = after.kod_entries().iter().map(|e| e.generation).collect();
            prop_assert_eq!(&entries, &kept);
            if !default_bad {
                prop_assert_eq!(last, Some(roles.default));
            }
            let used: BTreeSet<String> = kept.iter().flat_map(|n| {
                let g = &gens.iter().find(|g| g.number == *n).unwrap();
                [g.kernel_path(), g.initrd_path()]
            }).collect();
            prop_assert_eq!(kod_files(&esp).into_iter().collect::<BTreeSet<_>>(), used);
            prop_assert!(plan(&after, &gens, &roles, &settings).unwrap().is_empty());
        }
    }
}
