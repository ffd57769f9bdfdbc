//! `kod plan` as text for people.

use std::fmt::Write;

use kod_config::{Effect, IpConfig, Repo, Size};
use kod_plan::Plan;

use crate::output::human_bytes;

/// Renders a plan as sections of aligned lines.
pub fn render(plan: &Plan) -> String {
    let mut o = String::new();
    let w = &mut o;
    let _ = writeln!(w, "Plan of {}", plan.source);
    let _ = writeln!(w, "Base distribution: {}", plan.base_distribution);

    section(w, "Repositories");
    for (key, r) in &plan.repos {
        let default = if r.default { " (default)" } else { "" };
        let detail = match &r.repo {
            Repo::Distribution(d) => {
                let mirrors = if d.mirrors.is_empty() {
                    "mirror from the environment or the host's sources".to_string()
                } else {
                    d.mirrors.join(" ")
                };
                let release = d
                    .release
                    .as_deref()
                    .map(|r| format!(" {r}"))
                    .unwrap_or_default();
                let trust = if d.trusted {
                    ", TRUSTED WITHOUT SIGNATURE"
                } else {
                    ""
                };
                format!(
                    "{}{release} [{}] {mirrors}{trust}",
                    d.distribution,
                    d.components.join(", ")
                )
            }
            Repo::Aur(a) => format!(
                "aur via {}{}",
                a.helper,
                a.helper_url
                    .as_deref()
                    .map(|u| format!(" ({u})"))
                    .unwrap_or_default()
            ),
            Repo::Flatpak(f) => format!("flatpak remote {}", f.remote),
        };
        let _ = writeln!(w, "  {key}{default}: {detail}");
    }

    if !plan.devices.is_empty() {
        section(w, "Devices");
        for (key, d) in &plan.devices {
            let _ = writeln!(
                w,
                "  {key}: {} ({}{}{})",
                d.device,
                serde_name(&d.table),
                if d.efi { ", efi" } else { "" },
                if d.wipe { ", wiped" } else { "" }
            );
            for p in &d.partitions {
                let size = match p.size {
                    Size::Bytes(b) => human_bytes(b),
                    Size::Percent(pc) => format!("{pc}% of the rest"),
                };
                let _ = writeln!(
                    w,
                    "    {:<8} {:>16}  {:<10} {}",
                    p.name,
                    size,
                    serde_name(&p.kind),
                    p.mountpoint.as_deref().unwrap_or("")
                );
            }
        }
    }

    section(w, "Boot");
    let b = &plan.boot;
    let _ = writeln!(
        w,
        "  kernel: {}",
        b.kernel_package.as_deref().unwrap_or("none")
    );
    if !b.kernel_modules.is_empty() {
        let _ = writeln!(w, "  initramfs modules: {}", b.kernel_modules.join(", "));
    }
    let timeout = b
        .timeout
        .map(|t| format!(", timeout {t} s"))
        .unwrap_or_default();
    let _ = writeln!(w, "  loader: {}{timeout}", serde_name(&b.loader));
    if !b.extra_entries.is_empty() {
        let _ = writeln!(w, "  extra entries: {}", b.extra_entries.join(", "));
    }

    section(w, "Locale and network");
    let l = &plan.locale;
    let _ = writeln!(
        w,
        "  locale: {}",
        l.default.as_deref().unwrap_or("(default)")
    );
    if !l.extra_generate.is_empty() {
        let _ = writeln!(w, "  also generated: {}", l.extra_generate.join(", "));
    }
    for (k, v) in &l.extra_settings {
        let _ = writeln!(w, "  {k}={v}");
    }
    let _ = writeln!(
        w,
        "  keymap: {}",
        l.keymap.as_deref().unwrap_or("(default)")
    );
    let _ = writeln!(w, "  timezone: {}", l.timezone.as_deref().unwrap_or("UTC"));
    let _ = writeln!(w, "  hostname: {}", plan.network.hostname);
    let _ = writeln!(w, "  ipv4: {}", ip(&plan.network.ipv4));
    let _ = writeln!(w, "  ipv6: {}", ip(&plan.network.ipv6));

    section(w, "Users");
    for (login, u) in &plan.users {
        let _ = writeln!(
            w,
            "  {login}: {}password {}, home {}, shell {}{}{}",
            u.full_name
                .as_deref()
                .map(|n| format!("{n}, "))
                .unwrap_or_default(),
            u.password,
            u.home,
            u.shell.as_deref().unwrap_or("(default)"),
            if u.groups.is_empty() {
                String::new()
            } else {
                format!(", groups {}", u.groups.join(" "))
            },
            if u.ssh_authorized.is_empty() {
                String::new()
            } else {
                format!(", {} ssh key(s)", u.ssh_authorized.len())
            },
        );
    }

    section(w, "Packages");
    for (source, set) in &plan.packages {
        if !set.install.is_empty() {
            let _ = writeln!(
                w,
                "  {source} ({}, {}): {}",
                set.kind,
                set.install.len(),
                set.install.join(" ")
            );
        }
        if !set.remove.is_empty() {
            let _ = writeln!(w, "  {source}, removed: {}", set.remove.join(" "));
        }
    }

    section(w, "Services");
    let system: Vec<&str> = plan.services.system.keys().map(String::as_str).collect();
    let _ = writeln!(w, "  system: {}", none_if_empty(&system.join(" ")));
    for (user, units) in &plan.services.user {
        let _ = writeln!(w, "  user {user}: {}", units.join(" "));
    }

    if !plan.stages.is_empty() {
        section(w, "Configuration helpers");
        for (stage, steps) in &plan.stages {
            let _ = writeln!(w, "  {}:", stage.name());
            for s in steps {
                let _ = writeln!(w, "    [{}] {}", s.helper, effect(&s.effect));
            }
        }
    }

    if !plan.environments.is_empty() {
        section(w, "Environments");
        for (name, e) in &plan.environments {
            let _ = writeln!(
                w,
                "  {name}: {} [{}]{}",
                e.distro,
                e.packages.join(" "),
                if e.exports.is_empty() {
                    String::new()
                } else {
                    format!(", exports {}", e.exports.join(" "))
                }
            );
        }
    }
    o
}

/// The name a value has in configurations and JSON (`linux-swap`, `gpt`).
fn serde_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn section(w: &mut String, title: &str) {
    let _ = writeln!(w, "\n{title}");
}

fn none_if_empty(s: &str) -> &str {
    if s.is_empty() { "(none)" } else { s }
}

fn ip(c: &IpConfig) -> String {
    match c {
        IpConfig::Disabled => "off".to_string(),
        IpConfig::Automatic => "automatic".to_string(),
        IpConfig::Static {
            address,
            gateway,
            dns,
        } => format!(
            "{address}{}{}",
            gateway
                .as_deref()
                .map(|g| format!(" via {g}"))
                .unwrap_or_default(),
            if dns.is_empty() {
                String::new()
            } else {
                format!(", dns {}", dns.join(" "))
            }
        ),
    }
}

fn effect(e: &Effect) -> String {
    match e {
        Effect::WriteFile {
            path, mode, owner, ..
        } => format!("write {path} (mode {mode:o}, owner {owner})"),
        Effect::CopyFile {
            source,
            target,
            owner,
        } => format!("copy {} to {target} (owner {owner})", source.display()),
        Effect::GitCheckout { url, dir, owner } => {
            format!("clone or pull {url} into {dir} (as {owner})")
        }
        Effect::Run { argv, user } => format!("run `{}` as {user}", shell_words(argv)),
        Effect::EnableUnit { unit, user: None } => format!("enable {unit}"),
        Effect::EnableUnit {
            unit,
            user: Some(u),
        } => format!("enable {unit} for {u}"),
    }
}

/// Quotes arguments the way a shell would need them.
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:@+,%~".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
