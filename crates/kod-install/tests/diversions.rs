//! Diversions (`dpkg-divert`): a package whose path another package
//! diverts is written where the diversion sends it and listed under its
//! own name, exactly as the root's own dpkg does it in a copy of the same
//! root (md5sums and file triggers by where the file went); a third
//! package shipping that path without `Replaces` is a file
//! conflict naming the owner, and leaves the root as it was. Root and
//! network (the minbase root is built from the cached minbase set):
//! `KOD_TEST_ROOT=1 KOD_TEST_NET=1`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    Fixture, assert_same_tree, in_root_ok, leftovers, minbase_root, net_tmp, run, snapshot,
};
use kod_install::{Error, Options, Transaction};

const TOOL: &str = "/usr/bin/kod-divert-tool";
const DIVERTED: &str = "/usr/bin/kod-divert-tool.distrib";

fn install(root: &Path, debs: &[PathBuf]) -> Result<(), Error> {
    let mut t = Transaction::begin(root, &Options::default())?;
    t.install(debs)?;
    t.commit()?;
    Ok(())
}

/// What dpkg says of the diverted path, in `root` (the owners `dpkg -S`
/// names sorted: their order is dpkg's internal one, not stable).
fn facts(root: &Path) -> String {
    in_root_ok(
        root,
        &format!(
            "cat {TOOL} {DIVERTED}; dpkg-divert --list 'kod-*'; dpkg -L kod-tool; \
             cat /var/lib/dpkg/info/kod-tool.md5sums; \
             dpkg -S {TOOL} | grep '^diversion by'; \
             dpkg -S {TOOL} | sed -n 's/^\\(kod-[^:]*\\): .*/\\1/p' | tr -d ' ' | tr , '\\n' | sort; \
             cat /var/lib/kod-watcher.log; dpkg --verify kod-tool kod-holder; dpkg --audit"
        ),
    )
}

#[test]
fn net_root_diverted_paths_are_written_where_dpkg_writes_them() {
    let Some(tmp) = net_tmp() else { return };
    let ours = minbase_root(tmp.path(), "ours");
    let theirs = tmp.path().join("theirs");
    run(Command::new("cp").arg("-a").arg(&ours).arg(&theirs));

    // The holder diverts the tool's path in its preinst and ships its own
    // file there, as wrappers (dash's /bin/sh, fakeroot's) do.
    let preinst = format!(
        "#!/bin/sh\nset -e\nif [ \"$1\" = install ]; then\n  dpkg-divert --package kod-holder \
         --add --rename --divert {DIVERTED} {TOOL}\nfi\n"
    );
    let holder = Fixture {
        files: &[(TOOL, "the holder's wrapper\n")],
        members: &[("preinst", &preinst)],
        ..Fixture::new("kod-holder")
    }
    .build(tmp.path());
    let tool = Fixture {
        files: &[(TOOL, "the real tool\n")],
        ..Fixture::new("kod-tool")
    }
    .build(tmp.path());
    // A file trigger on where the diversion sends the tool: dpkg sets it
    // off when the tool is unpacked there.
    let watcher = Fixture {
        members: &[
            ("triggers", &format!("interest-noawait {DIVERTED}\n")),
            (
                "postinst",
                "#!/bin/sh\necho \"$1 $2\" >> /var/lib/kod-watcher.log\n",
            ),
        ],
        ..Fixture::new("kod-watcher")
    }
    .build(tmp.path());

    // The holder first (its preinst adds the diversion during kod's
    // transaction), the tool in a second transaction; dpkg likewise.
    install(&ours, &[holder.clone(), watcher.clone()]).expect("install the holder");
    install(&ours, std::slice::from_ref(&tool)).expect("install the diverted package");
    for deb in [&holder, &watcher, &tool] {
        run(Command::new("cp").arg(deb).arg(theirs.join("tmp")));
    }
    in_root_ok(
        &theirs,
        "dpkg -i /tmp/kod-holder_1.0-1_all.deb /tmp/kod-watcher_1.0-1_all.deb && \
         dpkg -i /tmp/kod-tool_1.0-1_all.deb",
    );

    let ours_facts = facts(&ours);
    assert!(
        ours_facts.starts_with("the holder's wrapper\nthe real tool\n"),
        "{ours_facts}"
    );
    assert!(
        ours_facts.contains("\nkod-holder\nkod-tool\n"),
        "both own the path by its name: {ours_facts}"
    );
    assert!(
        ours_facts.contains("\nconfigure \ntriggered /usr/bin/kod-divert-tool.distrib\n"),
        "the trigger on the diverted name went off: {ours_facts}"
    );
    assert_eq!(ours_facts, facts(&theirs));

    // Another package shipping the path, without Replaces: a conflict with
    // the tool (the package owning that name), and nothing changed.
    let clash = Fixture {
        files: &[(TOOL, "a third one\n")],
        ..Fixture::new("kod-clash")
    }
    .build(tmp.path());
    let before = snapshot(&ours);
    match install(&ours, std::slice::from_ref(&clash)) {
        Err(e @ Error::Db(kod_db::Error::FileConflict { .. })) => {
            let msg = e.to_string();
            assert!(msg.contains("kod-clash"), "{msg}");
            assert!(msg.contains(TOOL), "{msg}");
            assert!(msg.contains("installed package kod-tool owns"), "{msg}");
        }
        other => panic!("expected a file conflict, got {other:?}"),
    }
    assert_same_tree(&before, &snapshot(&ours), "root after the refused package");
    assert_eq!(leftovers(&ours), Vec::<PathBuf>::new());
}
