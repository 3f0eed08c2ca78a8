//! Script-tag JSONP, the only transport the legacy server speaks to a page on another origin
//! (and the one it speaks on its own).
//!
//! One request is one `<script src="BASE?name=..&method=..&time=..&callback=__chat_cb_N">`. The
//! server answers `/**/__chat_cb_N({...});`, which calls the function installed under that name
//! on `window`; the function hands the answer to the waiting future through a oneshot channel.
//!
//! Every way a request can end is covered, so the poll loop never hangs on one request:
//! - answered: the callback ran; the answer is parsed into a [`ChatResponse`];
//! - `onerror`: the script could not be loaded (server down, HTTP error status);
//! - `onload` without the callback: the answer was not JSONP for this request;
//! - timeout ([`POLL_TIMEOUT`] for pops, [`REQUEST_TIMEOUT`] otherwise);
//! - the future is dropped (the poll loop was cancelled).
//!
//! Afterwards the `<script>` element is removed and the handlers detached. The global goes
//! too, unless the request timed out or was cancelled: the browser may still run that script
//! (removing the element does not stop it), so a self-removing no-op takes the callback's
//! place and a late answer is silently dropped instead of throwing a `ReferenceError`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use chat_shared::{ChatRequest, ChatResponse, Cursor, RoomName, DEFAULT_POLL_TIMEOUT_SECS};
use futures::channel::oneshot;
use futures::future::{self, Either};
use gloo_timers::future::TimeoutFuture;
use js_sys::Reflect;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Document, HtmlScriptElement, Node, Window};

use super::server_url::request_url;

/// How long a pop may take: the server holds it up to [`DEFAULT_POLL_TIMEOUT_SECS`], plus a
/// margin for the network and a busy server.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(DEFAULT_POLL_TIMEOUT_SECS + 10);

/// How long a join, push or exit may take: the server answers those at once, once the message
/// is on disk.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Callback names are this prefix followed by a per-page counter: `__chat_cb_0`, `__chat_cb_1`...
/// They match the server's callback grammar (a plain identifier).
const CALLBACK_PREFIX: &str = "__chat_cb_";

/// Why a request got no usable answer. The `Display` text is shown to the reader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonpError {
    /// The browser refused to set up the request (no document, DOM error).
    #[error("the page could not start the request ({0})")]
    Setup(String),
    /// The `<script>` failed to load: the server is unreachable or answered with an error
    /// status.
    #[error("the server could not be reached")]
    Network,
    /// No answer within the timeout.
    #[error("the server did not answer within {} s", .0.as_secs())]
    Timeout(Duration),
    /// Something answered, but not with a chat answer for this request.
    #[error("the server's answer could not be read ({0})")]
    BadAnswer(String),
}

/// Sends chat requests to one server. Cheap to share behind an `Rc`; requests may overlap
/// (a held pop and a push), each with its own callback.
#[derive(Debug)]
pub struct JsonpClient {
    /// Where requests go; their query string is appended to it.
    base_url: String,
    /// The room every request is for (`None`: the legacy room).
    room: Option<RoomName>,
    /// The number in the next callback name.
    next_callback: Cell<u64>,
}

/// How a request ended, as the script's callbacks report it.
enum Outcome {
    /// The callback was called with this value.
    Answer(JsValue),
    /// The script ran without calling the callback.
    LoadedWithoutAnswer,
    /// The script could not be loaded.
    Failed,
}

impl JsonpClient {
    /// A client for `room` (`None`: the legacy room) on the server at `base_url` (see
    /// `server_url::resolve_base_url`).
    pub fn new(base_url: String, room: Option<RoomName>) -> JsonpClient {
        JsonpClient {
            base_url,
            room,
            next_callback: Cell::new(0),
        }
    }

    /// The room requests are for.
    pub fn room(&self) -> Option<&RoomName> {
        self.room.as_ref()
    }

    /// `request`'s query string in this client's room.
    fn query_of(&self, request: &ChatRequest) -> String {
        request.clone().in_room(self.room.clone()).to_query()
    }

    /// Where requests go.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Sends `request` and waits for its answer, at most `timeout`.
    ///
    /// An answer carrying an `error` object is still `Ok`: the server did answer, and what to
    /// do about the error depends on the request.
    ///
    /// # Errors
    /// See [`JsonpError`]; whatever happens, the `<script>` element and its handlers are gone
    /// when this returns or is dropped.
    pub async fn send(
        &self,
        request: &ChatRequest,
        timeout: Duration,
    ) -> Result<ChatResponse, JsonpError> {
        let window = web_sys::window().ok_or_else(|| JsonpError::Setup("no window".into()))?;
        let document = window
            .document()
            .ok_or_else(|| JsonpError::Setup("no document".into()))?;
        let callback = self.next_callback_name(&window);
        let query = format!("{}&callback={callback}", self.query_of(request));
        let url = request_url(&self.base_url, &query);

        let (sender, receiver) = oneshot::channel();
        let mut pending = PendingScript::install(&window, &document, callback, &url, sender)
            .map_err(|error| JsonpError::Setup(describe_js_error(&error)))?;

        let timer = TimeoutFuture::new(u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX));
        let outcome = match future::select(receiver, timer).await {
            Either::Left((Ok(outcome), _)) => outcome,
            // The sender lives in `pending` until it is dropped, so this cannot happen; treat
            // it like a failed load rather than panic.
            Either::Left((Err(oneshot::Canceled), _)) => Outcome::Failed,
            // `pending` is dropped unsettled: a no-op stays in place for the late answer.
            Either::Right(((), _)) => return Err(JsonpError::Timeout(timeout)),
        };
        // The script ran or failed: it cannot call back any more, so the global can go.
        pending.settled = true;
        drop(pending);

        match outcome {
            Outcome::Answer(answer) => parse_answer(&answer),
            Outcome::LoadedWithoutAnswer => Err(JsonpError::BadAnswer(
                "the script did not call its callback".into(),
            )),
            Outcome::Failed => Err(JsonpError::Network),
        }
    }

    /// The URL of `name`'s exit from this client's room at `cursor`: what the closing page
    /// sends with `navigator.sendBeacon` or a keepalive fetch (see `services::exit`). Both are
    /// POSTs, which the server treats as an exit because the query says `method=exit`; no
    /// callback, since nobody reads the answer.
    pub fn exit_url(&self, name: &str, cursor: Cursor) -> String {
        request_url(
            &self.base_url,
            &self.query_of(&ChatRequest::exit(name, cursor)),
        )
    }

    /// A callback name no other request of this page is using.
    fn next_callback_name(&self, window: &Window) -> String {
        loop {
            let number = self.next_callback.get();
            self.next_callback.set(number.wrapping_add(1));
            let name = format!("{CALLBACK_PREFIX}{number}");
            // Another copy of the client (a second app instance on the page) counts from 0
            // too; skip names already taken.
            let taken = Reflect::has(window, &JsValue::from_str(&name)).unwrap_or(false);
            if !taken {
                return name;
            }
        }
    }
}

/// One request's `<script>` element and the callbacks it may call. Dropping it detaches and
/// removes everything; see the module docs for what happens to the global.
struct PendingScript {
    window: Window,
    /// The global's name.
    callback: String,
    script: HtmlScriptElement,
    /// Whether the script has run or failed, so that no late call can come.
    settled: bool,
    // Kept alive until the global and the handlers no longer point at them (see `Drop`).
    _on_answer: Closure<dyn FnMut(JsValue)>,
    _on_error: Closure<dyn FnMut()>,
    _on_load: Closure<dyn FnMut()>,
}

type OutcomeSender = Rc<RefCell<Option<oneshot::Sender<Outcome>>>>;

/// Reports the first outcome; later ones (the `load` event after the callback) are ignored.
fn settle(sender: &OutcomeSender, outcome: Outcome) {
    if let Some(sender) = sender.borrow_mut().take() {
        // The receiver is gone when the request was cancelled; nothing to tell then.
        let _ignored = sender.send(outcome);
    }
}

impl PendingScript {
    /// Installs the global callback and appends the `<script>` element, which starts the
    /// request.
    fn install(
        window: &Window,
        document: &Document,
        callback: String,
        url: &str,
        sender: oneshot::Sender<Outcome>,
    ) -> Result<PendingScript, JsValue> {
        let sender: OutcomeSender = Rc::new(RefCell::new(Some(sender)));
        let on_answer = {
            let sender = sender.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |answer| {
                settle(&sender, Outcome::Answer(answer))
            })
        };
        let on_error = {
            let sender = sender.clone();
            Closure::<dyn FnMut()>::new(move || settle(&sender, Outcome::Failed))
        };
        let on_load =
            Closure::<dyn FnMut()>::new(move || settle(&sender, Outcome::LoadedWithoutAnswer));

        let script: HtmlScriptElement = document
            .create_element("script")?
            .dyn_into()
            .map_err(JsValue::from)?;
        script.set_async(true);
        script.set_src(url);
        script.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        script.set_onload(Some(on_load.as_ref().unchecked_ref()));
        Reflect::set(window, &JsValue::from_str(&callback), on_answer.as_ref())?;

        // From here on, dropping `pending` undoes everything above.
        let pending = PendingScript {
            window: window.clone(),
            callback,
            script,
            settled: false,
            _on_answer: on_answer,
            _on_error: on_error,
            _on_load: on_load,
        };
        let parent: Node = match document.head() {
            Some(head) => head.into(),
            None => document
                .document_element()
                .ok_or_else(|| JsValue::from_str("no document element"))?
                .into(),
        };
        parent.append_child(&pending.script)?;
        Ok(pending)
    }
}

impl Drop for PendingScript {
    fn drop(&mut self) {
        self.script.set_onerror(None);
        self.script.set_onload(None);
        self.script.remove();
        let key = JsValue::from_str(&self.callback);
        if self.settled {
            let _ignored = Reflect::delete_property(&self.window, &key);
        } else {
            // The answer may still arrive: a held pop outlives a cancelled loop, and a slow one
            // outlives our timeout. Leave a function that drops it and removes itself. It is
            // owned by JavaScript; if the answer never comes, it stays (a few bytes per lost
            // request).
            let window = self.window.clone();
            let late_key = key.clone();
            let late = Closure::<dyn FnMut(JsValue)>::once_into_js(move |_late_answer: JsValue| {
                let _ignored = Reflect::delete_property(&window, &late_key);
            });
            let _ignored = Reflect::set(&self.window, &key, &late);
        }
        // The closures are dropped after this, when nothing points at them any more.
    }
}

/// Reads the callback's argument as a [`ChatResponse`], through `JSON.stringify` (the answer
/// is plain JSON data, so the round trip loses nothing).
fn parse_answer(answer: &JsValue) -> Result<ChatResponse, JsonpError> {
    let json = js_sys::JSON::stringify(answer)
        .ok()
        .and_then(|json| json.as_string())
        .ok_or_else(|| JsonpError::BadAnswer("the callback's argument is not JSON".into()))?;
    parse_answer_json(&json)
}

/// Parses the JSON text of an answer.
fn parse_answer_json(json: &str) -> Result<ChatResponse, JsonpError> {
    serde_json::from_str(json).map_err(|error| JsonpError::BadAnswer(error.to_string()))
}

/// A JavaScript exception in words, for [`JsonpError::Setup`].
fn describe_js_error(error: &JsValue) -> String {
    error
        .dyn_ref::<js_sys::Error>()
        .map(|error| String::from(error.message()))
        .or_else(|| error.as_string())
        .unwrap_or_else(|| "unknown error".into())
}

#[cfg(test)]
mod tests {
    use chat_shared::{ErrorCode, Message};

    use super::*;

    #[test]
    fn the_exit_url_names_the_room_the_cursor_and_no_callback() {
        let legacy = JsonpClient::new("http://h:8973/".into(), None);
        assert_eq!(
            legacy.exit_url("小 明", Cursor::from_millis(1_420_070_400_000)),
            "http://h:8973/?name=%E5%B0%8F+%E6%98%8E&method=exit&time=1420070400000"
        );
        let room = RoomName::parse("lobby").expect("a valid room name");
        let in_room = JsonpClient::new("https://chat.example/chat?v=1".into(), Some(room));
        assert_eq!(
            in_room.exit_url("a", Cursor::START),
            "https://chat.example/chat?v=1&name=a&method=exit&time=0&room=lobby"
        );
    }

    #[test]
    fn parses_an_answer_with_messages_and_presence() {
        let answer = parse_answer_json(
            r#"{"name":"a","method":"pop","time":12,"callback":"__chat_cb_3",
                "msgList":[{"name":"b","msg":"hi","time":12}],
                "online":["a","b"],"onlineCount":2}"#,
        )
        .expect("a valid answer");
        assert_eq!(answer.time, 12);
        assert_eq!(
            answer.msg_list,
            [Message {
                name: "b".into(),
                msg: "hi".into(),
                time: 12,
                cid: None
            }]
        );
        assert_eq!(answer.online, Some(vec!["a".into(), "b".into()]));
        assert_eq!(answer.online_count, Some(2));
    }

    #[test]
    fn parses_an_error_answer() {
        let answer = parse_answer_json(
            r#"{"time":7,"msgList":[],"error":{"code":"rate_limited","message":"slow down"}}"#,
        )
        .expect("a valid answer");
        assert_eq!(
            answer.error.map(|error| error.code),
            Some(ErrorCode::RateLimited)
        );
    }

    #[test]
    fn something_else_is_a_bad_answer() {
        assert!(matches!(
            parse_answer_json(r#"{"hello":"world"}"#),
            Err(JsonpError::BadAnswer(_))
        ));
    }

    #[test]
    fn error_texts_read_as_sentences() {
        assert_eq!(
            JsonpError::Timeout(POLL_TIMEOUT).to_string(),
            "the server did not answer within 35 s"
        );
        assert_eq!(
            JsonpError::Network.to_string(),
            "the server could not be reached"
        );
    }

    #[test]
    fn the_poll_timeout_outlasts_the_servers_hold() {
        assert!(POLL_TIMEOUT > Duration::from_secs(DEFAULT_POLL_TIMEOUT_SECS));
    }

    #[test]
    fn callback_names_fit_the_servers_grammar() {
        let name = format!("{CALLBACK_PREFIX}{}", u64::MAX);
        assert!(chat_shared::CallbackName::parse(&name).is_ok());
    }
}
