//! The answer object inside `callback(...)`, as a client reads it.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::Message;

/// An answer as the server writes it inside `callback(...)`.
///
/// Shape, in this order: the request's parameters echoed back as strings, as the original server
/// did (`time` among them written as the answer's number, and for a save `name` and `msg` as
/// stored); then the server's fields the request did not echo: `name` and `msg` of a save,
/// `error`, `time`; then `msgList`, `online` with `onlineCount` when given, and `presenceTag`
/// when the client asked for presence.
/// The server never echoes a parameter named like one of its own fields (`msgList`, `error`,
/// `online`, `onlineCount`, `presenceTag`); the caller leaves those out of [`Answer::echo`].
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    /// The echoed parameters, `(key, value)` in request order, duplicates removed.
    pub echo: &'a Echo,
    /// The cursor for the next pop, in milliseconds since the Unix epoch.
    pub time: u64,
    /// A save's stored message: its `name` and `msg` replace the echoed ones.
    pub saved: Option<&'a Message>,
    /// The refusal, when there is one.
    pub error: Option<&'a WireError>,
    /// Messages, oldest first.
    pub msg_list: MsgList<'a>,
    /// Who is online: the names as an already-rendered JSON array (rendered once per presence
    /// snapshot, not once per answer), and how many are online in all.
    pub online: Option<(&'a RawValue, usize)>,
    /// The presence tag of the online list the answer stands for (`presenceTag`): sent to a
    /// client that asked for presence, with or without the list.
    pub presence_tag: Option<&'a str>,
}

/// The request parameters an [`Answer`] echoes: `(key, value)` pairs in request order, kept in
/// one text buffer (two allocations per request, however many parameters it sent, where a list
/// of string pairs takes two per parameter; a fan-out renders thousands of answers at once).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Echo {
    /// Every key and value, one after the other.
    text: String,
    /// For each pair, where its key ends and where its value ends in `text` (bytes).
    ends: Vec<(usize, usize)>,
}

impl Echo {
    /// No pairs yet, with room for `pairs` pairs of `bytes` bytes in all.
    pub fn with_capacity(pairs: usize, bytes: usize) -> Echo {
        Echo {
            text: String::with_capacity(bytes),
            ends: Vec::with_capacity(pairs),
        }
    }

    /// Appends the pair `(key, value)`; the caller leaves out duplicate keys.
    pub fn push(&mut self, key: &str, value: &str) {
        self.text.push_str(key);
        let key_end = self.text.len();
        self.text.push_str(value);
        self.ends.push((key_end, self.text.len()));
    }

    /// The pairs, `(key, value)`, in the order they were pushed.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&(key_end, value_end)| {
            let pair = (&self.text[start..key_end], &self.text[key_end..value_end]);
            start = value_end;
            pair
        })
    }

    /// How many pairs there are.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The bytes of all keys and values together.
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

impl<'p> FromIterator<(&'p str, &'p str)> for Echo {
    fn from_iter<I: IntoIterator<Item = (&'p str, &'p str)>>(pairs: I) -> Echo {
        let mut echo = Echo::default();
        for (key, value) in pairs {
            echo.push(key, value);
        }
        echo
    }
}

/// The `msgList` of an [`Answer`]: messages, oldest first, as they are or as their JSON array
/// already rendered (once per page a fan-out sends to every held pop, not once per answer).
#[derive(Debug, Clone, Copy)]
pub enum MsgList<'a> {
    /// The messages, serialized with the answer.
    Messages(&'a [Message]),
    /// The messages' JSON array (`[{"name":…,"msg":…,"time":…}, …]`), written as it is.
    Rendered(&'a RawValue),
}

impl MsgList<'_> {
    /// No messages.
    pub const EMPTY: MsgList<'static> = MsgList::Messages(&[]);
}

impl Serialize for MsgList<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            MsgList::Messages(messages) => messages.serialize(serializer),
            MsgList::Rendered(json) => json.serialize(serializer),
        }
    }
}

impl Serialize for Answer<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        let (mut echoed_time, mut echoed_name, mut echoed_msg) = (false, false, false);
        for (key, value) in self.echo.iter() {
            match (key, self.saved) {
                ("time", _) => {
                    echoed_time = true;
                    map.serialize_entry(key, &self.time)?;
                }
                ("name", Some(saved)) => {
                    echoed_name = true;
                    map.serialize_entry(key, &saved.name)?;
                }
                ("msg", Some(saved)) => {
                    echoed_msg = true;
                    map.serialize_entry(key, &saved.msg)?;
                }
                _ => map.serialize_entry(key, value)?,
            }
        }
        if let Some(saved) = self.saved {
            if !echoed_name {
                map.serialize_entry("name", &saved.name)?;
            }
            if !echoed_msg {
                map.serialize_entry("msg", &saved.msg)?;
            }
        }
        if let Some(error) = self.error {
            map.serialize_entry("error", error)?;
        }
        if !echoed_time {
            map.serialize_entry("time", &self.time)?;
        }
        map.serialize_entry("msgList", &self.msg_list)?;
        if let Some((names, count)) = self.online {
            map.serialize_entry("online", names)?;
            map.serialize_entry("onlineCount", &count)?;
        }
        if let Some(tag) = self.presence_tag {
            map.serialize_entry("presenceTag", tag)?;
        }
        map.end()
    }
}

/// What a client needs from an answer. The server echoes every query parameter too; those
/// extra fields are ignored here.
///
/// Shape: `{..echoed parameters.., "time": <ms>, "msgList": [Message...], "error"?: WireError,
/// "online"?: [names], "onlineCount"?: n, "presenceTag"?: "<16 hex digits>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChatResponse {
    /// The cursor to send with the next pop, in milliseconds since the Unix epoch.
    pub time: u64,
    /// Messages newer than the request's `time`, oldest first, at most one page.
    #[serde(rename = "msgList", default)]
    pub msg_list: Vec<Message>,
    /// Present when the request was refused; `msgList` is then empty.
    #[serde(default)]
    pub error: Option<WireError>,
    /// Who is online (an extension; legacy clients ignore it): at most
    /// [`MAX_ONLINE_NAMES`] names, sorted. Absent in error answers.
    #[serde(default)]
    pub online: Option<Vec<String>>,
    /// How many names are online in all (the list may be cut at [`MAX_ONLINE_NAMES`]).
    #[serde(rename = "onlineCount", default)]
    pub online_count: Option<u64>,
    /// The presence tag of the online list as of this answer (`presenceTag`), when the request
    /// sent `presence`: sent back with the next request, it keeps the list out of answers until
    /// it changes.
    #[serde(rename = "presenceTag", default)]
    pub presence_tag: Option<String>,
}

/// The most names an answer's `online` list carries.
pub const MAX_ONLINE_NAMES: usize = 100;

/// An error reported through the JSONP callback: `{"code": "...", "message": "..."}`.
///
/// A `<script>` client cannot see an HTTP status, so every error a client can cause is a 200
/// whose body calls the callback with this object (plus `msgList: []` and a usable `time`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// Machine-readable kind.
    pub code: ErrorCode,
    /// Human-readable English explanation, without a trailing period.
    pub message: String,
}

/// The kinds of error a request can get through its callback. Serialized in `snake_case`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// `msg` is longer than the server's `--max-msg-len` characters.
    MessageTooLong,
    /// `name` is longer than the server's `--max-name-len` characters.
    NameTooLong,
    /// `msg` of a push is missing or only whitespace.
    EmptyMessage,
    /// `name` or `msg` contains a control character.
    ControlCharacter,
    /// A parameter has invalid percent-encoding or is not UTF-8 once decoded.
    InvalidEncoding,
    /// Too many saves from this client address; retry later.
    RateLimited,
    /// Too many held pops from this client address.
    TooManyPolls,
    /// The server could not write the message to disk; nothing was saved.
    StorageFailed,
    /// The server is shutting down; nothing was saved.
    ShuttingDown,
    /// A pop's query string is longer than a held pop may keep (4 KiB).
    RequestTooLarge,
    /// More than 64 distinct query parameters; nothing was done.
    TooManyParameters,
    /// `cid` is not 1 to 64 characters of `[A-Za-z0-9_-]`; nothing was saved.
    InvalidCid,
    /// `room` is not 1 to 32 characters of `[a-z0-9_-]`; nothing was done.
    InvalidRoom,
    /// The request names a room that is not open, and the server has `--max-rooms` rooms open
    /// already; nothing was done.
    TooManyRooms,
    /// A pop's `last` is not a whole number from 1 to the server's page size.
    InvalidLast,
    /// A pop's `before` is not a whole number of ms, or comes without `last`.
    InvalidBefore,
    /// `name` contains a text-direction control (Unicode `Bidi_Control`) anywhere, or an
    /// invisible character (`Default_Ignorable_Code_Point`) between its visible characters;
    /// see `docs/protocol.md`, "Names".
    InvalidName,
    /// Not a refusal: the page carries messages, but older ones after the request's `time`
    /// were trimmed from a bounded history (`--redis-max-len`); the page starts at the oldest
    /// kept.
    HistoryTrimmed,
}

impl ErrorCode {
    /// Every code.
    pub const ALL: [ErrorCode; 18] = [
        ErrorCode::MessageTooLong,
        ErrorCode::NameTooLong,
        ErrorCode::EmptyMessage,
        ErrorCode::ControlCharacter,
        ErrorCode::InvalidEncoding,
        ErrorCode::RateLimited,
        ErrorCode::TooManyPolls,
        ErrorCode::StorageFailed,
        ErrorCode::ShuttingDown,
        ErrorCode::RequestTooLarge,
        ErrorCode::HistoryTrimmed,
        ErrorCode::TooManyParameters,
        ErrorCode::InvalidCid,
        ErrorCode::InvalidName,
        ErrorCode::InvalidRoom,
        ErrorCode::TooManyRooms,
        ErrorCode::InvalidLast,
        ErrorCode::InvalidBefore,
    ];

    /// The wire spelling, e.g. `"message_too_long"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MessageTooLong => "message_too_long",
            ErrorCode::NameTooLong => "name_too_long",
            ErrorCode::EmptyMessage => "empty_message",
            ErrorCode::ControlCharacter => "control_character",
            ErrorCode::InvalidEncoding => "invalid_encoding",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooManyPolls => "too_many_polls",
            ErrorCode::StorageFailed => "storage_failed",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::RequestTooLarge => "request_too_large",
            ErrorCode::HistoryTrimmed => "history_trimmed",
            ErrorCode::TooManyParameters => "too_many_parameters",
            ErrorCode::InvalidCid => "invalid_cid",
            ErrorCode::InvalidRoom => "invalid_room",
            ErrorCode::TooManyRooms => "too_many_rooms",
            ErrorCode::InvalidLast => "invalid_last",
            ErrorCode::InvalidBefore => "invalid_before",
            ErrorCode::InvalidName => "invalid_name",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo(pairs: &[(&str, &str)]) -> Echo {
        pairs.iter().copied().collect()
    }

    #[test]
    fn an_echo_gives_back_its_pairs_in_order_empty_ones_too() {
        let pairs = [("name", "小 兵"), ("", "x"), ("time", ""), ("_", "1")];
        let echoed = echo(&pairs);
        assert_eq!(echoed.iter().collect::<Vec<_>>(), pairs);
        assert_eq!(echoed.len(), 4);
        assert_eq!(echoed.text_len(), "name小 兵xtime_1".len());
        assert!(Echo::default().is_empty());
    }

    #[test]
    fn an_answer_keeps_echoed_keys_in_place_and_appends_the_server_s_fields() {
        let message = Message {
            name: "a".into(),
            msg: "hi".into(),
            time: 7,
            cid: None,
        };
        let names = RawValue::from_string("[\"a\"]".to_owned()).expect("valid JSON");
        let echoed = echo(&[
            ("name", " a "),
            ("method", "push"),
            ("msg", "hi"),
            ("time", "1"),
        ]);
        let saved = Answer {
            echo: &echoed,
            time: 7,
            saved: Some(&message),
            error: None,
            msg_list: MsgList::EMPTY,
            online: Some((&names, 1)),
            presence_tag: Some("0123456789abcdef"),
        };
        assert_eq!(
            serde_json::to_string(&saved).expect("serializes"),
            r#"{"name":"a","method":"push","msg":"hi","time":7,"msgList":[],"online":["a"],"onlineCount":1,"presenceTag":"0123456789abcdef"}"#
        );
        let echoed = echo(&[("callback", "cb")]);
        let error = WireError {
            code: ErrorCode::EmptyMessage,
            message: "msg is empty".into(),
        };
        let refused = Answer {
            echo: &echoed,
            time: 5,
            saved: None,
            error: Some(&error),
            msg_list: MsgList::EMPTY,
            online: None,
            presence_tag: None,
        };
        assert_eq!(
            serde_json::to_string(&refused).expect("serializes"),
            r#"{"callback":"cb","error":{"code":"empty_message","message":"msg is empty"},"time":5,"msgList":[]}"#
        );
    }

    #[test]
    fn error_codes_serialize_as_their_wire_spelling() {
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).expect("serializes"),
                code.as_str()
            );
        }
    }

    #[test]
    fn reads_an_answer_with_echoed_parameters() {
        let answer: ChatResponse = serde_json::from_str(
            r#"{"name":"a","method":"pop","time":5,"callback":"cb","__t":"1","msgList":[{"name":"a","msg":"hi","time":5}]}"#,
        )
        .expect("parses");
        assert_eq!(answer.time, 5);
        assert_eq!(answer.msg_list.len(), 1);
        assert_eq!(answer.error, None);
    }

    #[test]
    fn a_rendered_message_list_is_written_as_the_messages_would_be() {
        let messages = [
            Message {
                name: "a<b".into(),
                msg: "hi \u{2028}".into(),
                time: 7,
                cid: None,
            },
            Message {
                name: "c".into(),
                msg: "\"quoted\"".into(),
                time: 7,
                cid: None,
            },
        ];
        let echoed = echo(&[("callback", "cb"), ("time", "1")]);
        let answer = |msg_list| Answer {
            echo: &echoed,
            time: 7,
            saved: None,
            error: None,
            msg_list,
            online: None,
            presence_tag: None,
        };
        let rendered = serde_json::value::to_raw_value(&messages[..]).expect("serializes");
        assert_eq!(
            serde_json::to_string(&answer(MsgList::Rendered(&rendered))).expect("serializes"),
            serde_json::to_string(&answer(MsgList::Messages(&messages))).expect("serializes"),
        );
    }
}
