//! HTTP routes: the legacy chat protocol on every path, plus `/healthz` and `/favicon.ico`,
//! and the operators' `/metrics` and `/status` on their own listener.
//!
//! Routes only do HTTP: they read the request's address and query, hand the query to
//! [`crate::protocol`] and the typed request to the [`Room`], apply the limits, and turn what
//! comes back into responses. The rules themselves are written down, with examples, in
//! `docs/protocol.md`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method as HttpMethod;
use actix_web::{web, HttpRequest, HttpResponse};
use chat_shared::{Cursor, MessageText, Nickname};

use crate::backend::{BackendError, BackendStatus, Draft};
use crate::config::Settings;
use crate::hangup::{PeerSide, WatchedConnection};
use crate::jsonp;
use crate::limits::{client_ip, HeldPolls, HoldRefused, SaveRateLimiter};
use crate::protocol::{
    self, AnswerWriter, HistoryPage, Parsed, Refusal, Request, TextLimits, CHAT_PARAMETERS,
};
use crate::query::Query;
use crate::room::{Reached, Room, SaveError};
use crate::rooms::{Rooms, RoomsError};
use crate::telemetry::{self, Limit, SaveKind, StateFigures, Telemetry};

/// `X-Forwarded-For`, named once: looking a header up by a `&str` that is not one of the
/// standard names builds (allocates) a header name on every request.
const X_FORWARDED_FOR: header::HeaderName = header::HeaderName::from_static("x-forwarded-for");

/// How long a pop refused for too many held pops from one address, or for its size, waits
/// before it is answered, so that an old client, which re-polls at once, does not spin.
const REFUSED_POLL_DELAY: Duration = Duration::from_secs(1);

/// How long a pop whose cursor this instance has not reached yet, but the shared backend has,
/// waits for this instance to catch up.
const CURSOR_PATIENCE: Duration = Duration::from_secs(2);

/// Everything the handlers share. Built once, outside the `HttpServer::new` closure.
#[derive(Debug)]
pub struct AppState {
    /// The rooms: the legacy room and the named ones.
    pub rooms: Rooms,
    /// Held-pop limits.
    pub held_polls: HeldPolls,
    /// Save rate limits.
    pub save_limiter: SaveRateLimiter,
    /// The settings the server runs with.
    pub settings: Arc<Settings>,
    /// The operators' figures.
    pub telemetry: Telemetry,
    /// Set (once) when a request from a loopback or private address carried `X-Forwarded-For`
    /// while no `--trusted-proxy` is set: that address is then a proxy whose clients all share
    /// one address's limits.
    pub untrusted_proxy: std::sync::OnceLock<IpAddr>,
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
            messages: self.rooms.legacy().n_messages(),
            online_names: self.rooms.legacy().online().count,
            storage_bytes: crate::storage::bytes_on_disk(&self.settings.data_dir),
        }
    }

    /// Notes a request from `peer` that carried `X-Forwarded-For`: when no proxy is trusted and
    /// the peer is on loopback or a private network, it is a proxy, and every client behind it
    /// shares its limits. Warns once, and `/healthz` says so from then on.
    fn note_untrusted_proxy(&self, peer: IpAddr) {
        if !self.settings.trusted_proxies.is_empty() || self.untrusted_proxy.get().is_some() {
            return;
        }
        let peer = peer.to_canonical();
        let local = match peer {
            IpAddr::V4(ip) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
            IpAddr::V6(ip) => {
                ip.is_loopback() || ip.is_unique_local() || ip.is_unicast_link_local()
            }
        };
        if local && self.untrusted_proxy.set(peer).is_ok() {
            tracing::warn!(
                proxy = %peer,
                "requests from {peer} carry X-Forwarded-For but no --trusted-proxy is set: all the clients behind that proxy share one address's limits; start with --trusted-proxy {peer}"
            );
        }
    }

    fn text_limits(&self) -> TextLimits {
        TextLimits {
            max_name_len: self.settings.max_name_len,
            max_msg_len: self.settings.max_msg_len,
            page_size: self.settings.page_size,
        }
    }
}

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
            .all(|param| !CHAT_PARAMETERS.contains(&&*param.key))
}

/// The `Cache-Control` of one of the page's files, by its path: a file whose name carries
/// trunk's content hash (`chat-frontend-<16 hex>.js`, `…_bg.wasm`, `style-<16 hex>.css`) never
/// changes under that name, so browsers keep it a year without asking again; anything else
/// (`index.html`, which names the current hashed files) is revalidated on every load.
pub fn page_cache_control(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or("");
    let hashed = name.rsplit_once('-').is_some_and(|(_, rest)| {
        rest.len() > 16
            && rest.as_bytes()[..16].iter().all(u8::is_ascii_hexdigit)
            && matches!(rest.as_bytes()[16], b'.' | b'_')
    });
    if hashed {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    }
}

/// Registers the routes; used by the server and by tests alike. With `static_dir`, page
/// requests (see [`is_page_request`]) are served from it (`index.html` for `/`).
pub fn configure(
    static_dir: Option<std::path::PathBuf>,
) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg| {
        cfg.route("/healthz", web::route().to(healthz))
            .route("/favicon.ico", web::route().to(favicon));
        if let Some(dir) = &static_dir {
            // The page's files, compressed when the browser asks (gzip or br), with a cache
            // lifetime fitted to each (see `page_cache_control`).
            cfg.service(
                web::scope("")
                    .guard(actix_web::guard::fn_guard(|ctx| {
                        is_page_request(ctx.head())
                    }))
                    .wrap(actix_web::middleware::Compress::default())
                    .wrap_fn({
                        let index = dir.join("index.html");
                        move |request, service| {
                            let cache_control = page_cache_control(request.path());
                            // The page itself gets its policy, from the index.html served now
                            // (a new build changes its loader's hash).
                            let policy = matches!(request.path(), "/" | "/index.html")
                                .then(|| std::fs::read_to_string(&index).ok())
                                .flatten()
                                .map(|html| crate::page_policy::content_security_policy(&html))
                                .and_then(|policy| HeaderValue::from_str(&policy).ok());
                            let response = actix_web::dev::Service::call(service, request);
                            async move {
                                let mut response = response.await?;
                                let headers = response.headers_mut();
                                headers.insert(
                                    header::CACHE_CONTROL,
                                    HeaderValue::from_static(cache_control),
                                );
                                if let Some(policy) = policy {
                                    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
                                }
                                Ok(response)
                            }
                        }
                    })
                    .service(actix_files::Files::new("/", dir).index_file("index.html")),
            );
        }
        cfg.default_service(actix_web::dev::fn_service(chat_service));
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

/// `200 {"status":"ok",…}`, or `503 {"status":"degraded","reason":…,…}` while the backend
/// fails (saves then get `storage_failed`); the other fields are the room's figures.
async fn healthz(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(response) = answer_read_only_method(&request) {
        return response;
    }
    let mut figures = serde_json::json!({
        "status": "ok",
        "messages": state.rooms.legacy().n_messages(),
        "newest_time": state.rooms.legacy().newest_time(),
        "rooms": state.rooms.n_open(),
        "held_polls": state.held_polls.n_held(),
    });
    if let Some(proxy) = state.untrusted_proxy.get() {
        figures["warnings"] = serde_json::json!([format!(
            "requests from {proxy} carry X-Forwarded-For but no --trusted-proxy is set: its clients share one address's limits"
        )]);
    }
    let mut response = match state.rooms.legacy().backend_status() {
        BackendStatus::Ok => HttpResponse::Ok(),
        BackendStatus::Degraded(reason) => {
            figures["status"] = "degraded".into();
            figures["reason"] = reason.into();
            HttpResponse::ServiceUnavailable()
        }
    };
    response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(figures)
}

/// Browsers ask for it on every page; it is never a chat request (nothing is saved).
async fn favicon(request: HttpRequest) -> HttpResponse {
    answer_read_only_method(&request).unwrap_or_else(|| HttpResponse::NoContent().finish())
}

/// The methods of the read-only resources (`/healthz`, `/favicon.ico`), for `Allow`.
const READ_ONLY_METHODS: &str = "GET, HEAD, OPTIONS";

/// Answers the methods a read-only resource does not serve: `OPTIONS` gets 204 and `Allow`,
/// any method but `GET` and `HEAD` gets 405 and `Allow` (the HTTP layer answers `HEAD` with the
/// headers of the `GET`, without the body). `None` for `GET` and `HEAD`.
fn answer_read_only_method(request: &HttpRequest) -> Option<HttpResponse> {
    let status = match *request.method() {
        HttpMethod::GET | HttpMethod::HEAD => return None,
        HttpMethod::OPTIONS => actix_web::http::StatusCode::NO_CONTENT,
        _ => actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
    };
    let mut response = HttpResponse::build(status).finish();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(READ_ONLY_METHODS));
    Some(response)
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

/// A refusal through the callback (counted in the metrics); `newest_time` is the `time` given
/// when the request had no whole-number `time` of its own.
fn refuse(
    state: &AppState,
    answer: &AnswerWriter,
    refusal: &Refusal,
    newest_time: u64,
) -> HttpResponse {
    state.telemetry.error_answered(refusal.code());
    jsonp::response(answer.refusal(refusal, newest_time))
}

/// The methods a chat request may use, for `Allow`.
const ALLOWED_METHODS: &str = "GET, HEAD, POST, OPTIONS";

/// Answers methods that must have no effect: `OPTIONS` (a CORS preflight, a probe) gets 204
/// and `Allow`; `HEAD` (link checkers, link previews) gets the status and headers a `GET`
/// would get at once, without running the request (a pop is never held); any method but
/// `GET` and `POST` gets 405 with `Allow`. `None` for `GET` and `POST`, which run the chat.
fn answer_without_effect(request: &HttpRequest, state: &AppState) -> Option<HttpResponse> {
    let with_allow = |mut response: HttpResponse| {
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
        response
    };
    match *request.method() {
        HttpMethod::GET | HttpMethod::POST => None,
        HttpMethod::OPTIONS => Some(with_allow(HttpResponse::NoContent().finish())),
        HttpMethod::HEAD => {
            let raw_query = request.query_string();
            let response = if raw_query.is_empty() {
                // The HTTP layer sends a HEAD's headers only.
                without_query(request.path())
            } else {
                match protocol::parse(&HttpMethod::GET, raw_query, state.text_limits()) {
                    Ok(_) => jsonp::response(String::new()),
                    Err(_) => plain_text(actix_web::http::StatusCode::BAD_REQUEST, ""),
                }
            };
            Some(response)
        }
        _ => Some(with_allow(plain_text(
            actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: chat requests are GET (POST for an exit beacon)\n",
        ))),
    }
}

/// A request without a query string that no file of the page answered: on `/` (when no page
/// is served) a short note of what this server is; any other path is not found (`/robots.txt`,
/// `/foo`, a missing asset: link checkers and crawlers must not take them for pages).
fn without_query(path: &str) -> HttpResponse {
    if path == "/" {
        plain_text(
            actix_web::http::StatusCode::OK,
            "chat-server: JSONP long-polling chat. Chat requests carry a query string; see docs/protocol.md\n",
        )
    } else {
        plain_text(actix_web::http::StatusCode::NOT_FOUND, "not found\n")
    }
}

/// Serves [`chat`] with the request's headers compacted first. A held pop is answered in one
/// piece when it ends, and the request stays alive until then (actix-web answers a request
/// together with it); its head comes from actix-http's pool with room for 16 headers, about
/// 6.9 KiB of header map per held pop where a client sends a handful (measured with valgrind's
/// massif, BENCHMARKS.md).
async fn chat_service(
    mut request: actix_web::dev::ServiceRequest,
) -> Result<actix_web::dev::ServiceResponse, actix_web::Error> {
    compact_headers(request.headers_mut());
    let Some(state) = request.app_data::<web::Data<AppState>>().cloned() else {
        return Err(actix_web::error::ErrorInternalServerError(
            "the chat's state is not configured",
        ));
    };
    let (request, _payload) = request.into_parts();
    let response = chat(request.clone(), state).await;
    Ok(actix_web::dev::ServiceResponse::new(request, response))
}

/// Replaces `headers` by a map just big enough for its entries (the values are shared, not
/// copied).
fn compact_headers(headers: &mut actix_web::http::header::HeaderMap) {
    let mut compact = actix_web::http::header::HeaderMap::with_capacity(headers.len());
    for (name, value) in headers.iter() {
        compact.append(name.clone(), value.clone());
    }
    *headers = compact;
}

/// Every path with a query string is a chat request. Its span (with the request's kind) is at
/// debug level: made for every request, it took about 8 % of the server's user time in a
/// fan-out's profile (BENCHMARKS.md, change 9), for context that the JSON log does not print.
#[tracing::instrument(name = "chat", level = "debug", skip_all, fields(kind))]
async fn chat(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(response) = answer_without_effect(&request, &state) {
        return response;
    }
    let raw_query = request.query_string();
    if raw_query.is_empty() {
        return without_query(request.path());
    }
    let Ok(Parsed {
        answer,
        room: room_name,
        request: parsed,
    }) = protocol::parse(request.method(), raw_query, state.text_limits())
    else {
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
        .get(X_FORWARDED_FOR)
        .and_then(|value| value.to_str().ok());
    let ip = client_ip(peer, forwarded_for, &state.settings.trusted_proxies);
    if forwarded_for.is_some() {
        state.note_untrusted_proxy(peer);
    }
    let closing = state.rooms.legacy().is_shutting_down();
    // Where a save goes when this process stops and a successor listens (see `save`): the
    // same query on the page's own path, as a relative reference.
    let location = closing.then(|| format!("?{raw_query}"));
    let peer_side = request
        .conn_data::<WatchedConnection>()
        .map(WatchedConnection::peer_side);
    // Everything needed was copied out above, so the held pop's future does not carry the
    // request (actix-web's handler keeps its own handle until the answer; BENCHMARKS.md
    // measures what a held pop costs).
    drop(request);
    if let Ok(request) = &parsed {
        tracing::Span::current().record("kind", request.kind());
    }
    let room = match state.rooms.get(room_name.as_ref()).await {
        Ok(room) => room,
        Err(error) => {
            let refusal = match error {
                RoomsError::TooMany { max } => Refusal::TooManyRooms { max },
                RoomsError::Closed => Refusal::ShuttingDown,
                RoomsError::Backend(error) => {
                    tracing::error!(error = %error, room = ?room_name, "cannot open a room");
                    Refusal::StorageFailed
                }
            };
            // No time of that room is known: a client without one starts from its beginning.
            return refuse(&state, &answer, &refusal, 0);
        }
    };
    let mut response = match parsed {
        Err(refusal @ Refusal::RequestTooLarge) => {
            // Answered after a pause, like other refused pops, so an old client does not spin.
            state.telemetry.refused(Limit::RequestTooLarge);
            tokio::time::sleep(REFUSED_POLL_DELAY).await;
            refuse(&state, &answer, &refusal, room.newest_time())
        }
        Err(refusal) => refuse(&state, &answer, &refusal, room.newest_time()),
        Ok(Request::Pop {
            cursor,
            name,
            history,
        }) => {
            let client = HeldClient { ip, peer_side };
            // Each kind of request in an allocation of its own: the request's own future stays
            // small (a few hundred bytes, within glibc's per-thread cache), and a held pop
            // carries only the state of the branch it took.
            match history {
                Some(HistoryPage::Newest { n }) => {
                    Box::pin(newest_page(&state, room, &answer, n)).await
                }
                Some(HistoryPage::Before { before, n }) => {
                    Box::pin(earlier_page(&state, room, &answer, before, n)).await
                }
                None => Box::pin(pop(state, room, answer, cursor, name, client)).await,
            }
        }
        Ok(save_request) => {
            Box::pin(save(&state, &room, &answer, save_request, ip, location)).await
        }
    };
    if closing {
        // Keep-alive connections are still served while the server drains; closing them makes
        // a legacy page reconnect (and reach the successor, or find the server gone) instead of
        // re-polling in a loop.
        response
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
    response
}

/// Stores a join, push or exit. `location` is the request's query as a relative reference,
/// known while the server is stopping: a save the closed room can no longer store is
/// redirected there (`307`, which keeps the method; `<script>` elements follow it) when a
/// successor accepts on the same listening socket, so no save is refused across a takeover or
/// a socket-activated restart.
async fn save(
    state: &AppState,
    room: &Room,
    answer: &AnswerWriter,
    request: Request,
    ip: IpAddr,
    location: Option<String>,
) -> HttpResponse {
    let newest = room.newest_time();
    if let Err(retry_in) = state.save_limiter.check(ip) {
        state.telemetry.refused(Limit::SaveRate);
        return refuse(state, answer, &Refusal::RateLimited { retry_in }, newest);
    }
    let (kind, draft) = match request {
        Request::Join { name, msg, cid } => (SaveKind::Join, Draft { name, msg, cid }),
        Request::Push { name, msg, cid } => (SaveKind::Push, Draft { name, msg, cid }),
        Request::Exit { name, cid } => (
            SaveKind::Exit,
            Draft {
                name,
                msg: MessageText::exit_message(),
                cid,
            },
        ),
        Request::Pop { .. } => unreachable!("pops are answered by `pop`"),
    };
    // Seen before the save, so the answers its message wakes already list the sender.
    if kind != SaveKind::Exit {
        room.seen(&draft.name);
    }
    match room.save(draft).await {
        Ok(message) => {
            if kind == SaveKind::Exit {
                room.left(&message.name);
            }
            state.telemetry.saved(kind);
            jsonp::response(answer.saved(&message, &room.online()))
        }
        Err(SaveError::Closed) if state.successor_listens.load(Ordering::SeqCst) => {
            match location {
                Some(location) => redirect_to_successor(&location),
                None => refuse(state, answer, &Refusal::ShuttingDown, newest),
            }
        }
        Err(SaveError::Closed) => refuse(state, answer, &Refusal::ShuttingDown, newest),
        Err(error @ SaveError::Storage(_)) => {
            // An outage of the backend is logged once by the backend itself; each save it
            // refuses meanwhile is not news.
            if room.backend_status() == BackendStatus::Ok {
                tracing::error!(error = %error, "save failed");
            } else {
                tracing::debug!(error = %error, "save failed during a backend outage");
            }
            refuse(state, answer, &Refusal::StorageFailed, newest)
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

/// Answers a pop with `last=N` at once: the room's newest `last` messages, oldest first, and
/// the newest time as its cursor (history on arrival; the cursor the client sent is not used).
async fn newest_page(
    state: &AppState,
    room: Room,
    answer: &AnswerWriter,
    last: usize,
) -> HttpResponse {
    match room.newest(last).await {
        Ok(messages) => {
            let time = messages
                .last()
                .map_or_else(|| room.newest_time(), |message| message.time);
            jsonp::response(answer.page(time, &messages, &room.online(), None))
        }
        Err(error) => history_unreadable(state, &room, answer, &error),
    }
}

/// The refusal of a history read the backend failed (`history_unreadable`), logged.
fn history_unreadable(
    state: &AppState,
    room: &Room,
    answer: &AnswerWriter,
    error: &BackendError,
) -> HttpResponse {
    tracing::error!(error = %error, "could not read history");
    refuse(
        state,
        answer,
        &Refusal::HistoryUnreadable,
        room.newest_time(),
    )
}

/// Answers a pop with `last=N&before=T` at once: the `N` messages just older than `T`, oldest
/// first (more to keep a group sharing a time whole), and as its `time` the time of the newest
/// message older than those, 0 when there is none (scrolling back; the cursor the client sent
/// is not used, and the client keeps polling with its own).
async fn earlier_page(
    state: &AppState,
    room: Room,
    answer: &AnswerWriter,
    before: Cursor,
    n: usize,
) -> HttpResponse {
    match room.earlier(before, n).await {
        Ok(page) => {
            jsonp::response(answer.page(page.older_through, &page.messages, &room.online(), None))
        }
        Err(error) => history_unreadable(state, &room, answer, &error),
    }
}

/// What a pop needs to know of its client and connection.
struct HeldClient {
    /// The client's address, for the held-pop limits.
    ip: IpAddr,
    /// The client's side of the connection, when it is watched: a held pop ends when it ends.
    peer_side: Option<Arc<PeerSide>>,
}

/// Answers a pop: at once when there is something to answer, else held until a message, the
/// hold time, the client's side of the connection ending, or the shutdown.
async fn pop(
    state: web::Data<AppState>,
    room: Room,
    answer: AnswerWriter,
    cursor: Option<Cursor>,
    name: Option<Nickname>,
    client: HeldClient,
) -> HttpResponse {
    let HeldClient { ip, peer_side } = client;
    let newest = room.newest_time();
    // Not a whole number, or ahead of the newest message: answer at once with the newest time.
    let cursor = match cursor {
        Some(cursor) => match room.has_reached(cursor, CURSOR_PATIENCE).await {
            Reached::Yes => cursor,
            Reached::Ahead => {
                return jsonp::response(answer.page(room.newest_time(), &[], &room.online(), None))
            }
            // Its own cursor back, so that it asks again from where it is.
            Reached::Unknown => {
                return jsonp::response(answer.page(cursor.as_millis(), &[], &room.online(), None))
            }
        },
        None => return jsonp::response(answer.page(newest, &[], &room.online(), None)),
    };
    // Subscribe before looking, so a message published in between still wakes us.
    let changes = room.subscribe();
    match room.page_after(cursor).await {
        Ok(page) if !page.is_empty() => {
            let time = page[page.len() - 1].time;
            let notice = room
                .is_trimmed_after(cursor)
                .then_some(&Refusal::HistoryTrimmed);
            if let Some(notice) = notice {
                state.telemetry.error_answered(notice.code());
            }
            return jsonp::response(answer.page(time, &page, &room.online(), notice));
        }
        Ok(_) => {}
        Err(error) => {
            tracing::error!(error = %error, "could not read history");
            return refuse(&state, &answer, &Refusal::HistoryUnreadable, newest);
        }
    }
    if room.is_shutting_down() {
        return jsonp::response(answer.page(cursor.as_millis(), &[], &room.online(), None));
    }
    // Only a held pop counts its name as online (a name counts while it pushes or holds a
    // pop): pops answered at once cost nothing to send, so they must not fill the list.
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
            return refuse(&state, &answer, &Refusal::TooManyPolls, newest);
        }
    };
    let online = name.and_then(|name| room.hold_presence(name));
    let held = HeldPop {
        state: state.clone(),
        room,
        answer,
        cursor,
        changes,
        peer_side,
        _permit: permit,
        _online: online,
    };
    // Answered in one piece (head and sized body) when the pop ends: one write per answer in
    // a fan-out. A client that goes away ends the wait through `peer_side`.
    jsonp::response(Box::pin(held.render()).await)
}

/// A pop waiting for a message, a timeout or the shutdown.
struct HeldPop {
    state: web::Data<AppState>,
    room: Room,
    answer: AnswerWriter,
    cursor: Cursor,
    changes: tokio::sync::watch::Receiver<u64>,
    peer_side: Option<Arc<PeerSide>>,
    _permit: crate::limits::HeldPollPermit,
    _online: Option<crate::room::HeldPresence>,
}

impl HeldPop {
    /// Waits, then renders the answer's body.
    async fn render(self) -> String {
        let HeldPop {
            state,
            room,
            answer,
            cursor,
            changes,
            peer_side,
            _permit,
            _online,
        } = self;
        let waiting = Box::pin(room.wait_after(cursor, changes, state.settings.poll_timeout()));
        let waited = match peer_side {
            // Its client hung up (or half-closed, and reads on): answered as at the hold time.
            Some(peer_side) => tokio::select! {
                waited = waiting => waited,
                () = peer_side.ended() => Ok(None),
            },
            None => waiting.await,
        };
        let snapshot = room.online();
        let body = match waited {
            Ok(Some((page, woke))) => {
                let body = answer.shared_page(&page, &snapshot);
                state.telemetry.woke(woke.elapsed());
                body
            }
            Ok(None) => answer.page(cursor.as_millis(), &[], &snapshot, None),
            Err(error) => {
                tracing::error!(error = %error, "could not read history");
                answer.page(cursor.as_millis(), &[], &snapshot, None)
            }
        };
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_page_files_are_cached_for_a_year_and_the_rest_revalidated() {
        for immutable in [
            "/chat-frontend-eba14b313fc28f9b.js",
            "/chat-frontend-eba14b313fc28f9b_bg.wasm",
            "/style-2aa69f8071ecca8d.css",
        ] {
            assert_eq!(
                page_cache_control(immutable),
                "public, max-age=31536000, immutable",
                "{immutable}"
            );
        }
        for revalidated in [
            "/",
            "/index.html",
            "/app.js",
            "/my-page.css",
            "/a-eba14b313fc28f9.js",
        ] {
            assert_eq!(page_cache_control(revalidated), "no-cache", "{revalidated}");
        }
    }

    /// An app on a fresh data folder whose room is already closed, as in the last moments of
    /// a stop; `successor_listens` as a takeover or a socket-activated restart sets it.
    async fn closed_app_state(
        dir: &std::path::Path,
        successor_listens: bool,
    ) -> web::Data<AppState> {
        let settings = Settings::for_tests("127.0.0.1:0".parse().expect("address"), dir.to_owned());
        let loaded =
            crate::storage::Store::open(dir, 100, crate::storage::LockWait::Refuse).expect("opens");
        let clock: Arc<dyn crate::clock::Clock> = Arc::new(crate::clock::SystemClock);
        let backend =
            crate::backend::local::LocalBackend::start(loaded, clock.clone(), Telemetry::new())
                .expect("starts");
        let room = Room::start(
            Arc::new(backend),
            Arc::new(crate::presence::Presence::new(
                Duration::from_secs(1),
                clock.clone(),
            )),
            crate::room::RoomLimits {
                page_size: 100,
                memory_messages: 100,
            },
        )
        .await
        .expect("starts");
        room.begin_shutdown();
        room.close(crate::backend::Flush::Compact).await;
        /// No named room in these tests.
        #[derive(Debug)]
        struct NoNamedRooms;

        #[async_trait::async_trait]
        impl crate::rooms::RoomOpener for NoNamedRooms {
            async fn open(
                &self,
                _: &chat_shared::RoomName,
            ) -> Result<Room, crate::backend::BackendError> {
                Err(crate::backend::BackendError::Closed)
            }
        }

        web::Data::new(AppState {
            rooms: Rooms::new(
                room,
                Arc::new(NoNamedRooms),
                clock.clone(),
                10,
                Duration::from_secs(600),
            ),
            held_polls: HeldPolls::new(10, 10),
            save_limiter: {
                let hundred = std::num::NonZeroU32::new(100).expect("not zero");
                SaveRateLimiter::new(hundred, hundred, clock)
            },
            settings: Arc::new(settings),
            telemetry: Telemetry::new(),
            untrusted_proxy: std::sync::OnceLock::new(),
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
        let query = "name=a&method=push&msg=hi&time=1&callback=cb";
        let uri = format!("/chat/?{query}");
        let response = actix_web::test::call_service(
            &app,
            actix_web::test::TestRequest::get().uri(&uri).to_request(),
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
            Some(format!("?{query}").as_bytes()),
            "a relative reference keeps the page's path"
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
