//! The client message id (`cid`): what makes a retried save idempotent.

use std::fmt;

/// The most characters of a `cid`.
pub const MAX_CID_LEN: usize = 64;

/// How long the server remembers a save's `cid`, in ms (10 minutes): a save whose name and
/// `cid` match one saved within this window stores nothing and answers with the first save's
/// `time`.
pub const CID_WINDOW_MS: u64 = 10 * 60 * 1000;

/// A client message id: 1 to 64 characters of `[A-Za-z0-9_-]`, chosen by the client for each
/// message it sends and reused when it sends the same message again (a retry after a lost
/// answer). Not part of the original protocol: legacy pages never send it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientMessageId(String);

/// Why a `cid` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cid must be 1 to {MAX_CID_LEN} characters of A-Z, a-z, 0-9, _ and -")]
pub struct InvalidCid;

impl ClientMessageId {
    /// Checks a `cid` parameter's value.
    ///
    /// # Errors
    /// [`InvalidCid`] when it is empty, longer than [`MAX_CID_LEN`], or has another character.
    pub fn parse(raw: &str) -> Result<ClientMessageId, InvalidCid> {
        let valid = is_token(raw, MAX_CID_LEN, |byte| {
            byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
        });
        if valid {
            Ok(ClientMessageId(raw.to_owned()))
        } else {
            Err(InvalidCid)
        }
    }

    /// The id as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `raw` is 1 to `max_len` bytes, each of which `allowed` accepts: the shape of the
/// protocol's ASCII identifiers (`cid`, `room`).
pub(crate) fn is_token(raw: &str, max_len: usize, allowed: impl Fn(u8) -> bool) -> bool {
    (1..=max_len).contains(&raw.len()) && raw.bytes().all(allowed)
}

impl fmt::Display for ClientMessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet_and_lengths() {
        assert!(ClientMessageId::parse("a").is_ok());
        assert!(ClientMessageId::parse("Az09_-").is_ok());
        assert!(ClientMessageId::parse(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn refuses_empty_long_and_other_characters() {
        for raw in ["", " ", "a b", "a.b", "é", "a+b", "a%20"] {
            assert_eq!(ClientMessageId::parse(raw), Err(InvalidCid), "{raw:?}");
        }
        assert_eq!(ClientMessageId::parse(&"x".repeat(65)), Err(InvalidCid));
    }
}
