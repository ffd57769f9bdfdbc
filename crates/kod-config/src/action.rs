//! Configuration helpers (`configs.git{...}` and friends) as actions.
//!
//! A helper is a table `{ name, stages, config, command }`. kod calls its
//! `command` during evaluation with a recording context, so the plan can show
//! exactly which files, units and commands each stage will produce, and
//! nothing runs while the configuration is read.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use mlua::{UserData, UserDataFields, UserDataMethods, Value};

use crate::model::Effect;

/// Whose action it is: effects are owned by and run as this user.
#[derive(Debug, Clone)]
pub(crate) struct Owner {
    pub(crate) user: String,
    pub(crate) home: String,
}

impl Owner {
    /// The owner for a login name: root lives in /root, others in /home.
    pub(crate) fn user(name: &str) -> Owner {
        let home = if name == "root" {
            "/root".to_string()
        } else {
            format!("/home/{name}")
        };
        Owner {
            user: name.to_string(),
            home,
        }
    }
}

/// The `ctx` a helper's command receives; records what it asks for.
#[derive(Clone)]
pub(crate) struct Recorder {
    owner: Owner,
    config_dir: PathBuf,
    effects: Rc<RefCell<Vec<Effect>>>,
}

impl Recorder {
    pub(crate) fn new(owner: Owner, config_dir: PathBuf) -> Recorder {
        Recorder {
            owner,
            config_dir,
            effects: Rc::new(RefCell::new(Vec::new())),
        }
    }

    /// Everything recorded so far.
    pub(crate) fn take(&self) -> Vec<Effect> {
        std::mem::take(&mut self.effects.borrow_mut())
    }

    fn push(&self, e: Effect) {
        self.effects.borrow_mut().push(e);
    }

    /// `~` and `~/x` are the owner's home; other paths must be absolute.
    fn target_path(&self, p: &str, what: &str) -> mlua::Result<String> {
        let expanded = self.expand(p);
        if !expanded.starts_with('/') {
            return Err(mlua::Error::runtime(format!(
                "{what}: {p:?} must be an absolute path or start with ~/"
            )));
        }
        if expanded.split('/').any(|s| s == "..") {
            return Err(mlua::Error::runtime(format!(
                "{what}: {p:?} contains `..`; write the path it means"
            )));
        }
        Ok(expanded)
    }

    fn expand(&self, p: &str) -> String {
        let home = self.owner.home.trim_end_matches('/');
        match p.strip_prefix('~') {
            Some("") => home.to_string(),
            Some(rest) if rest.starts_with('/') => format!("{home}{rest}"),
            _ => p.to_string(),
        }
    }
}

impl UserData for Recorder {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("user", |_, r| Ok(r.owner.user.clone()));
        fields.add_field_method_get("home", |_, r| Ok(r.owner.home.clone()));
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("run", |_, r, argv: Vec<String>| {
            if argv.is_empty() {
                return Err(mlua::Error::runtime("ctx:run needs a program to run"));
            }
            let argv = argv.iter().map(|a| r.expand(a)).collect();
            r.push(Effect::Run {
                argv,
                user: r.owner.user.clone(),
            });
            Ok(())
        });
        methods.add_method("execute", |_, r, cmd: String| {
            r.push(Effect::Run {
                argv: vec!["sh".into(), "-c".into(), cmd],
                user: r.owner.user.clone(),
            });
            // KodOS's context:execute returns success; nothing fails while recording.
            Ok(true)
        });
        methods.add_method(
            "write_file",
            |_, r, (path, content, mode): (String, String, Option<u32>)| {
                let path = r.target_path(&path, "ctx:write_file")?;
                r.push(Effect::WriteFile {
                    path,
                    content,
                    mode: mode.unwrap_or(0o644),
                    owner: r.owner.user.clone(),
                });
                Ok(())
            },
        );
        methods.add_method("copy_file", |_, r, (source, target): (String, String)| {
            let source = r.config_dir.join(r.expand(&source));
            let target = r.target_path(&target, "ctx:copy_file")?;
            r.push(Effect::CopyFile {
                source,
                target,
                owner: r.owner.user.clone(),
            });
            Ok(())
        });
        methods.add_method("git_checkout", |_, r, (url, dir): (String, String)| {
            let dir = r.target_path(&dir, "ctx:git_checkout")?;
            r.push(Effect::GitCheckout {
                url,
                dir,
                owner: r.owner.user.clone(),
            });
            Ok(())
        });
        methods.add_method("enable_unit", |_, r, unit: String| {
            r.push(Effect::EnableUnit { unit, user: None });
            Ok(())
        });
        methods.add_method("enable_user_unit", |_, r, unit: String| {
            r.push(Effect::EnableUnit {
                unit,
                user: Some(r.owner.user.clone()),
            });
            Ok(())
        });
    }
}

/// One call of a helper's command: which program, and whether it is the
/// first call (dotfile managers clone their repository then).
pub(crate) struct Call<'a> {
    pub(crate) program: Option<&'a str>,
    pub(crate) init: bool,
}

/// Calls `command(ctx, config, program, init)` for each call and returns the
/// recorded effects in order.
pub(crate) fn record(
    lua: &mlua::Lua,
    command: &mlua::Function,
    config: Value,
    recorder: &Recorder,
    calls: &[Call<'_>],
) -> mlua::Result<Vec<Effect>> {
    let ctx = lua.create_userdata(recorder.clone())?;
    for call in calls {
        command.call::<()>((ctx.clone(), config.clone(), call.program, call.init))?;
    }
    Ok(recorder.take())
}
