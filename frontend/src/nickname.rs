//! The page's nickname rule, stricter than the server's.
//!
//! The server accepts any name (a blank one becomes `(匿名)`); the original page refused an
//! empty name or one containing whitespace, and this page keeps that rule so names stay easy to
//! read and mention. On top of it come the server's own checks, shared through
//! [`Nickname::parse`] (`docs/protocol.md`, "Names": blank-looking ends trimmed, length,
//! control, text-direction and invisible characters, NFC), so a name this module accepts is
//! never refused by a server with default limits, and is sent exactly as the server stores it.

use chat_shared::{trim_name, Nickname, TextError, BRAILLE_PATTERN_BLANK, DEFAULT_MAX_NAME_LEN};

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
    /// The name contains an invisible character between visible ones (U+200B ZERO WIDTH SPACE,
    /// U+200D ZERO WIDTH JOINER, a Hangul filler, ...), which would make it look like another
    /// name; the server refuses it with `invalid_name`.
    #[error(
        "A nickname cannot contain invisible characters such as zero-width spaces or joiners (U+{code_point:04X})"
    )]
    Invisible {
        /// The first offending code point.
        code_point: u32,
    },
    /// The name contains a text-direction control (U+202E RIGHT-TO-LEFT OVERRIDE, ...), which
    /// could reorder the text around it; the server refuses it with `invalid_name`.
    #[error("A nickname cannot contain text-direction control characters (U+{code_point:04X})")]
    TextDirection {
        /// The first offending code point.
        code_point: u32,
    },
}

/// Checks a nickname typed in the form and returns it as the server will save it (in NFC).
///
/// Blank-looking characters around the name are dropped first (an autocompleted name often
/// ends with a space; a pasted one may carry a zero-width space), by the shared [`trim_name`];
/// whitespace left inside the name, U+2800 BRAILLE PATTERN BLANK included, is an error.
///
/// # Errors
/// [`NicknameError::Empty`], [`NicknameError::Whitespace`], [`NicknameError::TooLong`] over
/// [`DEFAULT_MAX_NAME_LEN`] characters, [`NicknameError::ControlCharacter`],
/// [`NicknameError::Invisible`], [`NicknameError::TextDirection`].
pub fn parse_nickname(raw: &str) -> Result<Nickname, NicknameError> {
    let trimmed = trim_name(raw);
    if trimmed
        .chars()
        .any(|c| c.is_whitespace() || c == BRAILLE_PATTERN_BLANK)
    {
        return Err(NicknameError::Whitespace);
    }
    // The shared check is the server's own: it sees the raw text, so a text-direction control
    // at an end (which trimming would drop) is refused here as the server would refuse it.
    let name = Nickname::parse(raw, DEFAULT_MAX_NAME_LEN).map_err(|error| match error {
        TextError::TooLong { length, limit, .. } => NicknameError::TooLong { length, limit },
        TextError::BidiControl { code_point } => NicknameError::TextDirection { code_point },
        TextError::InvisibleCharacter { code_point } => NicknameError::Invisible { code_point },
        TextError::ControlCharacter { .. } | TextError::Empty => NicknameError::ControlCharacter,
    })?;
    if trimmed.is_empty() {
        // The server would save it as the anonymous name; the page asks for a real one.
        return Err(NicknameError::Empty);
    }
    Ok(name)
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
    fn refuses_names_that_only_look_blank() {
        for raw in [
            "\u{200B}",
            "\u{FEFF}",
            "\u{3164}",
            "\u{2800}",
            " \u{115F}\u{1160} ",
            "\u{AD}",
        ] {
            assert_eq!(
                parse_nickname(raw),
                Err(NicknameError::Empty),
                "{raw:?} looks blank"
            );
        }
    }

    #[test]
    fn a_zero_width_space_before_alice_is_alice() {
        assert_eq!(
            parse_nickname("\u{200B}alice").map(Nickname::into_string),
            Ok("alice".to_owned())
        );
    }

    #[test]
    fn sends_the_name_in_nfc() {
        assert_eq!(
            parse_nickname("Jose\u{301}").map(Nickname::into_string),
            Ok("Jos\u{E9}".to_owned())
        );
    }

    #[test]
    fn refuses_invisible_and_text_direction_characters_like_the_server() {
        assert_eq!(
            parse_nickname("al\u{200B}ice"),
            Err(NicknameError::Invisible { code_point: 0x200B })
        );
        for raw in ["\u{202E}alice", "alice\u{2066}", "a\u{202E}b"] {
            let error = parse_nickname(raw).expect_err(raw);
            assert!(
                matches!(error, NicknameError::TextDirection { .. }),
                "{raw:?}: {error:?}"
            );
        }
        assert_eq!(
            parse_nickname("\u{202E}"),
            Err(NicknameError::TextDirection { code_point: 0x202E }),
            "refused, as the server would, rather than called blank"
        );
        assert!(
            parse_nickname("a\u{2800}b").is_err(),
            "braille blank is a space"
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
