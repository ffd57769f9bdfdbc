//! The copy of a configuration a machine keeps (`/etc/kod`, the generation
//! record) without its clear passwords: each literal `password = "…"` of a
//! user becomes `hashed_password = "HASH"`, with the hash the accounts were
//! given. A clear password that is not written as such a literal (built
//! from other values) cannot be taken out of the copy reliably, so it is an
//! error that points to `hashed_password`.

use std::collections::BTreeMap;

use crate::error::ConfigError;
use crate::model::{Config, Password};
use crate::sandbox::SourceFile;

/// `files` (the configuration's sources, [`crate::load_files`]) with every
/// user's clear password replaced by its hash from `hashes` (by login).
pub fn sanitized(
    files: &[SourceFile],
    config: &Config,
    hashes: &BTreeMap<String, String>,
) -> Result<Vec<SourceFile>, ConfigError> {
    let mut out: Vec<SourceFile> = files.to_vec();
    for (login, user) in &config.users {
        let Password::Plain(clear) = &user.password else {
            continue;
        };
        let key = format!("users.{login}.password");
        let hash = hashes.get(login).ok_or_else(|| {
            ConfigError::invalid(&key, "no hash was made for this password (a kod bug)")
        })?;
        let mut replaced = false;
        for file in &mut out {
            let (text, n) = replace_literal(&file.text, clear, hash);
            replaced |= n > 0;
            file.text = text;
        }
        if !replaced {
            return Err(ConfigError::invalid(
                key,
                "this clear password is not written as a literal `password = \"...\"`, so kod \
                 cannot keep it out of the copy of the configuration it stores; write \
                 `hashed_password = \"...\"` instead (make one with `mkpasswd -m sha-512`)",
            ));
        }
    }
    Ok(out)
}

/// `text` with each `password = LITERAL` whose value is `clear` written as
/// `hashed_password = "HASH"`, and how many were replaced.
fn replace_literal(text: &str, clear: &str, hash: &str) -> (String, usize) {
    let mut out = String::with_capacity(text.len());
    let mut count = 0;
    let mut rest = text;
    while let Some(at) = rest.find("password") {
        let (before, from_key) = rest.split_at(at);
        out.push_str(before);
        let whole_word = !before
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        let after_key = &from_key["password".len()..];
        match whole_word.then(|| assigned_literal(after_key)).flatten() {
            Some((value, len)) if value == clear => {
                out.push_str(&format!("hashed_password = \"{hash}\""));
                rest = &after_key[len..];
                count += 1;
            }
            _ => {
                out.push_str("password");
                rest = after_key;
            }
        }
    }
    out.push_str(rest);
    (out, count)
}

/// For text after a key: ` = "value"` (or single quotes) as the literal's
/// value and the length of that text; `None` for anything else (a name, a
/// call, `==`, a long string).
fn assigned_literal(s: &str) -> Option<(String, usize)> {
    let after_eq = s.trim_start().strip_prefix('=')?;
    if after_eq.starts_with('=') {
        return None;
    }
    let lit = after_eq.trim_start();
    let quote = lit.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let mut value = String::new();
    let mut chars = lit[1..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == quote => {
                let len = s.len() - lit.len() + 1 + i + 1;
                return Some((value, len));
            }
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                other @ ('\\' | '"' | '\'') => value.push(other),
                // Other escapes (\ddd, \x, \z, \u): too rare in a password
                // to decode here; such a literal is not recognised.
                _ => return None,
            },
            '\n' => return None,
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_exactly_the_literal_of_the_password() {
        let text = "users = {\n  ann = { password = \"s3cret\", shell = \"/bin/sh\" },\n  \
                    bob = { hashed_password = \"$6$x\" },\n  -- password='s3cret'\n}\n";
        let (out, n) = replace_literal(text, "s3cret", "$6$abc$def");
        assert_eq!(n, 2);
        assert!(!out.contains("s3cret"), "{out}");
        assert!(
            out.contains("ann = { hashed_password = \"$6$abc$def\", shell"),
            "{out}"
        );
        assert!(
            out.contains("bob = { hashed_password = \"$6$x\" }"),
            "{out}"
        );
    }

    #[test]
    fn escapes_quotes_and_other_values_are_understood() {
        let (out, n) = replace_literal(r#"password = 'it\'s "x"'"#, "it's \"x\"", "H");
        assert_eq!((out.as_str(), n), ("hashed_password = \"H\"", 1));
        let (out, n) = replace_literal("password = \"other\"", "mine", "H");
        assert_eq!((out.as_str(), n), ("password = \"other\"", 0));
        for not_a_literal in [
            "password = pw",
            "password == \"mine\"",
            "password = [[mine]]",
        ] {
            assert_eq!(
                replace_literal(not_a_literal, "mine", "H").1,
                0,
                "{not_a_literal}"
            );
        }
    }
}
