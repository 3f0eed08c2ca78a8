//! Finds held pops whose client hung up, without closing the connections of clients that
//! only half-closed theirs.
//!
//! A client may shut down its sending side right after a request (`shutdown(SHUT_WR)`) and
//! still read the answer; the server therefore lets connections stay half-closed, so that a
//! save that has begun is always answered. A held pop, though, must end as soon as its client
//! goes away, or its permit and its name's presence would stay taken for the whole hold time
//! (a reloading page would pile them up). The HTTP layer does not tell a handler that the
//! reading side ended, so each connection's socket is added, when it opens, to an epoll set of
//! our own for `EPOLLRDHUP` (edge-triggered), watched by one thread. When a client's side ends
//! (a close, a half-close, a reset), its connection is marked, and a pop held on it answers at
//! once as if its hold time were over: a half-closed client reads that answer; for a client
//! that is gone the write fails and the connection closes.
//!
//! Registrations are never deleted: the kernel drops one when its socket closes, so a
//! descriptor number reused by a later connection is never confused with the old one.

use std::collections::HashMap;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustix::event::epoll;
use tokio::sync::Notify;

/// The connections being watched, and the epoll set their sockets are in.
#[derive(Debug)]
pub struct HangupWatch {
    epoll: OwnedFd,
    next_id: AtomicU64,
    /// Registration id → the connection's state.
    connections: Mutex<HashMap<u64, Arc<PeerSide>>>,
}

/// Whether the client's side of one connection has ended.
#[derive(Debug, Default)]
pub struct PeerSide {
    ended: AtomicBool,
    changed: Notify,
}

/// A watched connection, kept in the connection's extensions (the HTTP layer drops them when
/// the connection closes, which ends the watch).
#[derive(Debug)]
pub struct WatchedConnection {
    id: u64,
    side: Arc<PeerSide>,
    watch: Arc<HangupWatch>,
}

impl HangupWatch {
    /// Creates the epoll set and starts the thread that watches it.
    ///
    /// # Errors
    /// The epoll set or the thread could not be created.
    pub fn start() -> std::io::Result<Arc<HangupWatch>> {
        let watch = Arc::new(HangupWatch {
            epoll: epoll::create(epoll::CreateFlags::CLOEXEC)?,
            next_id: AtomicU64::new(1),
            connections: Mutex::new(HashMap::new()),
        });
        let watched = Arc::downgrade(&watch);
        std::thread::Builder::new()
            .name("chat-hangups".to_owned())
            .spawn(move || {
                let mut events: Vec<epoll::Event> = Vec::with_capacity(256);
                // Wakes each second, so the thread ends soon after the server is dropped.
                let tick = rustix::time::Timespec {
                    tv_sec: 1,
                    tv_nsec: 0,
                };
                loop {
                    let Some(watch) = watched.upgrade() else {
                        return;
                    };
                    events.clear();
                    let waited = epoll::wait(
                        &watch.epoll,
                        rustix::buffer::spare_capacity(&mut events),
                        Some(&tick),
                    );
                    if let Err(error) = waited {
                        if error != rustix::io::Errno::INTR {
                            tracing::error!(error = %error, "cannot watch connections for hang-ups; held pops end at their hold time");
                            return;
                        }
                    }
                    let connections = watch.lock();
                    for event in &events {
                        if let Some(side) = connections.get(&event.data.u64()) {
                            side.ended.store(true, Ordering::SeqCst);
                            side.changed.notify_waiters();
                        }
                    }
                }
            })?;
        Ok(watch)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<PeerSide>>> {
        // Inserts and removes only: a panic elsewhere leaves it whole.
        self.connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Watches a connection that just opened, given its socket.
    ///
    /// # Errors
    /// The socket could not be added to the epoll set (a pop held on it then ends at its hold
    /// time even when its client has gone).
    pub fn watch(self: &Arc<Self>, socket: BorrowedFd<'_>) -> std::io::Result<WatchedConnection> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let side = Arc::new(PeerSide::default());
        self.lock().insert(id, side.clone());
        let watched = WatchedConnection {
            id,
            side,
            watch: self.clone(),
        };
        epoll::add(
            &self.epoll,
            socket,
            epoll::EventData::new_u64(id),
            epoll::EventFlags::RDHUP | epoll::EventFlags::ET,
        )?;
        Ok(watched)
    }

    /// How many connections are being watched.
    pub fn n_watched(&self) -> usize {
        self.lock().len()
    }
}

impl WatchedConnection {
    /// The client's side of this connection, for a pop held on it.
    pub fn peer_side(&self) -> Arc<PeerSide> {
        self.side.clone()
    }
}

impl Drop for WatchedConnection {
    fn drop(&mut self) {
        self.watch.lock().remove(&self.id);
    }
}

impl PeerSide {
    /// Completes once the client's side of the connection has ended (at once if it already
    /// has).
    pub async fn ended(&self) {
        loop {
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            if self.ended.load(Ordering::SeqCst) {
                return;
            }
            changed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::time::Duration;

    use super::*;

    async fn connected_pair() -> (std::net::TcpStream, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let client = tokio::net::TcpStream::connect(listener.local_addr().expect("address"))
            .await
            .expect("connects");
        let (server, _) = listener.accept().await.expect("accepts");
        (client.into_std().expect("std socket"), server)
    }

    #[tokio::test]
    async fn a_half_close_and_a_close_are_told_and_a_live_client_is_not() {
        let watch = HangupWatch::start().expect("starts");
        let (client, server) = connected_pair().await;
        let watched = watch.watch(server.as_fd()).expect("watches");
        let side = watched.peer_side();
        let quiet = tokio::time::timeout(Duration::from_millis(50), side.ended()).await;
        assert!(quiet.is_err(), "nothing happened yet");
        client
            .shutdown(std::net::Shutdown::Write)
            .expect("half-closes");
        tokio::time::timeout(Duration::from_secs(10), side.ended())
            .await
            .expect("a half-close is told");

        let (client, server) = connected_pair().await;
        let closed = watch.watch(server.as_fd()).expect("watches");
        drop(client);
        tokio::time::timeout(Duration::from_secs(10), closed.peer_side().ended())
            .await
            .expect("a close is told");
        drop((watched, closed));
        assert_eq!(watch.n_watched(), 0);
    }

    #[tokio::test]
    async fn a_side_that_ended_before_the_pop_asks_is_told_at_once() {
        let watch = HangupWatch::start().expect("starts");
        let (client, server) = connected_pair().await;
        let watched = watch.watch(server.as_fd()).expect("watches");
        client
            .shutdown(std::net::Shutdown::Write)
            .expect("half-closes");
        tokio::time::timeout(Duration::from_secs(10), watched.peer_side().ended())
            .await
            .expect("told");
        // Asked again later (a second pop on the connection): still ended.
        tokio::time::timeout(Duration::from_millis(10), watched.peer_side().ended())
            .await
            .expect("told at once");
    }
}
