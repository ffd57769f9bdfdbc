//! From the value tree to the typed `Config`, checking every key and type.
//!
//! Each section reads its keys through [`Fields`], which remembers the keys
//! asked for; whatever is left over is an unknown key, reported with the
//! closest known one. The known keys are therefore exactly the ones the
//! decoder reads: there is no second list to keep in step.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mlua::Value;

use crate::action::{self, Call, Owner, Recorder};
use crate::error::ConfigError;
use crate::model::*;
use crate::node::Node;
use crate::path::KeyPath;
use crate::sandbox::Sandbox;

type Result<T> = std::result::Result<T, ConfigError>;

/// The keys of one table, read one by one.
struct Fields<'a> {
    path: KeyPath,
    map: Option<&'a BTreeMap<String, Node>>,
    known: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    /// The fields of `node`, which must be a table of keys (or empty).
    fn of(node: &'a Node, path: &KeyPath) -> Result<Fields<'a>> {
        let map = match node {
            Node::Map(m, _) => Some(m),
            Node::List(items) if items.is_empty() => None,
            other => {
                return Err(ConfigError::invalid(
                    path.to_string(),
                    format!(
                        "expected a table of keys {{ key = value, ... }}, found {}",
                        other.describe()
                    ),
                ));
            }
        };
        Ok(Fields {
            path: path.clone(),
            map,
            known: Vec::new(),
        })
    }

    fn take(&mut self, key: &'static str) -> Option<(&'a Node, KeyPath)> {
        self.known.push(key);
        let node = self.map?.get(key)?;
        Some((node, self.path.key(key)))
    }

    fn string(&mut self, key: &'static str) -> Result<Option<String>> {
        self.take(key).map(|(n, p)| string(n, &p)).transpose()
    }

    fn required_string(&mut self, key: &'static str) -> Result<String> {
        self.string(key)?.ok_or_else(|| {
            ConfigError::invalid(
                self.path.to_string(),
                format!("the key `{key}` is required"),
            )
        })
    }

    fn bool(&mut self, key: &'static str) -> Result<Option<bool>> {
        self.take(key)
            .map(|(n, p)| match n {
                Node::Bool(b) => Ok(*b),
                other => Err(type_error(&p, "a boolean (true or false)", other)),
            })
            .transpose()
    }

    fn u32(&mut self, key: &'static str) -> Result<Option<u32>> {
        self.take(key)
            .map(|(n, p)| match n {
                Node::Int(i) if (0..=u32::MAX as i64).contains(i) => Ok(*i as u32),
                other => Err(type_error(&p, "a whole number of 0 or more", other)),
            })
            .transpose()
    }

    fn strings(&mut self, key: &'static str) -> Result<Vec<String>> {
        self.take(key)
            .map(|(n, p)| strings(n, &p))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// A package reference, checked against the configured sources.
    fn package(&mut self, key: &'static str, pkgs: &PackageCheck) -> Result<Option<String>> {
        self.take(key).map(|(n, p)| pkgs.one(n, &p)).transpose()
    }

    /// A list of package references, checked against the configured sources.
    fn packages(&mut self, key: &'static str, pkgs: &PackageCheck) -> Result<Vec<String>> {
        self.take(key)
            .map(|(n, p)| pkgs.list(n, &p))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// A table of entries named by the user (`users`, `services`, ...),
    /// each decoded by `each(name, node, path)`.
    fn named<T>(
        &mut self,
        key: &'static str,
        mut each: impl FnMut(&'a str, &'a Node, KeyPath) -> Result<T>,
    ) -> Result<BTreeMap<String, T>> {
        let Some((node, path)) = self.take(key) else {
            return Ok(BTreeMap::new());
        };
        entries(node, &path)?
            .into_iter()
            .map(|(k, n, p)| Ok((k.to_string(), each(k, n, p)?)))
            .collect()
    }

    /// The node under `key` with its path, for sections decoded elsewhere.
    fn node(&mut self, key: &'static str) -> Option<(&'a Node, KeyPath)> {
        self.take(key)
    }

    /// Fails on any key that was never asked for.
    fn finish(self) -> Result<()> {
        let Some(map) = self.map else { return Ok(()) };
        match map.keys().find(|k| !self.known.contains(&k.as_str())) {
            None => Ok(()),
            Some(unknown) => Err(unknown_key(&self.path, unknown, &self.known)),
        }
    }
}

fn unknown_key(path: &KeyPath, key: &str, known: &[&str]) -> ConfigError {
    let place = if path.keys().next().is_none() {
        "at the top level".to_string()
    } else {
        format!("in `{path}`")
    };
    let closest = known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min();
    let mut sorted: Vec<&str> = known.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let message = match closest {
        Some((_, k)) => format!(
            "unknown key `{key}` {place}; did you mean `{k}`? (known keys: {})",
            sorted.join(", ")
        ),
        None => format!(
            "unknown key `{key}` {place} (known keys: {})",
            sorted.join(", ")
        ),
    };
    ConfigError::invalid(path.key(key).to_string(), message)
}

fn type_error(path: &KeyPath, expected: &str, found: &Node) -> ConfigError {
    ConfigError::invalid(
        path.to_string(),
        format!("expected {expected}, found {}", found.describe()),
    )
}

fn string(node: &Node, path: &KeyPath) -> Result<String> {
    match node {
        Node::Str(s) => Ok(s.clone()),
        other => Err(type_error(path, "a string", other)),
    }
}

fn strings(node: &Node, path: &KeyPath) -> Result<Vec<String>> {
    match node {
        Node::List(items) => items
            .iter()
            .enumerate()
            .map(|(i, n)| string(n, &path.index(i + 1)))
            .collect(),
        other => Err(type_error(
            path,
            "a list of strings { \"a\", \"b\" }",
            other,
        )),
    }
}

/// Entries of a table whose keys are names chosen by the user.
fn entries<'a>(node: &'a Node, path: &KeyPath) -> Result<Vec<(&'a str, &'a Node, KeyPath)>> {
    match node {
        Node::Map(m, _) => Ok(m
            .iter()
            .map(|(k, v)| (k.as_str(), v, path.key(k)))
            .collect()),
        Node::List(items) if items.is_empty() => Ok(Vec::new()),
        other => Err(type_error(
            path,
            "a table of named entries { name = { ... } }",
            other,
        )),
    }
}

/// Reads the whole configuration.
pub(crate) struct Decoder<'s> {
    pub(crate) sandbox: &'s Sandbox,
    pub(crate) config_dir: PathBuf,
}

impl Decoder<'_> {
    pub(crate) fn config(&self, root: &Node, source: &Path) -> Result<Config> {
        let path = KeyPath::root();
        let mut f = Fields::of(root, &path)?;
        let repos = match f.node("repos") {
            Some((n, p)) => self.repos(n, &p)?,
            None => BTreeMap::new(),
        };
        let base = f
            .take("base_distribution")
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
            .transpose()?;
        let (default_repo, base_distribution) = default_repo(&repos, base)?;
        let pkgs = PackageCheck { repos: &repos };

        let devices = f.named("devices", |_, n, p| disk(n, &p))?;
        let boot = f
            .node("boot")
            .map(|(n, p)| boot(n, &p, &pkgs))
            .transpose()?;
        let hardware = f.named("hardware", |_, n, p| hardware(n, &p, &pkgs))?;
        let locale = f.node("locale").map(|(n, p)| locale(n, &p)).transpose()?;
        let network = f.node("network").map(|(n, p)| network(n, &p)).transpose()?;
        let users = f.named("users", |k, n, p| self.user(k, n, &p, &pkgs))?;
        let desktop = f
            .node("desktop")
            .map(|(n, p)| desktop(n, &p, &pkgs))
            .transpose()?;
        let fonts = f
            .node("fonts")
            .map(|(n, p)| fonts(n, &p, &pkgs))
            .transpose()?;
        let packages = f.packages("packages", &pkgs)?;
        let services = f.named("services", |_, n, p| self.service(n, &p, &pkgs))?;
        let environments = f.named("environments", |k, n, p| environment(k, n, &p))?;
        f.finish()?;
        Ok(Config {
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
        })
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
        let dotfile_manager = f
            .node("dotfile_manager")
            .map(|(n, p)| self.action(n, &p, &owner, &calls, &[Stage::Install, Stage::RebuildUser]))
            .transpose()?;
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
            config: f
                .node("config")
                .map(|(n, p)| {
                    let call = [Call {
                        program: Some(name),
                        init: false,
                    }];
                    self.action(n, &p, owner, &call, &[Stage::Install, Stage::RebuildUser])
                })
                .transpose()?,
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
        let call = [Call {
            program: None,
            init: false,
        }];
        let service = UserService {
            enable: f.bool("enable")?.unwrap_or(false),
            package: f.package("package", pkgs)?,
            extra_packages: f.packages("extra_packages", pkgs)?,
            config: f
                .node("config")
                .map(|(n, p)| self.action(n, &p, owner, &call, &[Stage::RebuildUser]))
                .transpose()?,
        };
        f.finish()?;
        Ok(service)
    }

    fn service(&self, node: &Node, path: &KeyPath, pkgs: &PackageCheck) -> Result<Service> {
        let mut f = Fields::of(node, path)?;
        let root = Owner::user("root");
        let call = [Call {
            program: None,
            init: false,
        }];
        let service = Service {
            enable: f.bool("enable")?,
            service_name: f.string("service_name")?,
            package: f.package("package", pkgs)?,
            extra_packages: f.packages("extra_packages", pkgs)?,
            settings: f.named("settings", |_, n, p| setting(n, &p))?,
            services: f.named("services", |_, n, p| {
                self.action(n, &p, &root, &call, &[Stage::Install, Stage::Rebuild])
            })?,
        };
        f.finish()?;
        Ok(service)
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

/// The key of the repository for unprefixed packages, and the distribution.
fn default_repo(
    repos: &BTreeMap<String, Repo>,
    base: Option<Distribution>,
) -> Result<(String, Distribution)> {
    let distribution_keys: Vec<&str> = repos
        .iter()
        .filter(|(_, r)| r.distribution().is_some())
        .map(|(k, _)| k.as_str())
        .collect();
    let key = if let Some(official) = repos.get("official") {
        if official.distribution().is_none() {
            return Err(ConfigError::invalid(
                "repos.official",
                format!(
                    "`official` is a {} repository; it must be a distribution's (e.g. \
                     repos.debian_repo{{suite = \"bookworm\"}})",
                    official.kind()
                ),
            ));
        }
        "official".to_string()
    } else {
        match distribution_keys.as_slice() {
            [one] => one.to_string(),
            [] => {
                return Err(ConfigError::invalid(
                    "repos",
                    "no distribution repository is configured; add one keyed `official`, e.g. \
                     official = repos.debian_repo{suite = \"bookworm\"}",
                ));
            }
            many => {
                return Err(ConfigError::invalid(
                    "repos",
                    format!(
                        "{} distribution repositories ({}) and none is keyed `official`: \
                         unprefixed packages would not know where to come from; key the one \
                         they come from `official`",
                        many.len(),
                        many.join(", ")
                    ),
                ));
            }
        }
    };
    let dist = repos[&key]
        .distribution()
        .expect("the default repository is a distribution's");
    match base {
        Some(b) if b != dist => Err(ConfigError::invalid(
            "base_distribution",
            format!(
                "base_distribution is {b:?} but the default repository `{key}` is a {dist} \
                 repository; make them agree",
                b = b.name()
            ),
        )),
        _ => Ok((key, dist)),
    }
}

/// Checks package references against the configured repositories.
struct PackageCheck<'a> {
    repos: &'a BTreeMap<String, Repo>,
}

impl PackageCheck<'_> {
    fn one(&self, node: &Node, path: &KeyPath) -> Result<String> {
        let s = string(node, path)?;
        self.check(&s, path)?;
        Ok(s)
    }

    fn list(&self, node: &Node, path: &KeyPath) -> Result<Vec<String>> {
        let list = strings(node, path)?;
        for (i, s) in list.iter().enumerate() {
            self.check(s, &path.index(i + 1))?;
        }
        Ok(list)
    }

    fn check(&self, reference: &str, path: &KeyPath) -> Result<()> {
        if reference.is_empty() || reference.chars().any(char::is_whitespace) {
            return Err(ConfigError::invalid(
                path.to_string(),
                format!("{reference:?} is not a package name (empty, or has spaces)"),
            ));
        }
        let Some((prefix, name)) = reference.split_once(':') else {
            return Ok(());
        };
        if self.repos.contains_key(prefix) {
            if name.is_empty() {
                return Err(ConfigError::invalid(
                    path.to_string(),
                    format!("{reference:?} names no package after `{prefix}:`"),
                ));
            }
            return Ok(());
        }
        if prefix == "aur" || prefix == "flatpak" {
            let helper = if prefix == "aur" {
                "repos.aur_repo(\"yay\", URL)"
            } else {
                "repos.flatpak_repo(\"flathub\")"
            };
            return Err(ConfigError::invalid(
                path.to_string(),
                format!(
                    "{reference:?} comes from the `{prefix}` repository, which is not configured; \
                     add repos.{prefix} = {helper}"
                ),
            ));
        }
        // `libc6:i386` and the like: an architecture-qualified name for the
        // default repository.
        Ok(())
    }
}

fn repo(node: &Node, path: &KeyPath) -> Result<Repo> {
    let mut f = Fields::of(node, path)?;
    let kind = f.required_string("type")?;
    let repo = match kind.as_str() {
        "aur" => Repo::Aur(AurRepo {
            helper: f.required_string("helper")?,
            helper_url: f.string("helper_url")?,
            build_cmd: f.string("build_cmd")?,
        }),
        "flatpak" => Repo::Flatpak(FlatpakRepo {
            remote: f.string("remote")?.unwrap_or_else(|| "flathub".to_string()),
            url: f.string("url")?,
        }),
        other => {
            let Some(distribution) = Distribution::parse(other) else {
                let mut kinds: Vec<&str> = Distribution::ALL.iter().map(|d| d.name()).collect();
                kinds.extend(["aur", "flatpak"]);
                return Err(ConfigError::invalid(
                    path.key("type").to_string(),
                    format!(
                        "unknown repository type {other:?}; expected one of {}",
                        kinds.join(", ")
                    ),
                ));
            };
            let mirrors = match f.node("mirror") {
                Some((Node::Str(s), _)) => vec![s.clone()],
                Some((n, p)) => strings(n, &p)?,
                None => Vec::new(),
            };
            let release_key = if distribution == Distribution::Debian {
                "suite"
            } else {
                "release"
            };
            let release = f.string(release_key)?;
            let components_key = if distribution == Distribution::Debian {
                "components"
            } else {
                "repositories"
            };
            let mut components = f.strings(components_key)?;
            if components.is_empty() {
                components = default_components(distribution);
            }
            if distribution == Distribution::Debian && release.is_none() {
                return Err(ConfigError::invalid(
                    path.to_string(),
                    "a Debian repository needs a `suite` (e.g. \"bookworm\")",
                ));
            }
            Repo::Distribution(DistributionRepo {
                distribution,
                mirrors,
                release,
                components,
                signed_by: f.string("signed_by")?.map(PathBuf::from),
                trusted: f.bool("trusted")?.unwrap_or(false),
            })
        }
    };
    f.finish()?;
    Ok(repo)
}

fn default_components(d: Distribution) -> Vec<String> {
    let list: &[&str] = match d {
        Distribution::Debian => &["main"],
        Distribution::Arch => &["core", "extra"],
        Distribution::Fedora => &["fedora", "updates"],
        Distribution::Centos => &["baseos", "appstream"],
        Distribution::Opensuse => &["oss"],
        Distribution::Alpine => &["main", "community"],
    };
    list.iter().map(|s| s.to_string()).collect()
}

fn disk(node: &Node, path: &KeyPath) -> Result<Disk> {
    let mut f = Fields::of(node, path)?;
    let device = f.required_string("device")?;
    if !device.starts_with("/dev/") {
        return Err(ConfigError::invalid(
            path.key("device").to_string(),
            format!("{device:?} is not a device path (/dev/...)"),
        ));
    }
    let table = match f.string("type")?.as_deref() {
        None | Some("gpt") => PartitionTable::Gpt,
        Some("msdos") | Some("mbr") => PartitionTable::Msdos,
        Some(other) => {
            return Err(ConfigError::invalid(
                path.key("type").to_string(),
                format!("unknown partition table {other:?}; expected \"gpt\" or \"msdos\""),
            ));
        }
    };
    let efi = f.bool("efi")?.unwrap_or(true);
    let wipe = f.bool("wipe")?.unwrap_or(false);
    let partitions = match f.node("partitions") {
        Some((Node::List(items), p)) => items
            .iter()
            .enumerate()
            .map(|(i, n)| partition(n, &p.index(i + 1)))
            .collect::<Result<Vec<_>>>()?,
        Some((other, p)) => return Err(type_error(&p, "a list of partitions", other)),
        None => Vec::new(),
    };
    f.finish()?;
    Ok(Disk {
        device,
        table,
        efi,
        wipe,
        partitions,
    })
}

fn partition(node: &Node, path: &KeyPath) -> Result<Partition> {
    let mut f = Fields::of(node, path)?;
    let name = f.required_string("name")?;
    let size_text = f.required_string("size")?;
    let size = parse_size(&size_text).ok_or_else(|| {
        ConfigError::invalid(
            path.key("size").to_string(),
            format!("{size_text:?} is not a size; write e.g. \"512MB\", \"3GB\" or \"100%\" (sizes are binary: 1GB = 1 GiB)"),
        )
    })?;
    let kind_text = f.required_string("type")?;
    let kind = PartitionKind::parse(&kind_text).ok_or_else(|| {
        ConfigError::invalid(
            path.key("type").to_string(),
            format!(
                "unknown partition type {kind_text:?}; expected one of {}",
                PartitionKind::NAMES.join(", ")
            ),
        )
    })?;
    let mountpoint = f.string("mountpoint")?;
    let format = f.bool("format")?.unwrap_or(true);
    // KodOS spells it resumeDevice.
    let resume = f
        .bool("resume_device")?
        .or(f.bool("resumeDevice")?)
        .unwrap_or(false);
    f.finish()?;
    Ok(Partition {
        name,
        size,
        kind,
        mountpoint,
        format,
        resume_device: resume,
    })
}

/// "512MB", "3GB", "1.5G", "100%": binary units, as sgdisk reads them.
pub(crate) fn parse_size(s: &str) -> Option<Size> {
    let s = s.trim();
    if let Some(p) = s.strip_suffix('%') {
        let n: u8 = p.trim().parse().ok()?;
        return (1..=100).contains(&n).then_some(Size::Percent(n));
    }
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().ok()?;
    let shift = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches('B')
        .trim_end_matches('I')
    {
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return None,
    };
    let bytes = num * (1u64 << shift) as f64;
    (bytes >= 1.0 && bytes < u64::MAX as f64).then_some(Size::Bytes(bytes as u64))
}

fn boot(node: &Node, path: &KeyPath, pkgs: &PackageCheck) -> Result<Boot> {
    let mut f = Fields::of(node, path)?;
    let kernel = match f.node("kernel") {
        Some((n, p)) => {
            let mut k = Fields::of(n, &p)?;
            let kernel = Kernel {
                package: k.package("package", pkgs)?,
                modules: k.strings("modules")?,
            };
            k.finish()?;
            kernel
        }
        None => Kernel::default(),
    };
    let loader = match f.node("loader") {
        Some((n, p)) => {
            let mut l = Fields::of(n, &p)?;
            let kind = match l.string("type")?.as_deref() {
                None | Some("systemd-boot") => LoaderKind::SystemdBoot,
                Some("grub") => LoaderKind::Grub,
                Some(other) => {
                    return Err(ConfigError::invalid(
                        p.key("type").to_string(),
                        format!(
                            "unknown boot loader {other:?}; expected \"systemd-boot\" or \"grub\""
                        ),
                    ));
                }
            };
            let loader = Loader {
                kind,
                timeout: l.u32("timeout")?,
                include: l.packages("include", pkgs)?,
            };
            l.finish()?;
            loader
        }
        None => Loader::default(),
    };
    f.finish()?;
    Ok(Boot { kernel, loader })
}

fn hardware(node: &Node, path: &KeyPath, pkgs: &PackageCheck) -> Result<Hardware> {
    let mut f = Fields::of(node, path)?;
    let hw = Hardware {
        enable: f.bool("enable")?.unwrap_or(false),
        package: f.package("package", pkgs)?,
        extra_packages: f.packages("extra_packages", pkgs)?,
        service_name: f.string("service_name")?,
    };
    f.finish()?;
    Ok(hw)
}

fn locale(node: &Node, path: &KeyPath) -> Result<Locale> {
    let mut f = Fields::of(node, path)?;
    let mut locale = Locale::default();
    if let Some((n, p)) = f.node("locale") {
        let mut l = Fields::of(n, &p)?;
        locale.default = l.string("default")?;
        locale.extra_generate = l.strings("extra_generate")?;
        locale.extra_settings = l.named("extra_settings", |_, n, p| string(n, &p))?;
        l.finish()?;
    }
    locale.keymap = f.string("keymap")?;
    locale.timezone = f.string("timezone")?;
    f.finish()?;
    Ok(locale)
}

fn network(node: &Node, path: &KeyPath) -> Result<Network> {
    let mut f = Fields::of(node, path)?;
    let net = Network {
        hostname: f.string("hostname")?,
        ipv4: f.node("ipv4").map(|(n, p)| ip(n, &p)).transpose()?,
        ipv6: f.node("ipv6").map(|(n, p)| ip(n, &p)).transpose()?,
    };
    f.finish()?;
    Ok(net)
}

fn ip(node: &Node, path: &KeyPath) -> Result<IpConfig> {
    match node {
        Node::Bool(true) => Ok(IpConfig::Automatic),
        Node::Bool(false) => Ok(IpConfig::Disabled),
        Node::Map(..) => {
            let mut f = Fields::of(node, path)?;
            let dhcp = f.bool("dhcp")?.unwrap_or(false);
            let address = f.string("address")?;
            let gateway = f.string("gateway")?;
            let dns = f.strings("dns")?;
            f.finish()?;
            match (dhcp, address) {
                (true, None) => Ok(IpConfig::Automatic),
                (false, Some(address)) => Ok(IpConfig::Static {
                    address,
                    gateway,
                    dns,
                }),
                _ => Err(ConfigError::invalid(
                    path.to_string(),
                    "give either `dhcp = true` or an `address` (with `gateway` and `dns`)",
                )),
            }
        }
        other => Err(type_error(
            path,
            "true, false, or { address = ..., gateway = ..., dns = {...} }",
            other,
        )),
    }
}

fn desktop(node: &Node, path: &KeyPath, pkgs: &PackageCheck) -> Result<Desktop> {
    let mut f = Fields::of(node, path)?;
    let display_manager = f.package("display_manager", pkgs)?;
    let desktop_manager = f.named("desktop_manager", |_, n, p| {
        let mut d = Fields::of(n, &p)?;
        let env = DesktopEnvironment {
            enable: d.bool("enable")?.unwrap_or(false),
            package: d.package("package", pkgs)?,
            display_manager: d.package("display_manager", pkgs)?,
            extra_packages: d.packages("extra_packages", pkgs)?,
            exclude_packages: d.packages("exclude_packages", pkgs)?,
        };
        d.finish()?;
        Ok(env)
    })?;
    f.finish()?;
    Ok(Desktop {
        display_manager,
        desktop_manager,
    })
}

fn fonts(node: &Node, path: &KeyPath, pkgs: &PackageCheck) -> Result<Fonts> {
    let mut f = Fields::of(node, path)?;
    let fonts = Fonts {
        font_dir: f.bool("font_dir")?.unwrap_or(false),
        packages: f.packages("packages", pkgs)?,
    };
    f.finish()?;
    Ok(fonts)
}

fn setting(node: &Node, path: &KeyPath) -> Result<Setting> {
    Ok(match node {
        Node::Bool(b) => Setting::Bool(*b),
        Node::Int(i) => Setting::Int(*i),
        Node::Float(x) => Setting::Float(*x),
        Node::Str(s) => Setting::Text(s.clone()),
        Node::List(items) => Setting::List(
            items
                .iter()
                .enumerate()
                .map(|(i, n)| setting(n, &path.index(i + 1)))
                .collect::<Result<_>>()?,
        ),
        other => return Err(type_error(path, "a boolean, number, string or list", other)),
    })
}

fn environment(name: &str, node: &Node, path: &KeyPath) -> Result<Environment> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(ConfigError::invalid(
            path.to_string(),
            format!("{name:?} is not a valid environment name (no `/`, not starting with `.`)"),
        ));
    }
    let mut f = Fields::of(node, path)?;
    let distro = f.required_string("distro")?;
    let valid = distro
        .split_once(':')
        .is_some_and(|(d, r)| Distribution::parse(d).is_some() && !r.is_empty());
    if !valid {
        return Err(ConfigError::invalid(
            path.key("distro").to_string(),
            format!("{distro:?} is not DISTRO:RELEASE (e.g. \"debian:sid\")"),
        ));
    }
    let env = Environment {
        distro,
        packages: f.strings("packages")?,
        exports: f.strings("exports")?,
        volumes: f.strings("volumes")?,
    };
    f.finish()?;
    Ok(env)
}

fn check_login(login: &str, path: &KeyPath) -> Result<()> {
    let mut chars = login.chars();
    let ok = login.len() <= 32
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            path.to_string(),
            format!(
                "{login:?} is not a valid login name (lower-case letters, digits, `_` and `-`, \
                 starting with a letter or `_`, at most 32)"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_binary() {
        assert_eq!(parse_size("1GB"), Some(Size::Bytes(1 << 30)));
        assert_eq!(parse_size("512MiB"), Some(Size::Bytes(512 << 20)));
        assert_eq!(parse_size("3G"), Some(Size::Bytes(3 << 30)));
        assert_eq!(parse_size("1.5GB"), Some(Size::Bytes(3 << 29)));
        assert_eq!(parse_size("100%"), Some(Size::Percent(100)));
        assert_eq!(parse_size("0%"), None);
        assert_eq!(parse_size("12"), None);
        assert_eq!(parse_size("3 parsecs"), None);
    }

    #[test]
    fn suggests_the_closest_key() {
        let e = unknown_key(
            &KeyPath::root().key("services").key("openssh"),
            "setings",
            &["enable", "settings", "service_name"],
        );
        let msg = e.to_string();
        assert!(
            msg.contains("unknown key `setings` in `services.openssh`"),
            "{msg}"
        );
        assert!(msg.contains("did you mean `settings`?"), "{msg}");
    }

    #[test]
    fn no_suggestion_for_distant_keys() {
        let msg = unknown_key(&KeyPath::root(), "zzzzzz", &["packages", "users"]).to_string();
        assert!(!msg.contains("did you mean"), "{msg}");
        assert!(msg.contains("known keys: packages, users"), "{msg}");
    }
}
