//! Validated nickname and message text: the rules applied to `name` and `msg` before a message
//! is saved.
//!
//! Names follow the rules of `docs/protocol.md` ("Names"), which keep names that look blank or
//! look like someone else's out of the room: blank-looking characters are trimmed from the ends,
//! invisible and text-direction characters are refused, and names are stored in Unicode
//! Normalization Form C so that two spellings of one name are one name. The character classes
//! come from the Unicode Character Database through ICU4X (`icu_properties`, `icu_normalizer`),
//! never from tables written here. Message text is stored as sent.

use icu_normalizer::ComposingNormalizerBorrowed;
use icu_properties::props::{BidiControl, DefaultIgnorableCodePoint, WhiteSpace};
use icu_properties::CodePointSetData;

use crate::{ErrorCode, ANONYMOUS_NAME};

/// U+2800 BRAILLE PATTERN BLANK: neither `White_Space` nor `Default_Ignorable_Code_Point` in
/// Unicode, yet drawn as an empty cell and used as the space of braille text, so a name made of
/// it looks blank. Nicknames treat it as white space at their ends (trimmed); inside a name it
/// stays, like a space.
pub const BRAILLE_PATTERN_BLANK: char = '\u{2800}';

/// Whether `c` is trimmed from the ends of a nickname: a Unicode `White_Space` character, a
/// `Default_Ignorable_Code_Point` (drawn as nothing: U+200B ZERO WIDTH SPACE, U+FEFF BOM, the
/// Hangul fillers U+115F, U+1160, U+3164, U+FFA0, U+00AD SOFT HYPHEN, ...), or
/// [`BRAILLE_PATTERN_BLANK`].
pub fn is_blank_in_names(c: char) -> bool {
    c == BRAILLE_PATTERN_BLANK
        || CodePointSetData::new::<WhiteSpace>().contains(c)
        || CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
}

/// `raw` without the characters [`is_blank_in_names`] at either end; nothing else changes.
/// Empty when the name only looked blank.
pub fn trim_name(raw: &str) -> &str {
    raw.trim_matches(is_blank_in_names)
}

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
    /// A name contains a Unicode `Bidi_Control` character (U+061C, U+200E, U+200F,
    /// U+202A-U+202E, U+2066-U+2069) anywhere, even at its ends: it would reorder the text
    /// shown around the name.
    #[error("name contains the text-direction control U+{code_point:04X}")]
    BidiControl {
        /// The first offending code point.
        code_point: u32,
    },
    /// A name contains a `Default_Ignorable_Code_Point` (drawn as nothing, such as U+200B ZERO
    /// WIDTH SPACE or U+200D ZERO WIDTH JOINER) between its visible characters, where it would
    /// make the name look like another one (`al\u{200B}ice` and `alice`).
    #[error("name contains the invisible character U+{code_point:04X}")]
    InvisibleCharacter {
        /// The first offending code point.
        code_point: u32,
    },
}

impl TextError {
    /// The wire error code for this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            TextError::TooLong { field: "name", .. } => ErrorCode::NameTooLong,
            TextError::TooLong { .. } => ErrorCode::MessageTooLong,
            // A name is held to the name rules as a whole (issue 7 A5): one code for every
            // character a name may not have.
            TextError::ControlCharacter { field: "name", .. } => ErrorCode::InvalidName,
            TextError::ControlCharacter { .. } => ErrorCode::ControlCharacter,
            TextError::Empty => ErrorCode::EmptyMessage,
            TextError::BidiControl { .. } | TextError::InvisibleCharacter { .. } => {
                ErrorCode::InvalidName
            }
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

/// A nickname as it is saved (`docs/protocol.md`, "Names"): without blank-looking characters at
/// its ends ([`trim_name`]), [`ANONYMOUS_NAME`] when nothing else is left, in Unicode
/// Normalization Form C, at most the server's `--max-name-len` characters (counted in NFC),
/// without control, text-direction or invisible characters.
///
/// Two names that differ only by blank ends or by Unicode normalization parse to the same
/// `Nickname`, so the online list counts them once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Nickname(String);

impl Nickname {
    /// Checks `raw` and returns the name as it is saved; a name that only looked blank becomes
    /// [`ANONYMOUS_NAME`], as the original server did for an empty name.
    ///
    /// In order: a `Bidi_Control` anywhere is refused; the ends are trimmed ([`trim_name`]);
    /// the rest is normalized to NFC; then its characters and its length are checked.
    ///
    /// # Errors
    /// [`TextError::BidiControl`] for a text-direction control anywhere in `raw`,
    /// [`TextError::ControlCharacter`] for a control character left after trimming,
    /// [`TextError::InvisibleCharacter`] for a `Default_Ignorable_Code_Point` left after
    /// trimming (so between visible characters), [`TextError::TooLong`] over `max_chars`
    /// characters of the trimmed NFC name.
    pub fn parse(raw: &str, max_chars: usize) -> Result<Nickname, TextError> {
        let bidi_controls = CodePointSetData::new::<BidiControl>();
        if let Some(c) = raw.chars().find(|&c| bidi_controls.contains(c)) {
            return Err(TextError::BidiControl {
                code_point: u32::from(c),
            });
        }
        let trimmed = trim_name(raw);
        if trimmed.is_empty() {
            return Ok(Nickname(ANONYMOUS_NAME.to_owned()));
        }
        let normalized = ComposingNormalizerBorrowed::new_nfc().normalize(trimmed);
        check_controls("name", &normalized, &[])?;
        let ignorables = CodePointSetData::new::<DefaultIgnorableCodePoint>();
        if let Some(c) = normalized.chars().find(|&c| ignorables.contains(c)) {
            return Err(TextError::InvisibleCharacter {
                code_point: u32::from(c),
            });
        }
        check_length("name", &normalized, max_chars)?;
        Ok(Nickname(normalized.into_owned()))
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

    /// Issue 7 A5: each of these characters, sent alone as `name`, was stored and listed
    /// online as a separate blank-looking user. Each test checks the character alone (the
    /// anonymous name), around `alice` (trimmed to `alice`), and inside `alice`.
    macro_rules! blank_looking_name {
        ($test:ident, $c:literal, inside: $inside:expr) => {
            #[test]
            fn $test() {
                let c: char = $c;
                assert!(is_blank_in_names(c), "U+{:04X} is trimmed", u32::from(c));
                for alone in [format!("{c}"), format!("{c}{c}{c}"), format!(" {c} ")] {
                    assert_eq!(
                        Nickname::parse(&alone, 32).map(Nickname::into_string),
                        Ok(ANONYMOUS_NAME.to_owned()),
                        "{alone:?} looks blank"
                    );
                }
                for around in [
                    format!("{c}alice"),
                    format!("alice{c}"),
                    format!("{c} alice {c}"),
                ] {
                    assert_eq!(
                        Nickname::parse(&around, 32).map(Nickname::into_string),
                        Ok("alice".to_owned()),
                        "{around:?} looks like alice"
                    );
                }
                let inside = format!("al{c}ice");
                let expected: Result<String, TextError> = $inside(c, &inside);
                assert_eq!(
                    Nickname::parse(&inside, 32).map(Nickname::into_string),
                    expected,
                    "{inside:?}"
                );
            }
        };
    }

    /// The result for a `Default_Ignorable_Code_Point` inside a name.
    fn refused_inside(c: char, _name: &str) -> Result<String, TextError> {
        Err(TextError::InvisibleCharacter {
            code_point: u32::from(c),
        })
    }

    blank_looking_name!(name_of_zero_width_space_u200b_is_anonymous, '\u{200B}', inside: refused_inside);
    blank_looking_name!(name_of_byte_order_mark_ufeff_is_anonymous, '\u{FEFF}', inside: refused_inside);
    blank_looking_name!(name_of_hangul_filler_u3164_is_anonymous, '\u{3164}', inside: refused_inside);
    blank_looking_name!(name_of_hangul_choseong_filler_u115f_is_anonymous, '\u{115F}', inside: refused_inside);
    blank_looking_name!(name_of_hangul_jungseong_filler_u1160_is_anonymous, '\u{1160}', inside: refused_inside);
    blank_looking_name!(name_of_halfwidth_hangul_filler_uffa0_is_anonymous, '\u{FFA0}', inside: refused_inside);
    blank_looking_name!(name_of_word_joiner_u2060_is_anonymous, '\u{2060}', inside: refused_inside);
    blank_looking_name!(name_of_mongolian_vowel_separator_u180e_is_anonymous, '\u{180E}', inside: refused_inside);
    blank_looking_name!(name_of_soft_hyphen_u00ad_is_anonymous, '\u{AD}', inside: refused_inside);
    blank_looking_name!(name_of_combining_grapheme_joiner_u034f_is_anonymous, '\u{34F}', inside: refused_inside);
    blank_looking_name!(name_of_zero_width_non_joiner_u200c_is_anonymous, '\u{200C}', inside: refused_inside);
    blank_looking_name!(name_of_zero_width_joiner_u200d_is_anonymous, '\u{200D}', inside: refused_inside);
    // Neither White_Space nor Default_Ignorable: trimmed at the ends by this project's own
    // decision (it is braille's space), and kept inside a name like a space.
    blank_looking_name!(name_of_braille_pattern_blank_u2800_is_anonymous, '\u{2800}', inside: |_, name: &str| Ok(name.to_owned()));

    #[test]
    fn the_blank_looking_characters_are_default_ignorable_except_braille_blank() {
        let ignorable = CodePointSetData::new::<DefaultIgnorableCodePoint>();
        for c in [
            '\u{200B}', '\u{FEFF}', '\u{3164}', '\u{115F}', '\u{1160}', '\u{FFA0}', '\u{2060}',
            '\u{180E}', '\u{AD}', '\u{34F}', '\u{200C}', '\u{200D}',
        ] {
            assert!(ignorable.contains(c), "U+{:04X}", u32::from(c));
        }
        let white_space = CodePointSetData::new::<WhiteSpace>();
        assert!(
            !ignorable.contains(BRAILLE_PATTERN_BLANK)
                && !white_space.contains(BRAILLE_PATTERN_BLANK)
        );
    }

    #[test]
    fn zero_width_space_before_alice_is_alice() {
        assert_eq!(
            Nickname::parse("\u{200B}alice", 32),
            Nickname::parse("alice", 32)
        );
        assert_eq!(
            Nickname::parse("\u{200B}alice", 32).map(Nickname::into_string),
            Ok("alice".to_owned())
        );
    }

    #[test]
    fn unicode_white_space_is_trimmed_at_both_ends() {
        for raw in [
            "\u{3000}alice\u{A0}",
            "\u{2003}alice\u{85}",
            "\u{FEFF}\u{3000}alice\u{200B} ",
        ] {
            assert_eq!(
                Nickname::parse(raw, 32).map(Nickname::into_string),
                Ok("alice".to_owned()),
                "{raw:?}"
            );
        }
        assert_eq!(
            Nickname::parse("\u{2003}\u{205F}\u{3000}", 32).map(Nickname::into_string),
            Ok(ANONYMOUS_NAME.to_owned())
        );
    }

    #[test]
    fn a_name_with_a_text_direction_control_anywhere_is_invalid_name() {
        let controls = [
            '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}',
            '\u{2068}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{61C}',
        ];
        for c in controls {
            for name in [
                format!("{c}alice"),
                format!("al{c}ice"),
                format!("alice{c}"),
                format!("{c}"),
            ] {
                let error = Nickname::parse(&name, 32).expect_err(&name);
                assert_eq!(
                    error,
                    TextError::BidiControl {
                        code_point: u32::from(c)
                    },
                    "{name:?}"
                );
                assert_eq!(error.code(), ErrorCode::InvalidName, "{name:?}");
            }
        }
    }

    #[test]
    fn an_invisible_character_between_visible_ones_is_invalid_name() {
        for (name, code_point) in [
            ("al\u{200B}ice", 0x200B),
            ("a\u{FEFF}b", 0xFEFF),
            ("bob\u{2060}by", 0x2060),
            ("\u{200B}a\u{200D}b\u{200B}", 0x200D),
            ("tag\u{E0041}s", 0xE0041),
        ] {
            let error = Nickname::parse(name, 32).expect_err(name);
            assert_eq!(
                error,
                TextError::InvisibleCharacter { code_point },
                "{name:?}"
            );
            assert_eq!(error.code(), ErrorCode::InvalidName, "{name:?}");
        }
    }

    #[test]
    fn nfd_and_nfc_spellings_are_one_name() {
        let cases = [
            ("e\u{301}", "\u{E9}"),
            ("Jose\u{301}", "Jos\u{E9}"),
            ("\u{1112}\u{1161}\u{11AB}", "\u{D55C}"),
            ("\u{212B}ngstr\u{F6}m", "\u{C5}ngstr\u{F6}m"),
        ];
        for (decomposed, composed) in cases {
            let saved = Nickname::parse(decomposed, 32).expect(decomposed);
            assert_eq!(saved.as_str(), composed, "{decomposed:?} is stored in NFC");
            assert_eq!(
                Some(saved),
                Nickname::parse(composed, 32).ok(),
                "{decomposed:?}"
            );
        }
    }

    #[test]
    fn the_name_length_limit_counts_the_nfc_form() {
        let decomposed = "e\u{301}".repeat(4);
        assert_eq!(decomposed.chars().count(), 8);
        assert_eq!(
            Nickname::parse(&decomposed, 4).map(Nickname::into_string),
            Ok("\u{E9}".repeat(4))
        );
        assert_eq!(
            Nickname::parse(&"e\u{301}".repeat(5), 4),
            Err(TextError::TooLong {
                field: "name",
                length: 5,
                limit: 4
            })
        );
    }

    #[test]
    fn message_text_is_stored_as_sent() {
        for text in ["e\u{301}", "\u{200B}hi\u{200B}", "a\u{202E}b", "\u{3164}"] {
            assert_eq!(
                MessageText::parse(text, 100).map(MessageText::into_string),
                Ok(text.to_owned()),
                "{text:?}"
            );
        }
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
