//! Each way out of the Lua sandbox is refused with a clear error.

mod common;

use common::*;
use kod_config::ConfigError;

fn refused(body: &str, expected: &str) {
    let text = error_after(body);
    assert!(text.contains(expected), "expected {expected:?} in: {text}");
    assert!(
        text.contains("configuration.lua:1:"),
        "the error should point at line 1: {text}"
    );
}

#[test]
fn io_is_refused() {
    refused(
        r#"local f = io.open("/etc/passwd")"#,
        "`io` is not available in a kod configuration",
    );
}

#[test]
fn io_popen_is_refused() {
    refused(
        r#"local p = io.popen("id")"#,
        "`io` is not available in a kod configuration",
    );
}

#[test]
fn os_execute_is_refused() {
    refused(
        r#"os.execute("touch /tmp/kod-sandbox-escaped")"#,
        "`os.execute` is not available in a kod configuration",
    );
    assert!(!std::path::Path::new("/tmp/kod-sandbox-escaped").exists());
}

#[test]
fn os_remove_and_exit_are_refused() {
    refused(r#"os.remove("/tmp/x")"#, "`os.remove` is not available");
    refused("os.exit(0)", "`os.exit` is not available");
}

#[test]
fn package_loadlib_is_refused() {
    refused(
        r#"local f = package.loadlib("libc.so.6", "system")"#,
        "`package.loadlib` is not available in a kod configuration",
    );
}

#[test]
fn dofile_and_loadfile_are_refused() {
    refused(r#"dofile("/etc/passwd")"#, "`dofile` is not available");
    refused(r#"loadfile("/etc/passwd")"#, "`loadfile` is not available");
}

#[test]
fn debug_library_is_refused() {
    refused("debug.sethook()", "`debug` is not available");
}

#[test]
fn string_dump_does_not_exist() {
    assert_fails_after("local d = string.dump(function() end)", &["dump"]);
}

#[test]
fn load_refuses_binary_chunks() {
    // A precompiled chunk starts with ESC "Lua"; text mode must refuse it.
    let body = r#"local f, err = load("\27LuaT\0\25\147\13\10\26\10")
if f then error("a binary chunk was loaded") end
error("refused: " .. tostring(err))"#;
    assert_fails_after(body, &["refused:", "binary chunk"]);
}

#[test]
fn load_refuses_binary_mode() {
    assert_fails_after(
        "local f = load(\"return 1\", \"x\", \"b\")",
        &["binary (precompiled) chunks are refused"],
    );
}

#[test]
fn load_of_text_still_works() {
    let c = eval(&format!(
        "local f = load(\"return 'htop'\")\nreturn {{ {REPOS} packages = {{ f() }} }}"
    ))
    .unwrap();
    assert_eq!(c.packages, ["htop"]);
}

#[test]
fn require_refuses_bytecode_files() {
    let (_dir, r) = eval_files(&[
        (
            "configuration.lua",
            &format!("local m = require('mod')\nreturn {{ {REPOS} }}"),
        ),
        ("mod.lua", "\x1bLuaT\0\x19\u{93}\r\n\x1a\n"),
    ]);
    let text = err_text(r);
    assert_contains(&text, "binary chunk");
}

#[test]
fn require_refuses_parent_directories() {
    let (_dir, r) = eval_files(&[
        ("sub/configuration.lua", ""),
        ("x.lua", "return {}"),
        (
            "configuration.lua",
            &format!("local m = require('../x')\nreturn {{ {REPOS} }}"),
        ),
    ]);
    let text = err_text(r);
    assert_contains(&text, "`..` and empty path segments are refused");
    assert_contains(&text, "configuration.lua:1:");
}

#[test]
fn require_refuses_absolute_paths() {
    assert_fails_after(
        "local m = require('/etc/passwd')",
        &["absolute module paths are refused"],
    );
}

#[test]
fn require_refuses_symlinks_leading_outside() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.lua"), "return { 'leaked' }").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.lua"),
        dir.path().join("evil.lua"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("configuration.lua"),
        format!("local m = require('evil')\nreturn {{ {REPOS} packages = m }}"),
    )
    .unwrap();
    let r = kod_config::load(&dir.path().join("configuration.lua"), &Default::default());
    let text = err_text(r);
    assert_contains(&text, "leads outside the configuration's directory");
}

#[test]
fn endless_loop_is_stopped_with_its_line() {
    let (_dir, r) = eval_with(
        &[(
            "configuration.lua",
            "local x = 0\nwhile true do x = x + 1 end\nreturn {}",
        )],
        &tight(),
    );
    match r {
        Err(ConfigError::Timeout { location, limit }) => {
            assert_eq!(limit, tight().timeout);
            let loc = location.expect("a timeout inside the file has a location");
            assert_eq!(loc.line, Some(2));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[test]
fn endless_loop_in_a_coroutine_is_stopped() {
    let (_dir, r) = eval_with(
        &[(
            "configuration.lua",
            "coroutine.wrap(function() while true do end end)()\nreturn {}",
        )],
        &tight(),
    );
    assert!(matches!(r, Err(ConfigError::Timeout { .. })), "{r:?}");
}

#[test]
fn memory_bomb_is_stopped() {
    let (_dir, r) = eval_with(
        &[(
            "configuration.lua",
            "local t = {}\nfor i = 1, 1e9 do t[i] = string.rep('x', 64) .. i end\nreturn {}",
        )],
        &kod_config::EvalOptions {
            timeout: std::time::Duration::from_secs(30),
            memory_limit: 16 << 20,
            ..kod_config::EvalOptions::default()
        },
    );
    let text = err_text(r);
    assert_contains(&text, "more memory than allowed");
}

#[test]
fn removing_metatables_opens_nothing() {
    // The refusal messages come from metatables; without them the refused
    // functions must still simply not exist.
    let c = eval(&format!(
        "setmetatable(_G, nil)\nsetmetatable(os, nil)\nsetmetatable(package, nil)\n\
         if io ~= nil or os.execute ~= nil or package.loadlib ~= nil or debug ~= nil then \
         error('escaped') end\nreturn {{ {REPOS} }}"
    ));
    assert!(c.is_ok(), "{c:?}");
}
