//! The embedded default backend: the data folder, in the original server's layout, with our
//! write-ahead log (see [`crate::storage`]).
//!
//! One writer thread owns the [`Store`] and is the one place that assigns times and writes.
//! Appends arrive on a channel; the thread takes the first, then everything else already
//! waiting (group commit), gives each message its time (`max(now_ms, last_time + 1)`, so times
//! are unique and strictly increasing even when the wall clock steps back), appends the batch
//! to the write-ahead log with one fsync, adds it to the messages it keeps in memory, answers
//! the appenders, and then publishes the newest time. A message is never acknowledged or
//! published before it is durable.
//!
//! In memory it keeps only what is not yet in a chunk file (`data.json` and the log); older
//! pages are read from the chunk files.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use chat_shared::{Cursor, Message};
use tokio::sync::{mpsc, oneshot, watch};

use super::{
    backoff_with_jitter, BackendError, BackendStatus, Draft, Flush, MessageBackend, Recent,
};
use crate::clock::Clock;
use crate::pages::{newest_before, newest_whole_groups, take_page};
use crate::storage::{ChunkIndex, Loaded, StorageError, Store};
use crate::telemetry::Telemetry;

/// The most saves committed with one fsync.
pub const MAX_BATCH: usize = 4096;

/// Bound of the queue of appends waiting for the writer thread; a full queue makes requests
/// wait (back-pressure) rather than grow memory without limit.
const COMMAND_QUEUE: usize = 16 * 1024;

/// An append waiting for the writer thread.
#[derive(Debug)]
struct Append {
    drafts: Vec<Draft>,
    reply: oneshot::Sender<Result<Vec<Message>, Arc<StorageError>>>,
}

/// The client message ids of the messages saved within [`chat_shared::CID_WINDOW_MS`], so that
/// a retried save is recognized (see [`MessageBackend::append`]). Owned by the writer thread, and
/// rebuilt from the folder at start, so a retry is recognized across a restart.
#[derive(Debug, Default)]
struct RecentCids {
    /// `(name, cid)` → the message first saved with them.
    by_key: HashMap<(String, String), Message>,
    /// The same keys, oldest first, with their message's time, for expiry.
    by_age: VecDeque<(u64, (String, String))>,
}

impl RecentCids {
    /// Remembers `message` when it carries a `cid` (a later save with the same key wins only
    /// after the first expired).
    fn remember(&mut self, message: &Message) {
        if let Some(cid) = &message.cid {
            let key = (message.name.clone(), cid.clone());
            if !self.by_key.contains_key(&key) {
                self.by_age.push_back((message.time, key.clone()));
                self.by_key.insert(key, message.clone());
            }
        }
    }

    /// The message saved within the window before `now_ms` under `name` and `cid`.
    fn find(&mut self, name: &str, cid: &str, now_ms: u64) -> Option<Message> {
        while let Some((time, _)) = self.by_age.front() {
            if now_ms.saturating_sub(*time) <= chat_shared::CID_WINDOW_MS {
                break;
            }
            if let Some((_, key)) = self.by_age.pop_front() {
                self.by_key.remove(&key);
            }
        }
        self.by_key.get(&(name.to_owned(), cid.to_owned())).cloned()
    }
}

/// What the writer answers one draft of a batch with.
#[derive(Debug)]
enum Slot {
    /// Stored now: the batch's message at this index.
    Stored(usize),
    /// A retry: the message its `cid` was first saved as.
    Retry(Message),
}

/// The messages in memory and the time the chunk files reach, changed together (under one
/// lock) so that a reader never sees compaction half done.
#[derive(Debug, Default)]
struct Tail {
    /// Messages not in any chunk file, oldest first (legacy folders may hold some older than
    /// the newest chunked message).
    messages: VecDeque<Message>,
    /// Time of the newest message in a chunk file (0 when there are none), ms: every newer
    /// message is in `messages`.
    chunked_through: u64,
}

/// What the writer thread shares with readers.
#[derive(Debug)]
struct Shared {
    /// See [`Tail`].
    tail: RwLock<Tail>,
    /// Messages stored in all.
    n_messages: std::sync::atomic::AtomicU64,
    /// The chunk files.
    chunks: ChunkIndex,
    /// The newest durable time.
    newest: watch::Sender<u64>,
    /// What the writer does once the appends end.
    flush_on_close: Mutex<Flush>,
    /// Why saves fail right now (the last failed group commit's error), until an append or a
    /// probe of the storage succeeds again.
    failure: Mutex<Option<String>>,
}

impl Shared {
    fn read_tail(&self) -> std::sync::RwLockReadGuard<'_, Tail> {
        // Every change is a plain push, drain or swap: a panic elsewhere cannot leave it half
        // changed, so a poisoned lock is used as is.
        self.tail
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn failure(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Notes that a group commit failed with `error`: logged at ERROR when the storage was
    /// working until now, at debug level while it keeps failing.
    fn failed(&self, error: &StorageError, n_messages: usize) {
        let mut failure = self.failure();
        if failure.is_none() {
            tracing::error!(error = %error, n_messages, "could not save messages; saves fail until the storage works again (retried with backoff)");
        } else {
            tracing::debug!(error = %error, n_messages, "could not save messages");
        }
        *failure = Some(error.to_string());
    }

    /// Notes that the storage works (again).
    fn working(&self) {
        if self.failure().take().is_some() {
            tracing::info!("the storage works again; saves are stored");
        }
    }

    fn is_failing(&self) -> bool {
        self.failure().is_some()
    }

    fn write_tail(&self) -> std::sync::RwLockWriteGuard<'_, Tail> {
        self.tail
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The data folder as a [`MessageBackend`]. Opened with [`LocalBackend::start`].
#[derive(Debug)]
pub struct LocalBackend {
    shared: Arc<Shared>,
    appends: Mutex<Option<mpsc::Sender<Append>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl LocalBackend {
    /// Starts the writer thread on a loaded data folder; each group commit's size and fsync
    /// time go to `telemetry`.
    ///
    /// # Errors
    /// The writer thread could not be spawned.
    pub fn start(
        loaded: Loaded,
        clock: Arc<dyn Clock>,
        telemetry: Telemetry,
    ) -> std::io::Result<LocalBackend> {
        let Loaded {
            store,
            n_messages,
            chunks,
            ..
        } = loaded;
        let newest_time = store.last_time();
        let mut recent_cids = RecentCids::default();
        let window_start = clock.now_ms().saturating_sub(chat_shared::CID_WINDOW_MS);
        // Saves of the window may have been compacted into chunk files already; a folder that
        // cannot be read was refused by `Store::open`, so a failure here only loses the window.
        match chunks.read_after(window_start, usize::MAX) {
            Ok(chunked) => chunked
                .iter()
                .for_each(|message| recent_cids.remember(message)),
            Err(error) => {
                tracing::warn!(error = %error, "cannot read the chunk files for recent client message ids")
            }
        }
        store
            .tail()
            .iter()
            .filter(|message| message.time > window_start)
            .for_each(|message| recent_cids.remember(message));
        let shared = Arc::new(Shared {
            tail: RwLock::new(Tail {
                messages: store.tail().iter().cloned().collect(),
                chunked_through: store.chunked_through(),
            }),
            n_messages: n_messages.into(),
            chunks,
            newest: watch::channel(newest_time).0,
            flush_on_close: Mutex::new(Flush::Compact),
            failure: Mutex::new(None),
        });
        let (sender, receiver) = mpsc::channel(COMMAND_QUEUE);
        let writer = spawn_writer(
            store,
            recent_cids,
            receiver,
            shared.clone(),
            clock,
            telemetry,
        )?;
        Ok(LocalBackend {
            shared,
            appends: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
        })
    }
}

#[async_trait::async_trait]
impl MessageBackend for LocalBackend {
    async fn append(&self, drafts: Vec<Draft>) -> Result<Vec<Message>, BackendError> {
        let sender = self
            .appends
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
            .ok_or(BackendError::Closed)?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(Append { drafts, reply })
            .await
            .map_err(|_| BackendError::Closed)?;
        match answer.await {
            Ok(Ok(messages)) => Ok(messages),
            Ok(Err(error)) => Err(BackendError::Storage(error)),
            Err(_) => Err(BackendError::Closed),
        }
    }

    async fn read_after(
        &self,
        after: Cursor,
        page_size: usize,
    ) -> Result<Vec<Message>, BackendError> {
        let after = after.as_millis();
        loop {
            let chunked_through = {
                let tail = self.shared.read_tail();
                if after >= tail.chunked_through {
                    // Every message newer than the chunks' newest is in memory.
                    return Ok(take_page(&tail.messages, after, page_size));
                }
                tail.chunked_through
            };
            let chunks = self.shared.chunks.clone();
            let mut page = tokio::task::spawn_blocking(move || chunks.read_after(after, page_size))
                .await
                .map_err(|join_error| history_error(std::io::Error::other(join_error)))?
                .map_err(|error| BackendError::Storage(Arc::new(error)))?;
            if page.len() < page_size {
                let tail = self.shared.read_tail();
                if tail.chunked_through != chunked_through {
                    // A compaction moved messages from memory into chunk files while the
                    // disk was read: read again, or they would be skipped.
                    continue;
                }
                continue_from_memory(&mut page, &tail.messages, after, page_size);
            }
            return Ok(page);
        }
    }

    async fn recent(&self, n: usize) -> Result<Recent, BackendError> {
        let tail: Vec<Message> = self.shared.read_tail().messages.iter().cloned().collect();
        let chunks = self.shared.chunks.clone();
        tokio::task::spawn_blocking(move || {
            let (older, older_through_unread) = chunks.read_newest(n.saturating_add(1))?;
            let mut all = older;
            all.extend(tail);
            // Chunk and tail ranges interleave only in legacy or hand-edited folders.
            all.sort_by_key(|message| message.time);
            let (messages, older_through) = newest_whole_groups(all, n);
            Ok(Recent {
                messages,
                older_through: older_through.max(older_through_unread),
            })
        })
        .await
        .map_err(|join_error| history_error(std::io::Error::other(join_error)))?
        .map_err(|error: StorageError| BackendError::Storage(Arc::new(error)))
    }

    async fn read_before(&self, before: Cursor, n: usize) -> Result<Recent, BackendError> {
        let before = before.as_millis();
        loop {
            let (in_memory, chunked_through) = {
                let tail = self.shared.read_tail();
                let (messages, older_through) = newest_before(&tail.messages, before, n);
                if older_through > tail.chunked_through || tail.chunked_through == 0 {
                    // The page and the message before it are newer than every chunked one (or
                    // there are no chunk files): memory alone answers.
                    return Ok(Recent {
                        messages,
                        older_through,
                    });
                }
                let in_memory: Vec<Message> = tail
                    .messages
                    .iter()
                    .filter(|message| message.time < before)
                    .cloned()
                    .collect();
                (in_memory, tail.chunked_through)
            };
            let chunks = self.shared.chunks.clone();
            let (from_disk, newest_unread) =
                tokio::task::spawn_blocking(move || chunks.read_before(before, n))
                    .await
                    .map_err(|join_error| history_error(std::io::Error::other(join_error)))?
                    .map_err(|error| BackendError::Storage(Arc::new(error)))?;
            if self.shared.read_tail().chunked_through != chunked_through {
                // A compaction moved messages from memory into chunk files while the disk was
                // read: read again, or they would be doubled.
                continue;
            }
            let mut all = from_disk;
            all.extend(in_memory);
            // Chunk and tail ranges interleave only in legacy or hand-edited folders.
            all.sort_by_key(|message| message.time);
            let (messages, older_through) = newest_whole_groups(all, n);
            return Ok(Recent {
                messages,
                older_through: older_through.max(newest_unread),
            });
        }
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.newest.subscribe()
    }

    fn n_messages(&self) -> u64 {
        self.shared
            .n_messages
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    fn status(&self) -> BackendStatus {
        match self.shared.failure().as_ref() {
            None => BackendStatus::Ok,
            Some(error) => BackendStatus::Degraded(format!("saves fail: {error}")),
        }
    }

    async fn close(&self, flush: Flush) {
        *self
            .shared
            .flush_on_close
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = flush;
        drop(
            self.appends
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take(),
        );
        let writer = self
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

fn history_error(source: std::io::Error) -> BackendError {
    BackendError::Storage(Arc::new(StorageError::io(
        std::path::Path::new("history"),
        source,
    )))
}

/// A page read from the chunk files ran out before `page_size`: it goes on with the messages
/// only memory holds. Legacy files may split a group of messages sharing a time between the
/// last chunk file and `data.json`, so memory is taken from the page's last time on, minus the
/// copies already read from disk.
fn continue_from_memory(
    page: &mut Vec<Message>,
    tail: &VecDeque<Message>,
    after: u64,
    page_size: usize,
) {
    let Some(last_time) = page.last().map(|message| message.time) else {
        *page = take_page(tail, after, page_size);
        return;
    };
    let mut read_from_disk: Vec<Message> = page
        .iter()
        .filter(|message| message.time == last_time)
        .cloned()
        .collect();
    let wanted = page_size - page.len() + read_from_disk.len();
    let mut more = take_page(tail, last_time.saturating_sub(1), wanted);
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

/// Starts the writer thread. It runs until every sender of `appends` is dropped, then compacts
/// the log into the JSON layout and ends (dropping the store releases the data folder).
fn spawn_writer(
    mut store: Store,
    mut recent_cids: RecentCids,
    mut appends: mpsc::Receiver<Append>,
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
    telemetry: Telemetry,
) -> std::io::Result<JoinHandle<()>> {
    // Only for timed waits while the storage fails; the thread otherwise blocks on the queue.
    let timer = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    std::thread::Builder::new()
        .name("chat-writer".to_owned())
        .spawn(move || {
            let mut batch: Vec<Append> = Vec::with_capacity(64);
            let mut messages: Vec<Message> = Vec::with_capacity(64);
            let mut slots: Vec<Slot> = Vec::with_capacity(64);
            let mut failed_probes = 0u32;
            loop {
                let first = if shared.is_failing() {
                    // Saves fail: probe the storage with backoff until it works, so that it
                    // recovers (and /healthz says so) without waiting for a save.
                    let delay = backoff_with_jitter(failed_probes);
                    // The timer is made inside `block_on`: it needs the runtime's clock.
                    let next = timer.block_on(async {
                        tokio::time::timeout(delay, appends.recv()).await
                    });
                    match next {
                        Ok(Some(first)) => first,
                        Ok(None) => break,
                        Err(_elapsed) => {
                            match store.probe() {
                                Ok(()) => {
                                    failed_probes = 0;
                                    shared.working();
                                }
                                Err(error) => {
                                    failed_probes = failed_probes.saturating_add(1);
                                    tracing::debug!(error = %error, "the storage still fails");
                                }
                            }
                            continue;
                        }
                    }
                } else {
                    match appends.blocking_recv() {
                        Some(first) => first,
                        None => break,
                    }
                };
                let mut n_drafts = first.drafts.len();
                batch.push(first);
                while n_drafts < MAX_BATCH {
                    match appends.try_recv() {
                        Ok(append) => {
                            n_drafts += append.drafts.len();
                            batch.push(append);
                        }
                        Err(_) => break,
                    }
                }
                let mut last_time = store.last_time();
                // Retries found in this batch too: a `cid` is remembered as soon as it is
                // timed, and forgotten again if the batch cannot be stored.
                let mut batch_cids = RecentCids::default();
                for draft in batch.iter().flat_map(|append| &append.drafts) {
                    let now = clock.now_ms();
                    if let Some(cid) = &draft.cid {
                        let first = recent_cids
                            .find(draft.name.as_str(), cid.as_str(), now)
                            .or_else(|| batch_cids.find(draft.name.as_str(), cid.as_str(), now));
                        if let Some(first) = first {
                            slots.push(Slot::Retry(first));
                            continue;
                        }
                    }
                    let time = now.max(last_time.saturating_add(1));
                    last_time = time;
                    let message = draft.timed(time);
                    batch_cids.remember(&message);
                    slots.push(Slot::Stored(messages.len()));
                    messages.push(message);
                }
                let result = match store.append_unless_empty(&messages) {
                    Ok(report) => {
                        telemetry.committed(messages.len(), report.fsync, report.compaction);
                        let mut tail = shared.write_tail();
                        if report.compaction.is_some() {
                            // Compaction moved the oldest into chunk files: memory follows it.
                            *tail = Tail {
                                messages: store.tail().iter().cloned().collect(),
                                chunked_through: store.chunked_through(),
                            };
                        } else {
                            tail.messages.extend(messages.iter().cloned());
                        }
                        drop(tail);
                        shared.n_messages.fetch_add(
                            messages.len() as u64,
                            std::sync::atomic::Ordering::SeqCst,
                        );
                        shared.working();
                        Ok(())
                    }
                    Err(error) => {
                        shared.failed(&error, messages.len());
                        Err(Arc::new(error))
                    }
                };
                if result.is_ok() {
                    messages.iter().for_each(|message| recent_cids.remember(message));
                }
                let newest = messages.last().map(|message| message.time);
                let mut answers = slots.drain(..);
                for append in batch.drain(..) {
                    let mine = result.clone().map(|()| {
                        answers
                            .by_ref()
                            .take(append.drafts.len())
                            .map(|slot| match slot {
                                Slot::Stored(index) => messages[index].clone(),
                                Slot::Retry(first) => first,
                            })
                            .collect::<Vec<Message>>()
                    });
                    // The appender may have gone away; its messages are saved all the same.
                    let _ = append.reply.send(mine);
                }
                drop(answers);
                messages.clear();
                if let (Ok(()), Some(newest)) = (&result, newest) {
                    shared.newest.send_replace(newest);
                }
            }
            let flush = *shared
                .flush_on_close
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if flush == Flush::Compact {
                if let Err(error) = store.compact() {
                    tracing::error!(error = %error, "final compaction failed; messages stay in the write-ahead log");
                }
            }
            tracing::debug!("writer thread finished");
        })
}
