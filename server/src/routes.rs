//! HTTP routes: the legacy chat protocol on every path, plus `/healthz` and `/favicon.ico`.
//!
//! The rules of the chat protocol are written down, with examples, in `docs/protocol.md`; the
//! comments here point at them.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method as HttpMethod;
use actix_web::{web, HttpRequest, HttpResponse};
use chat_shared::{
    CallbackName, Cursor, ErrorCode, Message, MessageText, Method, Nickname, EXIT_MESSAGE,
    JOIN_MESSAGE,
};
use serde_json::{Map, Value};

use crate::config::Settings;
use crate::jsonp;
use crate::limits::{client_ip, HeldPolls, HoldRefused, SaveRateLimiter};
use crate::presence::{OnlineSnapshot, Presence};
use crate::query::Query;
use crate::room::{Room, SaveError};
use crate::telemetry::{self, Limit, StateFigures, Telemetry};

/// How long a pop refused for too many held pops from one address waits before it is answered,
/// so that an old client, which re-polls at once, does not spin.
const REFUSED_POLL_DELAY: Duration = Duration::from_secs(1);

/// The longest query string a pop may have, in bytes. A held pop keeps its echoed parameters
/// for its whole hold time; real clients send a few hundred bytes.
pub const MAX_POP_QUERY_BYTES: usize = 4096;

/// Query parameters the server writes itself; a client's value for them is not echoed.
const SERVER_FIELDS: [&str; 4] = ["msgList", "error", "online", "onlineCount"];

/// Everything the handlers share. Built once, outside the `HttpServer::new` closure.
#[derive(Debug)]
pub struct AppState {
    /// The room.
    pub room: Room,
    /// Held-pop limits.
    pub held_polls: HeldPolls,
    /// Save rate limits.
    pub save_limiter: SaveRateLimiter,
    /// Who is online.
    pub presence: Arc<Presence>,
    /// The settings the server runs with.
    pub settings: Arc<Settings>,
    /// The operators' figures.
    pub telemetry: Telemetry,
    /// Set when a stop begins and another process will accept on the same listening socket
    /// (a takeover, or a socket kept by systemd): a save this process can no longer store is
    /// then redirected to the same address, where the successor answers it.
    pub successor_listens: AtomicBool,
}

impl AppState {
    /// The figures describing the state right now, for the metrics.
    pub fn state_figures(&self) -> StateFigures {
        StateFigures {
            held_pops: self.held_polls.n_held(),
            messages: self.room.n_messages(),
            online_names: self.presence.snapshot().count,
            storage_bytes: crate::storage::bytes_on_disk(&self.settings.data_dir),
        }
    }
}

/// The query parameters of the chat protocol: a request with any of them is a chat request.
const CHAT_PARAMETERS: [&str; 5] = ["name", "msg", "time", "method", "callback"];

/// Whether a request is for the web page rather than the chat: no query string at all, or a
/// browser navigation (`Accept: text/html`, which `<script>` requests never send) whose query
/// has none of the chat parameters (the page's own `?server=URL`).
pub fn is_page_request(head: &actix_web::dev::RequestHead) -> bool {
    if !matches!(head.method, HttpMethod::GET | HttpMethod::HEAD) {
        return false;
    }
    let query = head.uri.query().unwrap_or("");
    if query.is_empty() {
        return true;
    }
    let accepts_html = head
        .headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    accepts_html
        && Query::parse(query)
            .params()
            .iter()
            .all(|param| !CHAT_PARAMETERS.contains(&param.key.as_str()))
}

/// Registers the routes; used by the server and by tests alike. With `static_dir`, page
/// requests (see [`is_page_request`]) are served from it (`index.html` for `/`).
pub fn configure(
    static_dir: Option<std::path::PathBuf>,
) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg| {
        cfg.route("/healthz", web::get().to(healthz))
            .route("/favicon.ico", web::route().to(favicon));
        if let Some(dir) = &static_dir {
            cfg.service(
                actix_files::Files::new("/", dir)
                    .index_file("index.html")
                    .guard(actix_web::guard::fn_guard(|ctx| {
                        is_page_request(ctx.head())
                    })),
            );
        }
        cfg.default_service(web::to(chat));
    }
}

/// Registers the operators' routes, served on the `--metrics-bind` listener only: `/metrics`
/// (Prometheus text format) and `/status` (the key figures as one self-refreshing page).
pub fn configure_operators(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics))
        .route("/status", web::get().to(status));
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let text = state.telemetry.render(state.state_figures());
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(text)
}

async fn status(state: web::Data<AppState>) -> HttpResponse {
    let text = state.telemetry.render(state.state_figures());
    let heading = format!(
        "chat-server {}, data folder {}",
        env!("CARGO_PKG_VERSION"),
        state.settings.data_dir.display()
    );
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(telemetry::status_page(&text, &heading))
}

async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({
            "status": "ok",
            "messages": state.room.n_messages(),
            "newest_time": state.room.newest_time(),
            "held_polls": state.held_polls.n_held(),
        }))
}

/// Browsers ask for it on every page; it is never a chat request (nothing is saved).
async fn favicon() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

/// What kind of chat request this is, by the original server's rules, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestKind {
    Join,
    Push,
    Exit,
    Pop,
}

impl RequestKind {
    /// The kind's name in the metrics: `join`, `push`, `exit`, `pop`.
    fn as_str(self) -> &'static str {
        match self {
            RequestKind::Join => "join",
            RequestKind::Push => "push",
            RequestKind::Exit => "exit",
            RequestKind::Pop => "pop",
        }
    }
}

fn classify(http_method: &HttpMethod, query: &Query) -> RequestKind {
    let is_post = http_method == HttpMethod::POST;
    let method = query.value("method");
    // `navigator.sendBeacon` can only POST: a POST that says exit is an exit.
    if is_post && method == Some("exit") {
        return RequestKind::Exit;
    }
    let time_missing = query.value("time").is_none_or(str::is_empty);
    match method {
        _ if time_missing || is_post => RequestKind::Join,
        // `!res.method` in the original: an empty value (jQuery's `method=` for an undefined
        // field) is as good as none.
        None | Some("") => RequestKind::Join,
        Some(value) => match Method::parse(value) {
            Method::Push => RequestKind::Push,
            Method::Exit => RequestKind::Exit,
            Method::Pop => RequestKind::Pop,
        },
    }
}

/// The answer being built: the echoed query parameters, then the server's fields.
struct Reply {
    callback: CallbackName,
    fields: Map<String, Value>,
    /// The request's `time`, when it is a whole number.
    client_time: Option<Cursor>,
    /// Counts the error answers.
    telemetry: Telemetry,
}

impl Reply {
    fn new(callback: CallbackName, query: &Query, telemetry: Telemetry) -> Reply {
        let mut fields = Map::new();
        for param in query.params() {
            if !SERVER_FIELDS.contains(&param.key.as_str()) {
                fields.insert(param.key.clone(), Value::String(param.value.clone()));
            }
        }
        let client_time = query.value("time").and_then(Cursor::parse);
        Reply {
            callback,
            fields,
            client_time,
            telemetry,
        }
    }

    fn finish(
        self,
        time: u64,
        messages: &[Message],
        online: Option<&OnlineSnapshot>,
    ) -> HttpResponse {
        jsonp::response(self.render(time, messages, online))
    }

    /// The JSONP body of the answer: the echoed fields with `time`, then `msgList` and the
    /// online list, serialized directly (a fan-out renders this once per held pop).
    fn render(
        mut self,
        time: u64,
        messages: &[Message],
        online: Option<&OnlineSnapshot>,
    ) -> String {
        // `insert` keeps an echoed key in its place, as assigning to it did in the original.
        self.fields.insert("time".to_owned(), Value::from(time));
        // A map of strings and numbers, and plain messages, always serialize.
        let mut json = serde_json::to_string(&self.fields).unwrap_or_else(|_| "{}".to_owned());
        json.pop(); // the closing brace; the server's list fields follow
        if json.len() > 1 {
            json.push(',');
        }
        json.push_str("\"msgList\":");
        json.push_str(&serde_json::to_string(messages).unwrap_or_else(|_| "[]".to_owned()));
        if let Some(online) = online {
            json.push(',');
            json.push_str(online.json_fields());
        }
        json.push('}');
        jsonp::render_body(&self.callback, &json)
    }

    /// The answer to a save: the saved name, text and time.
    fn saved(mut self, message: &Message, online: &OnlineSnapshot) -> HttpResponse {
        self.fields
            .insert("name".to_owned(), Value::String(message.name.clone()));
        self.fields
            .insert("msg".to_owned(), Value::String(message.msg.clone()));
        self.finish(message.time, &[], Some(online))
    }

    /// The answer to a pop.
    fn page(self, time: u64, messages: &[Message], online: &OnlineSnapshot) -> HttpResponse {
        self.finish(time, messages, Some(online))
    }

    /// A refusal through the callback: `error`, no messages, and a `time` the client can poll
    /// with (its own when it sent a valid one, else the newest).
    fn error(mut self, code: ErrorCode, message: String, newest_time: u64) -> HttpResponse {
        self.telemetry.error_answered(code);
        let time = self.client_time.map_or(newest_time, Cursor::as_millis);
        self.fields.insert(
            "error".to_owned(),
            serde_json::json!({ "code": code.as_str(), "message": message }),
        );
        self.finish(time, &[], None)
    }
}

fn plain_text(status: actix_web::http::StatusCode, text: &'static str) -> HttpResponse {
    let mut response = HttpResponse::build(status).body(text);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Every path with a query string is a chat request.
#[tracing::instrument(name = "chat", skip_all, fields(kind))]
async fn chat(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let raw_query = request.query_string();
    if raw_query.is_empty() {
        return plain_text(
            actix_web::http::StatusCode::OK,
            "chat-server: JSONP long-polling chat. Chat requests carry a query string; see docs/protocol.md\n",
        );
    }
    let raw_query_len = raw_query.len();
    let query = Query::parse(raw_query);
    // `res.callback || "callback"` in the original: an empty name is the default.
    let callback = match query.get("callback") {
        None => Ok(CallbackName::default_name()),
        Some(param) if param.error.is_some() => Err(()),
        Some(param) if param.value.is_empty() => Ok(CallbackName::default_name()),
        Some(param) => CallbackName::parse(&param.value).map_err(drop),
    };
    let Ok(callback) = callback else {
        // Never reflected: the name is not safe to write into a script.
        return plain_text(
            actix_web::http::StatusCode::BAD_REQUEST,
            "invalid callback name\n",
        );
    };
    let peer = request
        .peer_addr()
        .map_or(IpAddr::from([0, 0, 0, 0]), |addr| addr.ip());
    let forwarded_for = request
        .headers()
        .get("x-forwarded-for")
        .and_then(|value| value.to_str().ok());
    let ip = client_ip(peer, forwarded_for, &state.settings.trusted_proxies);
    let kind = classify(request.method(), &query);
    let closing = state.room.is_shutting_down();
    tracing::Span::current().record("kind", tracing::field::debug(kind));
    let reply = Reply::new(callback, &query, state.telemetry.clone());
    // Where a save goes when this process stops and a successor listens (see `save`).
    let location = closing.then(|| request.uri().to_string());
    // The request's head shares the connection's 8 KiB read buffer; a held pop that kept it
    // would cost that buffer for its whole hold time. Everything needed was copied out above.
    drop(request);
    let mut response = match kind {
        RequestKind::Pop if raw_query_len > MAX_POP_QUERY_BYTES => {
            // Answered after a pause, like other refused pops, so an old client does not spin.
            state.telemetry.refused(Limit::RequestTooLarge);
            tokio::time::sleep(REFUSED_POLL_DELAY).await;
            let message =
                format!("a pop's query string may have at most {MAX_POP_QUERY_BYTES} bytes");
            reply.error(
                ErrorCode::RequestTooLarge,
                message,
                state.room.newest_time(),
            )
        }
        RequestKind::Pop => pop(state, reply, &query, ip).await,
        save_kind => save(&state, reply, &query, save_kind, ip, location).await,
    };
    if closing {
        // Keep-alive connections are still served while the server drains; closing them makes
        // a legacy page reconnect (and find the server gone) instead of re-polling in a loop.
        response
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
    response
}

/// Stores a join, push or exit. `location` is the request's path and query, known while the
/// server is stopping: a save the closed room can no longer store is redirected there (`307`,
/// which keeps the method; `<script>` elements follow it) when a successor accepts on the same
/// listening socket, so no message is refused across a takeover or a socket-activated restart.
async fn save(
    state: &AppState,
    reply: Reply,
    query: &Query,
    kind: RequestKind,
    ip: IpAddr,
    location: Option<String>,
) -> HttpResponse {
    let newest = state.room.newest_time();
    let settings = &state.settings;
    let stored_params: &[&str] = if kind == RequestKind::Exit {
        &["name"]
    } else {
        &["name", "msg"]
    };
    for key in stored_params {
        if let Some(error) = query.get(key).and_then(|param| param.error) {
            return reply.error(
                ErrorCode::InvalidEncoding,
                format!("{key}: {error}"),
                newest,
            );
        }
    }
    let name = match Nickname::parse(query.value("name").unwrap_or(""), settings.max_name_len) {
        Ok(name) => name,
        Err(error) => return reply.error(error.code(), error.to_string(), newest),
    };
    let raw_msg = query.value("msg").unwrap_or("");
    let msg = match kind {
        RequestKind::Join if raw_msg.trim().is_empty() => Ok(JOIN_MESSAGE.to_owned()),
        RequestKind::Join => MessageText::parse_allow_empty(raw_msg, settings.max_msg_len)
            .map(MessageText::into_string),
        RequestKind::Exit => Ok(EXIT_MESSAGE.to_owned()),
        RequestKind::Push | RequestKind::Pop => {
            MessageText::parse(raw_msg, settings.max_msg_len).map(MessageText::into_string)
        }
    };
    let msg = match msg {
        Ok(msg) => msg,
        Err(error) => return reply.error(error.code(), error.to_string(), newest),
    };
    if let Err(wait) = state.save_limiter.check(ip) {
        state.telemetry.refused(Limit::SaveRate);
        let message = format!(
            "too many messages from this address; retry in {:.1} s",
            wait.as_secs_f64()
        );
        return reply.error(ErrorCode::RateLimited, message, newest);
    }
    // Seen before the save, so the answers its message wakes already list the sender.
    if kind != RequestKind::Exit {
        state.presence.seen(name.as_str());
    }
    match state.room.save(name.into_string(), msg).await {
        Ok(message) => {
            if kind == RequestKind::Exit {
                state.presence.left(&message.name);
            }
            state.telemetry.saved(kind.as_str());
            reply.saved(&message, &state.presence.snapshot())
        }
        Err(SaveError::Closed) if state.successor_listens.load(Ordering::SeqCst) => {
            match location {
                Some(location) => redirect_to_successor(&location),
                None => reply.error(
                    ErrorCode::ShuttingDown,
                    "the server is shutting down".to_owned(),
                    newest,
                ),
            }
        }
        Err(SaveError::Closed) => reply.error(
            ErrorCode::ShuttingDown,
            "the server is shutting down".to_owned(),
            newest,
        ),
        Err(error @ SaveError::Storage(_)) => {
            tracing::error!(error = %error, "save failed");
            reply.error(
                ErrorCode::StorageFailed,
                "the server could not store the message".to_owned(),
                newest,
            )
        }
    }
}

/// `307 Temporary Redirect` to `location` on the same address, closing this connection: the
/// client's next connection waits in the listening socket's queue for the successor.
fn redirect_to_successor(location: &str) -> HttpResponse {
    let mut response = HttpResponse::TemporaryRedirect().finish();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .head_mut()
        .set_connection_type(actix_web::http::ConnectionType::Close);
    response
}

/// The name a pop counts as online under: a cleanly decoded, valid nickname.
fn pop_presence_name(query: &Query, max_name_len: usize) -> Option<String> {
    let param = query.get("name").filter(|param| param.error.is_none())?;
    Nickname::parse(&param.value, max_name_len)
        .ok()
        .map(Nickname::into_string)
}

async fn pop(state: web::Data<AppState>, reply: Reply, query: &Query, ip: IpAddr) -> HttpResponse {
    let room = &state.room;
    let presence = &state.presence;
    // Only a held pop counts its name as online (a name counts while it pushes or holds a
    // pop): pops answered at once cost nothing to send, so they must not fill the list.
    let name = pop_presence_name(query, state.settings.max_name_len);
    let newest = room.newest_time();
    // Not a whole number, or ahead of the newest message: answer at once with the newest time.
    let Some(cursor) = reply
        .client_time
        .filter(|cursor| cursor.as_millis() <= newest)
    else {
        return reply.page(newest, &[], &presence.snapshot());
    };
    // Subscribe before looking, so a message published in between still wakes us.
    let changes = room.subscribe();
    match room.page_after(cursor).await {
        Ok(page) if !page.is_empty() => {
            return reply.page(page[page.len() - 1].time, &page, &presence.snapshot())
        }
        Ok(_) => {}
        Err(error) => {
            tracing::error!(error = %error, "could not read history");
            return reply.error(
                ErrorCode::StorageFailed,
                "the server could not read its history".to_owned(),
                newest,
            );
        }
    }
    if room.is_shutting_down() {
        return reply.page(cursor.as_millis(), &[], &presence.snapshot());
    }
    let permit = match state.held_polls.try_hold(ip) {
        Ok(permit) => permit,
        Err(HoldRefused::Overall) => {
            state.telemetry.refused(Limit::PollsOverall);
            let mut response = plain_text(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                "too many waiting clients; retry later\n",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        }
        Err(HoldRefused::PerAddress) => {
            state.telemetry.refused(Limit::PollsPerAddress);
            tokio::time::sleep(REFUSED_POLL_DELAY).await;
            let message = "too many waiting requests from this address".to_owned();
            return reply.error(ErrorCode::TooManyPolls, message, newest);
        }
    };
    let online = name.as_deref().and_then(|name| presence.hold(name));
    // `wait_for` looks at the current value first: a shutdown begun since the check above is
    // still seen.
    let shutdown = room.shutdown_signal();
    let held = HeldPop {
        state: state.clone(),
        reply,
        cursor,
        changes,
        shutdown,
        _permit: permit,
        _online: online,
    };
    // The answer's head goes out now and its body when the pop ends. Returning from the
    // handler lets actix free the request (its head and headers, several KiB), so a held pop
    // costs little more than its connection; the body future owns only what it needs. A
    // client that goes away drops the body future, and with it the permit and presence.
    jsonp::held_response(futures_util::stream::once(held.answer()))
}

/// A pop waiting for a message, a timeout or the shutdown.
struct HeldPop {
    state: web::Data<AppState>,
    reply: Reply,
    cursor: Cursor,
    changes: tokio::sync::watch::Receiver<u64>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    _permit: crate::limits::HeldPollPermit,
    _online: Option<crate::presence::HeldPresence>,
}

impl HeldPop {
    /// Waits, then renders the answer's body.
    async fn answer(mut self) -> Result<actix_web::web::Bytes, std::convert::Infallible> {
        let room = &self.state.room;
        let deadline = tokio::time::sleep(self.state.settings.poll_timeout());
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                changed = self.changes.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let woke = Instant::now();
                    match room.page_after(self.cursor).await {
                        Ok(page) if !page.is_empty() => {
                            let snapshot = self.state.presence.snapshot();
                            let body = self.reply.render(page[page.len() - 1].time, &page, Some(&snapshot));
                            self.state.telemetry.woke(woke.elapsed());
                            return Ok(body.into());
                        }
                        Ok(_) => {}
                        Err(error) => {
                            tracing::error!(error = %error, "could not read history");
                            break;
                        }
                    }
                }
                () = &mut deadline => break,
                _ = self.shutdown.wait_for(|&closing| closing) => break,
            }
        }
        let snapshot = self.state.presence.snapshot();
        Ok(self
            .reply
            .render(self.cursor.as_millis(), &[], Some(&snapshot))
            .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_the_original_rules_in_order() {
        let get = HttpMethod::GET;
        let post = HttpMethod::POST;
        let cases = [
            (&get, "name=a", RequestKind::Join),
            (&get, "name=a&method=pop", RequestKind::Join),
            (&get, "name=a&method=pop&time=", RequestKind::Join),
            (&get, "name=a&time=5", RequestKind::Join),
            (&get, "name=a&method=push&msg=hi", RequestKind::Join),
            (&get, "name=a&method=push&msg=hi&time=5", RequestKind::Push),
            (&get, "name=a&method=exit&time=5", RequestKind::Exit),
            (&get, "name=a&method=pop&time=5", RequestKind::Pop),
            (&get, "name=a&method=anything&time=5", RequestKind::Pop),
            (&get, "name=a&method=PUSH&time=5", RequestKind::Pop),
            (&get, "name=a&method=&time=5", RequestKind::Join),
            (&post, "name=a&method=pop&time=5", RequestKind::Join),
            (&post, "name=a&method=exit&time=5", RequestKind::Exit),
            (&post, "name=a&method=exit", RequestKind::Exit),
        ];
        for (http_method, query, expected) in cases {
            assert_eq!(
                classify(http_method, &Query::parse(query)),
                expected,
                "{http_method} ?{query}"
            );
        }
    }

    /// An app on a fresh data folder whose room is already closed, as in the last moments of
    /// a stop; `successor_listens` as a takeover or a socket-activated restart sets it.
    async fn closed_app_state(
        dir: &std::path::Path,
        successor_listens: bool,
    ) -> web::Data<AppState> {
        let settings = Settings::for_tests("127.0.0.1:0".parse().expect("address"), dir.to_owned());
        let loaded = crate::storage::Store::open(dir, 100, 100, crate::storage::LockWait::Refuse)
            .expect("opens");
        let room = Room::start(
            loaded,
            Arc::new(crate::clock::SystemClock),
            100,
            crate::room::RoomLimits { page_size: 100 },
            Telemetry::new(),
        )
        .expect("starts");
        room.begin_shutdown();
        room.close().await;
        web::Data::new(AppState {
            room,
            held_polls: HeldPolls::new(10, 10),
            save_limiter: {
                let hundred = std::num::NonZeroU32::new(100).expect("not zero");
                SaveRateLimiter::new(hundred, hundred)
            },
            presence: Arc::new(Presence::new(Duration::from_secs(1))),
            settings: Arc::new(settings),
            telemetry: Telemetry::new(),
            successor_listens: AtomicBool::new(successor_listens),
        })
    }

    #[actix_web::test]
    async fn a_save_reaching_a_closed_room_is_redirected_to_the_successor_on_the_same_socket() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = closed_app_state(dir.path(), true).await;
        let app = actix_web::test::init_service(
            actix_web::App::new()
                .app_data(state)
                .configure(configure(None)),
        )
        .await;
        let uri = "/?name=a&method=push&msg=hi&time=1&callback=cb";
        let response = actix_web::test::call_service(
            &app,
            actix_web::test::TestRequest::get().uri(uri).to_request(),
        )
        .await;
        assert_eq!(
            response.status(),
            actix_web::http::StatusCode::TEMPORARY_REDIRECT
        );
        assert_eq!(
            response
                .headers()
                .get(header::LOCATION)
                .map(HeaderValue::as_bytes),
            Some(uri.as_bytes())
        );
        assert_eq!(
            response.response().head().connection_type(),
            actix_web::http::ConnectionType::Close
        );
    }

    #[actix_web::test]
    async fn a_save_reaching_a_closed_room_with_no_successor_is_refused_through_the_callback() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = closed_app_state(dir.path(), false).await;
        let app = actix_web::test::init_service(
            actix_web::App::new()
                .app_data(state)
                .configure(configure(None)),
        )
        .await;
        let request = actix_web::test::TestRequest::get()
            .uri("/?name=a&method=push&msg=hi&time=1&callback=cb")
            .to_request();
        let body = actix_web::test::call_and_read_body(&app, request).await;
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("\"code\":\"shutting_down\""), "{body}");
    }
}
