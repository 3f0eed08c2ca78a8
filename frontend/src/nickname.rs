//! The page's nickname rule, stricter than the server's.
//!
//! The server accepts any name (a blank one becomes `(匿名)`); the original page refused an
//! empty name or one containing whitespace, and this page keeps that rule so names stay easy to
//! read and mention. On top of it come the server's own checks (length, control characters), so
//! a name this module accepts is never refused by a server with default limits.

use chat_shared::{Nickname, TextError, DEFAULT_MAX_NAME_LEN};

/// Why a nickname typed in the form was refused. The `Display` text is shown under the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NicknameError {
    /// Nothing but whitespace was typed.
    #[error("Enter a nickname")]
    Empty,
    /// The name contains a space, tab or other whitespace between other characters.
    #[error("A nickname cannot contain spaces")]
    Whitespace,
    /// Longer than the limit, in characters (Unicode scalar values, as the server counts).
    #[error("A nickname can have at most {limit} characters (this one has {length})")]
    TooLong {
        /// Length of the trimmed name, in characters.
        length: usize,
        /// The limit, in characters.
        limit: usize,
    },
    /// The name contains an invisible control character, which the server refuses.
    #[error("A nickname cannot contain invisible control characters")]
    ControlCharacter,
}

/// Checks a nickname typed in the form and returns it as the server will save it.
///
/// Surrounding whitespace is dropped first (an autocompleted name often ends with a space);
/// whitespace left inside the name is an error.
///
/// # Errors
/// [`NicknameError::Empty`], [`NicknameError::Whitespace`], [`NicknameError::TooLong`] over
/// [`DEFAULT_MAX_NAME_LEN`] characters, [`NicknameError::ControlCharacter`].
pub fn parse_nickname(raw: &str) -> Result<Nickname, NicknameError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(NicknameError::Empty);
    }
    if trimmed.chars().any(char::is_whitespace) {
        return Err(NicknameError::Whitespace);
    }
    // The shared check counts characters the way the server does and finds control characters.
    Nickname::parse(trimmed, DEFAULT_MAX_NAME_LEN).map_err(|error| match error {
        TextError::TooLong { length, limit, .. } => NicknameError::TooLong { length, limit },
        TextError::ControlCharacter { .. } | TextError::Empty => NicknameError::ControlCharacter,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names_and_trims_the_ends() {
        for (raw, saved) in [
            ("alice", "alice"),
            ("小小兵", "小小兵"),
            ("  bob ", "bob"),
            ("a_b-c.d", "a_b-c.d"),
            ("😀", "😀"),
        ] {
            assert_eq!(
                parse_nickname(raw).map(Nickname::into_string),
                Ok(saved.to_owned()),
                "{raw:?} should be saved as {saved:?}"
            );
        }
    }

    #[test]
    fn refuses_empty_and_blank_names() {
        for raw in ["", " ", "\t\n", "\u{3000}"] {
            assert_eq!(
                parse_nickname(raw),
                Err(NicknameError::Empty),
                "{raw:?} is blank"
            );
        }
    }

    #[test]
    fn refuses_whitespace_inside_the_name() {
        for raw in ["a b", "a\tb", "a\nb", "小\u{3000}兵", "a\u{a0}b"] {
            assert_eq!(
                parse_nickname(raw),
                Err(NicknameError::Whitespace),
                "{raw:?} has inner whitespace"
            );
        }
    }

    #[test]
    fn length_limit_counts_characters_not_bytes() {
        let at_limit = "兵".repeat(DEFAULT_MAX_NAME_LEN);
        assert!(parse_nickname(&at_limit).is_ok(), "32 CJK characters fit");
        let over = "a".repeat(DEFAULT_MAX_NAME_LEN + 1);
        assert_eq!(
            parse_nickname(&over),
            Err(NicknameError::TooLong {
                length: 33,
                limit: 32
            })
        );
    }

    #[test]
    fn refuses_control_characters() {
        assert_eq!(
            parse_nickname("a\u{7}b"),
            Err(NicknameError::ControlCharacter)
        );
        assert_eq!(
            parse_nickname("a\u{9b}"),
            Err(NicknameError::ControlCharacter)
        );
    }
}
