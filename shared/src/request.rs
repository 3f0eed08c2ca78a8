//! Building a chat request the way a legacy page sends it, for clients written in Rust (the
//! web page, the load generator).

use crate::{Cursor, Method};

/// One chat request: its query parameters, before the JSONP library adds its callback name.
///
/// Shapes, by the server's rules (see `docs/protocol.md`):
/// - join: `name` only (no `time`, no `method`);
/// - push: `name`, `method=push`, `msg`, `time`;
/// - pop: `name`, `method=pop`, `time`;
/// - exit: `name`, `method=exit`, `time`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRequest {
    /// The sender's nickname.
    pub name: String,
    /// `None` for a join.
    pub method: Option<Method>,
    /// The text of a push (or of a join, where the server's default applies when empty).
    pub msg: Option<String>,
    /// The client's cursor; required by push, pop and exit (a request without it is a join).
    pub time: Option<Cursor>,
    /// The client message id of a save (see [`crate::ClientMessageId`]): a fresh one per
    /// message, the same one when the message is sent again. Not sent by legacy pages.
    pub cid: Option<crate::ClientMessageId>,
    /// The room; `None` is the legacy room. Not sent by legacy pages.
    pub room: Option<crate::RoomName>,
    /// For a pop: answer at once with the newest this many messages (history on arrival).
    pub last: Option<usize>,
    /// For a pop with `last`: only messages older than this time (scrolling back).
    pub before: Option<Cursor>,
    /// Ask for the online list (`presence`): `Some("")` when the client has none yet, else the
    /// `presenceTag` of the list it has; the answer then carries the list only when it
    /// changed. `None` (legacy pages): no list at all.
    pub presence: Option<String>,
}

impl ChatRequest {
    /// A join announcing `name`.
    pub fn join(name: &str) -> ChatRequest {
        ChatRequest {
            name: name.to_owned(),
            method: None,
            msg: None,
            time: None,
            cid: None,
            room: None,
            last: None,
            before: None,
            presence: None,
        }
    }

    /// A push of `msg` by `name`; `time` is the client's cursor (any whole number works, but
    /// without one the server would take the request for a join).
    pub fn push(name: &str, msg: &str, time: Cursor) -> ChatRequest {
        ChatRequest {
            name: name.to_owned(),
            method: Some(Method::Push),
            msg: Some(msg.to_owned()),
            time: Some(time),
            cid: None,
            room: None,
            last: None,
            before: None,
            presence: None,
        }
    }

    /// A long poll for messages newer than `time`.
    pub fn pop(name: &str, time: Cursor) -> ChatRequest {
        ChatRequest {
            name: name.to_owned(),
            method: Some(Method::Pop),
            msg: None,
            time: Some(time),
            cid: None,
            room: None,
            last: None,
            before: None,
            presence: None,
        }
    }

    /// Leaving the room.
    pub fn exit(name: &str, time: Cursor) -> ChatRequest {
        ChatRequest {
            name: name.to_owned(),
            method: Some(Method::Exit),
            msg: None,
            time: Some(time),
            cid: None,
            room: None,
            last: None,
            before: None,
            presence: None,
        }
    }

    /// The query string without `?` and without a callback, percent-encoded like
    /// `encodeURIComponent` with spaces as `+` (as jQuery's `$.param` does), parameters in
    /// the order `name`, `method`, `msg`, `time`, `cid`, `room`, `last`, `before`,
    /// `presence`.
    pub fn to_query(&self) -> String {
        let mut query = format!("name={}", encode_component(&self.name));
        if let Some(method) = self.method {
            query.push_str("&method=");
            query.push_str(method.as_str());
        }
        if let Some(msg) = &self.msg {
            query.push_str("&msg=");
            query.push_str(&encode_component(msg));
        }
        if let Some(time) = self.time {
            query.push_str(&format!("&time={time}"));
        }
        if let Some(cid) = &self.cid {
            query.push_str("&cid=");
            query.push_str(cid.as_str());
        }
        if let Some(room) = &self.room {
            query.push_str("&room=");
            query.push_str(room.as_str());
        }
        if let Some(last) = self.last {
            query.push_str(&format!("&last={last}"));
        }
        if let Some(before) = self.before {
            query.push_str(&format!("&before={before}"));
        }
        if let Some(tag) = &self.presence {
            query.push_str("&presence=");
            query.push_str(&encode_component(tag));
        }
        query
    }

    /// The same request for `room` (`None`: the legacy room).
    pub fn in_room(self, room: Option<crate::RoomName>) -> ChatRequest {
        ChatRequest { room, ..self }
    }

    /// The same pop asking for the newest `last` messages at once (history on arrival).
    pub fn with_last(self, last: usize) -> ChatRequest {
        ChatRequest {
            last: Some(last),
            ..self
        }
    }

    /// The same pop asking for the `last` messages just older than `before` at once (scrolling
    /// back through history).
    pub fn with_before(self, last: usize, before: Cursor) -> ChatRequest {
        ChatRequest {
            last: Some(last),
            before: Some(before),
            ..self
        }
    }

    /// The same request asking for the online list unless it is still the one tagged `tag`
    /// (`""`: the client has none).
    pub fn with_presence(self, tag: &str) -> ChatRequest {
        ChatRequest {
            presence: Some(tag.to_owned()),
            ..self
        }
    }

    /// The same request carrying the client message id `cid`.
    pub fn with_cid(self, cid: crate::ClientMessageId) -> ChatRequest {
        ChatRequest {
            cid: Some(cid),
            ..self
        }
    }
}

/// Percent-encodes a query component like `encodeURIComponent`, but with spaces as `+`.
pub fn encode_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'!'
            | b'~'
            | b'*'
            | b'\''
            | b'('
            | b')' => out.push(char::from(byte)),
            b' ' => out.push('+'),
            other => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(char::from(HEX[usize::from(other >> 4)]));
                out.push(char::from(HEX[usize::from(other & 15)]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_each_request_shape_in_jquery_order() {
        assert_eq!(
            ChatRequest::join("小 兵").to_query(),
            "name=%E5%B0%8F+%E5%85%B5"
        );
        assert_eq!(
            ChatRequest::push("a", "x&y=z", Cursor::from_millis(5)).to_query(),
            "name=a&method=push&msg=x%26y%3Dz&time=5"
        );
        assert_eq!(
            ChatRequest::pop("a", Cursor::START).to_query(),
            "name=a&method=pop&time=0"
        );
        assert_eq!(
            ChatRequest::exit("a", Cursor::from_millis(7)).to_query(),
            "name=a&method=exit&time=7"
        );
        assert_eq!(
            ChatRequest::pop("a", Cursor::from_millis(9))
                .with_before(50, Cursor::from_millis(5))
                .to_query(),
            "name=a&method=pop&time=9&last=50&before=5"
        );
        assert_eq!(
            ChatRequest::pop("a", Cursor::from_millis(9))
                .with_presence("")
                .to_query(),
            "name=a&method=pop&time=9&presence="
        );
        assert_eq!(
            ChatRequest::join("a")
                .with_presence("0123456789abcdef")
                .to_query(),
            "name=a&presence=0123456789abcdef"
        );
    }
}
