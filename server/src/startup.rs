//! Building and running the server: load the data folder, start the room, bind the listener
//! (port 0 in tests), serve until stopped, then flush.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use anyhow::Context;

use crate::clock::Clock;
use crate::config::Settings;
use crate::limits::{HeldPolls, SaveRateLimiter};
use crate::presence::Presence;
use crate::room::{Room, RoomLimits};
use crate::routes::{self, AppState};
use crate::storage::Store;

/// How long a graceful stop waits for requests in flight, in seconds. Held pops answer at
/// once when the stop begins, so this is only reached by a stuck client.
const SHUTDOWN_TIMEOUT_SECS: u64 = 5;

/// How often the save rate limiter forgets idle addresses.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(60);

/// A built server, listening but not yet serving.
pub struct Application {
    server: Server,
    local_addr: SocketAddr,
    state: web::Data<AppState>,
}

/// Stops a running [`Application`]: held pops answer at once, new connections are refused,
/// requests in flight finish, the log is compacted, and `run_until_stopped` returns.
#[derive(Clone)]
pub struct ShutdownHandle {
    room: Room,
    server: ServerHandle,
}

impl ShutdownHandle {
    /// Begins the shutdown and waits until the HTTP server has stopped.
    pub async fn shutdown(&self) {
        self.room.begin_shutdown();
        self.server.stop(true).await;
    }
}

impl Application {
    /// Loads `settings.data_dir`, starts the room and binds `settings.bind`.
    ///
    /// # Errors
    /// The data folder cannot be loaded (a file that cannot be parsed is named with its
    /// position), or the address cannot be bound.
    pub async fn build(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Application> {
        // Bind first: a busy port is reported before the data folder is touched.
        let listener = TcpListener::bind(settings.bind)
            .with_context(|| format!("cannot listen on {}", settings.bind))?;
        let local_addr = listener
            .local_addr()
            .context("cannot read the bound address")?;
        let data_dir = settings.data_dir.clone();
        let (memory_messages, compact_after) = (settings.memory_messages, settings.compact_after);
        let loaded = tokio::task::spawn_blocking(move || {
            Store::open(&data_dir, memory_messages, compact_after)
        })
        .await
        .context("loading the data folder panicked")?
        .with_context(|| {
            format!(
                "cannot load the data folder {}",
                settings.data_dir.display()
            )
        })?;
        let n_loaded = loaded.n_messages;
        let room = Room::start(
            loaded,
            clock,
            settings.memory_messages,
            RoomLimits {
                page_size: settings.page_size,
            },
        )
        .context("cannot start the writer thread")?;

        let state = web::Data::new(AppState {
            room: room.clone(),
            held_polls: HeldPolls::new(settings.max_polls_per_ip, settings.max_polls),
            save_limiter: SaveRateLimiter::new(settings.push_burst, settings.push_rate),
            presence: Arc::new(Presence::new(settings.presence_linger())),
            settings: Arc::new(settings.clone()),
        });

        let app_state = state.clone();
        let static_dir = settings.effective_static_dir();
        if let Some(dir) = &static_dir {
            tracing::info!(static_dir = %dir.display(), "serving the web page");
        }
        let routes = routes::configure(static_dir);
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .configure(routes.clone())
        })
        .disable_signals()
        // A client that closes its side has gone away: drop its held pop at once.
        .h1_allow_half_closed(false)
        // Answers are small and must leave at once: no Nagle delay behind an unacknowledged
        // segment (a held pop's head went out earlier on the same connection).
        .tcp_nodelay(true)
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
        .backlog(4096)
        .max_connections(settings.max_polls + 1024);
        if let Some(workers) = settings.workers {
            server = server.workers(workers);
        }
        let server = server
            .listen(listener)
            .context("cannot serve on the listener")?
            .run();

        tracing::info!(
            address = %local_addr,
            data_dir = %settings.data_dir.display(),
            messages = n_loaded,
            "chat server listening on http://{local_addr}/ with {n_loaded} messages loaded from {}",
            settings.data_dir.display()
        );
        Ok(Application {
            server,
            local_addr,
            state,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that stops the server.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            room: self.state.room.clone(),
            server: self.server.handle(),
        }
    }

    /// Serves until [`ShutdownHandle::shutdown`], then lets the writer finish and compact.
    ///
    /// # Errors
    /// The HTTP server failed.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let state = self.state.clone();
        let mut closing = state.room.shutdown_signal();
        let housekeeping_state = state.clone();
        let housekeeping = tokio::spawn(async move {
            let mut every = tokio::time::interval(FORGET_IDLE_EVERY);
            loop {
                tokio::select! {
                    _ = every.tick() => housekeeping_state.save_limiter.forget_idle(),
                    _ = closing.wait_for(|&closing| closing) => break,
                }
            }
        });
        let served = self.server.await.context("the HTTP server failed");
        state.room.begin_shutdown();
        let _ = housekeeping.await;
        state.room.close().await;
        tracing::info!("stopped; every acknowledged message is on disk");
        served
    }
}

/// Raises this process's open-file limit to `wanted` descriptors when the hard limit allows
/// (each held pop is one connection). Returns the soft limit now in force.
pub fn raise_open_file_limit(wanted: u64) -> u64 {
    match rlimit::increase_nofile_limit(wanted) {
        Ok(limit) if limit >= wanted => {
            tracing::debug!(limit, "open-file limit is sufficient");
            limit
        }
        Ok(limit) => {
            tracing::warn!(
                limit,
                wanted,
                "the open-file limit is below what the held-pop cap needs and the hard limit does not allow more; raise it (ulimit -Hn)"
            );
            limit
        }
        Err(error) => {
            tracing::warn!(error = %error, "cannot read or raise the open-file limit");
            0
        }
    }
}
