//! The sections of the machine besides its sources and disks: `boot`,
//! `hardware`, `locale`, `network`, `desktop`, `fonts`; a service's
//! `settings`; `environments`; and the check of login names.

use super::Result;
use super::fields::{Fields, string, type_error};
use super::repos::PackageCheck;
use crate::error::ConfigError;
use crate::model::*;
use crate::node::Node;
use crate::path::KeyPath;

pub(super) fn boot(node: &Node, path: &KeyPath, pkgs: &PackageCheck) -> Result<Boot> {
    let mut f = Fields::of(node, path)?;
    let kernel = match f.node("kernel") {
        Some((n, p)) => {
            let mut k = Fields::of(n, &p)?;
            // `package = false`: no kernel at all.
            let (package, none) = match k.take("package") {
                Some((Node::Bool(false), _)) => (None, true),
                Some((n, p)) => (Some(pkgs.one(n, &p)?), false),
                None => (None, false),
            };
            let kernel = Kernel {
                package,
                none,
                modules: k.strings("modules")?,
                options: k.strings("options")?,
                initramfs: match k.string("initramfs")?.as_deref() {
                    None => None,
                    Some("initramfs-tools") => Some(InitramfsTool::InitramfsTools),
                    Some("dracut") => Some(InitramfsTool::Dracut),
                    Some(other) => {
                        return Err(ConfigError::invalid(
                            p.key("initramfs").to_string(),
                            format!(
                                "unknown initramfs tool {other:?}; expected \"initramfs-tools\" \
                                 or \"dracut\""
                            ),
                        ));
                    }
                },
            };
            if let Some(bad) = kernel.options.iter().find(|o| !kernel_option(o)) {
                return Err(ConfigError::invalid(
                    p.key("options").to_string(),
                    format!(
                        "{bad:?} is not one kernel command-line option: give each option as \
                         its own string, without spaces, quotes or newlines (`console=ttyS0`)"
                    ),
                ));
            }
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
            let defaults = Loader::default();
            let loader = Loader {
                kind,
                timeout: l.u32("timeout")?,
                include: l.packages("include", pkgs)?,
                tries: l.u32("tries")?.unwrap_or(defaults.tries),
                max_entries: l.u32("max_entries")?.unwrap_or(defaults.max_entries),
            };
            if loader.max_entries == 0 {
                return Err(ConfigError::invalid(
                    p.key("max_entries").to_string(),
                    "must be at least 1: the default generation always keeps its entry",
                ));
            }
            l.finish()?;
            loader
        }
        None => Loader::default(),
    };
    f.finish()?;
    Ok(Boot { kernel, loader })
}

/// Whether `option` is one word of a kernel command line: the entry's
/// `options` line is words separated by spaces, so an option with a space,
/// quote or control character would become several, or break the entry.
fn kernel_option(option: &str) -> bool {
    !option.is_empty()
        && !option
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\'')
}

pub(super) fn hardware(node: &Node, path: &KeyPath, pkgs: &PackageCheck) -> Result<Hardware> {
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

pub(super) fn locale(node: &Node, path: &KeyPath) -> Result<Locale> {
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

pub(super) fn network(node: &Node, path: &KeyPath) -> Result<Network> {
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

pub(super) fn desktop(node: &Node, path: &KeyPath, pkgs: &PackageCheck) -> Result<Desktop> {
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

pub(super) fn fonts(node: &Node, path: &KeyPath, pkgs: &PackageCheck) -> Result<Fonts> {
    let mut f = Fields::of(node, path)?;
    let fonts = Fonts {
        font_dir: f.bool("font_dir")?.unwrap_or(false),
        packages: f.packages("packages", pkgs)?,
    };
    f.finish()?;
    Ok(fonts)
}

pub(super) fn setting(node: &Node, path: &KeyPath) -> Result<Setting> {
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

pub(super) fn environment(name: &str, node: &Node, path: &KeyPath) -> Result<Environment> {
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

pub(super) fn check_login(login: &str, path: &KeyPath) -> Result<()> {
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
