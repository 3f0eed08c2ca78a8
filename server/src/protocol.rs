//! The legacy chat protocol (`docs/protocol.md`): a query string turned into a typed
//! [`Request`], every refusal mapped to its [`ErrorCode`] in one place ([`Refusal::code`]),
//! and answers rendered through [`chat_shared::Answer`] into a JSONP body.
//!
//! Nothing here does I/O: routes call [`parse`], hand the [`Request`] to the room, and render
//! what comes back with an [`AnswerWriter`].

use std::time::Duration;

use actix_web::http::Method as HttpMethod;
use chat_shared::{
    Answer, CallbackError, CallbackName, ClientMessageId, Cursor, Echo, ErrorCode, Message,
    MessageText, Method, MsgList, Nickname, RoomName, TextError, WireError,
};
use serde_json::value::RawValue;

use crate::jsonp;
use crate::presence::OnlineSnapshot;
use crate::query::{DecodeError, Query};
use crate::room::SharedPage;

/// The longest query string a pop may have, in bytes. A held pop keeps its echoed parameters
/// for its whole hold time; real clients send a few hundred bytes.
pub const MAX_POP_QUERY_BYTES: usize = 4096;

/// Query parameters the server writes itself; a client's value for them is not echoed.
const SERVER_FIELDS: [&str; 5] = ["msgList", "error", "online", "onlineCount", "presenceTag"];

/// The most bytes (keys and values) of parameters other than the protocol's own that an answer
/// echoes; a cache-buster like jQuery's `_=1420070400000` is a few bytes.
pub const MAX_EXTRA_ECHO_BYTES: usize = 4096;

/// The query parameters of the chat protocol: a request with any of them is a chat request.
pub const CHAT_PARAMETERS: [&str; 5] = ["name", "msg", "time", "method", "callback"];

/// A chat request, validated: what the client asked for, in the original server's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// No `time`, no `method`, or a POST: save a join (its own `msg`, or
    /// [`chat_shared::JOIN_MESSAGE`]).
    Join {
        /// Who joins.
        name: Nickname,
        /// What is saved.
        msg: MessageText,
        /// The client message id, which makes a retry store nothing (see [`Request::Push`]).
        cid: Option<ClientMessageId>,
    },
    /// `method=push` with a `time`: save `msg`.
    Push {
        /// Who speaks.
        name: Nickname,
        /// What is saved.
        msg: MessageText,
        /// The client message id: a save under the same name and `cid` within
        /// [`chat_shared::CID_WINDOW_MS`] stores nothing and is answered as the first was.
        cid: Option<ClientMessageId>,
    },
    /// `method=exit` (or a POST saying so, as `navigator.sendBeacon` sends): save
    /// [`chat_shared::EXIT_MESSAGE`] and leave the online list.
    Exit {
        /// Who leaves.
        name: Nickname,
        /// The client message id (see [`Request::Push`]).
        cid: Option<ClientMessageId>,
    },
    /// Anything else with a `time`: a long poll for messages newer than `cursor`.
    Pop {
        /// The client's cursor; `None` when `time` is not a whole number (answered at once with
        /// the newest time, as the original did).
        cursor: Option<Cursor>,
        /// The name the pop counts as online under, when it is a valid nickname.
        name: Option<Nickname>,
        /// `last=N`, and `before` with it (extensions): answer at once with a page of
        /// history, whatever the cursor says.
        history: Option<HistoryPage>,
    },
}

/// A page of history a pop asks for (extensions; legacy clients never send them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryPage {
    /// `last=N`: the room's newest `N` messages (history on arrival).
    Newest {
        /// How many, from 1 to the page size.
        n: usize,
    },
    /// `last=N&before=T`: the `N` messages just older than `T` (scrolling back), more when a
    /// group of messages sharing a time would be cut.
    Before {
        /// Only messages older than this time (ms since the Unix epoch) are answered.
        before: Cursor,
        /// How many, from 1 to the page size.
        n: usize,
    },
}

impl Request {
    /// The kind's name in logs and metrics: `join`, `push`, `exit`, `pop`.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Join { .. } => "join",
            Request::Push { .. } => "push",
            Request::Exit { .. } => "exit",
            Request::Pop { .. } => "pop",
        }
    }
}

/// Why a request is refused through its callback (`error.code`, `error.message`). The one
/// mapping from refusals to wire codes is [`Refusal::code`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// `name` or `msg` is not cleanly percent-encoded UTF-8.
    #[error("{key}: {source}")]
    Encoding {
        /// The parameter.
        key: &'static str,
        /// What is wrong with it.
        source: DecodeError,
    },
    /// `name` or `msg` breaks a text rule.
    #[error(transparent)]
    Text(#[from] TextError),
    /// Too many saves from this address; `retry_in` until the next one is allowed.
    #[error("too many messages from this address; retry in {:.1} s", .retry_in.as_secs_f64())]
    RateLimited {
        /// How long until a save is allowed again.
        retry_in: Duration,
    },
    /// Too many held pops from this address.
    #[error("too many waiting requests from this address")]
    TooManyPolls,
    /// A pop's query string over [`MAX_POP_QUERY_BYTES`].
    #[error("a pop's query string may have at most {MAX_POP_QUERY_BYTES} bytes")]
    RequestTooLarge,
    /// `room` is not a [`RoomName`].
    #[error("{0}")]
    InvalidRoom(#[from] chat_shared::InvalidRoom),
    /// The request is for a room that is not open, and the most rooms are open already.
    #[error("the server has as many rooms open as it may ({max}); try again later")]
    TooManyRooms {
        /// `--max-rooms`.
        max: usize,
    },
    /// A pop's `last` is not a whole number from 1 to the page size.
    #[error("last must be a whole number from 1 to {page_size}")]
    InvalidLast {
        /// The server's page size.
        page_size: usize,
    },
    /// A pop's `before` is not a whole number of ms, or comes without `last`.
    #[error("before must be a whole number of milliseconds, sent with last")]
    InvalidBefore,
    /// `cid` is not a [`ClientMessageId`].
    #[error("{0}")]
    InvalidCid(#[from] chat_shared::InvalidCid),
    /// The backend could not store the message; nothing was saved.
    #[error("the server could not store the message")]
    StorageFailed,
    /// The backend could not read the history the pop asked for.
    #[error("the server could not read its history")]
    HistoryUnreadable,
    /// More than [`crate::query::MAX_PARAMETERS`] distinct parameters.
    #[error(
        "a request may have at most {} parameters",
        crate::query::MAX_PARAMETERS
    )]
    TooManyParameters,
    /// The server is stopping and no successor answers on its socket.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// Not a refusal but a notice on a page of messages: older ones after the request's `time`
    /// are no longer kept (a bounded history); the page starts at the oldest kept.
    #[error("older messages were trimmed from the history; this page starts at the oldest kept")]
    HistoryTrimmed,
}

impl Refusal {
    /// The wire code of this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            Refusal::Encoding { .. } => ErrorCode::InvalidEncoding,
            Refusal::Text(error) => error.code(),
            Refusal::RateLimited { .. } => ErrorCode::RateLimited,
            Refusal::TooManyPolls => ErrorCode::TooManyPolls,
            Refusal::RequestTooLarge => ErrorCode::RequestTooLarge,
            Refusal::StorageFailed | Refusal::HistoryUnreadable => ErrorCode::StorageFailed,
            Refusal::ShuttingDown => ErrorCode::ShuttingDown,
            Refusal::TooManyParameters => ErrorCode::TooManyParameters,
            Refusal::InvalidCid(_) => ErrorCode::InvalidCid,
            Refusal::InvalidRoom(_) => ErrorCode::InvalidRoom,
            Refusal::TooManyRooms { .. } => ErrorCode::TooManyRooms,
            Refusal::InvalidLast { .. } => ErrorCode::InvalidLast,
            Refusal::InvalidBefore => ErrorCode::InvalidBefore,
            Refusal::HistoryTrimmed => ErrorCode::HistoryTrimmed,
        }
    }

    /// The `error` object of the answer.
    pub fn to_wire(&self) -> WireError {
        WireError {
            code: self.code(),
            message: self.to_string(),
        }
    }
}

/// The text limits requests are checked against (the server's settings).
#[derive(Debug, Clone, Copy)]
pub struct TextLimits {
    /// Longest nickname, in characters.
    pub max_name_len: usize,
    /// Longest message, in characters.
    pub max_msg_len: usize,
    /// Most messages in one answer (the largest `last` a pop may ask for).
    pub page_size: usize,
}

/// A chat request read from its query string: the callback to answer through, the writer of
/// its answers, and the request itself or why it is refused.
#[derive(Debug)]
pub struct Parsed {
    /// Renders the answers of this request.
    pub answer: AnswerWriter,
    /// The room the request is for (`None`: the legacy room). A `room` that is not a valid
    /// name makes `request` a refusal.
    pub room: Option<RoomName>,
    /// The validated request, or the refusal to answer with.
    pub request: Result<Request, Refusal>,
}

/// A `callback` that is unsafe to write into a script (not a plain identifier path, or not
/// cleanly encoded): answered with a plain 400 that never reflects it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid callback name")]
pub struct UnsafeCallback;

impl From<CallbackError> for UnsafeCallback {
    fn from(_: CallbackError) -> UnsafeCallback {
        UnsafeCallback
    }
}

/// Reads a chat request from its HTTP method and raw query string (not empty), by the original
/// server's rules in their order (`docs/protocol.md`, "The rules, in order").
///
/// # Errors
/// [`UnsafeCallback`]: nothing else of the request is read.
pub fn parse(
    http_method: &HttpMethod,
    raw_query: &str,
    limits: TextLimits,
) -> Result<Parsed, UnsafeCallback> {
    let query = Query::parse(raw_query);
    // `res.callback || "callback"` in the original: an empty name is the default.
    let callback = match query.get("callback") {
        None => CallbackName::default_name(),
        Some(param) if param.error.is_some() => return Err(UnsafeCallback),
        Some(param) if param.value.is_empty() => CallbackName::default_name(),
        Some(param) => CallbackName::parse(&param.value)?,
    };
    let answer = AnswerWriter::new(callback, &query);
    if query.is_truncated() {
        return Ok(Parsed {
            answer,
            room: None,
            request: Err(Refusal::TooManyParameters),
        });
    }
    // Not in the original protocol: absent for legacy pages; an empty value is none.
    let room = match query.get("room") {
        Some(param) if param.error.is_some() => Err(chat_shared::InvalidRoom),
        Some(param) if !param.value.is_empty() => RoomName::parse(&param.value).map(Some),
        _ => Ok(None),
    };
    let (room, request) = match room {
        Ok(room) => {
            let request = match classify(http_method, &query) {
                Kind::Pop if raw_query.len() > MAX_POP_QUERY_BYTES => Err(Refusal::RequestTooLarge),
                Kind::Pop => pop_history(&query, limits.page_size).map(|history| Request::Pop {
                    cursor: answer.client_time,
                    name: pop_name(&query, limits.max_name_len),
                    history,
                }),
                kind => save_request(kind, &query, limits),
            };
            (room, request)
        }
        Err(invalid) => (None, Err(invalid.into())),
    };
    Ok(Parsed {
        answer,
        room,
        request,
    })
}

/// The rule a request falls under, before its parameters are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Join,
    Push,
    Exit,
    Pop,
}

fn classify(http_method: &HttpMethod, query: &Query) -> Kind {
    let is_post = http_method == HttpMethod::POST;
    let method = query.value("method");
    // `navigator.sendBeacon` can only POST: a POST that says exit is an exit.
    if is_post && method == Some("exit") {
        return Kind::Exit;
    }
    let time_missing = query.value("time").is_none_or(str::is_empty);
    match method {
        _ if time_missing || is_post => Kind::Join,
        // `!res.method` in the original: an empty value (jQuery's `method=` for an undefined
        // field) is as good as none.
        None | Some("") => Kind::Join,
        Some(value) => match Method::parse(value) {
            Method::Push => Kind::Push,
            Method::Exit => Kind::Exit,
            Method::Pop => Kind::Pop,
        },
    }
}

/// Checks the parameters a save stores: `name`, and `msg` unless it is an exit.
fn save_request(kind: Kind, query: &Query, limits: TextLimits) -> Result<Request, Refusal> {
    let stored: &[&'static str] = if kind == Kind::Exit {
        &["name"]
    } else {
        &["name", "msg"]
    };
    for &key in stored {
        if let Some(source) = query.get(key).and_then(|param| param.error) {
            return Err(Refusal::Encoding { key, source });
        }
    }
    let name = Nickname::parse(query.value("name").unwrap_or(""), limits.max_name_len)?;
    // Not in the original protocol: absent for legacy pages, and an empty value (jQuery's
    // `cid=` for an undefined field) is none.
    let cid = match query.get("cid") {
        Some(param) if param.error.is_some() => return Err(chat_shared::InvalidCid.into()),
        Some(param) if !param.value.is_empty() => Some(ClientMessageId::parse(&param.value)?),
        _ => None,
    };
    let raw_msg = query.value("msg").unwrap_or("");
    Ok(match kind {
        Kind::Join if raw_msg.trim().is_empty() => Request::Join {
            name,
            msg: MessageText::join_message(),
            cid,
        },
        Kind::Join => Request::Join {
            name,
            msg: MessageText::parse_allow_empty(raw_msg, limits.max_msg_len)?,
            cid,
        },
        Kind::Exit => Request::Exit { name, cid },
        Kind::Push | Kind::Pop => Request::Push {
            name,
            msg: MessageText::parse(raw_msg, limits.max_msg_len)?,
            cid,
        },
    })
}

/// A pop's `last` and `before` (extensions), each `None` when absent or empty: `last` a whole
/// number from 1 to `page_size`, `before` a whole number of ms ([`Cursor::parse`]) that needs
/// a `last` (how many messages before it is the client's to say).
fn pop_history(query: &Query, page_size: usize) -> Result<Option<HistoryPage>, Refusal> {
    let last = match query.value("last") {
        None | Some("") => None,
        Some(raw) => Some(
            raw.parse::<usize>()
                .ok()
                .filter(|last| (1..=page_size).contains(last))
                .ok_or(Refusal::InvalidLast { page_size })?,
        ),
    };
    let before = match query.value("before") {
        None | Some("") => None,
        Some(raw) => Some(Cursor::parse(raw).ok_or(Refusal::InvalidBefore)?),
    };
    match (last, before) {
        (None, None) => Ok(None),
        (Some(n), None) => Ok(Some(HistoryPage::Newest { n })),
        (Some(n), Some(before)) => Ok(Some(HistoryPage::Before { before, n })),
        (None, Some(_)) => Err(Refusal::InvalidBefore),
    }
}

/// The name a pop counts as online under: a cleanly decoded, valid nickname.
fn pop_name(query: &Query, max_name_len: usize) -> Option<Nickname> {
    let param = query.get("name").filter(|param| param.error.is_none())?;
    Nickname::parse(&param.value, max_name_len).ok()
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut_at_char(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

/// Renders the answers of one request: its callback and echoed parameters, kept (a few hundred
/// bytes) while a pop is held, and nothing else of the request.
#[derive(Debug)]
pub struct AnswerWriter {
    callback: CallbackName,
    echo: Echo,
    /// The request's `time`, when it is a whole number.
    client_time: Option<Cursor>,
    /// The request's `presence`: `None` when it sent none (a legacy client, which gets no
    /// online list), else the presence tag it last got (maybe empty).
    presence: Option<String>,
}

impl AnswerWriter {
    fn new(callback: CallbackName, query: &Query) -> AnswerWriter {
        // The protocol's own parameters are echoed, each cut to MAX_EXTRA_ECHO_BYTES (a save's
        // answer carries the stored name and text instead, whole); the others only while they
        // fit in MAX_EXTRA_ECHO_BYTES together.
        let params = query.params();
        let most_bytes = params
            .iter()
            .map(|param| param.key.len() + param.value.len())
            .sum();
        let mut echo = Echo::with_capacity(params.len(), most_bytes);
        let mut extra_bytes = 0usize;
        for param in params {
            if SERVER_FIELDS.contains(&&*param.key) {
                continue;
            }
            if !CHAT_PARAMETERS.contains(&&*param.key) {
                let size = param.key.len() + param.value.len();
                if extra_bytes + size > MAX_EXTRA_ECHO_BYTES {
                    continue;
                }
                extra_bytes += size;
            }
            echo.push(&param.key, cut_at_char(&param.value, MAX_EXTRA_ECHO_BYTES));
        }
        AnswerWriter {
            callback,
            echo,
            client_time: query.value("time").and_then(Cursor::parse),
            presence: query.value("presence").map(str::to_owned),
        }
    }

    /// What of `online` this request's answer carries: nothing without `presence`; the tag
    /// alone when the client already has this list; else the list, its count and the tag.
    fn presence_fields<'s>(
        &self,
        online: &'s OnlineSnapshot,
    ) -> (Option<(&'s RawValue, usize)>, Option<&'s str>) {
        match &self.presence {
            None => (None, None),
            Some(seen) if seen == online.tag() => (None, Some(online.tag())),
            Some(_) => (Some(online.answer_fields()), Some(online.tag())),
        }
    }

    /// The JSONP body of `answer` through this request's callback.
    fn body(&self, answer: &Answer<'_>) -> String {
        // A guess of the JSON's size in bytes, so that the body is allocated once: the echoed
        // text, the messages and the online list, plus the field names, quotes and numbers.
        let messages = match answer.msg_list {
            MsgList::Rendered(json) => json.get().len(),
            MsgList::Messages(messages) => messages
                .iter()
                .map(|message| message.name.len() + message.msg.len() + 40)
                .sum(),
        };
        let online = answer.online.map_or(0, |(names, _)| names.get().len() + 32);
        let json_bytes = 128 + self.echo.text_len() + 6 * self.echo.len() + messages + online;
        jsonp::render_body(&self.callback, json_bytes, answer)
    }

    /// The answer to a pop: `messages` (oldest first) and the cursor `time` (ms), with
    /// `notice` ([`Refusal::HistoryTrimmed`]) as its `error` when some are missing.
    pub fn page(
        &self,
        time: u64,
        messages: &[Message],
        online: &OnlineSnapshot,
        notice: Option<&Refusal>,
    ) -> String {
        let notice = notice.map(Refusal::to_wire);
        let (online, presence_tag) = self.presence_fields(online);
        self.body(&Answer {
            echo: &self.echo,
            time,
            saved: None,
            error: notice.as_ref(),
            msg_list: MsgList::Messages(messages),
            online,
            presence_tag,
        })
    }

    /// The answer of a held pop woken by a fan-out: `page`'s messages, rendered once for every
    /// answer that shares the page, and its newest time as the cursor (ms).
    pub fn shared_page(&self, page: &SharedPage, online: &OnlineSnapshot) -> String {
        let (online, presence_tag) = self.presence_fields(online);
        self.body(&Answer {
            echo: &self.echo,
            time: page.messages().last().map_or(0, |message| message.time),
            saved: None,
            error: None,
            msg_list: MsgList::Rendered(page.json()),
            online,
            presence_tag,
        })
    }

    /// The answer to a save: the stored name, text and time.
    pub fn saved(&self, message: &Message, online: &OnlineSnapshot) -> String {
        let (online, presence_tag) = self.presence_fields(online);
        self.body(&Answer {
            echo: &self.echo,
            time: message.time,
            saved: Some(message),
            error: None,
            msg_list: MsgList::EMPTY,
            online,
            presence_tag,
        })
    }

    /// A refusal through the callback: `error`, no messages, and a `time` the client can poll
    /// with (its own when it sent a valid one, else `newest_time`, ms).
    pub fn refusal(&self, refusal: &Refusal, newest_time: u64) -> String {
        let error = refusal.to_wire();
        self.body(&Answer {
            echo: &self.echo,
            time: self.client_time.map_or(newest_time, Cursor::as_millis),
            saved: None,
            error: Some(&error),
            msg_list: MsgList::EMPTY,
            online: None,
            presence_tag: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: TextLimits = TextLimits {
        max_name_len: 32,
        max_msg_len: 2000,
        page_size: 500,
    };

    #[test]
    fn classification_follows_the_original_rules_in_order() {
        let get = HttpMethod::GET;
        let post = HttpMethod::POST;
        let cases = [
            (&get, "name=a", Kind::Join),
            (&get, "name=a&method=pop", Kind::Join),
            (&get, "name=a&method=pop&time=", Kind::Join),
            (&get, "name=a&time=5", Kind::Join),
            (&get, "name=a&method=push&msg=hi", Kind::Join),
            (&get, "name=a&method=push&msg=hi&time=5", Kind::Push),
            (&get, "name=a&method=exit&time=5", Kind::Exit),
            (&get, "name=a&method=pop&time=5", Kind::Pop),
            (&get, "name=a&method=anything&time=5", Kind::Pop),
            (&get, "name=a&method=PUSH&time=5", Kind::Pop),
            (&get, "name=a&method=&time=5", Kind::Join),
            (&post, "name=a&method=pop&time=5", Kind::Join),
            (&post, "name=a&method=exit&time=5", Kind::Exit),
            (&post, "name=a&method=exit", Kind::Exit),
        ];
        for (http_method, query, expected) in cases {
            assert_eq!(
                classify(http_method, &Query::parse(query)),
                expected,
                "{http_method} ?{query}"
            );
        }
    }

    #[test]
    fn each_refusal_has_its_wire_code() {
        let cases = [
            ("name=a&method=push&msg=&time=1", ErrorCode::EmptyMessage),
            (
                "name=a&method=push&msg=%zz&time=1",
                ErrorCode::InvalidEncoding,
            ),
            (
                "name=a%01&method=push&msg=hi&time=1",
                ErrorCode::InvalidName,
            ),
            (
                "name=a&method=push&msg=h%01i&time=1",
                ErrorCode::ControlCharacter,
            ),
            (
                "name=%E2%80%AEa&method=push&msg=hi&time=1",
                ErrorCode::InvalidName,
            ),
            (
                "name=a%E2%80%8Bb&method=exit&time=1",
                ErrorCode::InvalidName,
            ),
        ];
        for (query, code) in cases {
            let parsed = parse(&HttpMethod::GET, query, LIMITS).expect("a safe callback");
            let refusal = parsed.request.expect_err(query);
            assert_eq!(refusal.code(), code, "?{query}");
        }
    }

    #[test]
    fn a_pop_is_typed_with_its_cursor_and_name() {
        let parsed = parse(&HttpMethod::GET, "name=bo&method=pop&time=42", LIMITS).expect("safe");
        let Ok(Request::Pop { cursor, name, .. }) = parsed.request else {
            panic!("a pop: {:?}", parsed.request);
        };
        assert_eq!(cursor, Some(Cursor::from_millis(42)));
        assert_eq!(name.as_ref().map(Nickname::as_str), Some("bo"));
    }

    #[test]
    fn a_pop_asks_for_a_page_of_history_with_last_and_before() {
        let cases = [
            ("method=pop&time=1", Ok(None)),
            ("method=pop&time=1&last=&before=", Ok(None)),
            (
                "method=pop&time=1&last=5",
                Ok(Some(HistoryPage::Newest { n: 5 })),
            ),
            (
                "method=pop&time=1&last=5&before=42",
                Ok(Some(HistoryPage::Before {
                    before: Cursor::from_millis(42),
                    n: 5,
                })),
            ),
            ("method=pop&time=1&before=42", Err(ErrorCode::InvalidBefore)),
            (
                "method=pop&time=1&last=5&before=-1",
                Err(ErrorCode::InvalidBefore),
            ),
            (
                "method=pop&time=1&last=5&before=1.5",
                Err(ErrorCode::InvalidBefore),
            ),
            (
                "method=pop&time=1&last=501&before=42",
                Err(ErrorCode::InvalidLast),
            ),
        ];
        for (query, expected) in cases {
            let parsed = parse(&HttpMethod::GET, query, LIMITS).expect("a safe callback");
            let got = parsed
                .request
                .map(|request| match request {
                    Request::Pop { history, .. } => history,
                    other => panic!("?{query} is a pop: {other:?}"),
                })
                .map_err(|refusal| refusal.code());
            assert_eq!(got, expected, "?{query}");
        }
    }

    #[test]
    fn an_unsafe_callback_is_refused_before_anything_else() {
        assert!(parse(&HttpMethod::GET, "callback=alert(1)//&name=a", LIMITS).is_err());
        assert!(parse(&HttpMethod::GET, "callback=%zz", LIMITS).is_err());
    }
}
