//! Room names: which room a request is for.

use std::fmt;

/// The most characters of a room name.
pub const MAX_ROOM_LEN: usize = 32;

/// A room's name: 1 to 32 characters of `[a-z0-9_-]`, sent as the optional `room` parameter.
/// A request without one is for the legacy room, the one room of the original server (and of
/// every legacy page). The alphabet is safe as a folder name and a Redis key part as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(String);

/// Why a `room` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("room must be 1 to {MAX_ROOM_LEN} characters of a-z, 0-9, _ and -")]
pub struct InvalidRoom;

impl RoomName {
    /// Checks a `room` parameter's value.
    ///
    /// # Errors
    /// [`InvalidRoom`] when it is empty, longer than [`MAX_ROOM_LEN`], or has another
    /// character (capitals included: `Lobby` is refused rather than taken for `lobby`).
    pub fn parse(raw: &str) -> Result<RoomName, InvalidRoom> {
        let valid = crate::client_id::is_token(raw, MAX_ROOM_LEN, |byte| {
            byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_' || byte == b'-'
        });
        if valid {
            Ok(RoomName(raw.to_owned()))
        } else {
            Err(InvalidRoom)
        }
    }

    /// The name as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet_and_lengths() {
        for raw in ["a", "lobby", "rust-zh_2", &"r".repeat(32)] {
            assert_eq!(
                RoomName::parse(raw).map(|room| room.to_string()),
                Ok(raw.to_owned())
            );
        }
    }

    #[test]
    fn refuses_empty_long_capitals_and_other_characters() {
        for raw in ["", "Lobby", "a b", "a/b", "..", "a.b", "é", "a%2F"] {
            assert_eq!(RoomName::parse(raw), Err(InvalidRoom), "{raw:?}");
        }
        assert_eq!(RoomName::parse(&"r".repeat(33)), Err(InvalidRoom));
    }
}
