//! Validated nickname and message text: the rules applied to `name` and `msg` before a message
//! is saved.

use crate::{ErrorCode, ANONYMOUS_NAME};

/// Why a `name` or `msg` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Longer than the limit, in characters (Unicode scalar values).
    #[error("{field} is {length} characters long; the limit is {limit}")]
    TooLong {
        /// `"name"` or `"msg"`.
        field: &'static str,
        /// Length of the value, in characters.
        length: usize,
        /// The limit, in characters.
        limit: usize,
    },
    /// Contains a control character (`U+0000`-`U+001F`, `U+007F`-`U+009F`), other than tab
    /// and line feed inside a message.
    #[error("{field} contains the control character U+{code_point:04X}")]
    ControlCharacter {
        /// `"name"` or `"msg"`.
        field: &'static str,
        /// The first offending code point.
        code_point: u32,
    },
    /// A push without text.
    #[error("msg is empty")]
    Empty,
}

impl TextError {
    /// The wire error code for this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            TextError::TooLong { field: "name", .. } => ErrorCode::NameTooLong,
            TextError::TooLong { .. } => ErrorCode::MessageTooLong,
            TextError::ControlCharacter { .. } => ErrorCode::ControlCharacter,
            TextError::Empty => ErrorCode::EmptyMessage,
        }
    }
}

fn check_length(field: &'static str, value: &str, limit: usize) -> Result<(), TextError> {
    let length = value.chars().count();
    if length > limit {
        return Err(TextError::TooLong {
            field,
            length,
            limit,
        });
    }
    Ok(())
}

fn check_controls(field: &'static str, value: &str, allowed: &[char]) -> Result<(), TextError> {
    match value
        .chars()
        .find(|c| c.is_control() && !allowed.contains(c))
    {
        Some(c) => Err(TextError::ControlCharacter {
            field,
            code_point: u32::from(c),
        }),
        None => Ok(()),
    }
}

/// A nickname as it is saved: trimmed, [`ANONYMOUS_NAME`] when blank, at most the server's
/// `--max-name-len` characters, without control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Nickname(String);

impl Nickname {
    /// Trims `raw` and checks it; a blank name becomes [`ANONYMOUS_NAME`].
    ///
    /// # Errors
    /// [`TextError::TooLong`] over `max_chars` characters (counted after trimming),
    /// [`TextError::ControlCharacter`] for any control character.
    pub fn parse(raw: &str, max_chars: usize) -> Result<Nickname, TextError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(Nickname(ANONYMOUS_NAME.to_owned()));
        }
        check_length("name", trimmed, max_chars)?;
        check_controls("name", trimmed, &[])?;
        Ok(Nickname(trimmed.to_owned()))
    }

    /// The saved form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The saved form, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// Message text as it is saved: at most the server's `--max-msg-len` characters, no control
/// characters except tab and line feed (multi-line messages are allowed). Not trimmed: what a
/// person typed is kept as typed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageText(String);

impl MessageText {
    /// Checks `raw` as the text of a push.
    ///
    /// # Errors
    /// [`TextError::Empty`] when `raw` is only whitespace, [`TextError::TooLong`] over
    /// `max_chars` characters, [`TextError::ControlCharacter`].
    pub fn parse(raw: &str, max_chars: usize) -> Result<MessageText, TextError> {
        if raw.trim().is_empty() {
            return Err(TextError::Empty);
        }
        MessageText::parse_allow_empty(raw, max_chars)
    }

    /// Like [`MessageText::parse`] but accepts an empty text (a join's own `msg` may be any
    /// text, and the server substitutes its default for an empty one before calling this).
    ///
    /// # Errors
    /// [`TextError::TooLong`], [`TextError::ControlCharacter`].
    pub fn parse_allow_empty(raw: &str, max_chars: usize) -> Result<MessageText, TextError> {
        check_length("msg", raw, max_chars)?;
        check_controls("msg", raw, &['\t', '\n'])?;
        Ok(MessageText(raw.to_owned()))
    }

    /// [`crate::JOIN_MESSAGE`], the text saved for a join without its own text.
    pub fn join_message() -> MessageText {
        MessageText(crate::JOIN_MESSAGE.to_owned())
    }

    /// [`crate::EXIT_MESSAGE`], the text saved for an exit.
    pub fn exit_message() -> MessageText {
        MessageText(crate::EXIT_MESSAGE.to_owned())
    }

    /// The saved form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The saved form, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nickname_is_trimmed_and_blank_becomes_anonymous() {
        assert_eq!(
            Nickname::parse("  小小兵 ", 32).expect("valid").as_str(),
            "小小兵"
        );
        assert_eq!(
            Nickname::parse("", 32).expect("valid").as_str(),
            ANONYMOUS_NAME
        );
        assert_eq!(
            Nickname::parse(" \t ", 32).expect("valid").as_str(),
            ANONYMOUS_NAME
        );
    }

    #[test]
    fn nickname_length_counts_characters_not_bytes() {
        let name = "兵".repeat(32);
        assert!(Nickname::parse(&name, 32).is_ok());
        let error = Nickname::parse(&"兵".repeat(33), 32).expect_err("too long");
        assert_eq!(error.code(), ErrorCode::NameTooLong);
    }

    #[test]
    fn control_characters_are_refused_in_names_and_messages() {
        assert_eq!(
            Nickname::parse("a\u{7}b", 32),
            Err(TextError::ControlCharacter {
                field: "name",
                code_point: 7
            })
        );
        assert_eq!(
            MessageText::parse("a\u{0}b", 100),
            Err(TextError::ControlCharacter {
                field: "msg",
                code_point: 0
            })
        );
        assert!(
            MessageText::parse("a\u{9b}b", 100).is_err(),
            "C1 controls too"
        );
        assert!(MessageText::parse("line one\nline two\tend", 100).is_ok());
        assert!(
            MessageText::parse("a\rb", 100).is_err(),
            "bare carriage return"
        );
    }

    #[test]
    fn push_text_must_not_be_blank_and_respects_the_limit() {
        assert_eq!(MessageText::parse("   ", 10), Err(TextError::Empty));
        assert_eq!(
            MessageText::parse("0123456789", 10)
                .expect("at limit")
                .as_str(),
            "0123456789"
        );
        assert_eq!(
            MessageText::parse("0123456789a", 10)
                .expect_err("over")
                .code(),
            ErrorCode::MessageTooLong
        );
    }
}
