//! Query-string parsing with the rules of the original server's `querystring.parse`, made
//! strict where it was careless: `&`-separated `key=value` pairs, `+` is a space, `%XX` is a
//! byte, and the first of duplicate keys wins (the original turned duplicates into arrays and
//! then stored them).
//!
//! Invalid percent-encoding and bytes that are not UTF-8 are not silently repaired: each
//! parameter records its [`DecodeError`], and the value is decoded lossily (`U+FFFD`) only so
//! that it can be echoed back.

use std::borrow::Cow;

/// Why a query component could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A `%` not followed by two hexadecimal digits, at this byte offset of the component.
    #[error("invalid percent-encoding at byte {0}")]
    BadPercent(usize),
    /// The decoded bytes are not UTF-8.
    #[error("not valid UTF-8 once percent-decoded")]
    NotUtf8,
}

/// One decoded query parameter, borrowed from the raw query when it needed no decoding (no
/// `%` and no `+`: the usual case, so parsing a request allocates once, not twice per parameter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param<'a> {
    /// The decoded key (lossy when [`Param::error`] is set).
    pub key: Cow<'a, str>,
    /// The decoded value (lossy when [`Param::error`] is set).
    pub value: Cow<'a, str>,
    /// The first decoding problem in the key or the value, if any.
    pub error: Option<DecodeError>,
}

/// The most distinct parameters read from one query: a request's cost stays linear in its
/// size (each key is compared with the earlier ones), and real clients send fewer than ten.
pub const MAX_PARAMETERS: usize = 64;

/// The parameters of one request, in their order, duplicates removed (first wins), borrowed
/// from the raw query string where they can be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query<'a> {
    params: Vec<Param<'a>>,
    /// More than [`MAX_PARAMETERS`] distinct parameters were sent; the rest were not read.
    truncated: bool,
}

/// How many parameters a query's list has room for before it grows: a jQuery page's pop sends
/// five (`name`, `time`, `method`, `callback`, `_`).
const USUAL_PARAMETERS: usize = 8;

impl<'a> Query<'a> {
    /// Parses the raw query string (without the `?`). Empty pieces (`a=1&&b=2`) are skipped; a
    /// piece without `=` is a key with an empty value, as in the original. Reading stops at the
    /// first new parameter beyond [`MAX_PARAMETERS`] ([`Query::is_truncated`]).
    pub fn parse(raw: &'a str) -> Query<'a> {
        let mut params: Vec<Param<'a>> = Vec::with_capacity(USUAL_PARAMETERS);
        for piece in raw.split('&').filter(|piece| !piece.is_empty()) {
            let (raw_key, raw_value) = piece.split_once('=').unwrap_or((piece, ""));
            let (key, key_error) = decode_component(raw_key);
            if params.iter().any(|param| param.key == key) {
                continue;
            }
            if params.len() == MAX_PARAMETERS {
                return Query {
                    params,
                    truncated: true,
                };
            }
            let (value, value_error) = decode_component(raw_value);
            params.push(Param {
                key,
                value,
                error: key_error.or(value_error),
            });
        }
        Query {
            params,
            truncated: false,
        }
    }

    /// Whether the query had more than [`MAX_PARAMETERS`] distinct parameters.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// The first parameter named `key`.
    pub fn get(&self, key: &str) -> Option<&Param<'a>> {
        self.params.iter().find(|param| param.key == key)
    }

    /// The decoded value of the first parameter named `key`, whether or not it decoded cleanly.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.get(key).map(|param| &*param.value)
    }

    /// All parameters in request order.
    pub fn params(&self) -> &[Param<'a>] {
        &self.params
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Decodes one component (`+` is a space, `%XX` a byte). Returns the text (`raw` itself when
/// there is nothing to decode), lossy if needed, and the first problem found.
fn decode_component(raw: &str) -> (Cow<'_, str>, Option<DecodeError>) {
    let bytes = raw.as_bytes();
    if !bytes.iter().any(|&b| b == b'%' || b == b'+') {
        return (Cow::Borrowed(raw), None);
    }
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut error = None;
    let mut idx = 0;
    while idx < bytes.len() {
        match bytes[idx] {
            b'+' => {
                decoded.push(b' ');
                idx += 1;
            }
            b'%' => {
                let high = bytes.get(idx + 1).copied().and_then(hex_value);
                let low = bytes.get(idx + 2).copied().and_then(hex_value);
                if let (Some(high), Some(low)) = (high, low) {
                    decoded.push(high << 4 | low);
                    idx += 3;
                } else {
                    error.get_or_insert(DecodeError::BadPercent(idx));
                    decoded.push(b'%');
                    idx += 1;
                }
            }
            byte => {
                decoded.push(byte);
                idx += 1;
            }
        }
    }
    match String::from_utf8(decoded) {
        Ok(text) => (Cow::Owned(text), error),
        Err(not_utf8) => {
            let text = String::from_utf8_lossy(not_utf8.as_bytes()).into_owned();
            (Cow::Owned(text), error.or(Some(DecodeError::NotUtf8)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_and_percent_and_keeps_order() {
        let query = Query::parse("name=%E5%B0%8F+%E5%85%B5&method=push&msg=a%2Bb+c&__t=1");
        let pairs: Vec<(&str, &str)> = query
            .params()
            .iter()
            .map(|p| (&*p.key, &*p.value))
            .collect();
        assert_eq!(
            pairs,
            [
                ("name", "小 兵"),
                ("method", "push"),
                ("msg", "a+b c"),
                ("__t", "1")
            ]
        );
        assert!(query.params().iter().all(|p| p.error.is_none()));
    }

    #[test]
    fn parameters_without_escapes_are_borrowed_from_the_raw_query() {
        let query = Query::parse("name=bob&msg=a+b&time=1&cb%31=x");
        let borrowed: Vec<(bool, bool)> = query
            .params()
            .iter()
            .map(|p| {
                (
                    matches!(p.key, Cow::Borrowed(_)),
                    matches!(p.value, Cow::Borrowed(_)),
                )
            })
            .collect();
        assert_eq!(
            borrowed,
            [(true, true), (true, false), (true, true), (false, true)]
        );
        assert_eq!(query.value("cb1"), Some("x"));
    }

    #[test]
    fn first_duplicate_wins() {
        let query = Query::parse("name=a&name=b&callback=x&callback=y");
        assert_eq!(query.value("name"), Some("a"));
        assert_eq!(query.value("callback"), Some("x"));
        assert_eq!(query.params().len(), 2);
    }

    #[test]
    fn keys_without_values_and_empty_pieces() {
        let query = Query::parse("&&time&name=&=x");
        assert_eq!(query.value("time"), Some(""));
        assert_eq!(query.value("name"), Some(""));
        assert_eq!(query.value(""), Some("x"));
    }

    #[test]
    fn invalid_percent_encoding_is_reported_not_repaired_silently() {
        for raw in ["msg=%zz", "msg=%4", "msg=%", "msg=ok%2"] {
            let query = Query::parse(raw);
            let param = query.get("msg").expect("present");
            assert!(
                matches!(param.error, Some(DecodeError::BadPercent(_))),
                "{raw}: {param:?}"
            );
        }
    }

    #[test]
    fn invalid_utf8_is_reported_and_decoded_lossily() {
        let query = Query::parse("msg=%FF%FEabc&name=%C3");
        assert_eq!(
            query.get("msg").expect("present").error,
            Some(DecodeError::NotUtf8)
        );
        assert_eq!(query.value("msg"), Some("\u{FFFD}\u{FFFD}abc"));
        assert_eq!(
            query.get("name").expect("present").error,
            Some(DecodeError::NotUtf8)
        );
    }
}
