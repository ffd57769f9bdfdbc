//! Each resolution rule on small synthetic indexes, every solution also
//! checked by the independent checker of `common`.

mod common;

use common::{check, index, names, one, set};
use kod_solve::{
    Action, Installed, PackageRequest, Request, SolveError, close_names, solve, variant_base,
};
use kod_testkit::assert_contains;

fn req(packages: &[&str]) -> Request {
    Request::new(Vec::<String>::new(), packages).unwrap()
}

/// Solves and checks; returns the resolution.
fn ok(
    index: &kod_repo::Index,
    request: &Request,
    installed: Option<&Installed>,
) -> kod_solve::Resolution {
    let r = solve(index, request, installed).unwrap_or_else(|e| panic!("{e}"));
    let base: Vec<&str> = request.base.iter().map(String::as_str).collect();
    check(index, &r, &base, &request.packages, installed).unwrap();
    r
}

fn unsat(index: &kod_repo::Index, request: &Request) -> String {
    match solve(index, request, None) {
        Err(e @ SolveError::Unsatisfiable(_)) => e.to_string(),
        other => panic!("expected an unsatisfiable request, got {other:?}"),
    }
}

#[test]
fn highest_version_of_every_suite_is_the_candidate() {
    let ix = index(&[
        ("stable", "Package: a\nVersion: 1.0-1\n"),
        ("stable-security", "Package: a\nVersion: 1.0-1+deb1u1\n"),
        ("stable-updates", "Package: a\nVersion: 1.0-1~bpo1\n"),
    ]);
    let r = ok(&ix, &req(&["a"]), None);
    assert_eq!(set(&r), ["a 1.0-1+deb1u1"]);
    assert_eq!(r.packages[0].action, Action::Install);
    assert_eq!(r.download_size, 100);
}

#[test]
fn exact_version_and_suite_requests() {
    let ix = index(&[
        (
            "stable",
            "Package: a\nVersion: 1\n\nPackage: b\nVersion: 1\nDepends: a\n",
        ),
        (
            "testing",
            "Package: a\nVersion: 2\n\nPackage: b\nVersion: 2\nDepends: a (>= 2)\n",
        ),
    ]);
    assert_eq!(set(&ok(&ix, &req(&["b"]), None)), ["a 2", "b 2"]);
    assert_eq!(set(&ok(&ix, &req(&["b=1"]), None)), ["a 2", "b 1"]);
    let r = ok(&ix, &req(&["b/stable", "a/stable"]), None);
    assert_eq!(set(&r), ["a 1", "b 1"]);
    let rec = ix.record(r.packages[0].record.unwrap());
    assert_eq!(ix.origin(rec.origin).suite, "stable");
    let e = solve(&ix, &req(&["a=3"]), None).unwrap_err();
    assert_eq!(e.to_string(), "a has no version 3; available: 2, 1");
    let e = solve(&ix, &req(&["a/unstable"]), None).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("a is not in suite unstable; it is in stable, testing"),
        "{e}"
    );
    // b=1 with a/stable: fine; b/testing with a/stable: a conflict of pins.
    let e = unsat(&ix, &req(&["b/testing", "a/stable"]));
    assert_contains(&e, "b 2 depends on a (>= 2)");
}

#[test]
fn first_satisfiable_alternative_wins() {
    let ix = one("Package: a\nVersion: 1\nDepends: b (>= 2) | c | d\n\n\
         Package: b\nVersion: 1\n\n\
         Package: c\nVersion: 1\n\n\
         Package: d\nVersion: 1\n");
    assert_eq!(names(&ok(&ix, &req(&["a"]), None)), ["a", "c"]);
    // The first alternative when it can be met.
    let ix = one("Package: a\nVersion: 1\nDepends: d | c\n\n\
         Package: c\nVersion: 1\n\n\
         Package: d\nVersion: 1\n");
    assert_eq!(names(&ok(&ix, &req(&["a"]), None)), ["a", "d"]);
    // An alternative that conflicts with a request is passed over.
    let ix = one("Package: a\nVersion: 1\nDepends: d | c\n\n\
         Package: c\nVersion: 1\n\n\
         Package: d\nVersion: 1\nConflicts: e\n\n\
         Package: e\nVersion: 1\n");
    assert_eq!(names(&ok(&ix, &req(&["a", "e"]), None)), ["a", "c", "e"]);
}

#[test]
fn an_alternative_apt_reaches_first_by_another_path_is_kept() {
    // apt walks depth first: a's first dependency b pulls in y, so a's
    // second dependency `x | y` is already met and x is not installed.
    let ix = one("Package: a\nVersion: 1\nDepends: b, x | y\n\n\
         Package: b\nVersion: 1\nDepends: y\n\n\
         Package: x\nVersion: 1\n\n\
         Package: y\nVersion: 1\n");
    assert_eq!(names(&ok(&ix, &req(&["a"]), None)), ["a", "b", "y"]);
    // In the other order apt installs x for the or-group first.
    let ix = one("Package: a\nVersion: 1\nDepends: x | y, b\n\n\
         Package: b\nVersion: 1\nDepends: y\n\n\
         Package: x\nVersion: 1\n\n\
         Package: y\nVersion: 1\n");
    assert_eq!(names(&ok(&ix, &req(&["a"]), None)), ["a", "b", "x", "y"]);
    // Every requested package is marked before any dependency is walked.
    assert_eq!(names(&ok(&ix, &req(&["a", "y"]), None)), ["a", "b", "y"]);
}

#[test]
fn what_apt_marks_for_an_or_group_stays_when_a_sibling_meets_it() {
    // apt: app -> lib -> helper, whose `typing | python3 (>> 3.8)` is met by
    // nothing yet, so typing is installed (and pulls python3). Breadth
    // first, python3 (app's own dependency) would be chosen before
    // helper's or-group is looked at, and typing left out.
    let ix = one("Package: app\nVersion: 1\nDepends: lib, python3\n\n\
         Package: lib\nVersion: 1\nDepends: helper, python3\n\n\
         Package: helper\nVersion: 1\nDepends: typing | python3 (>> 3.8), python3\n\n\
         Package: typing\nVersion: 1\nDepends: python3\n\n\
         Package: python3\nVersion: 3.11\n");
    assert_eq!(
        names(&ok(&ix, &req(&["app"]), None)),
        ["app", "helper", "lib", "python3", "typing"]
    );
}

#[test]
fn a_conflicting_package_apt_marks_later_replaces_the_earlier_one() {
    // As busybox and busybox-static: apt marks bb for x, then bbs for y
    // unmarks bb (it conflicts), and x's `bb | bbs` is met by bbs.
    let ix = one("Package: app\nVersion: 1\nDepends: x, y\n\n\
         Package: x\nVersion: 1\nRecommends: bb | bbs\n\n\
         Package: y\nVersion: 1\nRecommends: bbs\n\n\
         Package: bb\nVersion: 1\nConflicts: bbs\n\n\
         Package: bbs\nVersion: 1\nConflicts: bb\nProvides: bb\n");
    let mut r = req(&["app"]);
    r.recommends = true;
    assert_eq!(names(&ok(&ix, &r, None)), ["app", "bbs", "x", "y"]);
    // A requested package is never unmarked that way.
    let mut r = req(&["app", "bb"]);
    r.recommends = true;
    assert_eq!(names(&ok(&ix, &r, None)), ["app", "bb", "x", "y"]);
}

#[test]
fn pre_depends_are_dependencies() {
    let ix = one("Package: a\nVersion: 1\nPre-Depends: b (>= 2)\n\nPackage: b\nVersion: 2\n");
    assert_eq!(names(&ok(&ix, &req(&["a"]), None)), ["a", "b"]);
}

#[test]
fn versioned_dependencies_need_versioned_provides() {
    let ix = one("Package: a\nVersion: 1\nDepends: v (>= 2)\n\n\
         Package: p1\nVersion: 9\nProvides: v\nPriority: required\n\n\
         Package: p2\nVersion: 1\nProvides: v (= 1)\nPriority: required\n\n\
         Package: p3\nVersion: 1\nProvides: v (= 2.5)\n");
    assert_eq!(names(&ok(&ix, &req(&["a"]), None)), ["a", "p3"]);
    let ix2 = one("Package: a\nVersion: 1\nDepends: v (>= 3)\n\n\
         Package: p1\nVersion: 9\nProvides: v\n\n\
         Package: p3\nVersion: 1\nProvides: v (= 2.5)\n");
    let e = unsat(&ix2, &req(&["a"]));
    assert!(
        e.contains("a 1 depends on v (>= 3), which cannot be met:")
            && e.contains("p1 9 provides v without a version, which (>= 3) needs")
            && e.contains("p3 1 provides v (= 2.5), not (>= 3)"),
        "{e}"
    );
}

#[test]
fn virtual_packages_prefer_real_then_installed_essential_priority() {
    // A real package of the name comes before its providers.
    let ix = one("Package: a\nVersion: 1\nDepends: x\n\n\
         Package: x\nVersion: 1\n\n\
         Package: p\nVersion: 1\nProvides: x\nEssential: yes\n");
    assert_eq!(names(&ok(&ix, &req(&["a"]), None)), ["a", "x"]);
    // Among providers: Essential first, then higher priority.
    let ix = one("Package: a\nVersion: 1\nDepends: awk\n\n\
         Package: gawk\nVersion: 1\nProvides: awk\nPriority: optional\n\n\
         Package: mawk\nVersion: 1\nProvides: awk\nPriority: required\n\n\
         Package: original-awk\nVersion: 1\nProvides: awk\nPriority: optional\n");
    assert_eq!(names(&ok(&ix, &req(&["a"]), None)), ["a", "mawk"]);
    let ix = one("Package: a\nVersion: 1\nDepends: awk\n\n\
         Package: gawk\nVersion: 1\nProvides: awk\nPriority: optional\nEssential: yes\n\n\
         Package: mawk\nVersion: 1\nProvides: awk\nPriority: required\n");
    assert_eq!(names(&ok(&ix, &req(&["a"]), None)), ["a", "gawk"]);
}

#[test]
fn requesting_a_virtual_name() {
    let ix = one(
        "Package: exim4\nVersion: 1\nProvides: mail-transport-agent\n\n\
         Package: postfix\nVersion: 1\nProvides: mail-transport-agent\n\n\
         Package: awk-one\nVersion: 1\nProvides: awk\n",
    );
    assert_eq!(names(&ok(&ix, &req(&["awk"]), None)), ["awk-one"]);
    let e = solve(&ix, &req(&["mail-transport-agent"]), None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "mail-transport-agent is a virtual package provided by exim4, postfix: request one of them"
    );
}

#[test]
fn conflicts_with_a_virtual_name_spare_the_package_itself() {
    let ix = one(
        "Package: exim4\nVersion: 1\nProvides: mail-transport-agent\nConflicts: mail-transport-agent\n\n\
         Package: postfix\nVersion: 1\nProvides: mail-transport-agent\nConflicts: mail-transport-agent\n\n\
         Package: mailer\nVersion: 1\nDepends: mail-transport-agent\n",
    );
    let r = ok(&ix, &req(&["exim4", "mailer"]), None);
    assert_eq!(names(&r), ["exim4", "mailer"]);
    let e = unsat(&ix, &req(&["exim4", "postfix"]));
    assert_contains(
        &e,
        "exim4 1 (requested) conflicts with mail-transport-agent, which postfix provides; \
             that rules out postfix 1 (requested)",
    );
}

#[test]
fn conflicts_and_breaks_respect_versions() {
    let ix = one("Package: a\nVersion: 1\nBreaks: b (<< 2)\n\n\
         Package: b\nVersion: 1\n\n\
         Package: c\nVersion: 1\nConflicts: d (>= 2)\n\n\
         Package: d\nVersion: 1\n");
    let e = unsat(&ix, &req(&["a", "b"]));
    assert_contains(
        &e,
        "a 1 (requested) breaks b (<< 2); that rules out b 1 (requested)",
    );
    assert_eq!(names(&ok(&ix, &req(&["c", "d"]), None)), ["c", "d"]);
    // Breaks push the solver to an older version that is not hit.
    let ix = one("Package: a\nVersion: 1\nBreaks: b (>= 3)\n\n\
         Package: b\nVersion: 3\n\n\
         Package: b\nVersion: 2\n\n\
         Package: x\nVersion: 1\nDepends: b\n");
    assert_eq!(
        set(&ok(&ix, &req(&["a", "x"]), None)),
        ["a 1", "b 2", "x 1"]
    );
}

#[test]
fn multi_arch_qualifiers() {
    let ix = index(&[(
        "stable",
        "Package: py-tool\nVersion: 1\nArchitecture: all\nDepends: python3:any\n\n\
         Package: python3\nVersion: 3.11\nMulti-Arch: allowed\n\n\
         Package: perl-tool\nVersion: 1\nDepends: perl:any\n\n\
         Package: perl\nVersion: 5\n\n\
         Package: cross\nVersion: 1\nDepends: libc6:i386\n\n\
         Package: native\nVersion: 1\nDepends: libc6:native, libc6:amd64\n\n\
         Package: libc6\nVersion: 2\nMulti-Arch: same\n\n\
         Package: libc6\nVersion: 3\nArchitecture: i386\nMulti-Arch: same\n\n\
         Package: only-i386\nVersion: 1\nArchitecture: i386\n",
    )]);
    assert_eq!(
        names(&ok(&ix, &req(&["py-tool"]), None)),
        ["py-tool", "python3"]
    );
    let e = unsat(&ix, &req(&["perl-tool"]));
    assert_contains(&e, "perl is not Multi-Arch: allowed, which :any needs");
    let e = unsat(&ix, &req(&["cross"]));
    assert_contains(&e, "cross 1 depends on libc6:i386, which cannot be met");
    let r = ok(&ix, &req(&["native"]), None);
    assert_eq!(
        set(&r),
        ["libc6 2", "native 1"],
        "the i386 libc6 is not a candidate"
    );
    let e = solve(&ix, &req(&["only-i386"]), None).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("only-i386 is not available for architecture amd64 (only for i386)"),
        "{e}"
    );
}

#[test]
fn conflicts_with_any_hit_every_architecture() {
    let ix = one("Package: a\nVersion: 1\nConflicts: b:any\n\n\
         Package: b\nVersion: 1\n");
    unsat(&ix, &req(&["a", "b"]));
}

const STATUS: &str = "\
Package: x
Status: install ok installed
Architecture: amd64
Version: 1

Package: postfix
Status: install ok installed
Architecture: amd64
Version: 1
Provides: mail-transport-agent

Package: local-tool
Status: install ok installed
Architecture: amd64
Version: 0.1-local
Depends: x
";

#[test]
fn installed_packages_are_kept_and_preferred() {
    let ix = one("Package: x\nVersion: 2\n\nPackage: x\nVersion: 1\n\n\
         Package: a\nVersion: 1\nDepends: x\n\n\
         Package: b\nVersion: 1\nDepends: x (>= 2)\n\n\
         Package: exim4\nVersion: 1\nProvides: mail-transport-agent\nPriority: important\n\n\
         Package: postfix\nVersion: 1\nProvides: mail-transport-agent\nPriority: optional\n\n\
         Package: mailer\nVersion: 1\nDepends: mail-transport-agent\n");
    let inst = kod_db::dpkg::parse_installed(STATUS, "amd64").unwrap();
    let r = ok(&ix, &req(&["a"]), Some(&inst));
    assert_eq!(set(&r), ["a 1", "local-tool 0.1-local", "postfix 1", "x 1"]);
    let changes: Vec<_> = r.changes().map(|p| p.name.as_str()).collect();
    assert_eq!(changes, ["a"]);
    assert_eq!(
        r.get("local-tool").unwrap().record,
        None,
        "kept though no repository has it"
    );
    assert_eq!(
        r.download_size,
        ix.by_name("a").next().unwrap().location.size
    );
    // A dependency on a newer version upgrades the installed one.
    let r = ok(&ix, &req(&["b"]), Some(&inst));
    let x = r.get("x").unwrap();
    assert_eq!(
        x.action,
        Action::Upgrade {
            from: inst.get("x").unwrap().version().clone()
        }
    );
    // The installed provider of a virtual package is preferred.
    let r = ok(&ix, &req(&["mailer"]), Some(&inst));
    assert!(r.get("exim4").is_none(), "{:?}", set(&r));
    // Without it, priority decides.
    let r = ok(&ix, &req(&["mailer"]), None);
    assert_eq!(names(&r), ["exim4", "mailer"]);
}

#[test]
fn a_request_conflicting_with_an_installed_package_is_explained() {
    // kod installs, it does not remove: an installed package stays.
    let ix = one(
        "Package: postfix\nVersion: 1\nProvides: mail-transport-agent\nConflicts: mail-transport-agent\n\n\
         Package: exim4\nVersion: 1\nProvides: mail-transport-agent\nConflicts: mail-transport-agent\n",
    );
    let status = "Package: postfix\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n\
                  Provides: mail-transport-agent\nConflicts: mail-transport-agent\n";
    let inst = kod_db::dpkg::parse_installed(status, "amd64").unwrap();
    let e = solve(&ix, &req(&["exim4"]), Some(&inst))
        .unwrap_err()
        .to_string();
    assert_contains(&e, "postfix is installed and stays");
    assert_contains(
        &e,
        "exim4 1 (requested) conflicts with mail-transport-agent, which postfix provides",
    );
}

#[test]
fn recommends_are_an_option() {
    let ix = one("Package: a\nVersion: 1\nRecommends: b, missing\n\n\
         Package: b\nVersion: 1\n");
    assert_eq!(names(&ok(&ix, &req(&["a"]), None)), ["a"]);
    let mut r = req(&["a"]);
    r.recommends = true;
    assert_eq!(
        names(&ok(&ix, &r, None)),
        ["a", "b"],
        "an unmet recommendation is skipped"
    );
}

#[test]
fn an_upgrade_keeps_a_recommendation_the_installed_version_left_unmet() {
    // apt: a Recommends the installed version had too and the system did
    // not meet stays unmet on upgrade; a new one is followed.
    let ix = one("Package: a\nVersion: 2\nRecommends: b, c\n\n\
         Package: b\nVersion: 1\n\n\
         Package: c\nVersion: 1\n\n\
         Package: want\nVersion: 1\nDepends: a (>= 2)\n");
    let status = "Package: a\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n\
                  Recommends: b\n";
    let inst = kod_db::dpkg::parse_installed(status, "amd64").unwrap();
    let mut r = req(&["want"]);
    r.recommends = true;
    let got = ok(&ix, &r, Some(&inst));
    assert_eq!(set(&got), ["a 2", "c 1", "want 1"]);
}

#[test]
fn explanations_say_who_needs_what_and_why_each_candidate_is_out() {
    let ix = one(
        "Package: git\nVersion: 1:2.39\nDepends: libcurl3-gnutls (>= 7.56), perl\n\n\
         Package: libcurl3-gnutls\nVersion: 7.50\n\n\
         Package: perl\nVersion: 5\n",
    );
    let e = unsat(&ix, &req(&["git"]));
    assert_eq!(
        e,
        "the request cannot be satisfied:\n\
         - git is requested, but its only candidate, git 1:2.39, cannot be installed:\n  \
         - git 1:2.39 depends on libcurl3-gnutls (>= 7.56), which cannot be met: the only \
         version of libcurl3-gnutls, 7.50, is too old"
    );
    let ix = one("Package: a\nVersion: 1\nConflicts: b\n\n\
         Package: b\nVersion: 2\n\n\
         Package: tool\nVersion: 1\nDepends: nothere | b (<< 1)\n");
    let e = unsat(&ix, &req(&["a", "b"]));
    assert_contains(
        &e,
        "a 1 (requested) conflicts with b; that rules out b 2 (requested)",
    );
    let e = unsat(&ix, &req(&["tool"]));
    assert_contains(
        &e,
        "tool 1 depends on nothere | b (<< 1), which cannot be met: no repository has a package nothere; the only version of b, 2, is too new",
    );
}

#[test]
fn unknown_names_suggest_close_ones() {
    let ix = one("Package: git\nVersion: 1\n\nPackage: gitk\nVersion: 1\n\n\
         Package: bti\nVersion: 1\n\nPackage: vim\nVersion: 1\n\n\
         Package: exim4\nVersion: 1\nProvides: mail-transport-agent\n");
    let e = solve(&ix, &req(&["gti"]), None).unwrap_err();
    match &e {
        SolveError::UnknownPackage { suggestions, .. } => {
            assert_eq!(suggestions[0], "git");
            // One edit each; `git` shares all three letters, `bti` two.
            assert_eq!(suggestions, &["git", "bti"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("did you mean git"), "{e}");
    let e = solve(&ix, &req(&["mail-transport-agnt"]), None).unwrap_err();
    assert!(
        e.to_string()
            .contains("exim4 (provides mail-transport-agent)"),
        "{e}"
    );
    let e = solve(&ix, &req(&["zzzzzzzz"]), None).unwrap_err();
    assert!(e.to_string().contains("check the name"), "{e}");
}

/// The solver's suggestions are `close_names`, the routine `kod pkg show`
/// calls: both callers suggest the same names in the same order.
#[test]
fn the_solver_suggests_what_close_names_gives() {
    let ix = one("Package: git\nVersion: 1\n\nPackage: bti\nVersion: 1\n\n\
         Package: vim\nVersion: 1\n\nPackage: vin\nVersion: 1\n\n\
         Package: openssh-server\nVersion: 1\n\n\
         Package: exim4\nVersion: 1\nProvides: mail-transport-agent\n\n\
         Package: postfix\nVersion: 1\nProvides: mail-transport-agent\n");
    for typo in [
        "gti",
        "vmi",
        "openssh-servr",
        "mail-transport-agnt",
        "zzzzzzzz",
    ] {
        let e = solve(&ix, &req(&[typo]), None).unwrap_err();
        let SolveError::UnknownPackage { suggestions, .. } = &e else {
            panic!("{typo}: {e}");
        };
        assert_eq!(suggestions, &close_names(&ix, typo), "{typo}");
    }
    assert_eq!(close_names(&ix, "vmi"), ["vim"]);
    assert_eq!(
        close_names(&ix, "mail-transport-agnt"),
        [
            "exim4 (provides mail-transport-agent)",
            "postfix (provides mail-transport-agent)"
        ]
    );
    assert!(close_names(&ix, "zzzzzzzz").is_empty());
}

#[test]
fn variants_follow_mmdebstrap() {
    let ix = index(&[
        (
            "stable",
            "Package: base-files\nVersion: 1\nEssential: yes\nPriority: required\n\n\
             Package: libc6\nVersion: 1\nPriority: required\n\n\
             Package: apt\nVersion: 1\nPriority: required\n\n\
             Package: ncurses-base\nVersion: 1\nArchitecture: all\nEssential: yes\nPriority: required\n\n\
             Package: cron\nVersion: 1\nPriority: important\n\n\
             Package: less\nVersion: 1\nPriority: standard\n\n\
             Package: foreign\nVersion: 1\nArchitecture: i386\nPriority: required\n\n\
             Package: build-essential\nVersion: 1\n",
        ),
        (
            "stable-updates",
            "Package: only-updates\nVersion: 1\nPriority: required\n",
        ),
    ]);
    let v = |name| variant_base(&ix, name).unwrap();
    assert_eq!(v("essential"), ["base-files", "ncurses-base"]);
    assert_eq!(v("apt"), ["base-files", "ncurses-base", "apt"]);
    assert_eq!(v("minbase"), ["base-files", "ncurses-base", "apt", "libc6"]);
    assert_eq!(v("required"), v("minbase"));
    assert_eq!(
        v("buildd"),
        [
            "base-files",
            "ncurses-base",
            "apt",
            "build-essential",
            "libc6"
        ]
    );
    assert_eq!(
        v("important"),
        ["base-files", "ncurses-base", "apt", "cron", "libc6"]
    );
    assert_eq!(v("debootstrap"), v("important"));
    assert_eq!(
        v("standard"),
        ["base-files", "ncurses-base", "apt", "cron", "less", "libc6"]
    );
    assert!(v("extract").is_empty() && v("custom").is_empty());
    let e = variant_base(&ix, "tiny").unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown variant \"tiny\"; valid variants: extract, custom, essential, apt, required, \
         minbase, buildd, important, debootstrap, -, standard"
    );
    // The base resolves; its Essential packages are walked first.
    let mut r = Request::new(v("minbase"), ["less"]).unwrap();
    r.packages.push(PackageRequest::name("cron"));
    assert_eq!(
        names(&ok(&ix, &r, None)),
        ["apt", "base-files", "cron", "less", "libc6", "ncurses-base"]
    );
}

#[test]
fn bad_requests_are_refused_before_solving() {
    let e = Request::new(Vec::<String>::new(), ["Vim"]).unwrap_err();
    assert!(
        e.to_string().starts_with("invalid package request \"Vim\""),
        "{e}"
    );
}

#[test]
fn resolution_is_deterministic() {
    let ix = one("Package: a\nVersion: 1\nDepends: p | q, r\n\n\
         Package: p\nVersion: 1\nDepends: v\n\n\
         Package: q\nVersion: 1\n\n\
         Package: r\nVersion: 1\nDepends: v\n\n\
         Package: v1\nVersion: 1\nProvides: v\n\n\
         Package: v2\nVersion: 1\nProvides: v\n");
    let first = ok(&ix, &req(&["a"]), None);
    for _ in 0..20 {
        assert_eq!(ok(&ix, &req(&["a"]), None), first);
    }
}
