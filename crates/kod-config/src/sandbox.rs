//! The Lua sandbox a configuration runs in.
//!
//! Only the pure standard libraries are loaded (base, table, string, math,
//! utf8, coroutine): no `io`, no `debug`, no `package` loaders, and an `os`
//! with only the clock and `getenv`. `load` accepts text only, `string.dump`,
//! `dofile` and `loadfile` are gone, and `require` finds kod's built-in
//! modules or `.lua` files inside the configuration's own directory.
//! Touching a refused name is an error that says why. Evaluation is bounded
//! in time and memory.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use kod_report::{Level, Report};
use mlua::{ChunkMode, HookTriggers, Lua, LuaOptions, StdLib, Table, Value, VmState};

use crate::error::{ConfigError, Location, split_lua_location};

/// Built-in modules, `require`d by name.
const BUILTINS: [(&str, &str); 5] = [
    ("utils", include_str!("../lua/utils.lua")),
    ("disk", include_str!("../lua/disk.lua")),
    ("repos", include_str!("../lua/repos.lua")),
    ("configs", include_str!("../lua/configs.lua")),
    (
        "dotfile_manager",
        include_str!("../lua/dotfile_manager.lua"),
    ),
];

/// Globals that exist in plain Lua but not here, with the reason given.
const REFUSED_GLOBALS: [(&str, &str); 4] = [
    ("io", "it cannot read or write files"),
    ("debug", "the debug library can break out of the sandbox"),
    (
        "dofile",
        "it cannot read files; use require for modules next to the configuration",
    ),
    (
        "loadfile",
        "it cannot read files; use require for modules next to the configuration",
    ),
];

const OS_ALLOWED: [&str; 2] = ["clock", "getenv"];

const TIMEOUT_MARKER: &str = "kod: evaluation time limit reached";

/// Bounds on one evaluation, and where what it prints goes.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Wall-clock bound on evaluating the configuration and its helpers.
    pub timeout: Duration,
    /// Bound on the Lua heap, in bytes.
    pub memory_limit: usize,
    /// Where the configuration's `print` goes, as [`Level::Output`] (quiet
    /// by default).
    pub report: Report,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            timeout: Duration::from_secs(10),
            memory_limit: 256 << 20,
            report: Report::quiet(),
        }
    }
}

/// A source file of a configuration (the main file or a module it
/// `require`s), as evaluated: kept to point errors at lines and to store a
/// copy of the configuration ([`crate::sanitized`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Its path, as kod read it.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
}

struct State {
    /// The configuration's directory as the user named it (for messages).
    dir: PathBuf,
    /// The same, canonical (for confinement checks).
    canonical_dir: PathBuf,
    sources: RefCell<Vec<SourceFile>>,
    loading: RefCell<Vec<String>>,
    timed_out_at: RefCell<Option<Location>>,
    limit: Duration,
    report: Report,
}

/// A Lua state prepared for one configuration.
pub(crate) struct Sandbox {
    pub(crate) lua: Lua,
    state: Rc<State>,
}

impl Sandbox {
    /// A sandbox whose `require` looks in `dir`.
    pub(crate) fn new(dir: &Path, opts: &EvalOptions) -> Result<Sandbox, ConfigError> {
        let canonical_dir = dir.canonicalize().map_err(|source| ConfigError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::UTF8 | StdLib::COROUTINE;
        let lua = Lua::new_with(libs, LuaOptions::default()).map_err(internal)?;
        let state = Rc::new(State {
            dir: dir.to_path_buf(),
            canonical_dir,
            sources: RefCell::new(Vec::new()),
            loading: RefCell::new(Vec::new()),
            timed_out_at: RefCell::new(None),
            limit: opts.timeout,
            report: opts.report.clone(),
        });
        let sandbox = Sandbox { lua, state };
        sandbox
            .lua
            .set_memory_limit(opts.memory_limit)
            .map_err(internal)?;
        sandbox.install_time_bound();
        sandbox.install_globals().map_err(internal)?;
        Ok(sandbox)
    }

    /// Every source file evaluated so far.
    pub(crate) fn sources(&self) -> Vec<SourceFile> {
        self.state.sources.borrow().clone()
    }

    /// Evaluates the configuration file and returns what it returns.
    pub(crate) fn eval_file(&self, path: &Path) -> Result<Value, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        self.state.sources.borrow_mut().push(SourceFile {
            path: path.to_path_buf(),
            text: text.clone(),
        });
        let chunk = self
            .lua
            .load(text)
            .set_name(chunk_name(&self.state.dir, path))
            .set_mode(ChunkMode::Text);
        chunk.eval::<Value>().map_err(|e| self.convert(e))
    }

    /// Turns an mlua error into a `ConfigError` with its location.
    pub(crate) fn convert(&self, err: mlua::Error) -> ConfigError {
        match err {
            mlua::Error::SyntaxError { message, .. } => {
                let (location, message) = split_lua_location(&message);
                let location = location.map(|l| self.resolve(l)).unwrap_or(Location {
                    file: self.state.dir.clone(),
                    line: None,
                });
                let hint = self.syntax_hint(&location);
                ConfigError::Syntax {
                    location,
                    message,
                    hint,
                }
            }
            mlua::Error::MemoryError(_) => ConfigError::Runtime {
                location: None,
                message: "the configuration used more memory than allowed and was stopped"
                    .to_string(),
            },
            mlua::Error::CallbackError { cause, .. } => self.convert((*cause).clone()),
            mlua::Error::WithContext { cause, .. } => self.convert((*cause).clone()),
            other => {
                let text = match &other {
                    mlua::Error::RuntimeError(m) => m.clone(),
                    e => e.to_string(),
                };
                if text.contains(TIMEOUT_MARKER) {
                    return ConfigError::Timeout {
                        location: self
                            .state
                            .timed_out_at
                            .borrow()
                            .clone()
                            .map(|l| self.resolve(l)),
                        limit: self.state.limit,
                    };
                }
                let (location, message) = split_lua_location(&text);
                ConfigError::Runtime {
                    location: location.map(|l| self.resolve(l)),
                    message,
                }
            }
        }
    }

    /// Chunks are named relative to the configuration's directory (Lua
    /// shortens long chunk names in its messages); this makes them whole.
    fn resolve(&self, mut location: Location) -> Location {
        if location.file.is_relative() {
            location.file = self.state.dir.join(&location.file);
        }
        location
    }

    /// Recognises `demo-user = {` style keys, KodOS's README mistake.
    fn syntax_hint(&self, location: &Location) -> Option<String> {
        let line = location.line? as usize;
        let sources = self.state.sources.borrow();
        let src = sources.iter().find(|s| s.path == location.file)?;
        let text = src.text.lines().nth(line.checked_sub(1)?)?;
        let key = text.trim_start().split('=').next()?.trim();
        let dashed = key.contains('-')
            && key
                .split('-')
                .all(|w| !w.is_empty() && w.chars().all(|c| c.is_alphanumeric() || c == '_'));
        dashed.then(|| {
            format!("a key with `-` in it must be quoted: write [\"{key}\"] = ... (or use `_`)")
        })
    }

    fn install_time_bound(&self) {
        let started = Instant::now();
        let state = self.state.clone();
        self.lua
            .set_global_hook(
                HookTriggers::new().every_nth_instruction(10_000),
                move |_lua, debug| {
                    if started.elapsed() <= state.limit {
                        return Ok(VmState::Continue);
                    }
                    let source = debug.source();
                    let file = source
                        .source
                        .as_deref()
                        .and_then(|s| s.strip_prefix('@'))
                        .map(PathBuf::from);
                    if let Some(file) = file {
                        *state.timed_out_at.borrow_mut() = Some(Location {
                            file,
                            line: debug.current_line().map(|l| l as u32),
                        });
                    }
                    Err(mlua::Error::runtime(TIMEOUT_MARKER))
                },
            )
            .expect("setting a hook on a fresh state cannot fail");
    }

    fn install_globals(&self) -> mlua::Result<()> {
        let lua = &self.lua;
        let g = lua.globals();

        // Text-only `load`; no bytecode in, none out.
        let raw_load: mlua::Function = g.get("load")?;
        let load = lua.create_function(
            move |_, (chunk, name, mode, env): (Value, Value, Option<String>, Value)| {
                if mode.as_deref().is_some_and(|m| m != "t") {
                    return Err(mlua::Error::runtime(
                        "load: binary (precompiled) chunks are refused in a kod configuration; \
                         load only accepts Lua source text",
                    ));
                }
                raw_load.call::<mlua::MultiValue>((chunk, name, "t", env))
            },
        )?;
        g.set("load", load)?;
        let string: Table = g.get("string")?;
        string.set("dump", Value::Nil)?;
        for (name, _) in REFUSED_GLOBALS {
            g.set(name, Value::Nil)?;
        }

        // `os` with the clock and the environment only.
        let os = lua.create_table()?;
        let started = Instant::now();
        os.set(
            "clock",
            lua.create_function(move |_, ()| Ok(started.elapsed().as_secs_f64()))?,
        )?;
        os.set(
            "getenv",
            lua.create_function(|_, name: String| Ok(std::env::var(name).ok()))?,
        )?;
        set_refusing_index(
            lua,
            &os,
            "os",
            &OS_ALLOWED,
            "it cannot run programs, change files or depend on the date; commands belong in \
             configs helpers, which run in their stage",
        )?;
        g.set("os", os)?;

        // `package`: only `loaded`; no C loaders.
        let package = lua.create_table()?;
        let loaded = lua.create_table()?;
        package.set("loaded", loaded.clone())?;
        set_refusing_index(
            lua,
            &package,
            "package",
            &["loaded"],
            "kod loads no C libraries and searches no paths; require finds modules next to \
             the configuration",
        )?;
        g.set("package", package)?;

        // `require`: built-ins, then files confined to the configuration's directory.
        let state = self.state.clone();
        let require = lua.create_function(move |lua, name: String| {
            if let Some(v) = loaded.get::<Option<Value>>(name.as_str())? {
                return Ok(v);
            }
            if state.loading.borrow().contains(&name) {
                let chain = state.loading.borrow().join(" -> ");
                return Err(at_caller(lua, &format!("require loop: {chain} -> {name}")));
            }
            let (chunk_name, text) = match BUILTINS.iter().find(|(n, _)| *n == name) {
                Some((n, src)) => (format!("=kod:{n}.lua"), src.to_string()),
                None => {
                    let file = module_file(&state.dir, &state.canonical_dir, &name)
                        .map_err(|m| at_caller(lua, &m))?;
                    let text = std::fs::read_to_string(&file).map_err(|e| {
                        at_caller(
                            lua,
                            &format!("require({name:?}): cannot read {}: {e}", file.display()),
                        )
                    })?;
                    state.sources.borrow_mut().push(SourceFile {
                        path: file.clone(),
                        text: text.clone(),
                    });
                    (chunk_name(&state.dir, &file), text)
                }
            };
            state.loading.borrow_mut().push(name.clone());
            let result = lua
                .load(text)
                .set_name(chunk_name)
                .set_mode(ChunkMode::Text)
                .eval::<Value>();
            state.loading.borrow_mut().pop();
            let value = match result? {
                Value::Nil => Value::Boolean(true),
                v => v,
            };
            loaded.set(name.as_str(), value.clone())?;
            Ok(value)
        })?;
        g.set("require", require)?;

        // print is reported, never written to stdout, so `kod plan --json`
        // keeps stdout clean.
        let tostring: mlua::Function = g.get("tostring")?;
        let report = self.state.report.clone();
        let print = lua.create_function(move |_, args: mlua::Variadic<Value>| {
            let parts = args
                .into_iter()
                .map(|v| tostring.call::<String>(v))
                .collect::<mlua::Result<Vec<_>>>()?;
            report.message(Level::Output, &parts.join("\t"));
            Ok(())
        })?;
        g.set("print", print)?;

        // KodOS globals.
        let utils: Table = lua.load("return require('utils')").eval()?;
        g.set("list", utils.get::<mlua::Function>("list")?)?;
        g.set("map", utils.get::<mlua::Function>("map")?)?;
        g.set("If", utils.get::<mlua::Function>("if_true")?)?;
        g.set("IfElse", utils.get::<mlua::Function>("if_else")?)?;
        g.set("path", self.path_table()?)?;

        // Reading a refused global says why instead of yielding nil.
        let refused: BTreeMap<&str, &str> = REFUSED_GLOBALS.into_iter().collect();
        let refused: BTreeMap<String, String> = refused
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let meta = lua.create_table()?;
        meta.set(
            "__index",
            lua.create_function(move |lua, (_t, key): (Value, Value)| {
                if let Value::String(k) = &key
                    && let Some(why) = refused.get(&*k.to_str()?)
                {
                    return Err(at_caller(
                        lua,
                        &format!(
                            "`{}` is not available in a kod configuration ({why}): \
                             configurations are evaluated in a sandbox",
                            k.to_str()?
                        ),
                    ));
                }
                Ok(Value::Nil)
            })?,
        )?;
        g.set_metatable(Some(meta))?;
        Ok(())
    }

    /// KodOS's `path` table. Paths are resolved against the configuration's
    /// directory, so a configuration means the same wherever kod runs.
    fn path_table(&self) -> mlua::Result<Table> {
        let lua = &self.lua;
        let t = lua.create_table()?;
        let dir = self.state.dir.clone();
        let resolve = move |p: &str| -> PathBuf { dir.join(expand_home(p)) };
        let r = resolve.clone();
        t.set(
            "is_dir",
            lua.create_function(move |_, p: String| Ok(r(&p).is_dir()))?,
        )?;
        let r = resolve.clone();
        t.set(
            "is_file",
            lua.create_function(move |_, p: String| Ok(r(&p).is_file()))?,
        )?;
        let r = resolve.clone();
        t.set(
            "exists",
            lua.create_function(move |_, p: String| Ok(r(&p).exists()))?,
        )?;
        let r = resolve;
        t.set(
            "absolute",
            lua.create_function(move |_, p: String| Ok(r(&p).display().to_string()))?,
        )?;
        t.set(
            "home_dir",
            lua.create_function(|_, ()| Ok(home().display().to_string()))?,
        )?;
        t.set(
            "expanduser",
            lua.create_function(|_, p: String| Ok(expand_home(&p).display().to_string()))?,
        )?;
        Ok(t)
    }
}

/// `@PATH` with PATH relative to the configuration's directory.
fn chunk_name(dir: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(dir).unwrap_or(file);
    format!("@{}", relative.display())
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

fn expand_home(p: &str) -> PathBuf {
    match p.strip_prefix('~') {
        Some("") => home(),
        Some(rest) if rest.starts_with('/') => home().join(rest.trim_start_matches('/')),
        _ => PathBuf::from(p),
    }
}

/// Makes reading a missing field of `table` an error naming `lib.field`,
/// except for the `allowed` names.
fn set_refusing_index(
    lua: &Lua,
    table: &Table,
    lib: &'static str,
    allowed: &'static [&'static str],
    why: &'static str,
) -> mlua::Result<()> {
    let meta = lua.create_table()?;
    meta.set(
        "__index",
        lua.create_function(move |lua, (_t, key): (Value, Value)| {
            if let Value::String(k) = &key {
                let k = k.to_str()?.to_string();
                if !allowed.contains(&k.as_str()) {
                    return Err(at_caller(
                        lua,
                        &format!(
                            "`{lib}.{k}` is not available in a kod configuration ({why}): \
                             configurations are evaluated in a sandbox"
                        ),
                    ));
                }
            }
            Ok(Value::Nil)
        })?,
    )?;
    table.set_metatable(Some(meta))?;
    Ok(())
}

/// An error carrying the location of the Lua code that called into Rust.
fn at_caller(lua: &Lua, msg: &str) -> mlua::Error {
    let prefix = (1..4)
        .find_map(|level| {
            lua.inspect_stack(level, |d| {
                let src = d.source();
                let file = src.source.as_deref()?.strip_prefix('@')?.to_string();
                Some(format!("{file}:{}: ", d.current_line()?))
            })
            .flatten()
        })
        .unwrap_or_default();
    mlua::Error::runtime(format!("{prefix}{msg}"))
}

/// The file of module `name` inside the configuration's directory.
fn module_file(dir: &Path, canonical_dir: &Path, name: &str) -> Result<PathBuf, String> {
    if name.starts_with('/') || name.starts_with('\\') {
        return Err(format!(
            "require({name:?}): absolute module paths are refused; modules must be inside the \
             configuration's directory {}",
            dir.display()
        ));
    }
    let segments: Vec<&str> = if name.contains('/') {
        name.split('/').collect()
    } else {
        name.split('.').collect()
    };
    if name.contains("..")
        || segments
            .iter()
            .any(|s| s.is_empty() || *s == "." || s.contains('\\'))
    {
        return Err(format!(
            "require({name:?}): `..` and empty path segments are refused; modules must be \
             inside the configuration's directory {}",
            dir.display()
        ));
    }
    let relative: PathBuf = segments.iter().collect();
    let candidates = [relative.with_extension("lua"), relative.join("init.lua")];
    for rel in candidates {
        let file = dir.join(&rel);
        if !file.is_file() {
            continue;
        }
        // A symlink may still point outside: compare canonical paths.
        let canonical = file
            .canonicalize()
            .map_err(|e| format!("{}: {e}", file.display()))?;
        if !canonical.starts_with(canonical_dir)
            || canonical
                .components()
                .any(|c| matches!(c, Component::ParentDir))
        {
            return Err(format!(
                "require({name:?}): {} leads outside the configuration's directory {} and is refused",
                file.display(),
                dir.display()
            ));
        }
        return Ok(file);
    }
    let builtins: Vec<&str> = BUILTINS.iter().map(|(n, _)| *n).collect();
    Err(format!(
        "require({name:?}): no module {name:?}: not a built-in ({}) and no {} in {}",
        builtins.join(", "),
        relative.with_extension("lua").display(),
        dir.display()
    ))
}

fn internal(e: mlua::Error) -> ConfigError {
    ConfigError::Runtime {
        location: None,
        message: format!("internal error preparing the Lua sandbox: {e}"),
    }
}
