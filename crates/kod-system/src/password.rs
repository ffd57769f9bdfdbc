//! The shadow password field of a user, from the configuration's
//! password setting. A clear password is hashed here (SHA-512 crypt, a
//! random salt) and never leaves this module otherwise.

use kod_config::Password;
use sha_crypt::{PasswordHasher, PasswordVerifier, ShaCrypt};

use crate::error::Error;

/// Whether `hash` is a SHA-crypt hash of `clear`.
pub(crate) fn verifies(clear: &str, hash: &str) -> bool {
    (hash.starts_with("$6$") || hash.starts_with("$5$"))
        && ShaCrypt::default()
            .verify_password(clear.as_bytes(), hash)
            .is_ok()
}

/// SHA-512 crypt of `clear` with a random 16-character salt.
pub(crate) fn hash(user: &str, clear: &str) -> Result<String, Error> {
    let fail = |reason: String| Error::Hash {
        user: user.to_string(),
        reason,
    };
    let mut salt = [0u8; 12];
    getrandom::fill(&mut salt).map_err(|e| fail(format!("no random salt: {e}")))?;
    let h = ShaCrypt::SHA512
        .hash_password_with_salt(clear.as_bytes(), &salt)
        .map_err(|e| fail(e.to_string()))?;
    Ok(h.as_str().to_string())
}

/// The shadow field for `password`, given the field the root has
/// (`current`, `None` for a new account): a hash as configured, empty for
/// no password, the current one when it already verifies a clear
/// password (so planning again changes nothing), a locked `!` for a new
/// account without one (an existing account keeps what it has).
pub(crate) fn field(
    user: &str,
    password: &Password,
    current: Option<&str>,
) -> Result<String, Error> {
    Ok(match password {
        Password::Hashed(h) => {
            if h.contains([':', '\n']) {
                return Err(Error::BadValue {
                    key: format!("users.{user}.hashed_password"),
                    value: "(the hash)".into(),
                    reason: "holds a `:` or a newline: give a crypt(3) hash".into(),
                });
            }
            h.clone()
        }
        Password::NoPassword => String::new(),
        Password::Plain(clear) => match current {
            Some(c) if verifies(clear, c) => c.to_string(),
            _ => hash(user, clear)?,
        },
        Password::Unset => current.unwrap_or("!").to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_are_kept_when_they_still_match() {
        let h = hash("ann", "s3cret words").unwrap();
        assert!(h.starts_with("$6$"), "{h}");
        assert!(verifies("s3cret words", &h));
        assert!(!verifies("other", &h));
        let p = Password::Plain("s3cret words".into());
        assert_eq!(field("ann", &p, Some(&h)).unwrap(), h);
        let fresh = field("ann", &p, Some("!")).unwrap();
        assert_ne!(fresh, h, "a new salt each time");
        assert!(verifies("s3cret words", &fresh));
    }

    #[test]
    fn a_known_glibc_hash_verifies() {
        // `openssl passwd -6 -salt kodsalt kod` (examples/debian-vm).
        let h = "$6$kodsalt$0HaucfEgSj9tgRFdmzl1rIeiM5KJ8yK/gMKfthfPRBKLPCKMOyIeC2gPiuSMPEF3nXGY4kX3ugwk2NvZ0x1Su/";
        assert!(verifies("kod", h));
        assert!(!verifies("kodx", h));
    }

    #[test]
    fn other_kinds() {
        assert_eq!(field("a", &Password::NoPassword, Some("x")).unwrap(), "");
        assert_eq!(field("a", &Password::Unset, None).unwrap(), "!");
        assert_eq!(
            field("a", &Password::Unset, Some("$6$x$y")).unwrap(),
            "$6$x$y"
        );
        assert!(field("a", &Password::Hashed("a:b".into()), None).is_err());
    }
}
