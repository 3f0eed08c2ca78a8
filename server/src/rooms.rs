//! The rooms of one server: the legacy room, always open, and named rooms, opened on their
//! first request and closed again when idle.
//!
//! A request without `room` is for the legacy room, stored exactly where the original server
//! stored its one room (so legacy pages and existing deployments see no change). A named room
//! is a [`Room`] of its own over a backend of its own, made by a [`RoomOpener`]: the local
//! folder's `rooms/<room>/` (the same layout as the legacy room's) or the Redis keys under
//! `<prefix>room:<room>:`. Each room has its own history, wake-ups, presence and times; the
//! room logic is the same [`Room`] for every backend.
//!
//! At most `max_rooms` named rooms are open at once; a request for another one is refused
//! ([`RoomsError::TooMany`]). A named room with no waiting pop that no request has named for
//! `idle_after` is closed (its backend flushed and released) by [`Rooms::close_idle`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_shared::RoomName;
use tokio::sync::OnceCell;

use crate::backend::{BackendError, Flush};
use crate::clock::Clock;
use crate::room::Room;

/// Opens a named room: its backend, its presence and the [`Room`] over them.
#[async_trait::async_trait]
pub trait RoomOpener: Send + Sync + std::fmt::Debug {
    /// Opens (creating it if new) the room `name`.
    ///
    /// # Errors
    /// [`BackendError`] when its storage cannot be loaded or reached.
    async fn open(&self, name: &RoomName) -> Result<Room, BackendError>;
}

/// Why a named room could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RoomsError {
    /// `max_rooms` rooms are open and this one is not.
    #[error("{max} rooms are open already")]
    TooMany {
        /// The limit.
        max: usize,
    },
    /// The server is stopping: no room is opened any more.
    #[error("the server is shutting down")]
    Closed,
    /// The room's storage could not be opened.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// One named room: opened once, however many requests ask at the same time.
#[derive(Debug, Default)]
struct Slot {
    room: OnceCell<Room>,
    /// When a request last named it ([`Clock::monotonic`]).
    last_used: Mutex<Duration>,
}

/// The rooms; shared by every handler.
#[derive(Debug)]
pub struct Rooms {
    legacy: Room,
    named: Mutex<HashMap<RoomName, Arc<Slot>>>,
    opener: Arc<dyn RoomOpener>,
    clock: Arc<dyn Clock>,
    max_rooms: usize,
    idle_after: Duration,
    closing: std::sync::atomic::AtomicBool,
}

impl Rooms {
    /// The rooms of a server whose legacy room is `legacy`; named rooms are opened by
    /// `opener`, at most `max_rooms` at once, and closed after `idle_after` without use.
    pub fn new(
        legacy: Room,
        opener: Arc<dyn RoomOpener>,
        clock: Arc<dyn Clock>,
        max_rooms: usize,
        idle_after: Duration,
    ) -> Rooms {
        Rooms {
            legacy,
            named: Mutex::default(),
            opener,
            clock,
            max_rooms,
            idle_after,
            closing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn named(&self) -> std::sync::MutexGuard<'_, HashMap<RoomName, Arc<Slot>>> {
        // Inserts and removes only: a panic elsewhere leaves it whole.
        self.named
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The legacy room (no `room` parameter).
    pub fn legacy(&self) -> &Room {
        &self.legacy
    }

    /// The room a request is for: the legacy room for `None`, else the named room, opened if
    /// it is not open yet.
    ///
    /// # Errors
    /// [`RoomsError::TooMany`], [`RoomsError::Closed`] while stopping, or
    /// [`RoomsError::Backend`] when the room cannot be opened (a later request tries again).
    pub async fn get(&self, name: Option<&RoomName>) -> Result<Room, RoomsError> {
        let Some(name) = name else {
            return Ok(self.legacy.clone());
        };
        if self.closing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(RoomsError::Closed);
        }
        let slot = {
            let mut named = self.named();
            let slot = match named.get(name) {
                Some(slot) => slot.clone(),
                None if named.len() >= self.max_rooms => {
                    return Err(RoomsError::TooMany {
                        max: self.max_rooms,
                    })
                }
                None => named.entry(name.clone()).or_default().clone(),
            };
            // Under the map's lock, so that `close_idle` never closes a room just handed out.
            *slot
                .last_used
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = self.clock.monotonic();
            slot
        };
        let opened = slot
            .room
            .get_or_try_init(|| self.opener.open(name))
            .await
            .cloned();
        if opened.is_err() {
            // Not kept: a later request tries again, and it does not count as open.
            let mut named = self.named();
            if named
                .get(name)
                .is_some_and(|kept| Arc::ptr_eq(kept, &slot) && kept.room.get().is_none())
            {
                named.remove(name);
            }
        }
        Ok(opened?)
    }

    /// How many named rooms are open.
    pub fn n_open(&self) -> usize {
        self.named().len()
    }

    /// Closes the named rooms that no request named for `idle_after` and where no pop waits,
    /// compacting their storage; returns how many it closed.
    pub async fn close_idle(&self) -> usize {
        let now = self.clock.monotonic();
        let idle: Vec<Room> = {
            let mut named = self.named();
            let names: Vec<RoomName> = named
                .iter()
                .filter(|(_, slot)| {
                    let last_used = *slot
                        .last_used
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    let waiting = slot.room.get().map_or(0, Room::n_waiting);
                    waiting == 0 && now.saturating_sub(last_used) >= self.idle_after
                })
                .map(|(name, _)| name.clone())
                .collect();
            names
                .iter()
                .filter_map(|name| named.remove(name))
                .filter_map(|slot| slot.room.get().cloned())
                .collect()
        };
        for room in &idle {
            room.begin_shutdown();
            room.close(Flush::Compact).await;
        }
        if !idle.is_empty() {
            tracing::debug!(closed = idle.len(), "closed idle rooms");
        }
        idle.len()
    }

    /// Every open room, the legacy one first.
    fn all(&self) -> Vec<Room> {
        let named = self.named();
        std::iter::once(self.legacy.clone())
            .chain(named.values().filter_map(|slot| slot.room.get().cloned()))
            .collect()
    }

    /// Tells every held pop of every room to answer now, and opens no more rooms.
    pub fn begin_shutdown(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for room in self.all() {
            room.begin_shutdown();
        }
    }

    /// Closes every room (see [`Room::close`]), the named ones first, then the legacy room,
    /// whose backend holds the data folder's lock.
    pub async fn close(&self, flush: Flush) {
        let named: Vec<Room> = self
            .named()
            .drain()
            .filter_map(|(_, slot)| slot.room.get().cloned())
            .collect();
        futures_util::future::join_all(named.iter().map(|room| room.close(flush))).await;
        self.legacy.close(flush).await;
    }
}
