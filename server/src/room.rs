//! The chat room: the newest messages in memory, the wake-up signal for held pops, and the
//! handle through which requests save messages.
//!
//! `Room` is a cheap `Clone` handle. Its state sits behind a `std::sync::RwLock` held only for
//! short, non-async sections. The writer thread inserts each durable batch into the state,
//! answers the pushers, and then bumps a `tokio::sync::watch` channel carrying the newest time;
//! every held pop waits on that channel, so a push wakes all of them at once (event-driven
//! fan-out, no re-check timer). Answering the pushers first keeps a push's acknowledgement from
//! queueing behind the fan-out to thousands of held pops.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use chat_shared::{Cursor, Message};
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::Clock;
use crate::storage::{ChunkIndex, Loaded, StorageError};
use crate::telemetry::Telemetry;
use crate::writer::{self, WriteCommand};

/// Why a save failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SaveError {
    /// The disk write failed; nothing was saved.
    #[error("could not save the message: {0}")]
    Storage(Arc<StorageError>),
    /// The room is closing and takes no more saves.
    #[error("the server is shutting down")]
    Closed,
}

/// In-memory state, guarded by [`RoomShared::state`].
#[derive(Debug)]
struct RoomState {
    /// The newest messages, oldest first: always every message not yet in a chunk file, plus
    /// older ones up to the memory limit.
    recent: VecDeque<Message>,
    /// Time of the newest message not in `recent` (0 when none is missing), ms.
    older_through: u64,
    /// How many messages the room holds in all (memory and disk).
    n_messages: u64,
}

/// The part of the room the writer thread shares.
#[derive(Debug)]
pub struct RoomShared {
    state: RwLock<RoomState>,
    newest: watch::Sender<u64>,
    chunks: ChunkIndex,
    memory_limit: usize,
}

impl RoomShared {
    /// The state for reading. A panic elsewhere while it was held cannot leave it half
    /// changed (every change is a plain push or pop), so a poisoned lock is used as is.
    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, RoomState> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The state for changing; see [`RoomShared::read_state`] about poisoning.
    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, RoomState> {
        self.state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a durable batch (times strictly increasing) to memory, where new pops see it at
    /// once; held pops are woken by [`RoomShared::notify`]. Messages at or before
    /// `chunked_through` (ms) may leave memory: they can be read from disk.
    pub(crate) fn insert(&self, messages: &[Message], chunked_through: u64) {
        let mut state = self.write_state();
        state.recent.extend(messages.iter().cloned());
        state.n_messages += messages.len() as u64;
        evict_oldest(&mut state, self.memory_limit, chunked_through);
    }

    /// Wakes every held pop: messages up to `newest_time` (ms) were inserted.
    pub(crate) fn notify(&self, newest_time: u64) {
        self.newest.send_replace(newest_time);
    }

    /// Time of the newest message in memory (0 for an empty room).
    fn newest_time(&self) -> u64 {
        let state = self.read_state();
        state.recent.back().map_or(0, |message| message.time)
    }
}

/// Settings of a [`Room`].
#[derive(Debug, Clone, Copy)]
pub struct RoomLimits {
    /// Most messages in one pop answer.
    pub page_size: usize,
}

/// Handle to the chat room. Clone it freely.
#[derive(Debug, Clone)]
pub struct Room {
    inner: Arc<RoomInner>,
}

#[derive(Debug)]
struct RoomInner {
    shared: Arc<RoomShared>,
    commands: Mutex<Option<mpsc::Sender<WriteCommand>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    shutdown: watch::Sender<bool>,
    limits: RoomLimits,
}

/// Bound of the queue of saves waiting for the writer thread; a full queue makes requests wait
/// (back-pressure) rather than grow memory without limit.
const COMMAND_QUEUE: usize = 16 * 1024;

impl Room {
    /// Starts the room on loaded storage: spawns the writer thread, which reports each group
    /// commit to `telemetry`.
    ///
    /// `memory_limit` is how many of the newest messages stay in memory (at least every message
    /// not yet compacted into a chunk file stays too).
    ///
    /// # Errors
    /// The writer thread could not be spawned.
    pub fn start(
        loaded: Loaded,
        clock: Arc<dyn Clock>,
        memory_limit: usize,
        limits: RoomLimits,
        telemetry: Telemetry,
    ) -> std::io::Result<Room> {
        let Loaded {
            store,
            recent,
            n_messages,
            older_through,
            chunks,
        } = loaded;
        let newest_time = recent.last().map_or(0, |message| message.time);
        let (newest, _) = watch::channel(newest_time);
        let shared = Arc::new(RoomShared {
            state: RwLock::new(RoomState {
                recent: recent.into(),
                older_through,
                n_messages,
            }),
            newest,
            chunks,
            memory_limit,
        });
        let (command_tx, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let writer = writer::spawn(store, command_rx, shared.clone(), clock, telemetry)?;
        let (shutdown, _) = watch::channel(false);
        Ok(Room {
            inner: Arc::new(RoomInner {
                shared,
                commands: Mutex::new(Some(command_tx)),
                writer: Mutex::new(Some(writer)),
                shutdown,
                limits,
            }),
        })
    }

    /// Saves a message durably and returns it with its time.
    ///
    /// # Errors
    /// [`SaveError::Storage`] when the disk write failed, [`SaveError::Closed`] after
    /// [`Room::close`].
    pub async fn save(&self, name: String, msg: String) -> Result<Message, SaveError> {
        let sender = self
            .inner
            .commands
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let sender = sender.ok_or(SaveError::Closed)?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(WriteCommand::Append { name, msg, reply })
            .await
            .map_err(|_| SaveError::Closed)?;
        match answer.await {
            Ok(Ok(message)) => Ok(message),
            Ok(Err(error)) => Err(SaveError::Storage(error)),
            Err(_) => Err(SaveError::Closed),
        }
    }

    /// Time of the newest message, ms since the Unix epoch (0 for an empty room).
    pub fn newest_time(&self) -> u64 {
        // From the state, not the wake-up channel: a message is visible to new pops as soon as
        // it is inserted, a moment before held pops are woken.
        self.inner.shared.newest_time()
    }

    /// How many messages the room holds.
    pub fn n_messages(&self) -> u64 {
        self.inner.shared.read_state().n_messages
    }

    /// A receiver that changes whenever a batch of messages is published; subscribe *before*
    /// looking for messages so that none published in between is missed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.shared.newest.subscribe()
    }

    /// A receiver that turns `true` when the server starts shutting down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// Whether the server has started shutting down.
    pub fn is_shutting_down(&self) -> bool {
        *self.inner.shutdown.borrow()
    }

    /// Tells every held pop to answer now (the server is shutting down).
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Most messages in one answer.
    pub fn page_size(&self) -> usize {
        self.inner.limits.page_size
    }

    /// Messages newer than `cursor`, oldest first, at most one page (a page is extended rather
    /// than cut between messages that share a time). Reads the chunk files when the cursor is
    /// older than what memory holds.
    ///
    /// # Errors
    /// [`StorageError`] when a chunk file cannot be read.
    pub async fn page_after(&self, cursor: Cursor) -> Result<Vec<Message>, Arc<StorageError>> {
        let after = cursor.as_millis();
        let page_size = self.page_size();
        if let Some(page) = self.page_from_memory(after, page_size, true) {
            return Ok(page);
        }
        let chunks = self.inner.shared.chunks.clone();
        let mut page = tokio::task::spawn_blocking(move || chunks.read_after(after, page_size))
            .await
            .map_err(|join_error| {
                Arc::new(StorageError::io(
                    std::path::Path::new("history"),
                    std::io::Error::other(join_error),
                ))
            })?
            .map_err(Arc::new)?;
        if page.len() < page_size {
            // The chunks ran out: go on with what only memory holds. Legacy files may split a
            // group of messages sharing a time between the last chunk file and data.json, so
            // memory is taken from the page's last time on, minus the copies read from disk.
            let Some(last_time) = page.last().map(|message| message.time) else {
                return Ok(self
                    .page_from_memory(after, page_size, false)
                    .unwrap_or_default());
            };
            let mut read_from_disk: Vec<Message> = page
                .iter()
                .filter(|message| message.time == last_time)
                .cloned()
                .collect();
            let wanted = page_size - page.len() + read_from_disk.len();
            let mut more = match last_time.checked_sub(1) {
                Some(before_last) => self.page_from_memory(before_last, wanted, false),
                None => self.page_from_memory(0, wanted, false),
            }
            .unwrap_or_default();
            more.retain(|message| {
                if message.time < last_time {
                    return false;
                }
                match read_from_disk.iter().position(|copy| copy == message) {
                    Some(found) if message.time == last_time => {
                        read_from_disk.swap_remove(found);
                        false
                    }
                    _ => true,
                }
            });
            page.extend(more);
        }
        Ok(page)
    }

    /// The page from memory; `None` when `complete_only` and memory does not reach back to
    /// `after` (older messages are only on disk).
    fn page_from_memory(
        &self,
        after: u64,
        page_size: usize,
        complete_only: bool,
    ) -> Option<Vec<Message>> {
        let state = self.inner.shared.read_state();
        (!complete_only || after >= state.older_through)
            .then(|| take_page(&state.recent, after, page_size))
    }

    /// Stops taking saves, lets the writer thread finish the queued ones and compact the log
    /// into the JSON layout, and waits for it.
    pub async fn close(&self) {
        drop(
            self.inner
                .commands
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take(),
        );
        let writer = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(writer) = writer {
            let joined = tokio::task::spawn_blocking(move || writer.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::error!(
                    "the writer thread panicked; unsaved messages were never acknowledged"
                );
            }
        }
    }
}

/// Drops the oldest messages from memory while it holds more than `memory_limit`, but only
/// those at or before `chunked_through` (ms; they can be read from disk), and only whole groups
/// of messages sharing a time (legacy files have them): a page must never find half a group in
/// memory and the other half only on disk.
fn evict_oldest(state: &mut RoomState, memory_limit: usize, chunked_through: u64) {
    while state.recent.len() > memory_limit {
        let Some(oldest) = state.recent.front().map(|message| message.time) else {
            break;
        };
        if oldest > chunked_through {
            break;
        }
        while state
            .recent
            .front()
            .is_some_and(|message| message.time == oldest)
        {
            state.recent.pop_front();
        }
        state.older_through = oldest;
    }
}

/// Up to `page_size` messages of `recent` newer than `after`, extended to keep messages that
/// share the last time together.
fn take_page(recent: &VecDeque<Message>, after: u64, page_size: usize) -> Vec<Message> {
    let start = recent.partition_point(|message| message.time <= after);
    let mut end = (start + page_size).min(recent.len());
    if end > start {
        let last_time = recent[end - 1].time;
        while end < recent.len() && recent[end].time == last_time {
            end += 1;
        }
    }
    recent.range(start..end).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(times: &[u64]) -> VecDeque<Message> {
        times
            .iter()
            .map(|&time| Message {
                name: "a".into(),
                msg: time.to_string(),
                time,
            })
            .collect()
    }

    fn times(page: &[Message]) -> Vec<u64> {
        page.iter().map(|message| message.time).collect()
    }

    #[test]
    fn page_starts_after_the_cursor_and_is_bounded() {
        let recent = messages(&[1, 2, 3, 4, 5]);
        assert_eq!(times(&take_page(&recent, 0, 2)), [1, 2]);
        assert_eq!(times(&take_page(&recent, 2, 2)), [3, 4]);
        assert_eq!(times(&take_page(&recent, 4, 2)), [5]);
        assert!(take_page(&recent, 5, 2).is_empty());
    }

    #[test]
    fn eviction_keeps_groups_sharing_a_time_whole_and_stops_at_what_is_on_disk() {
        let mut state = RoomState {
            recent: messages(&[1, 2, 2, 2, 3, 4, 5]),
            older_through: 0,
            n_messages: 7,
        };
        evict_oldest(&mut state, 4, 4);
        // Dropping 1 leaves 6 > 4, so the group at 2 goes, whole, even though that leaves 3.
        assert_eq!(
            times(&state.recent.iter().cloned().collect::<Vec<_>>()),
            [3, 4, 5]
        );
        assert_eq!(state.older_through, 2);
        let mut state = RoomState {
            recent: messages(&[1, 2, 3]),
            older_through: 0,
            n_messages: 3,
        };
        evict_oldest(&mut state, 1, 1);
        assert_eq!(
            times(&state.recent.iter().cloned().collect::<Vec<_>>()),
            [2, 3],
            "2 is not on disk yet"
        );
    }

    #[test]
    fn legacy_messages_sharing_a_time_are_never_split_across_pages() {
        let recent = messages(&[1, 2, 2, 2, 3]);
        assert_eq!(times(&take_page(&recent, 0, 2)), [1, 2, 2, 2]);
        assert_eq!(times(&take_page(&recent, 2, 2)), [3]);
    }
}
