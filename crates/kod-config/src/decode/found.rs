//! Errors found while decoding, kept so that one run reports them all: a
//! section, a named entry or an unknown key that is wrong is noted here and
//! decoding goes on with the rest, instead of stopping at the first.
//!
//! The list lives for one [`collect`] call on the decoding thread, so the
//! readers need no extra argument; outside one, [`keep_going`] passes
//! errors through unchanged.

use std::cell::RefCell;

use super::Result;
use crate::error::ConfigError;

thread_local! {
    static FOUND: RefCell<Option<Vec<ConfigError>>> = const { RefCell::new(None) };
}

/// Runs `decode`, keeping every error noted on the way: the value only
/// when there were none; one error as it is; several as
/// [`ConfigError::Several`]. `decode` gives `None` when a part the value
/// needs was wrong (and noted).
pub(super) fn collect<T>(decode: impl FnOnce() -> Result<Option<T>>) -> Result<T> {
    let outer = FOUND.with(|f| f.borrow_mut().replace(Vec::new()));
    let result = decode();
    let mut found = FOUND
        .with(|f| std::mem::replace(&mut *f.borrow_mut(), outer))
        .unwrap_or_default();
    match result {
        Err(e) => found.push(e),
        Ok(Some(value)) if found.is_empty() => return Ok(value),
        Ok(_) => {}
    }
    assert!(!found.is_empty(), "a part was left out without an error");
    Err(ConfigError::from_several(found))
}

/// `Some` of a value; for an error, notes it (inside [`collect`]) and
/// gives `None` so the caller goes on without that part, or returns it
/// (outside).
pub(super) fn keep_going<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) => FOUND.with(|f| match f.borrow_mut().as_mut() {
            Some(found) => {
                found.push(e);
                Ok(None)
            }
            None => Err(e),
        }),
    }
}

/// [`keep_going`] with the type's default for a part that is wrong.
pub(super) fn or_default<T: Default>(result: Result<T>) -> Result<T> {
    Ok(keep_going(result)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(key: &str) -> ConfigError {
        ConfigError::invalid(key, "wrong")
    }

    #[test]
    fn one_error_stays_itself_and_several_are_all_kept() {
        let one = collect(|| keep_going::<()>(Err(bad("a")))).unwrap_err();
        assert!(
            matches!(one, ConfigError::Invalid { ref key, .. } if key == "a"),
            "{one}"
        );
        let many = collect(|| {
            keep_going::<()>(Err(bad("a")))?;
            keep_going::<()>(Err(bad("b")))?;
            Err::<Option<()>, _>(bad("c"))
        })
        .unwrap_err();
        let ConfigError::Several(all) = &many else {
            panic!("expected several, got {many}");
        };
        let keys: Vec<String> = all.iter().map(|e| e.to_string()).collect();
        assert_eq!(keys, ["a: wrong", "b: wrong", "c: wrong"]);
        assert_eq!(
            many.to_string(),
            "3 mistakes in the configuration:\n  a: wrong\n  b: wrong\n  c: wrong"
        );
    }

    #[test]
    fn outside_a_collection_errors_pass_through() {
        assert!(keep_going::<()>(Err(bad("a"))).is_err());
        assert_eq!(keep_going(Ok(1)).unwrap(), Some(1));
        assert_eq!(collect(|| Ok(Some(2))).unwrap(), 2);
    }
}
