//! Rewriting an environment's .desktop file for the host: the name keeps
//! the environment's label, every Exec goes through `kod run`, TryExec and
//! D-Bus activation (which would bypass Exec) are dropped.

/// How the rewritten file launches the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch<'a> {
    /// The environment's name (its label in Name).
    pub env: &'a str,
    /// The words put before the original Exec line, already in the
    /// desktop entry's quoting (see [`exec_word`]).
    pub prefix: String,
    /// The icon to use instead of the original (a host path), if copied.
    pub icon: Option<String>,
}

/// Quotes one word for an Exec key: plain when it has no reserved
/// character, else in double quotes with `"`, `` ` ``, `$` and `\` escaped
/// (and, since Exec is a string value, each backslash doubled again).
pub fn exec_word(word: &str) -> String {
    let reserved = |c: char| {
        c.is_whitespace()
            || matches!(
                c,
                '"' | '\''
                    | '\\'
                    | '>'
                    | '<'
                    | '~'
                    | '|'
                    | '&'
                    | ';'
                    | '$'
                    | '*'
                    | '?'
                    | '#'
                    | '('
                    | ')'
                    | '`'
                    | '%'
                    | '='
            )
    };
    if !word.is_empty() && !word.contains(reserved) {
        return word.to_string();
    }
    let mut out = String::from("\"");
    for c in word.chars() {
        match c {
            '"' | '`' | '$' => {
                out.push_str("\\\\");
                out.push(c);
            }
            '\\' => out.push_str("\\\\\\\\"),
            '%' => out.push_str("%%"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The rewritten desktop file.
pub fn rewrite(text: &str, launch: &Launch<'_>) -> String {
    let mut out = String::new();
    let mut group = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            group = trimmed
                .trim_end()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            out.push_str(line);
            out.push('\n');
            if group == "Desktop Entry" {
                out.push_str(&format!("X-Kod-Environment={}\n", launch.env));
            }
            continue;
        }
        let entry_group = group == "Desktop Entry" || group.starts_with("Desktop Action ");
        let Some((key, value)) = trimmed.split_once('=').filter(|_| entry_group) else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let key = key.trim_end();
        let base = key.split('[').next().unwrap_or(key);
        match base {
            "TryExec" | "DBusActivatable" | "X-Kod-Environment" => continue,
            "Exec" => out.push_str(&format!("{key}={} {}\n", launch.prefix, value.trim_start())),
            "Name" => out.push_str(&format!("{key}={} ({})\n", value.trim(), launch.env)),
            "Icon" if group == "Desktop Entry" => match &launch.icon {
                Some(icon) => out.push_str(&format!("{key}={icon}\n")),
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            },
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// The Icon value of a desktop file's main group.
pub fn icon(text: &str) -> Option<String> {
    let mut group = "";
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            group = t;
            continue;
        }
        if group == "[Desktop Entry]"
            && let Some((k, v)) = t.split_once('=')
            && k.trim() == "Icon"
        {
            return Some(v.trim().to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: &str = "\
[Desktop Entry]
Type=Application
Name=Text Editor
Name[de]=Texteditor
GenericName=Editor
TryExec=gedit
Exec=gedit %U
Icon=org.gnome.gedit
DBusActivatable=true
Actions=new-window;

[Desktop Action new-window]
Name=New Window
Exec=gedit --new-window
";

    #[test]
    fn exec_goes_through_kod_and_the_name_keeps_the_label() {
        let launch = Launch {
            env: "sid",
            prefix: format!(
                "env {} {} run sid --",
                exec_word("KOD_ENVS_DIR=/var/lib/kod/envs"),
                exec_word("/usr/bin/kod")
            ),
            icon: Some("/var/lib/kod/envs/sid/exports/share/icons/org.gnome.gedit.svg".into()),
        };
        assert_eq!(
            rewrite(ORIGINAL, &launch),
            "\
[Desktop Entry]
X-Kod-Environment=sid
Type=Application
Name=Text Editor (sid)
Name[de]=Texteditor (sid)
GenericName=Editor
Exec=env \"KOD_ENVS_DIR=/var/lib/kod/envs\" /usr/bin/kod run sid -- gedit %U
Icon=/var/lib/kod/envs/sid/exports/share/icons/org.gnome.gedit.svg
Actions=new-window;

[Desktop Action new-window]
Name=New Window (sid)
Exec=env \"KOD_ENVS_DIR=/var/lib/kod/envs\" /usr/bin/kod run sid -- gedit --new-window
"
        );
        assert_eq!(icon(ORIGINAL).as_deref(), Some("org.gnome.gedit"));
    }

    #[test]
    fn the_icon_name_is_kept_when_none_was_copied() {
        let launch = Launch {
            env: "e",
            prefix: "kod run e --".into(),
            icon: None,
        };
        let out = rewrite("[Desktop Entry]\nName=X\nIcon=x\nExec=x\n", &launch);
        assert_eq!(
            out,
            "[Desktop Entry]\nX-Kod-Environment=e\nName=X (e)\nIcon=x\nExec=kod run e -- x\n"
        );
    }

    #[test]
    fn words_are_quoted_per_the_desktop_entry_spec() {
        assert_eq!(exec_word("/usr/bin/kod"), "/usr/bin/kod");
        assert_eq!(exec_word("/home/a b/kod"), "\"/home/a b/kod\"");
        assert_eq!(exec_word("a$b"), "\"a\\\\$b\"");
        assert_eq!(exec_word("50%"), "\"50%%\"");
        assert_eq!(exec_word(""), "\"\"");
    }
}
