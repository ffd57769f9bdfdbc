//! From the value tree to the typed `Config`, checking every key and type.
//!
//! Each section reads its keys through [`Fields`](fields::Fields), which
//! remembers the keys asked for; whatever is left over is an unknown key,
//! reported with the closest known one. The known keys are therefore exactly
//! the ones the decoder reads: there is no second list to keep in step.
//!
//! Here: the whole configuration, users, services and configuration helpers
//! (which need the Lua state); `fields` is the reader, `repos`, `disks` and
//! `system` decode the other sections.

mod disks;
mod fields;
mod found;
mod repos;
mod system;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mlua::Value;

use crate::action::{self, Call, Owner, Recorder};
use crate::error::ConfigError;
use crate::model::*;
use crate::node::Node;
use crate::path::KeyPath;
use crate::sandbox::Sandbox;
use disks::disk;
use fields::{Fields, entries, string, strings, type_error};
use found::{keep_going, or_default};
use repos::{PackageCheck, default_repo, repo};
use system::{boot, check_login, desktop, environment, fonts, hardware, locale, network, setting};

type Result<T> = std::result::Result<T, ConfigError>;

/// One call of a helper, for no program in particular.
const ONE_CALL: [Call<'static>; 1] = [Call {
    program: None,
    init: false,
}];

/// Reads the whole configuration.
pub(crate) struct Decoder<'s> {
    pub(crate) sandbox: &'s Sandbox,
    pub(crate) config_dir: PathBuf,
}

impl Decoder<'_> {
    /// Every section, each apart: the errors of all of them are reported
    /// together ([`found`]).
    pub(crate) fn config(&self, root: &Node, source: &Path) -> Result<Config> {
        found::collect(|| self.sections(root, source))
    }

    /// The configuration, or `None` when a part it needs was wrong (and
    /// noted).
    fn sections(&self, root: &Node, source: &Path) -> Result<Option<Config>> {
        let path = KeyPath::root();
        let mut f = Fields::of(root, &path)?;
        let repos = keep_going(match f.node("repos") {
            Some((n, p)) => self.repos(n, &p),
            None => Ok(BTreeMap::new()),
        })?;
        let base = or_default(
            f.take("base_distribution")
                .map(|(n, p)| {
                    let s = string(n, &p)?;
                    Distribution::parse(&s).ok_or_else(|| {
                        let names: Vec<&str> = Distribution::ALL.iter().map(|d| d.name()).collect();
                        ConfigError::invalid(
                            p.to_string(),
                            format!(
                                "unknown distribution {s:?}; expected one of {}",
                                names.join(", ")
                            ),
                        )
                    })
                })
                .transpose(),
        )?;
        let chosen = match &repos {
            Some(repos) => keep_going(default_repo(repos, base))?,
            None => None,
        };
        let pkgs = PackageCheck {
            repos: repos.as_ref(),
        };
        let devices = or_default(f.named("devices", |_, n, p| disk(n, &p)))?;
        let boot = or_default(f.node("boot").map(|(n, p)| boot(n, &p, &pkgs)).transpose())?;
        let hardware = or_default(f.named("hardware", |_, n, p| hardware(n, &p, &pkgs)))?;
        let locale = or_default(f.node("locale").map(|(n, p)| locale(n, &p)).transpose())?;
        let network = or_default(f.node("network").map(|(n, p)| network(n, &p)).transpose())?;
        let users = or_default(f.named("users", |k, n, p| self.user(k, n, &p, &pkgs)))?;
        let desktop = or_default(
            f.node("desktop")
                .map(|(n, p)| desktop(n, &p, &pkgs))
                .transpose(),
        )?;
        let fonts = or_default(
            f.node("fonts")
                .map(|(n, p)| fonts(n, &p, &pkgs))
                .transpose(),
        )?;
        let packages = or_default(f.packages("packages", &pkgs))?;
        let services = or_default(f.named("services", |_, n, p| self.service(n, &p, &pkgs)))?;
        let environments = or_default(f.named("environments", |k, n, p| environment(k, n, &p)))?;
        f.finish()?;
        let (Some(repos), Some((default_repo, base_distribution))) = (repos, chosen) else {
            return Ok(None);
        };
        Ok(Some(Config {
            source: source.to_path_buf(),
            base_distribution,
            repos,
            default_repo,
            devices,
            boot: boot.unwrap_or_default(),
            hardware,
            locale: locale.unwrap_or_default(),
            network: network.unwrap_or_default(),
            users,
            desktop: desktop.unwrap_or_default(),
            fonts: fonts.unwrap_or_default(),
            packages,
            services,
            environments,
        }))
    }

    fn repos(&self, node: &Node, path: &KeyPath) -> Result<BTreeMap<String, Repo>> {
        entries(node, path)?
            .into_iter()
            .map(|(k, n, p)| Ok((k.to_string(), repo(n, &p)?)))
            .collect()
    }

    fn user(&self, login: &str, node: &Node, path: &KeyPath, pkgs: &PackageCheck) -> Result<User> {
        check_login(login, path)?;
        let mut f = Fields::of(node, path)?;
        let full_name = f.string("name")?;
        let plain = f.string("password")?;
        let hashed = f.string("hashed_password")?;
        let none = f.bool("no_password")?.unwrap_or(false);
        let password = match (plain, hashed, none) {
            (None, None, false) => Password::Unset,
            (None, None, true) => Password::NoPassword,
            (Some(p), None, false) => Password::Plain(p),
            (None, Some(h), false) => Password::Hashed(h),
            _ => {
                return Err(ConfigError::invalid(
                    path.to_string(),
                    "set only one of `password`, `hashed_password` and `no_password = true`",
                ));
            }
        };
        let shell = f.string("shell")?;
        let extra_groups = f.strings("extra_groups")?;
        let ssh_authorized = f.strings("ssh_authorized")?;
        let owner = Owner::user(login);
        let programs: BTreeMap<String, Program> =
            f.named("programs", |k, n, p| self.program(k, n, &p, &owner, pkgs))?;
        let deploy_configs = f.strings("deploy_configs")?;
        let services = f.named("services", |_, n, p| self.user_service(n, &p, &owner, pkgs))?;
        // The dotfile manager deploys each enabled program marked
        // deploy_config, then each of deploy_configs, after one init call.
        let mut deployed: Vec<&str> = programs
            .iter()
            .filter(|(_, p)| p.enable && p.deploy_config)
            .map(|(k, _)| k.as_str())
            .collect();
        deployed.extend(deploy_configs.iter().map(String::as_str));
        let calls: Vec<Call> = std::iter::once(Call {
            program: None,
            init: true,
        })
        .chain(deployed.iter().map(|p| Call {
            program: Some(p),
            init: false,
        }))
        .collect();
        let dotfile_manager = self.helper(
            &mut f,
            "dotfile_manager",
            &owner,
            &calls,
            &[Stage::Install, Stage::RebuildUser],
        )?;
        f.finish()?;
        Ok(User {
            full_name,
            password,
            shell,
            extra_groups,
            ssh_authorized,
            dotfile_manager,
            programs,
            deploy_configs,
            services,
        })
    }

    fn program(
        &self,
        name: &str,
        node: &Node,
        path: &KeyPath,
        owner: &Owner,
        pkgs: &PackageCheck,
    ) -> Result<Program> {
        let mut f = Fields::of(node, path)?;
        let program = Program {
            enable: f.bool("enable")?.unwrap_or(false),
            package: f.package("package", pkgs)?,
            deploy_config: f.bool("deploy_config")?.unwrap_or(false),
            extra_packages: f.packages("extra_packages", pkgs)?,
            config: self.helper(
                &mut f,
                "config",
                owner,
                &[Call {
                    program: Some(name),
                    init: false,
                }],
                &[Stage::Install, Stage::RebuildUser],
            )?,
        };
        f.finish()?;
        Ok(program)
    }

    fn user_service(
        &self,
        node: &Node,
        path: &KeyPath,
        owner: &Owner,
        pkgs: &PackageCheck,
    ) -> Result<UserService> {
        let mut f = Fields::of(node, path)?;
        let service = UserService {
            enable: f.bool("enable")?.unwrap_or(false),
            package: f.package("package", pkgs)?,
            extra_packages: f.packages("extra_packages", pkgs)?,
            config: self.helper(&mut f, "config", owner, &ONE_CALL, &[Stage::RebuildUser])?,
        };
        f.finish()?;
        Ok(service)
    }

    fn service(&self, node: &Node, path: &KeyPath, pkgs: &PackageCheck) -> Result<Service> {
        let mut f = Fields::of(node, path)?;
        let root = Owner::user("root");
        let service = Service {
            enable: f.bool("enable")?,
            service_name: f.string("service_name")?,
            package: f.package("package", pkgs)?,
            extra_packages: f.packages("extra_packages", pkgs)?,
            settings: f.named("settings", |_, n, p| setting(n, &p))?,
            services: f.named("services", |_, n, p| {
                self.action(n, &p, &root, &ONE_CALL, &[Stage::Install, Stage::Rebuild])
            })?,
        };
        f.finish()?;
        Ok(service)
    }

    /// The helper under `key`, if the table has one ([`Decoder::action`]).
    fn helper(
        &self,
        f: &mut Fields,
        key: &'static str,
        owner: &Owner,
        calls: &[Call],
        default_stages: &[Stage],
    ) -> Result<Option<Action>> {
        f.node(key)
            .map(|(n, p)| self.action(n, &p, owner, calls, default_stages))
            .transpose()
    }

    /// A helper table `{ name, stages, config, command }`, run with a
    /// recording context for each call.
    fn action(
        &self,
        node: &Node,
        path: &KeyPath,
        owner: &Owner,
        calls: &[Call],
        default_stages: &[Stage],
    ) -> Result<Action> {
        let Node::Map(_, table) = node else {
            return Err(type_error(
                path,
                "a configuration helper such as configs.git{...} (a table with a `command` function)",
                node,
            ));
        };
        let mut f = Fields::of(node, path)?;
        let helper = f.string("name")?.unwrap_or_else(|| "custom".to_string());
        let stages = match f.node("stages") {
            Some((n, p)) => strings(n, &p)?
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    Stage::ALL
                        .into_iter()
                        .find(|st| st.name() == s)
                        .ok_or_else(|| {
                            ConfigError::invalid(
                                p.index(i + 1).to_string(),
                                format!(
                                    "unknown stage {s:?}; stages are install, rebuild, rebuild-user"
                                ),
                            )
                        })
                })
                .collect::<Result<Vec<_>>>()?,
            None => default_stages.to_vec(),
        };
        let command = match f.node("command") {
            Some((Node::Func(func), _)) => func.clone(),
            Some((other, p)) => return Err(type_error(&p, "a function(ctx, config, ...)", other)),
            None => {
                return Err(ConfigError::invalid(
                    path.to_string(),
                    "a configuration helper needs a `command` function; use one of configs.* \
                     (git, stow, dconf, syncthing, copy_file, mount)",
                ));
            }
        };
        let packages = f.strings("packages")?;
        f.node("config");
        f.finish()?;
        let config: Value = table.get("config").unwrap_or(Value::Nil);
        let recorder = Recorder::new(owner.clone(), self.config_dir.clone());
        let effects = action::record(&self.sandbox.lua, &command, config, &recorder, calls)
            .map_err(|e| match self.sandbox.convert(e) {
                ConfigError::Runtime { location, message } => ConfigError::Runtime {
                    location,
                    message: format!("in the helper at {path}: {message}"),
                },
                other => other,
            })?;
        Ok(Action {
            helper,
            stages,
            packages,
            effects,
        })
    }
}
