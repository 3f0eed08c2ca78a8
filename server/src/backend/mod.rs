//! The storage seam: what the room needs from wherever messages and presence live.
//!
//! Shaped after centrifuge's Broker and PresenceManager: one trait per concern.
//! [`MessageBackend`] appends batches and assigns their times, reads pages of history after a
//! cursor, and tells this instance that new messages exist (also those another instance
//! saved, for a shared backend). [`PresenceStore`] keeps who is online. The room
//! ([`crate::room`]) keeps only what belongs to one instance (its held pops and a cache of the
//! newest messages) and works the same over every backend. [`local`] is the embedded default:
//! the data folder with its write-ahead log, group commit and the original's file layout.
//!
//! Data flows one way: routes → protocol → room → backend. A backend never calls the room; it
//! publishes the newest time on a `watch` channel the room follows.

pub mod local;
pub mod redis;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use chat_shared::{ClientMessageId, Cursor, Message, MessageText, Nickname};
use tokio::sync::watch;

use crate::presence::OnlineSnapshot;
use crate::storage::StorageError;

/// Retries of a failed backend (Redis unreachable, a data folder that cannot be written) wait
/// from this …
pub const RETRY_MIN: Duration = Duration::from_millis(100);
/// … doubling up to this, with full jitter.
pub const RETRY_MAX: Duration = Duration::from_secs(5);

/// Full-jitter exponential backoff: a random delay up to `min(RETRY_MAX, RETRY_MIN · 2^n)`
/// after `n_failures` failures in a row.
pub fn backoff_with_jitter(n_failures: u32) -> Duration {
    let ceiling = RETRY_MIN
        .saturating_mul(1u32 << n_failures.min(16))
        .min(RETRY_MAX);
    ceiling.mul_f64(rand::random::<f64>())
}

/// A message to store: validated, not yet timed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// Who says it.
    pub name: Nickname,
    /// What is said.
    pub msg: MessageText,
    /// The client message id: when a message under the same name and `cid` was stored within
    /// [`chat_shared::CID_WINDOW_MS`], the backend stores nothing and gives back that message
    /// (its first time), so a retried save is stored once.
    pub cid: Option<ClientMessageId>,
}

impl Draft {
    /// The message this draft becomes at `time`.
    pub fn timed(&self, time: u64) -> Message {
        Message {
            name: self.name.as_str().to_owned(),
            msg: self.msg.as_str().to_owned(),
            time,
            cid: self.cid.as_ref().map(|cid| cid.as_str().to_owned()),
        }
    }
}

/// Why a backend could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// The storage failed; for an append, nothing of the batch was stored.
    #[error(transparent)]
    Storage(Arc<StorageError>),
    /// The backend is closed (the server is stopping) and takes no more appends.
    #[error("the backend is closed")]
    Closed,
}

/// A run of the newest messages (for a room's cache at start), or of the newest before some
/// time (a page of earlier history, [`MessageBackend::read_before`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recent {
    /// Oldest first; groups of messages sharing a time (legacy files have them) are whole.
    pub messages: Vec<Message>,
    /// Time of the newest message older than all of `messages` (0 when there is none), ms
    /// since the Unix epoch: a page after an older cursor must be read from the backend, and
    /// there is more history to scroll back to.
    pub older_through: u64,
}

/// Where messages live: appends, history pages, and news of new messages.
#[async_trait::async_trait]
pub trait MessageBackend: Send + Sync + Debug {
    /// Stores `drafts` in this order, giving each the time `max(now_ms, last + 1)`, so times are
    /// unique and strictly increasing across everything this backend stores; returns them timed.
    /// A draft whose name and `cid` match a message stored within [`chat_shared::CID_WINDOW_MS`]
    /// (by the backend's clock) is not stored again: that message is returned in its place.
    /// When this returns `Ok`, they are durable, and [`MessageBackend::subscribe`] has been told
    /// (or is told at once) of their time.
    ///
    /// # Errors
    /// [`BackendError::Storage`]: none of `drafts` is stored. [`BackendError::Closed`].
    async fn append(&self, drafts: Vec<Draft>) -> Result<Vec<Message>, BackendError>;

    /// Up to `page_size` messages newer than `after`, oldest first (more when a page would
    /// otherwise split messages that share a time).
    ///
    /// # Errors
    /// [`BackendError::Storage`] when history cannot be read.
    async fn read_after(
        &self,
        after: Cursor,
        page_size: usize,
    ) -> Result<Vec<Message>, BackendError>;

    /// The newest `n` messages (more to keep a group sharing a time whole).
    ///
    /// # Errors
    /// [`BackendError::Storage`] when history cannot be read.
    async fn recent(&self, n: usize) -> Result<Recent, BackendError>;

    /// The newest `n` messages older than `before` (more to keep a group sharing a time
    /// whole), oldest first, and the time of the newest message older than those (0 when none
    /// is kept: the page starts at the beginning, or at the oldest message a bounded history
    /// kept). Scrolling back through history: `last=N&before=T`.
    ///
    /// # Errors
    /// [`BackendError::Storage`] when history cannot be read.
    async fn read_before(&self, before: Cursor, n: usize) -> Result<Recent, BackendError>;

    /// The newest stored time (ms since the Unix epoch, 0 when empty), updated whenever new
    /// messages exist.
    fn subscribe(&self) -> watch::Receiver<u64>;

    /// The newest stored time right now, asked of the backend itself (for a shared backend,
    /// this instance's news may lag a moment behind what another instance saved).
    ///
    /// # Errors
    /// [`BackendError::Storage`] when the backend cannot be asked.
    async fn newest_time(&self) -> Result<u64, BackendError> {
        Ok(*self.subscribe().borrow())
    }

    /// How many messages are stored in all.
    fn n_messages(&self) -> u64;

    /// Time of the newest message the backend no longer keeps (trimmed to bound its size), ms;
    /// 0 when it keeps everything. A page after an older cursor is incomplete.
    fn trimmed_through(&self) -> u64 {
        0
    }

    /// Whether the backend works right now.
    fn status(&self) -> BackendStatus {
        BackendStatus::Ok
    }

    /// Stops taking appends, finishes those under way, and flushes as `flush` says (for the
    /// local folder: compacts the write-ahead log or not, then releases the folder). Waits
    /// until done; a second call returns at once.
    async fn close(&self, flush: Flush);
}

/// Whether a backend works, for `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendStatus {
    /// Saves and reads work.
    Ok,
    /// Saves or reads fail right now, for this reason; the backend retries by itself.
    Degraded(String),
}

/// How much a closing backend writes before it lets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Everything into its long-term form (the local folder: compact the write-ahead log into
    /// the original's JSON files), as a plain stop does.
    Compact,
    /// Only what durability needs (already done at each append): the next process, which
    /// replays the log, is waiting to start.
    LogOnly,
}

/// Who is online: names seen lately or holding a pop. Shared by all the instances of a room on
/// a shared backend.
pub trait PresenceStore: Send + Sync + Debug {
    /// `name` did something (a save or a pop).
    fn seen(&self, name: &str);

    /// `name` said `exit`: it leaves the list until it is seen again.
    fn left(&self, name: &str);

    /// A pop under `name` is held: the name stays online until [`PresenceStore::release`].
    /// Returns false when the name does not take part in presence (blank, or the anonymous
    /// placeholder that many people share).
    fn hold(&self, name: &str) -> bool;

    /// A pop held under `name` ended (answered or gone): it counts as seen now.
    fn release(&self, name: &str);

    /// The current online list.
    fn snapshot(&self) -> Arc<OnlineSnapshot>;
}
