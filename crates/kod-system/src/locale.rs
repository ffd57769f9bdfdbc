//! Locales and the keymap: `/etc/locale.gen` with the configured locales
//! uncommented or added and `locale-gen` run in the target, `LANG` and the
//! extra `LC_*` settings in `/etc/default/locale` (Debian's) and
//! `/etc/locale.conf` (systemd's); the console keymap in
//! `/etc/vconsole.conf` and its layout in Debian's `/etc/default/keyboard`.

use std::path::Path;

use crate::Input;
use crate::error::Error;
use crate::planner::{Node, Planner};

const LOCALE_GEN: &str = "/etc/locale.gen";
const ARCHIVE: &str = "/usr/lib/locale/locale-archive";

/// The variables `extra_settings` may set.
const VARIABLES: [&str; 14] = [
    "LANGUAGE",
    "LC_CTYPE",
    "LC_NUMERIC",
    "LC_TIME",
    "LC_COLLATE",
    "LC_MONETARY",
    "LC_MESSAGES",
    "LC_PAPER",
    "LC_NAME",
    "LC_ADDRESS",
    "LC_TELEPHONE",
    "LC_MEASUREMENT",
    "LC_IDENTIFICATION",
    "LC_ALL",
];

/// A locale as a locale.gen line: `en_US.UTF-8 UTF-8`. A name alone
/// (`de_DE.UTF-8`) gets its charset from the part after the dot.
fn gen_line(key: &str, value: &str) -> Result<(String, String), Error> {
    let bad = |reason: &str| Error::BadValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let mut words = value.split_whitespace();
    let name = words.next().ok_or_else(|| bad("is no locale"))?;
    let charset = match words.next() {
        Some(c) => c.to_string(),
        None => name
            .split_once('.')
            .map(|(_, c)| c.split('@').next().unwrap_or(c).to_string())
            .ok_or_else(|| {
                bad("names no charset: write it as locale.gen does, `en_US.UTF-8 UTF-8`")
            })?,
    };
    if words.next().is_some() || name.contains(['/', '=']) {
        return Err(bad(
            "is not a locale.gen line: write `NAME CHARSET`, as `en_US.UTF-8 UTF-8`",
        ));
    }
    Ok((name.to_string(), format!("{name} {charset}")))
}

/// Whether glibc has the locale built in (`C.UTF-8`, `POSIX`): nothing
/// to generate.
fn built_in(name: &str) -> bool {
    matches!(name, "C" | "POSIX" | "C.UTF-8" | "C.utf8")
}

/// Plans locale.gen, locale-gen and the locale files.
pub(crate) fn plan(p: &mut Planner, input: &Input) -> Result<(), Error> {
    let locale = &input.config.locale;
    let mut wanted = Vec::new();
    let mut lang = None;
    if let Some(d) = &locale.default {
        let (name, line) = gen_line("locale.locale.default", d)?;
        lang = Some(name.clone());
        wanted.push((name, line, "locale.locale.default"));
    }
    for e in &locale.extra_generate {
        let (name, line) = gen_line("locale.locale.extra_generate", e)?;
        wanted.push((name, line, "locale.locale.extra_generate"));
    }
    wanted.retain(|(name, _, _)| !built_in(name));
    if !wanted.is_empty() {
        let key = wanted[0].2;
        let Some(text) = p.read_text(Path::new(LOCALE_GEN))? else {
            return Err(Error::Missing {
                key: key.into(),
                path: LOCALE_GEN.into(),
                hint: "install the `locales` package".into(),
            });
        };
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        for (_, line, _) in &wanted {
            let same = |l: &str| l.split_whitespace().eq(line.split_whitespace());
            if lines.iter().any(|l| same(l)) {
                continue;
            }
            match lines
                .iter_mut()
                .find(|l| l.strip_prefix('#').is_some_and(&same))
            {
                Some(l) => *l = line.clone(),
                None => lines.push(line.clone()),
            }
        }
        let mut new = lines.join("\n");
        new.push('\n');
        p.write(key, LOCALE_GEN, new, 0o644, (0, 0))?;
        if needs_generating(p)? {
            let prog = p
                .program(&["/usr/sbin/locale-gen", "/sbin/locale-gen"])?
                .ok_or_else(|| Error::Missing {
                    key: key.into(),
                    path: "/usr/sbin/locale-gen".into(),
                    hint: "install the `locales` package".into(),
                })?;
            p.run(key, vec![prog], "generate the configured locales");
        }
    }
    let mut vars = Vec::new();
    if let Some(l) = &lang {
        vars.push(("LANG".to_string(), l.clone()));
    }
    for (k, v) in &locale.extra_settings {
        let key = format!("locale.locale.extra_settings.{k}");
        if !VARIABLES.contains(&k.as_str()) {
            return Err(Error::BadValue {
                key,
                value: k.clone(),
                reason: format!("is no locale variable; use one of {}", VARIABLES.join(", ")),
            });
        }
        if v.contains(['\n', '"']) {
            return Err(Error::BadValue {
                key,
                value: v.clone(),
                reason: "holds a newline or a quote".into(),
            });
        }
        vars.push((k.clone(), v.clone()));
    }
    if !vars.is_empty() {
        let text: String = vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        let key = if lang.is_some() {
            "locale.locale.default"
        } else {
            "locale.locale.extra_settings"
        };
        p.write(key, "/etc/default/locale", text.clone(), 0o644, (0, 0))?;
        p.write(key, "/etc/locale.conf", text, 0o644, (0, 0))?;
    }
    Ok(())
}

/// Whether `locale-gen` must run: locale.gen changes, or the archive is
/// missing or older than it.
fn needs_generating(p: &Planner) -> Result<bool, Error> {
    if p.changes_path(Path::new(LOCALE_GEN)) {
        return Ok(true);
    }
    if p.node(Path::new(ARCHIVE))? == Node::Absent {
        return Ok(true);
    }
    let mtime = |path: &str| -> Result<i64, Error> {
        Ok(p.root
            .stat(path)
            .map_err(crate::error::io_err("look at", p.root.show(path)))?
            .map_or(0, |st| st.st_mtime))
    };
    Ok(mtime(ARCHIVE)? < mtime(LOCALE_GEN)?)
}

/// The XKB layout of a console keymap: its first part (`de-latin1` ->
/// `de`), with the few console names that differ from XKB's.
pub fn xkb_layout(keymap: &str) -> String {
    let first = keymap.split(['-', '_']).next().unwrap_or(keymap);
    match first {
        "uk" => "gb",
        "dvorak" => "us",
        other => other,
    }
    .to_string()
}

const KEYBOARD: &str = "/etc/default/keyboard";

/// Plans vconsole.conf and /etc/default/keyboard.
pub(crate) fn plan_keymap(p: &mut Planner, input: &Input) -> Result<(), Error> {
    const KEY: &str = "locale.keymap";
    let Some(keymap) = &input.config.locale.keymap else {
        return Ok(());
    };
    if keymap.is_empty()
        || !keymap
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(Error::BadValue {
            key: KEY.into(),
            value: keymap.clone(),
            reason: "is no console keymap name (`us`, `de-latin1`)".into(),
        });
    }
    p.write(
        KEY,
        "/etc/vconsole.conf",
        format!("KEYMAP={keymap}\n"),
        0o644,
        (0, 0),
    )?;
    let layout = format!("XKBLAYOUT=\"{}\"", xkb_layout(keymap));
    let text = match p.read_text(Path::new(KEYBOARD))? {
        Some(old) if old.lines().any(|l| l.starts_with("XKBLAYOUT=")) => {
            let mut s: String = old
                .lines()
                .map(|l| {
                    if l.starts_with("XKBLAYOUT=") {
                        layout.clone()
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            s.push('\n');
            s
        }
        _ => format!(
            "# KEYBOARD CONFIGURATION FILE\n\n# Consult the keyboard(5) manual page.\n\n\
             XKBMODEL=\"pc105\"\n{layout}\nXKBVARIANT=\"\"\nXKBOPTIONS=\"\"\n\nBACKSPACE=\"guess\"\n"
        ),
    };
    p.write(KEY, KEYBOARD, text, 0o644, (0, 0))?;
    Ok(())
}
