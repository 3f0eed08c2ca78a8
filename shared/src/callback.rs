//! The JSONP callback name: the one piece of client input that is written into the answer as
//! code rather than as data, so it is checked against a strict grammar before it is used.

use std::fmt;

/// The callback used when the request names none, as the original server did.
pub const DEFAULT_CALLBACK: &str = "callback";

/// The longest callback name accepted, in bytes (the grammar is ASCII-only).
pub const MAX_CALLBACK_LEN: usize = 128;

/// A callback name that is safe to write in front of `(`: one JavaScript identifier followed by
/// any number of `.identifier` or `[digits]` accessors, at most [`MAX_CALLBACK_LEN`] bytes.
///
/// The grammar is `^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*|\[[0-9]+\])*$`. It
/// accepts what real JSONP libraries generate (`jQuery1710_1420016009253`, `wfQuery_1420016009253_3`,
/// `angular.callbacks._0`, `jsonp1420016009253`, `cbs[12]`) and nothing that could end the
/// call expression early.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallbackName(String);

/// Why a callback name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// The name is longer than [`MAX_CALLBACK_LEN`] bytes.
    #[error("callback name is longer than {MAX_CALLBACK_LEN} bytes")]
    TooLong,
    /// The name does not match the grammar; `position` is the byte offset of the first bad byte.
    #[error("callback name is not a plain JavaScript identifier path (bad character at byte {position})")]
    Invalid {
        /// Byte offset of the first character that breaks the grammar.
        position: usize,
    },
}

fn is_ident_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_' || byte == b'$'
}

fn is_ident_continue(byte: u8) -> bool {
    is_ident_start(byte) || byte.is_ascii_digit()
}

impl CallbackName {
    /// Checks `raw` against the grammar.
    ///
    /// # Errors
    /// [`CallbackError::TooLong`] over [`MAX_CALLBACK_LEN`] bytes, [`CallbackError::Invalid`]
    /// when the grammar does not match (this includes the empty string).
    pub fn parse(raw: &str) -> Result<CallbackName, CallbackError> {
        if raw.len() > MAX_CALLBACK_LEN {
            return Err(CallbackError::TooLong);
        }
        let bytes = raw.as_bytes();
        let invalid = |position| Err(CallbackError::Invalid { position });
        let mut idx = 0;
        // The leading identifier.
        match bytes.first() {
            Some(&b) if is_ident_start(b) => idx += 1,
            _ => return invalid(0),
        }
        while idx < bytes.len() && is_ident_continue(bytes[idx]) {
            idx += 1;
        }
        // Accessors: `.ident` or `[digits]`.
        while idx < bytes.len() {
            match bytes[idx] {
                b'.' => {
                    idx += 1;
                    if idx >= bytes.len() || !is_ident_start(bytes[idx]) {
                        return invalid(idx);
                    }
                    while idx < bytes.len() && is_ident_continue(bytes[idx]) {
                        idx += 1;
                    }
                }
                b'[' => {
                    idx += 1;
                    let digits_start = idx;
                    while idx < bytes.len() && bytes[idx].is_ascii_digit() {
                        idx += 1;
                    }
                    if idx == digits_start || idx >= bytes.len() || bytes[idx] != b']' {
                        return invalid(idx);
                    }
                    idx += 1;
                }
                _ => return invalid(idx),
            }
        }
        Ok(CallbackName(raw.to_owned()))
    }

    /// The default name, [`DEFAULT_CALLBACK`].
    pub fn default_name() -> CallbackName {
        CallbackName(DEFAULT_CALLBACK.to_owned())
    }

    /// The checked name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CallbackName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_real_jsonp_libraries_generate() {
        for name in [
            "callback",
            "wfQuery_1420016009253",
            "wfQuery_1420016009253_3",
            "jsonp1420016009253",
            "jQuery171024591258470714092_1420016009253",
            "jQuery3710_1",
            "angular.callbacks._0",
            "__ng_jsonp__.__req1.finished",
            "cbs[12]",
            "a.b[0].c",
            "$",
            "_",
        ] {
            assert!(
                CallbackName::parse(name).is_ok(),
                "{name} should be accepted"
            );
        }
    }

    #[test]
    fn refuses_anything_that_could_break_out_of_the_call() {
        for name in [
            "",
            "alert(1)//",
            "a b",
            "a;b",
            "1abc",
            "a.",
            "a..b",
            "a[]",
            "a[1",
            "a[x]",
            "a]",
            "<script>",
            "a\u{2028}b",
            "caf\u{e9}",
            "a-b",
            ".a",
            "a[0]b",
        ] {
            assert!(
                CallbackName::parse(name).is_err(),
                "{name:?} should be refused"
            );
        }
    }

    #[test]
    fn refuses_names_over_the_length_limit() {
        let at_limit = "a".repeat(MAX_CALLBACK_LEN);
        assert!(CallbackName::parse(&at_limit).is_ok());
        let over = "a".repeat(MAX_CALLBACK_LEN + 1);
        assert_eq!(CallbackName::parse(&over), Err(CallbackError::TooLong));
    }
}
