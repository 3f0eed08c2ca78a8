//! The poll cursor: the `time` a client sends back, in milliseconds since the Unix epoch.

use std::fmt;

/// A position in the room's history: the `time` of the last message a client has seen, in
/// milliseconds since the Unix epoch. A pop asks for every message strictly newer than it.
///
/// Message times are unique and strictly increasing (the server assigns
/// `max(now_ms, last_time + 1)`), so a cursor never skips a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cursor(u64);

impl Cursor {
    /// The cursor before the first message: a pop from here pages through all history.
    pub const START: Cursor = Cursor(0);

    /// A cursor at `time_ms` (milliseconds since the Unix epoch).
    pub fn from_millis(time_ms: u64) -> Cursor {
        Cursor(time_ms)
    }

    /// Reads a `time` query value: a whole number of milliseconds, ASCII digits only (at most
    /// 15 of them, beyond any real time and within JavaScript's exact integer range). Returns
    /// `None` for anything else, including an empty value, a sign, a fraction or an exponent.
    pub fn parse(value: &str) -> Option<Cursor> {
        if value.is_empty() || value.len() > 15 || !value.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        value.parse().ok().map(Cursor)
    }

    /// The time in milliseconds since the Unix epoch.
    pub fn as_millis(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_whole_numbers_only() {
        assert_eq!(Cursor::parse("0"), Some(Cursor::START));
        assert_eq!(
            Cursor::parse("1420016009255"),
            Some(Cursor::from_millis(1_420_016_009_255))
        );
        for bad in [
            "",
            "-1",
            "+1",
            "1.5",
            "1e3",
            " 1",
            "abc",
            "0x10",
            "1234567890123456",
        ] {
            assert_eq!(
                Cursor::parse(bad),
                None,
                "{bad:?} is not a whole number of ms"
            );
        }
    }
}
