//! A chat message, as the wire carries it in `msgList` and as the data files store it.

use serde::{Deserialize, Deserializer, Serialize};

/// One chat message: `{"name": ..., "msg": ..., "time": ...}`, plus `"cid"` when its client sent
/// one.
///
/// Without `cid`, this is the exact object the original server put in `msgList` and wrote to
/// `data.json` (`JSON.stringify(list, null, 4)`), fields in this order. Legacy pages never send
/// a `cid`, so what they read and what the original's files hold stay the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Message {
    /// The sender's nickname, trimmed; `(匿名)` when the client sent none.
    pub name: String,
    /// The message text; `加入聊天室` for a join and `离开聊天室` for an exit.
    pub msg: String,
    /// When the server saved it, in milliseconds since the Unix epoch. Unique and strictly
    /// increasing for messages this server saved; legacy files may repeat a time.
    pub time: u64,
    /// The client message id its save carried (see [`crate::ClientMessageId`]), kept so that a
    /// retried save is recognized, also after a restart; absent when the client sent none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
}

impl Message {
    /// A message without a client message id.
    pub fn new(name: impl Into<String>, msg: impl Into<String>, time: u64) -> Message {
        Message {
            name: name.into(),
            msg: msg.into(),
            time,
            cid: None,
        }
    }
}

/// A message read from a data file, lenient about the shapes the original server wrote.
///
/// The original's first version stored the whole request object (`name`, `method`, `msg`,
/// `__t`, `callback`, `time`), and a field the client left out was dropped by
/// `JSON.stringify`. So: unknown fields are ignored, a missing `name` or `msg` reads as an empty
/// string, and `time` may be a number or a string of digits. A missing or non-numeric `time`
/// is an error: without it the message has no place in history.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StoredMessage {
    /// See [`Message::name`].
    #[serde(default, deserialize_with = "string_or_default")]
    pub name: String,
    /// See [`Message::msg`].
    #[serde(default, deserialize_with = "string_or_default")]
    pub msg: String,
    /// See [`Message::time`].
    #[serde(deserialize_with = "millis_number_or_string")]
    pub time: u64,
    /// See [`Message::cid`]; never written by the original server.
    #[serde(default)]
    pub cid: Option<String>,
}

impl From<StoredMessage> for Message {
    fn from(stored: StoredMessage) -> Message {
        Message {
            name: stored.name,
            msg: stored.msg,
            time: stored.time,
            cid: stored.cid,
        }
    }
}

/// Accepts a string, or `null`/a number/a boolean written by a careless client, as text.
fn string_or_default<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(match value {
        serde_json::Value::String(text) => text,
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    })
}

fn millis_number_or_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    use serde::de::Error;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Millis {
        Number(u64),
        Text(String),
    }
    let ms = match Millis::deserialize(deserializer)? {
        Millis::Number(ms) => ms,
        Millis::Text(text) => text.parse().map_err(|_| {
            D::Error::custom(format!(
                "time {text:?} is not a whole number of milliseconds"
            ))
        })?,
    };
    // A client cursor has at most 15 digits (`Cursor::parse`): a later time could never be
    // sent back, and its client would loop.
    if ms > MAX_TIME_MS {
        return Err(D::Error::custom(format!(
            "time {ms} is beyond {MAX_TIME_MS}, the largest time a client can send back"
        )));
    }
    Ok(ms)
}

/// The largest message time accepted from a data file, in ms: 15 digits, as a cursor.
pub const MAX_TIME_MS: u64 = 999_999_999_999_999;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_original_first_version_whole_request_shape() {
        let stored: StoredMessage = serde_json::from_str(
            r#"{"name":"小小兵","method":"push","msg":"xaxsxa","__t":"1420016009253",
                "callback":"wfQuery_1420016009253","time":1420016009255}"#,
        )
        .expect("v1 shape parses");
        assert_eq!(
            Message::from(stored),
            Message {
                name: "小小兵".into(),
                msg: "xaxsxa".into(),
                time: 1_420_016_009_255,
                cid: None
            }
        );
    }

    #[test]
    fn missing_text_fields_read_as_empty_and_time_may_be_a_string() {
        let stored: StoredMessage = serde_json::from_str(r#"{"time":"12"}"#).expect("parses");
        assert_eq!(
            stored,
            StoredMessage {
                name: String::new(),
                msg: String::new(),
                time: 12,
                cid: None,
            }
        );
    }

    #[test]
    fn a_message_without_time_is_an_error() {
        assert!(serde_json::from_str::<StoredMessage>(r#"{"name":"a","msg":"b"}"#).is_err());
        assert!(serde_json::from_str::<StoredMessage>(r#"{"time":"soon"}"#).is_err());
        assert!(serde_json::from_str::<StoredMessage>(r#"{"time":18446744073709551615}"#).is_err());
        assert!(serde_json::from_str::<StoredMessage>(r#"{"time":999999999999999}"#).is_ok());
    }

    #[test]
    fn serializes_fields_in_the_original_order() {
        let message = Message {
            name: "a".into(),
            msg: "b".into(),
            time: 3,
            cid: None,
        };
        assert_eq!(
            serde_json::to_string(&message).expect("serializes"),
            r#"{"name":"a","msg":"b","time":3}"#
        );
    }
}
