//! Types shared by the chat server and its web client: the JSONP long-polling wire format of
//! the original Node.js chat room (see `docs/protocol.md`) and the shape of the files it stores.
//!
//! Everything here is a compatibility boundary: legacy jQuery-era pages send these requests and
//! read these answers, and the original server's `data.json` files hold these messages. Change
//! a field only with a migration and a test against the legacy fixtures.
//!
//! The crate has no I/O and builds for `wasm32-unknown-unknown`.
//!
//! ```
//! use chat_shared::{CallbackName, Nickname, ANONYMOUS_NAME};
//!
//! assert!(CallbackName::parse("jQuery1710_1420016009253").is_ok());
//! assert!(CallbackName::parse("alert(1)//").is_err());
//! assert_eq!(Nickname::parse("  ", 32).unwrap().as_str(), ANONYMOUS_NAME);
//! ```

mod callback;
mod client_id;
mod cursor;
mod message;
mod request;
mod response;
mod room;
mod text;

pub use callback::{CallbackError, CallbackName, DEFAULT_CALLBACK, MAX_CALLBACK_LEN};
pub use client_id::{ClientMessageId, InvalidCid, CID_WINDOW_MS, MAX_CID_LEN};
pub use cursor::Cursor;
pub use message::{Message, StoredMessage};
pub use request::{encode_component, ChatRequest};
pub use response::{Answer, ChatResponse, Echo, ErrorCode, MsgList, WireError, MAX_ONLINE_NAMES};
pub use room::{InvalidRoom, RoomName, MAX_ROOM_LEN};
pub use text::{
    is_blank_in_names, trim_name, MessageText, Nickname, TextError, BRAILLE_PATTERN_BLANK,
};

/// The port the original server listened on, kept so that old pages need no change.
pub const DEFAULT_PORT: u16 = 8973;

/// The text saved for a join when the client sends no `msg`, as the original server did.
pub const JOIN_MESSAGE: &str = "加入聊天室";

/// The text saved for `method=exit`, as the original server did.
pub const EXIT_MESSAGE: &str = "离开聊天室";

/// The name used when `name` is missing or blank, as the original web page showed it.
pub const ANONYMOUS_NAME: &str = "(匿名)";

/// Default for the longest message text accepted, in characters (Unicode scalar values).
pub const DEFAULT_MAX_MSG_LEN: usize = 2000;

/// Default for the longest nickname accepted, in characters (Unicode scalar values).
pub const DEFAULT_MAX_NAME_LEN: usize = 32;

/// Default for the most messages one pop answer carries (catch-up is paged).
pub const DEFAULT_PAGE_SIZE: usize = 500;

/// Default hold time of a long poll, in seconds.
pub const DEFAULT_POLL_TIMEOUT_SECS: u64 = 25;

/// The request's `method` parameter, as the original server read it.
///
/// Anything that is not `push` or `exit` is a pop; a missing `method` is a join, decided by the
/// caller because it also depends on `time` and the HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `method=pop` (or any unknown value): a long poll for messages newer than `time`.
    Pop,
    /// `method=push`: save `msg` under `name`.
    Push,
    /// `method=exit`: save [`EXIT_MESSAGE`] under `name`.
    Exit,
}

impl Method {
    /// Reads a `method` value the way the original server compared it: exact, case-sensitive.
    pub fn parse(value: &str) -> Method {
        match value {
            "push" => Method::Push,
            "exit" => Method::Exit,
            _ => Method::Pop,
        }
    }

    /// The query-string value of this method.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Pop => "pop",
            Method::Push => "push",
            Method::Exit => "exit",
        }
    }
}
