//! Building and running the server: take the listeners (bound, inherited through socket
//! activation, or taken over from a running process), load the data folder, start the room,
//! serve until stopped, then flush.
//!
//! Stopping (SIGTERM, or a takeover) is ordered so that no connection is refused when a
//! successor shares the listening socket: held pops answer at once, accepting stops (new
//! connections wait in the kernel's accept queue), the connections still open get a short
//! drain window, then the room is flushed and the data folder released, so the successor can
//! load it while the last answers go out.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Extensions, Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use anyhow::Context;

use crate::backend::local::LocalBackend;
use crate::backend::redis::{RedisBackend, RedisConfig, RedisPresence};
use crate::backend::BackendError;
use crate::backend::Flush;
use crate::clock::Clock;
use crate::config::Settings;
use crate::drain::DrainOnClose;
use crate::handover::{self, HandoverSocket};
use crate::limits::{HeldPolls, SaveRateLimiter};
use crate::presence::Presence;
use crate::room::{Room, RoomLimits};
use crate::rooms::{RoomOpener, Rooms};
use crate::routes::{self, AppState};
use crate::storage::{LockWait, Store};
use crate::telemetry::Telemetry;
use actix_service::ServiceFactoryExt as _;
use chat_shared::RoomName;

/// How long a graceful stop waits for requests in flight, in seconds, once the data folder is
/// released. Held pops answer at once when the stop begins, so this is only reached by a
/// stuck client or an idle keep-alive connection.
const SHUTDOWN_TIMEOUT_SECS: u64 = 1;

/// How long a stop waits for open connections to close after the held pops were answered,
/// before it flushes and releases the data folder. Clients that poll again at once are told
/// `Connection: close` and leave within milliseconds; idle keep-alive connections of browsers
/// are not waited for longer than this.
const DRAIN_WINDOW: Duration = Duration::from_millis(300);

/// How long a takeover waits for the running process to release the data folder.
pub const TAKEOVER_LOCK_WAIT: Duration = Duration::from_secs(30);

/// How often the save rate limiter forgets idle addresses.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(60);

/// How often the metrics recorder's upkeep runs.
const METRICS_UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Where the chat listener came from; logged at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerSource {
    /// Bound by this process to `--bind`.
    Bound,
    /// Inherited through socket activation (`LISTEN_FDS`, e.g. from systemd).
    Inherited,
    /// Received from the process this one took over from (`--takeover`).
    TakenOver,
}

impl ListenerSource {
    /// How it is named in logs: `bound`, `inherited`, `taken over`.
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerSource::Bound => "bound",
            ListenerSource::Inherited => "inherited",
            ListenerSource::TakenOver => "taken over",
        }
    }
}

/// The listening sockets a server runs on.
#[derive(Debug)]
pub struct Listeners {
    /// The chat listener.
    pub chat: TcpListener,
    /// The operators' listener (`/metrics`, `/status`), when one is wanted.
    pub metrics: Option<TcpListener>,
    /// Where `chat` came from.
    pub source: ListenerSource,
}

impl Listeners {
    /// Binds `settings.bind` and, when set, `settings.metrics_bind`.
    ///
    /// # Errors
    /// An address cannot be bound (for example it is in use: a second server refuses to start).
    pub fn bind(settings: &Settings) -> anyhow::Result<Listeners> {
        let chat = TcpListener::bind(settings.bind)
            .with_context(|| format!("cannot listen on {}", settings.bind))?;
        Ok(Listeners {
            chat,
            metrics: bind_metrics(settings)?,
            source: ListenerSource::Bound,
        })
    }

    /// The chat listener inherited through socket activation, plus a metrics listener bound to
    /// `settings.metrics_bind` when set.
    ///
    /// # Errors
    /// The metrics address cannot be bound.
    pub fn inherited(chat: TcpListener, settings: &Settings) -> anyhow::Result<Listeners> {
        Ok(Listeners {
            chat,
            metrics: bind_metrics(settings)?,
            source: ListenerSource::Inherited,
        })
    }

    /// Takes the listeners over from the process running on `settings.data_dir` (blocking).
    /// The metrics address is bound first, before anything is asked of the running process:
    /// when it is free, ours is used; when it is in use, the running process's metrics
    /// listener is taken over if it is on that address, else metrics are off (with a warning:
    /// the takeover itself must not fail once the running process has begun to stop).
    ///
    /// # Errors
    /// No process answers, the exchange fails, or the metrics address cannot be bound for a
    /// reason other than being in use.
    pub fn take_over(settings: &Settings) -> anyhow::Result<Listeners> {
        let own_metrics = match settings.metrics_bind.map(TcpListener::bind) {
            Some(Ok(listener)) => Some(listener),
            Some(Err(error)) if error.kind() == std::io::ErrorKind::AddrInUse => None,
            Some(Err(error)) => {
                return Err(error).context("cannot listen for metrics");
            }
            None => None,
        };
        let handed = handover::request_listeners(&settings.data_dir)?;
        tracing::info!(
            step = "takeover",
            address = %handed.chat.local_addr().map_or_else(|_| "?".to_owned(), |addr| addr.to_string()),
            "takeover: received the listening socket; the running process is answering its held pops and flushing"
        );
        let metrics = match (own_metrics, handed.metrics, settings.metrics_bind) {
            (Some(own), _, _) => Some(own),
            (None, Some(handed), Some(wanted))
                if handed.local_addr().is_ok_and(|addr| addr == wanted) =>
            {
                Some(handed)
            }
            (None, _, Some(wanted)) => {
                tracing::warn!(address = %wanted, "the metrics address is in use by another program; metrics are off");
                None
            }
            (None, _, None) => None,
        };
        Ok(Listeners {
            chat: handed.chat,
            metrics,
            source: ListenerSource::TakenOver,
        })
    }
}

fn bind_metrics(settings: &Settings) -> anyhow::Result<Option<TcpListener>> {
    settings
        .metrics_bind
        .map(|addr| {
            TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr} for metrics"))
        })
        .transpose()
}

/// Counts the chat listener's open connections, so a stop can wait until they have left.
#[derive(Debug, Clone)]
pub struct ConnectionCount(Arc<tokio::sync::watch::Sender<usize>>);

impl Default for ConnectionCount {
    fn default() -> ConnectionCount {
        ConnectionCount(Arc::new(tokio::sync::watch::channel(0).0))
    }
}

/// Lives in a connection's extensions: dropped, with them, when the connection closes.
struct OpenConnection(ConnectionCount);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0
             .0
            .send_modify(|n_open| *n_open = n_open.saturating_sub(1));
    }
}

impl ConnectionCount {
    fn opened(&self, extensions: &mut Extensions) {
        self.0.send_modify(|n_open| *n_open += 1);
        extensions.insert(Arc::new(OpenConnection(self.clone())));
    }

    /// Connections open right now.
    pub fn n_open(&self) -> usize {
        *self.0.borrow()
    }

    /// Waits until no connection is open, or `limit` has passed.
    async fn wait_until_none(&self, limit: Duration) {
        let mut open = self.0.subscribe();
        let _ = tokio::time::timeout(limit, open.wait_for(|&n_open| n_open == 0)).await;
    }
}

/// A built server, listening but not yet serving.
pub struct Application {
    server: Server,
    metrics_server: Option<Server>,
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    state: web::Data<AppState>,
    handover: Option<HandoverSocket>,
    listeners_for_handover: Option<(TcpListener, Option<TcpListener>)>,
    connections: ConnectionCount,
    shutdown_started: Arc<AtomicBool>,
    shutdown_finished: Arc<tokio::sync::watch::Sender<bool>>,
}

/// Stops a running [`Application`]: held pops answer at once, accepting stops, open
/// connections get a short drain, the log is compacted and the data folder released, and
/// `run_until_stopped` returns.
#[derive(Clone)]
pub struct ShutdownHandle {
    state: web::Data<AppState>,
    server: ServerHandle,
    metrics_server: Option<ServerHandle>,
    connections: ConnectionCount,
    started: Arc<AtomicBool>,
    stopped: Arc<tokio::sync::watch::Sender<bool>>,
}

impl ShutdownHandle {
    /// Begins the shutdown and waits until the HTTP server has stopped. `handed_over` says
    /// whether another process will accept on the same listening socket (a takeover, or a
    /// socket kept by systemd): saves that reach this process after its room is closed are
    /// then redirected to the same address instead of refused, and on a takeover the
    /// write-ahead log is left for the successor to compact, so that it can start sooner. A
    /// second call waits for the first one to finish.
    pub async fn shutdown(&self, handed_over: Handover) {
        let mut stopped = self.stopped.subscribe();
        if self.started.swap(true, Ordering::SeqCst) {
            let _ = stopped.wait_for(|&stopped| stopped).await;
            return;
        }
        let state = &self.state;
        state
            .successor_listens
            .store(handed_over != Handover::None, Ordering::SeqCst);
        state.rooms.begin_shutdown();
        tracing::info!(
            step = "stop",
            "stop: held pops answered; no longer accepting"
        );
        self.server.pause().await;
        self.connections.wait_until_none(DRAIN_WINDOW).await;
        let left_open = self.connections.n_open();
        let flush = match handed_over {
            Handover::Takeover => Flush::LogOnly,
            Handover::None | Handover::SocketKept => Flush::Compact,
        };
        state.rooms.close(flush).await;
        tracing::info!(
            step = "stop",
            connections_left = left_open,
            "stop: flushed; every acknowledged message is on disk and the data folder is released"
        );
        if let Some(metrics) = &self.metrics_server {
            metrics.stop(true).await;
        }
        self.server.stop(true).await;
        self.stopped.send_replace(true);
    }
}

/// Who accepts on the listening socket once this process has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// Nobody: the socket closes with this process.
    None,
    /// A process that took the socket over (`--takeover`): it loads the data folder as soon as
    /// this one releases it.
    Takeover,
    /// The next process a supervisor starts on the socket it keeps (systemd socket activation).
    SocketKept,
}

impl Application {
    /// Binds `settings.bind` (and `settings.metrics_bind`), loads `settings.data_dir` and
    /// starts the room: [`Application::build_on`] with [`Listeners::bind`].
    ///
    /// # Errors
    /// See [`Application::build_on`]; also an address that cannot be bound.
    pub async fn build(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Application> {
        // Bind first: a busy port is reported before the data folder is touched.
        let listeners = Listeners::bind(&settings)?;
        Application::build_on(settings, clock, listeners).await
    }

    /// Loads `settings.data_dir` and starts the room on `listeners`. After a takeover the data
    /// folder is waited for (the old process releases it once flushed) for at most
    /// [`TAKEOVER_LOCK_WAIT`].
    ///
    /// # Errors
    /// The data folder cannot be loaded (a file that cannot be parsed is named with its
    /// position; a folder in use by another process is refused), or the listener cannot be
    /// served.
    pub async fn build_on(
        settings: Settings,
        clock: Arc<dyn Clock>,
        listeners: Listeners,
    ) -> anyhow::Result<Application> {
        let Listeners {
            chat: listener,
            metrics: metrics_listener,
            source,
        } = listeners;
        let local_addr = listener
            .local_addr()
            .context("cannot read the bound address")?;
        let metrics_addr = metrics_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()
            .context("cannot read the metrics address")?;
        let lock_wait = match source {
            ListenerSource::TakenOver => LockWait::UpTo(TAKEOVER_LOCK_WAIT),
            ListenerSource::Bound | ListenerSource::Inherited => LockWait::Refuse,
        };
        let load_started = Instant::now();
        if lock_wait != LockWait::Refuse {
            tracing::info!(
                step = "takeover",
                "takeover: waiting for the running process to flush and release the data folder"
            );
        }
        let telemetry = Telemetry::new();
        let workers = settings.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        let open_files = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(soft, _)| soft);
        let caps = ConnectionCaps::fit(&settings, open_files, workers);
        let limits = RoomLimits {
            page_size: settings.page_size,
            memory_messages: settings.memory_messages,
        };
        let (room, backend_name) = match &settings.backend {
            None => (
                start_local_room(
                    &settings,
                    clock.clone(),
                    lock_wait,
                    telemetry.clone(),
                    limits,
                )
                .await?,
                "local folder".to_owned(),
            ),
            Some(url) => (
                start_redis_room(&settings, url, clock.clone(), lock_wait, limits).await?,
                format!("redis {url} (prefix {})", settings.redis_prefix),
            ),
        };
        let n_loaded = room.n_messages();
        // Only the holder of the folder's lock listens for a successor.
        let handover = match HandoverSocket::bind(&settings.data_dir) {
            Ok(socket) => Some(socket),
            Err(error) => {
                tracing::warn!(error = %error, "cannot create the hand-over socket in the data folder; --takeover will not reach this process");
                None
            }
        };

        let opener: Arc<dyn RoomOpener> = match &settings.backend {
            None => Arc::new(LocalRoomOpener {
                settings: settings.clone(),
                clock: clock.clone(),
                telemetry: telemetry.clone(),
                limits: named_limits(limits),
            }),
            Some(url) => Arc::new(RedisRoomOpener {
                settings: settings.clone(),
                url: url.clone(),
                clock: clock.clone(),
                limits: named_limits(limits),
            }),
        };
        let rooms = Rooms::new(
            room.clone(),
            opener,
            clock.clone(),
            settings.max_rooms,
            Duration::from_secs_f64(settings.room_idle_secs),
        );
        let state = web::Data::new(AppState {
            rooms,
            held_polls: HeldPolls::new(caps.max_polls_per_ip, caps.max_polls),
            save_limiter: SaveRateLimiter::new(settings.push_burst, settings.push_rate, clock),
            settings: Arc::new(settings.clone()),
            telemetry,
            untrusted_proxy: std::sync::OnceLock::new(),
            successor_listens: AtomicBool::new(false),
        });

        let app_state = state.clone();
        let static_dir = settings.effective_static_dir();
        if let Some(dir) = &static_dir {
            tracing::info!(static_dir = %dir.display(), "serving the web page");
        }
        // Kept to hand over: actix takes the originals, and a duplicate refers to the same
        // kernel socket.
        let listeners_for_handover = match (
            listener.try_clone(),
            metrics_listener
                .as_ref()
                .map(TcpListener::try_clone)
                .transpose(),
        ) {
            (Ok(chat), Ok(metrics)) => Some((chat, metrics)),
            (Err(error), _) | (_, Err(error)) => {
                tracing::warn!(error = %error, "cannot keep the listeners for a takeover");
                None
            }
        };
        let connections = ConnectionCount::default();
        let counted = connections.clone();
        let hangups = crate::hangup::HangupWatch::start().context("cannot watch for hang-ups")?;
        let draining = crate::drain::DrainBudget::new(caps.max_draining);
        let routes = routes::configure(static_dir);
        let builder = actix_server::Server::build();
        // Told to each connection when a stop begins, so that idle keep-alive connections
        // close at once, as under actix-web's HttpServer.
        let stopping = builder.graceful_shutdown_signal();
        let server = builder
            .disable_signals()
            .workers(workers)
            .backlog(4096)
            .max_concurrent_connections(caps.max_connections_per_worker)
            .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
            .listen("chat", listener, move || {
                let app_state = app_state.clone();
                let routes = routes.clone();
                let app = move || {
                    App::new()
                        .app_data(app_state.clone())
                        .configure(routes.clone())
                };
                let counted = counted.clone();
                let hangups = hangups.clone();
                let stopping = stopping.clone();
                let draining = draining.clone();
                let http = actix_http::HttpService::build()
                    .graceful_shutdown_signal(move || {
                        let stopping = stopping.clone();
                        async move { stopping.notified().await }
                    })
                    // actix-web's HttpServer defaults, which the chat ran on before.
                    .keep_alive(actix_http::KeepAlive::Timeout(Duration::from_secs(5)))
                    .client_request_timeout(Duration::from_secs(5))
                    .client_disconnect_timeout(Duration::from_secs(1))
                    .local_addr(local_addr)
                    // A client that shuts down its sending side may still read: a save that
                    // has begun is answered. Held pops learn of a client's side ending from
                    // `hangups` instead.
                    .h1_allow_half_closed(true)
                    .on_connect_ext(move |connection: &DrainOnClose, extensions| {
                        counted.opened(extensions);
                        // A held pop on this connection ends as soon as its client's side ends.
                        let socket = std::os::fd::AsFd::as_fd(connection.get_ref());
                        match hangups.watch(socket) {
                            Ok(watched) => {
                                extensions.insert(watched);
                            }
                            Err(error) => {
                                tracing::warn!(error = %error, "cannot watch a connection for its hang-up")
                            }
                        }
                    })
                    .finish(actix_service::map_config(app(), |()| {
                        actix_web::dev::AppConfig::default()
                    }));
                actix_service::fn_service(move |stream: actix_web::rt::net::TcpStream| {
                    let draining = draining.clone();
                    async move {
                    // Answers are small and must leave at once: no Nagle delay behind an
                    // unacknowledged segment (a held pop's head went out earlier on the same
                    // connection).
                    let _ = stream.set_nodelay(true);
                    let peer = stream.peer_addr().ok();
                    Ok::<_, actix_http::error::DispatchError>((
                        DrainOnClose::new(stream, draining),
                        actix_http::Protocol::Http1,
                        peer,
                    ))
                    }
                })
                .and_then(http)
            })
            .context("cannot serve on the listener")?
            .run();
        let metrics_server = match metrics_listener {
            Some(listener) => {
                let metrics_state = state.clone();
                Some(
                    HttpServer::new(move || {
                        App::new()
                            .app_data(metrics_state.clone())
                            .configure(routes::configure_operators)
                    })
                    .disable_signals()
                    .workers(1)
                    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
                    .listen(listener)
                    .context("cannot serve metrics on the listener")?
                    .run(),
                )
            }
            None => None,
        };

        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            address = %local_addr,
            listener = source.as_str(),
            backend = %backend_name,
            data_dir = %settings.data_dir.display(),
            messages = n_loaded,
            load_ms = load_started.elapsed().as_millis() as u64,
            metrics = %metrics_addr.map_or_else(|| "off".to_owned(), |addr| format!("http://{addr}/metrics")),
            max_polls = caps.max_polls,
            max_polls_flag = settings.max_polls,
            open_files_limit = caps.open_files,
            max_polls_per_ip = caps.max_polls_per_ip,
            max_connections_per_worker = caps.max_connections_per_worker,
            max_draining = caps.max_draining,
            push_burst = settings.push_burst.get(),
            push_rate = settings.push_rate.get(),
            poll_timeout_secs = settings.poll_timeout,
            page_size = settings.page_size,
            max_msg_len = settings.max_msg_len,
            max_name_len = settings.max_name_len,
            "chat server {} listening on http://{local_addr}/ ({} socket) with {n_loaded} messages loaded from {}",
            env!("CARGO_PKG_VERSION"),
            source.as_str(),
            settings.data_dir.display()
        );
        Ok(Application {
            server,
            metrics_server,
            local_addr,
            metrics_addr,
            state,
            handover,
            listeners_for_handover,
            connections,
            shutdown_started: Arc::default(),
            shutdown_finished: Arc::new(tokio::sync::watch::channel(false).0),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The metrics listener's address, when there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// A handle that stops the server.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            state: self.state.clone(),
            server: self.server.handle(),
            metrics_server: self.metrics_server.as_ref().map(Server::handle),
            connections: self.connections.clone(),
            started: self.shutdown_started.clone(),
            stopped: self.shutdown_finished.clone(),
        }
    }

    /// Serves until [`ShutdownHandle::shutdown`] or a takeover, then lets the writer finish
    /// and compact.
    ///
    /// # Errors
    /// The HTTP server failed.
    pub async fn run_until_stopped(mut self) -> anyhow::Result<()> {
        let state = self.state.clone();
        let shutdown = self.shutdown_handle();
        let mut closing = state.rooms.legacy().shutdown_signal();
        let housekeeping_state = state.clone();
        let housekeeping = tokio::spawn(async move {
            let mut forget_idle = tokio::time::interval(FORGET_IDLE_EVERY);
            let mut upkeep = tokio::time::interval(METRICS_UPKEEP_EVERY);
            // A quarter of the idle time, at most a minute: a room closes at most 25 % late.
            let idle = Duration::from_secs_f64(housekeeping_state.settings.room_idle_secs);
            let mut close_idle_rooms = tokio::time::interval(
                (idle / 4).clamp(Duration::from_millis(50), FORGET_IDLE_EVERY),
            );
            loop {
                tokio::select! {
                    _ = forget_idle.tick() => housekeeping_state.save_limiter.forget_idle(),
                    _ = upkeep.tick() => housekeeping_state.telemetry.run_upkeep(),
                    _ = close_idle_rooms.tick() => {
                        housekeeping_state.rooms.close_idle().await;
                    }
                    // The borrow `wait_for` returns is dropped here, before any other branch
                    // awaits (it is not `Send`).
                    () = async { let _ = closing.wait_for(|&closing| closing).await; } => break,
                }
            }
        });
        let takeover = match (self.handover.take(), self.listeners_for_handover.take()) {
            (Some(socket), Some(listeners)) => {
                let shutdown = shutdown.clone();
                let mut closing = state.rooms.legacy().shutdown_signal();
                Some(tokio::spawn(async move {
                    serve_takeovers(socket, listeners, shutdown, &mut closing).await;
                }))
            }
            _ => None,
        };
        let metrics_server = self.metrics_server.take();
        let served = match metrics_server {
            Some(metrics) => {
                let (served, metrics_served) = tokio::join!(self.server, metrics);
                if let Err(error) = metrics_served {
                    tracing::error!(error = %error, "the metrics listener failed");
                }
                served
            }
            None => self.server.await,
        }
        .context("the HTTP server failed");
        state.rooms.begin_shutdown();
        let _ = housekeeping.await;
        if let Some(takeover) = takeover {
            // Ends by itself: it sees the shutdown, or finishes the one it began.
            let _ = takeover.await;
        }
        state.rooms.close(Flush::Compact).await;
        tracing::info!(
            step = "stop",
            "stopped; every acknowledged message is on disk"
        );
        served
    }
}

/// The limits of a named room: its cache keeps at most 1000 messages (a server may have up to
/// `--max-rooms` of them open), older pages are read from its storage.
fn named_limits(legacy: RoomLimits) -> RoomLimits {
    RoomLimits {
        memory_messages: legacy.memory_messages.min(1000),
        ..legacy
    }
}

/// Opens named rooms in the data folder: `rooms/<room>/`, in the same layout as the legacy
/// room's (write-ahead log, `data.json`, `data/`), each with its own lock and writer thread.
#[derive(Debug)]
struct LocalRoomOpener {
    settings: Settings,
    clock: Arc<dyn Clock>,
    telemetry: Telemetry,
    limits: RoomLimits,
}

#[async_trait::async_trait]
impl RoomOpener for LocalRoomOpener {
    async fn open(&self, name: &RoomName) -> Result<Room, BackendError> {
        let dir = self.settings.data_dir.join(ROOMS_DIR).join(name.as_str());
        let compact_after = self.settings.compact_after;
        // A takeover's predecessor may still be flushing this room: wait for its lock.
        let loaded = tokio::task::spawn_blocking(move || {
            Store::open(&dir, compact_after, LockWait::UpTo(TAKEOVER_LOCK_WAIT))
        })
        .await
        .map_err(|join_error| backend_io_error(name, join_error))?
        .map_err(|error| BackendError::Storage(Arc::new(error)))?;
        let backend = LocalBackend::start(loaded, self.clock.clone(), self.telemetry.clone())
            .map_err(|error| backend_io_error(name, error))?;
        Room::start(
            Arc::new(backend),
            Arc::new(Presence::new(
                self.settings.presence_linger(),
                self.clock.clone(),
            )),
            self.limits,
        )
        .await
    }
}

/// Opens named rooms on Redis: keys under `<prefix>room:<room>:`.
#[derive(Debug)]
struct RedisRoomOpener {
    settings: Settings,
    url: String,
    clock: Arc<dyn Clock>,
    limits: RoomLimits,
}

#[async_trait::async_trait]
impl RoomOpener for RedisRoomOpener {
    async fn open(&self, name: &RoomName) -> Result<Room, BackendError> {
        let config = RedisConfig {
            url: self.url.clone(),
            prefix: format!("{}room:{name}:", self.settings.redis_prefix),
            max_len: self.settings.redis_max_len,
        };
        let backend = RedisBackend::start(&config, None).await?;
        let presence = RedisPresence::start(
            &self.url,
            backend.keys(),
            self.settings.presence_linger(),
            self.clock.clone(),
        )
        .await?;
        Room::start(Arc::new(backend), presence, self.limits).await
    }
}

fn backend_io_error(room: &RoomName, error: impl std::fmt::Display) -> BackendError {
    BackendError::Storage(Arc::new(crate::storage::StorageError::io(
        std::path::Path::new(room.as_str()),
        std::io::Error::other(error.to_string()),
    )))
}

/// The folder of the named rooms inside the data folder.
pub const ROOMS_DIR: &str = "rooms";

/// Loads the data folder and starts the room on it.
async fn start_local_room(
    settings: &Settings,
    clock: Arc<dyn Clock>,
    lock_wait: LockWait,
    telemetry: Telemetry,
    limits: RoomLimits,
) -> anyhow::Result<Room> {
    let data_dir = settings.data_dir.clone();
    let compact_after = settings.compact_after;
    let loaded =
        tokio::task::spawn_blocking(move || Store::open(&data_dir, compact_after, lock_wait))
            .await
            .context("loading the data folder panicked")?
            .with_context(|| {
                format!(
                    "cannot load the data folder {}",
                    settings.data_dir.display()
                )
            })?;
    let backend = LocalBackend::start(loaded, clock.clone(), telemetry)
        .context("cannot start the writer thread")?;
    Room::start(
        Arc::new(backend),
        Arc::new(Presence::new(settings.presence_linger(), clock)),
        limits,
    )
    .await
    .context("cannot read the newest messages")
}

/// Connects to Redis and starts the room on it; the data folder only holds this instance's
/// lock (and hand-over socket). `clock` times this instance's own presence; message times come
/// from Redis.
async fn start_redis_room(
    settings: &Settings,
    url: &str,
    clock: Arc<dyn Clock>,
    lock_wait: LockWait,
    limits: RoomLimits,
) -> anyhow::Result<Room> {
    let data_dir = settings.data_dir.clone();
    let lock = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&data_dir)
            .map_err(|source| crate::storage::StorageError::io(&data_dir, source))?;
        crate::storage::lock_folder(&data_dir, lock_wait)
    })
    .await
    .context("locking the data folder panicked")?
    .with_context(|| format!("cannot lock {}", settings.data_dir.display()))?;
    let config = RedisConfig {
        url: url.to_owned(),
        prefix: settings.redis_prefix.clone(),
        max_len: settings.redis_max_len,
    };
    let backend = RedisBackend::start(&config, Some(lock))
        .await
        .with_context(|| format!("cannot start on {url}"))?;
    let presence = RedisPresence::start(url, backend.keys(), settings.presence_linger(), clock)
        .await
        .with_context(|| format!("cannot start presence on {url}"))?;
    Room::start(Arc::new(backend), presence, limits)
        .await
        .context("cannot read the newest messages")
}

/// Answers the first process asking to take over: hands it the listeners, then stops this
/// server. Ends when this server starts stopping for another reason.
async fn serve_takeovers(
    socket: HandoverSocket,
    (chat, metrics): (TcpListener, Option<TcpListener>),
    shutdown: ShutdownHandle,
    closing: &mut tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let request = tokio::select! {
            request = socket.next_request() => request,
            _ = closing.wait_for(|&closing| closing) => return,
        };
        let request = match request {
            Ok(request) => request,
            Err(error) => {
                tracing::warn!(error = %error, "the hand-over socket failed; takeovers are off");
                return;
            }
        };
        match request.hand_over(&chat, metrics.as_ref()) {
            Ok(()) => {
                tracing::info!(
                    step = "takeover",
                    "takeover: handed the listening socket to a new process; stopping"
                );
                // The successor has the sockets: this process's copies close as it stops.
                drop(socket);
                shutdown.shutdown(Handover::Takeover).await;
                return;
            }
            Err(error) => {
                tracing::warn!(error = %error, "a takeover failed before the listeners were handed over; still serving");
            }
        }
    }
}

/// Raises this process's open-file limit to `wanted` descriptors when the hard limit allows
/// (each held pop is one connection). Returns the soft limit now in force (0 when it cannot be
/// read); [`ConnectionCaps::fit`] then keeps the caps within it.
pub fn raise_open_file_limit(wanted: u64) -> u64 {
    match rlimit::increase_nofile_limit(wanted) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(error = %error, "cannot read or raise the open-file limit");
            0
        }
    }
}

/// How many connections and held pops fit this process's open-file limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionCaps {
    /// Held pops in all: `--max-polls`, or fewer when the open-file limit is lower.
    pub max_polls: usize,
    /// Held pops per client address: `--max-polls-per-ip`, at most [`ConnectionCaps::max_polls`].
    pub max_polls_per_ip: usize,
    /// Connections each HTTP worker accepts before it waits for one to close (instead of
    /// failing to accept with "too many open files" and retrying).
    pub max_connections_per_worker: usize,
    /// Closed connections that may drain at once ([`crate::drain`]): each keeps its descriptor
    /// for up to [`crate::drain::DRAIN_TIME`] after its connection no longer counts.
    pub max_draining: usize,
    /// The open-file limit they were fitted to (0: unknown, the flags are used as given).
    pub open_files: u64,
}

impl ConnectionCaps {
    /// Fits the caps of `settings` to `open_files` descriptors shared by `workers` HTTP workers.
    /// An eighth of the limit (32 to 1024 descriptors) is kept for everything that is not a
    /// connection: data files, the write-ahead log, chunk files being read, Redis connections,
    /// the runtime's own; a sixteenth (8 to 256) for closed connections that drain. Of the
    /// rest, an eighth (16 to 1024) is kept for requests that are not held pops (saves,
    /// `/healthz`), so that a full house of held pops never locks them out.
    pub fn fit(settings: &Settings, open_files: u64, workers: usize) -> ConnectionCaps {
        let workers = workers.max(1);
        if open_files == 0 {
            return ConnectionCaps {
                max_polls: settings.max_polls,
                max_polls_per_ip: settings.max_polls_per_ip,
                max_connections_per_worker: (settings.max_polls + 1024).div_ceil(workers),
                max_draining: MAX_DRAINING,
                open_files,
            };
        }
        let limit = usize::try_from(open_files).unwrap_or(usize::MAX);
        let max_draining = (limit / 16).clamp(8, MAX_DRAINING);
        let for_connections = limit
            .saturating_sub((limit / 8).clamp(32, 1024))
            .saturating_sub(max_draining);
        let for_polls = for_connections.saturating_sub((for_connections / 8).clamp(16, 1024));
        let max_polls = settings.max_polls.min(for_polls);
        ConnectionCaps {
            max_polls,
            max_polls_per_ip: settings.max_polls_per_ip.min(max_polls),
            max_connections_per_worker: (for_connections / workers).max(1),
            max_draining,
            open_files,
        }
    }
}

/// The most closed connections draining at once when the open-file limit leaves room.
const MAX_DRAINING: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_fit_a_low_open_file_limit_and_leave_room_for_other_requests() {
        let settings = Settings::for_tests(
            "127.0.0.1:0".parse().expect("address"),
            std::path::PathBuf::from("data"),
        );
        let caps = ConnectionCaps::fit(&settings, 256, 2);
        // 256 - 32 kept for files - 16 draining = 208 connections; 208 - 26 kept for requests
        // = 182 pops.
        assert_eq!(caps.max_draining, 16);
        assert_eq!(caps.max_polls, 182);
        assert_eq!(caps.max_polls_per_ip, 182);
        assert_eq!(caps.max_connections_per_worker, 104);
        let roomy = ConnectionCaps::fit(&settings, 1_000_000, 2);
        assert_eq!(roomy.max_polls, settings.max_polls, "the flag when it fits");
    }
}
