//! The chat room as one instance sees it: its held pops, a cache of the newest messages, and
//! the backend where messages and presence live ([`crate::backend`]).
//!
//! `Room` is a cheap `Clone` handle. A follower task watches the backend's newest time; when it
//! moves, the follower reads the new messages into the cache (a `std::sync::RwLock` held only
//! for short, non-async sections), tells waiting saves first and then bumps the `watch` channel
//! every held pop waits on, so a save wakes all of them at once (event-driven fan-out, no
//! re-check timer). A save is answered only once its message is in the cache, so a pop that
//! follows the answer always sees it; and answering saves before waking held pops keeps an
//! acknowledgement from queueing behind the fan-out to thousands of them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use chat_shared::{Cursor, Message, Nickname};
use serde_json::value::RawValue;
use tokio::sync::watch;

use crate::backend::Recent;
use crate::backend::{BackendError, BackendStatus, Draft, Flush, MessageBackend, PresenceStore};
use crate::pages::{evict_oldest, newest_before, take_page};
use crate::storage::StorageError;

/// Why a save failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SaveError {
    /// The storage failed; nothing was saved.
    #[error("could not save the message: {0}")]
    Storage(Arc<StorageError>),
    /// The room is closing and takes no more saves.
    #[error("the server is shutting down")]
    Closed,
}

impl From<BackendError> for SaveError {
    fn from(error: BackendError) -> SaveError {
        match error {
            BackendError::Storage(error) => SaveError::Storage(error),
            BackendError::Closed => SaveError::Closed,
        }
    }
}

/// Settings of a [`Room`].
#[derive(Debug, Clone, Copy)]
pub struct RoomLimits {
    /// Most messages in one pop answer.
    pub page_size: usize,
    /// How many of the newest messages the cache keeps (more to keep a group sharing a time
    /// whole); older pages are read from the backend.
    pub memory_messages: usize,
}

/// How long a save waits for its message to reach the cache before it is answered anyway.
const SAVE_VISIBLE_WITHIN: Duration = Duration::from_secs(5);

/// How long the follower waits before reading again after the backend failed to answer.
const FOLLOW_RETRY_AFTER: Duration = Duration::from_millis(100);

/// The newest messages, oldest first.
#[derive(Debug, Default)]
struct Cache {
    messages: VecDeque<Message>,
    /// Time of the newest message not in `messages` (0 when none is missing), ms: a page after
    /// an older cursor is read from the backend.
    older_through: u64,
}

#[derive(Debug)]
struct RoomInner {
    backend: Arc<dyn MessageBackend>,
    presence: Arc<dyn PresenceStore>,
    cache: RwLock<Cache>,
    /// The newest time in the cache; saves wait for theirs here.
    cached: watch::Sender<u64>,
    /// The newest time held pops have been told of.
    newest: watch::Sender<u64>,
    shutdown: watch::Sender<bool>,
    limits: RoomLimits,
    follower: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The pages woken held pops took from the cache since its newest message: the next ones
    /// at the same cursor share them ([`Room::wait_after`]).
    woken_pages: Mutex<WokenPages>,
}

/// Most cursors whose pages are kept for a fan-out: the pollers of a fan-out are nearly all at
/// the newest time but one, and a few behind.
const MAX_WOKEN_PAGES: usize = 8;

/// The pages taken from the cache while its newest time was `newest` (ms), one per cursor.
#[derive(Debug, Default)]
struct WokenPages {
    newest: u64,
    pages: Vec<Arc<SharedPage>>,
}

/// A page of messages after a cursor, taken out of the cache once and shared by every held pop
/// that a fan-out wakes at that cursor; its JSON is rendered once, by the first answer that
/// writes it.
#[derive(Debug)]
pub struct SharedPage {
    /// The cursor the page follows, ms.
    after: u64,
    messages: Vec<Message>,
    json: OnceLock<Box<RawValue>>,
}

impl SharedPage {
    fn new(after: u64, messages: Vec<Message>) -> SharedPage {
        SharedPage {
            after,
            messages,
            json: OnceLock::new(),
        }
    }

    /// The messages, oldest first; never empty when returned by [`Room::wait_after`].
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// The messages as a JSON array (`[{"name":…,"msg":…,"time":…}, …]`), rendered on the
    /// first call.
    pub fn json(&self) -> &RawValue {
        self.json.get_or_init(|| {
            // Plain strings and numbers always serialize.
            serde_json::value::to_raw_value(&self.messages)
                .unwrap_or_else(|_| RawValue::from_string("[]".to_owned()).expect("valid JSON"))
        })
    }
}

impl RoomInner {
    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        // Every change is a plain push or pop: a panic elsewhere while it was held cannot leave
        // it half changed, so a poisoned lock is used as is.
        self.cache
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_cache(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        self.cache
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn cache_newest(&self) -> u64 {
        let cache = self.read_cache();
        cache
            .messages
            .back()
            .map_or(cache.older_through, |message| message.time)
    }

    /// Reads what the backend has beyond the cache into it, page by page. Returns the newest
    /// time cached.
    async fn catch_up(&self) -> Result<u64, BackendError> {
        loop {
            let after = self.cache_newest();
            let page = self
                .backend
                .read_after(Cursor::from_millis(after), self.limits.page_size)
                .await?;
            let Some(last) = page.last().map(|message| message.time) else {
                return Ok(after);
            };
            let mut cache = self.write_cache();
            cache.messages.extend(page);
            if let Some(dropped) = evict_oldest(&mut cache.messages, self.limits.memory_messages) {
                cache.older_through = cache.older_through.max(dropped);
            }
            drop(cache);
            // Saves first, then the held pops (see the module docs), page by page: a long
            // catch-up does not keep held pops waiting for its end.
            self.cached.send_replace(last);
            self.newest.send_replace(last);
        }
    }
}

/// Follows the backend's newest time into the cache and wakes held pops.
async fn follow(inner: Arc<RoomInner>, mut news: watch::Receiver<u64>) {
    loop {
        let newest = *news.borrow_and_update();
        if newest > inner.cache_newest() {
            match inner.catch_up().await {
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(error = %error, "cannot read new messages from the backend; retrying");
                    tokio::time::sleep(FOLLOW_RETRY_AFTER).await;
                    continue;
                }
            }
        }
        if news.changed().await.is_err() {
            return;
        }
    }
}

/// Handle to the chat room. Clone it freely.
#[derive(Debug, Clone)]
pub struct Room {
    inner: Arc<RoomInner>,
}

/// Whether a pop's cursor is a time the room has reached ([`Room::has_reached`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    /// It has: pages after it are served.
    Yes,
    /// Nothing is stored at or after it: a time from the future, answered with the newest
    /// time, as the original server did.
    Ahead,
    /// Not known now (the backend did not answer, or this instance did not catch up in time):
    /// answered with the client's own cursor and no messages, so it asks again.
    Unknown,
}

/// Keeps a name online while a pop is held; dropping it (answer or disconnect) counts as "seen
/// now".
#[derive(Debug)]
pub struct HeldPresence {
    presence: Arc<dyn PresenceStore>,
    name: Nickname,
}

impl Drop for HeldPresence {
    fn drop(&mut self) {
        self.presence.release(self.name.as_str());
    }
}

impl Room {
    /// Starts the room on `backend`: fills the cache with the newest messages and starts the
    /// follower task (on the current tokio runtime).
    ///
    /// # Errors
    /// [`BackendError`] when the newest messages cannot be read.
    pub async fn start(
        backend: Arc<dyn MessageBackend>,
        presence: Arc<dyn PresenceStore>,
        limits: RoomLimits,
    ) -> Result<Room, BackendError> {
        let recent = backend.recent(limits.memory_messages).await?;
        let newest_time = recent
            .messages
            .last()
            .map_or(recent.older_through, |message| message.time);
        let inner = Arc::new(RoomInner {
            cache: RwLock::new(Cache {
                messages: recent.messages.into(),
                older_through: recent.older_through,
            }),
            cached: watch::channel(newest_time).0,
            newest: watch::channel(newest_time).0,
            shutdown: watch::channel(false).0,
            presence,
            limits,
            follower: Mutex::new(None),
            woken_pages: Mutex::new(WokenPages::default()),
            backend,
        });
        let follower = tokio::spawn(follow(inner.clone(), inner.backend.subscribe()));
        *inner
            .follower
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(follower);
        Ok(Room { inner })
    }

    /// Saves a message durably and returns it with its time, once a pop can see it.
    ///
    /// # Errors
    /// [`SaveError::Storage`] when the backend failed, [`SaveError::Closed`] after
    /// [`Room::close`].
    pub async fn save(&self, draft: Draft) -> Result<Message, SaveError> {
        let mut cached = self.inner.cached.subscribe();
        let saved = self.inner.backend.append(vec![draft]).await?;
        let message = saved.into_iter().next().ok_or(SaveError::Closed)?;
        // The follower puts it in the cache at once; until then a pop would not see it. The
        // message is stored either way: a follower that cannot read does not make it unsaved.
        let cached_in_time = tokio::time::timeout(
            SAVE_VISIBLE_WITHIN,
            cached.wait_for(|&time| time >= message.time),
        )
        .await;
        if cached_in_time.is_err() {
            tracing::warn!(
                time = message.time,
                "a saved message was not cached in time"
            );
        }
        Ok(message)
    }

    /// Time of the newest message, ms since the Unix epoch (0 for an empty room).
    pub fn newest_time(&self) -> u64 {
        // From the cache, not the wake-up channel: a message is visible to new pops as soon as
        // it is cached, a moment before held pops are woken.
        self.inner.cache_newest()
    }

    /// How many messages the room holds.
    pub fn n_messages(&self) -> u64 {
        self.inner.backend.n_messages()
    }

    /// Whether `cursor` is a time the room has reached: at or before the newest cached message,
    /// or, when this instance's news lags behind another instance's save (a shared backend),
    /// at or before the backend's newest, in which case this waits (at most `patience`) until
    /// the cache has caught up. A client's cursor from another instance then never looks like
    /// a time from the future (which is answered with the newest time, and would send the
    /// client back over messages it has).
    pub async fn has_reached(&self, cursor: Cursor, patience: Duration) -> Reached {
        let wanted = cursor.as_millis();
        if wanted <= self.inner.cache_newest() {
            return Reached::Yes;
        }
        // The backend's news first (free), then the backend itself.
        let heard_of = *self.inner.backend.subscribe().borrow() >= wanted;
        let stored = heard_of
            || match self.inner.backend.newest_time().await {
                Ok(newest) => newest >= wanted,
                Err(_) => return Reached::Unknown,
            };
        if !stored {
            return Reached::Ahead;
        }
        let mut cached = self.inner.cached.subscribe();
        let caught_up = tokio::time::timeout(patience, cached.wait_for(|&time| time >= wanted))
            .await
            .is_ok_and(|waited| waited.is_ok());
        if caught_up {
            Reached::Yes
        } else {
            Reached::Unknown
        }
    }

    /// Whether messages newer than `cursor` were trimmed from a bounded history, so that a page
    /// after it is incomplete.
    pub fn is_trimmed_after(&self, cursor: Cursor) -> bool {
        cursor.as_millis() < self.inner.backend.trimmed_through()
    }

    /// Whether the backend works right now.
    pub fn backend_status(&self) -> BackendStatus {
        self.inner.backend.status()
    }

    /// `name` did something (a save): it is online.
    pub fn seen(&self, name: &Nickname) {
        self.inner.presence.seen(name.as_str());
    }

    /// `name` said `exit`.
    pub fn left(&self, name: &str) {
        self.inner.presence.left(name);
    }

    /// Who is online now.
    pub fn online(&self) -> Arc<crate::presence::OnlineSnapshot> {
        self.inner.presence.snapshot()
    }

    /// Keeps `name` online while the returned guard lives (a held pop); `None` when the name
    /// does not take part in presence.
    pub fn hold_presence(&self, name: Nickname) -> Option<HeldPresence> {
        self.inner
            .presence
            .hold(name.as_str())
            .then(|| HeldPresence {
                presence: self.inner.presence.clone(),
                name,
            })
    }

    /// How many pops are waiting in this room right now (held, or looking before they are held).
    pub fn n_waiting(&self) -> usize {
        self.inner.newest.receiver_count()
    }

    /// The newest `n` messages, oldest first, more when a group sharing a time would be cut
    /// (history on arrival: `last=N`; a page scrolling back from its oldest then misses none
    /// of the group). From the cache when it holds them, else from the backend.
    ///
    /// # Errors
    /// [`BackendError`] when the backend cannot read them.
    pub async fn newest(&self, n: usize) -> Result<Vec<Message>, BackendError> {
        {
            let cache = self.inner.read_cache();
            // The cache never holds part of a group (it is evicted whole).
            if cache.messages.len() >= n || cache.older_through == 0 {
                return Ok(newest_before(&cache.messages, u64::MAX, n).0);
            }
        }
        Ok(self.inner.backend.recent(n).await?.messages)
    }

    /// The newest `n` messages older than `before`, oldest first (more to keep a group sharing
    /// a time whole), and the time of the newest message older than those (0: the page
    /// reaches the room's beginning, or the oldest message kept). Scrolling back:
    /// `last=N&before=T`. From the cache when it holds the page and the message before it (or
    /// holds the room's whole history), else from the backend.
    ///
    /// # Errors
    /// [`BackendError`] when the backend cannot read that history.
    pub async fn earlier(&self, before: Cursor, n: usize) -> Result<Recent, BackendError> {
        {
            let cache = self.inner.read_cache();
            let newest_cached = cache
                .messages
                .back()
                .map_or(cache.older_through, |message| message.time);
            // A `before` past the cache's newest may come from another instance, ahead of this
            // one's cache: the backend knows what lies between.
            if before.as_millis() <= newest_cached.saturating_add(1) {
                let (messages, older_through) =
                    newest_before(&cache.messages, before.as_millis(), n);
                if older_through > 0 || cache.older_through == 0 {
                    return Ok(Recent {
                        messages,
                        older_through,
                    });
                }
            }
        }
        self.inner.backend.read_before(before, n).await
    }

    /// A receiver that changes whenever new messages are published; subscribe *before*
    /// looking for messages so that none published in between is missed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.newest.subscribe()
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
    /// than cut between messages that share a time). From the cache when it reaches back that
    /// far, else from the backend.
    ///
    /// # Errors
    /// [`BackendError`] when the backend cannot read that history.
    pub async fn page_after(&self, cursor: Cursor) -> Result<Vec<Message>, BackendError> {
        let after = cursor.as_millis();
        let page_size = self.page_size();
        {
            let cache = self.inner.read_cache();
            if after >= cache.older_through {
                return Ok(take_page(&cache.messages, after, page_size));
            }
        }
        self.inner.backend.read_after(cursor, page_size).await
    }

    /// [`Room::page_after`], shared: the held pops a fan-out wakes at the same cursor take the
    /// page out of the cache once, the first one for all (pages older than the cache are read
    /// from the backend each time).
    async fn shared_page_after(&self, cursor: Cursor) -> Result<Arc<SharedPage>, BackendError> {
        let after = cursor.as_millis();
        {
            let cache = self.inner.read_cache();
            if after >= cache.older_through {
                let newest = cache
                    .messages
                    .back()
                    .map_or(cache.older_through, |message| message.time);
                // Plain pushes and clears: a panic elsewhere cannot leave it half changed.
                let mut woken = self
                    .inner
                    .woken_pages
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if woken.newest != newest {
                    // A newer message: every page after an older cursor may be longer now.
                    woken.newest = newest;
                    woken.pages.clear();
                }
                if let Some(page) = woken.pages.iter().find(|page| page.after == after) {
                    return Ok(page.clone());
                }
                let messages = take_page(&cache.messages, after, self.page_size());
                let page = Arc::new(SharedPage::new(after, messages));
                if woken.pages.len() < MAX_WOKEN_PAGES {
                    woken.pages.push(page.clone());
                }
                return Ok(page);
            }
        }
        let messages = self
            .inner
            .backend
            .read_after(cursor, self.page_size())
            .await?;
        Ok(Arc::new(SharedPage::new(after, messages)))
    }

    /// Waits up to `hold` for messages newer than `cursor`: returns them as a page shared with
    /// the other held pops woken at the same cursor (and when the wait woke) as soon as there
    /// are some, or `None` when the hold time passed or the server began to shut down. `changes` must come from [`Room::subscribe`], taken before the
    /// caller last looked.
    ///
    /// # Errors
    /// [`BackendError`] when the backend cannot read the page.
    pub async fn wait_after(
        &self,
        cursor: Cursor,
        mut changes: watch::Receiver<u64>,
        hold: Duration,
    ) -> Result<Option<(Arc<SharedPage>, Instant)>, BackendError> {
        let mut shutdown = self.shutdown_signal();
        let deadline = tokio::time::sleep(hold);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Ok(None);
                    }
                    let woke = Instant::now();
                    let page = self.shared_page_after(cursor).await?;
                    if !page.messages.is_empty() {
                        return Ok(Some((page, woke)));
                    }
                }
                () = &mut deadline => return Ok(None),
                // `wait_for` looks at the current value first: a shutdown begun before the
                // wait is still seen.
                _ = shutdown.wait_for(|&closing| closing) => return Ok(None),
            }
        }
    }

    /// Stops taking saves, lets the backend finish the ones under way and flush as `flush`
    /// says, and waits for it; the last saves are cached (their senders answered) before the follower stops.
    pub async fn close(&self, flush: Flush) {
        self.inner.backend.close(flush).await;
        let stored = *self.inner.backend.subscribe().borrow();
        let mut cached = self.inner.cached.subscribe();
        let caught_up = tokio::time::timeout(
            Duration::from_secs(1),
            cached.wait_for(|&time| time >= stored),
        )
        .await;
        if caught_up.is_err() {
            tracing::warn!("the last saves were not cached before the room closed");
        }
        let follower = self
            .inner
            .follower
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(follower) = follower {
            follower.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presence::Presence;

    /// A backend in memory whose news the test sends by hand, as a shared backend's news can
    /// lag behind what is stored.
    #[derive(Debug)]
    struct LaggingBackend {
        stored: Mutex<Vec<Message>>,
        news: watch::Sender<u64>,
    }

    #[async_trait::async_trait]
    impl MessageBackend for LaggingBackend {
        async fn append(&self, _: Vec<Draft>) -> Result<Vec<Message>, BackendError> {
            Err(BackendError::Closed)
        }

        async fn read_after(
            &self,
            after: Cursor,
            page_size: usize,
        ) -> Result<Vec<Message>, BackendError> {
            let stored = self
                .stored
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let all: VecDeque<Message> = stored.iter().cloned().collect();
            Ok(take_page(&all, after.as_millis(), page_size))
        }

        async fn recent(&self, n: usize) -> Result<Recent, BackendError> {
            let known = *self.news.borrow();
            let stored = self
                .stored
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let (messages, older_through) = crate::pages::newest_whole_groups(
                stored
                    .iter()
                    .filter(|message| message.time <= known)
                    .cloned()
                    .collect(),
                n,
            );
            Ok(Recent {
                messages,
                older_through,
            })
        }

        async fn read_before(&self, before: Cursor, n: usize) -> Result<Recent, BackendError> {
            let stored = self
                .stored
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let all: VecDeque<Message> = stored.iter().cloned().collect();
            let (messages, older_through) = newest_before(&all, before.as_millis(), n);
            Ok(Recent {
                messages,
                older_through,
            })
        }

        fn subscribe(&self) -> watch::Receiver<u64> {
            self.news.subscribe()
        }

        async fn newest_time(&self) -> Result<u64, BackendError> {
            let stored = self
                .stored
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            Ok(stored.last().map_or(0, |message| message.time))
        }

        fn n_messages(&self) -> u64 {
            0
        }

        async fn close(&self, _: Flush) {}
    }

    fn message(time: u64) -> Message {
        Message::new("a", time.to_string(), time)
    }

    /// A room (pages of 10) over a [`LaggingBackend`] holding `stored`, whose subscribers have
    /// heard of messages up to `heard` only, with `memory_messages` in the cache.
    async fn lagging_room(
        stored: Vec<Message>,
        heard: u64,
        memory_messages: usize,
    ) -> (Arc<LaggingBackend>, Room) {
        let backend = Arc::new(LaggingBackend {
            stored: Mutex::new(stored),
            news: watch::channel(heard).0,
        });
        let room = Room::start(
            backend.clone(),
            Arc::new(Presence::new(
                Duration::from_secs(1),
                Arc::new(crate::clock::SystemClock),
            )),
            RoomLimits {
                page_size: 10,
                memory_messages,
            },
        )
        .await
        .expect("starts");
        (backend, room)
    }

    #[tokio::test]
    async fn earlier_pages_come_from_the_cache_while_it_reaches_back_then_from_the_backend() {
        let (backend, room) = lagging_room((1..=10).map(message).collect(), 10, 4).await;
        // The cache holds 7 to 10; older pages come from the backend, which the test then
        // empties to tell where each page came from.
        let from_cache = room
            .earlier(Cursor::from_millis(10), 2)
            .await
            .expect("reads");
        let from_backend = room
            .earlier(Cursor::from_millis(8), 3)
            .await
            .expect("reads");
        let to_the_start = room
            .earlier(Cursor::from_millis(3), 5)
            .await
            .expect("reads");
        backend
            .stored
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
        let still_cached = room
            .earlier(Cursor::from_millis(10), 2)
            .await
            .expect("reads");
        let times = |recent: &Recent| -> Vec<u64> {
            recent.messages.iter().map(|message| message.time).collect()
        };
        assert_eq!(
            (times(&from_cache), from_cache.older_through),
            (vec![8, 9], 7)
        );
        assert_eq!(from_cache, still_cached, "8 and 9 are cached");
        assert_eq!(
            (times(&from_backend), from_backend.older_through),
            (vec![5, 6, 7], 4)
        );
        assert_eq!(
            (times(&to_the_start), to_the_start.older_through),
            (vec![1, 2], 0)
        );
        let gone = room
            .earlier(Cursor::from_millis(8), 3)
            .await
            .expect("reads");
        assert!(
            gone.messages.is_empty(),
            "7 alone is cached: read from the backend"
        );
    }

    #[tokio::test]
    async fn a_cursor_another_instance_gave_is_waited_for_not_taken_for_a_time_from_the_future() {
        let (backend, room) = lagging_room(vec![message(1), message(2), message(3)], 2, 10).await;
        assert_eq!(room.newest_time(), 2, "this instance has heard of 2 only");
        let waiting = {
            let room = room.clone();
            tokio::spawn(async move {
                room.has_reached(Cursor::from_millis(3), Duration::from_secs(10))
                    .await
            })
        };
        backend.news.send_replace(3);
        assert_eq!(
            waiting.await.expect("joins"),
            Reached::Yes,
            "3 is stored: the cursor is reached once heard of"
        );
        assert_eq!(room.newest_time(), 3);
        assert_eq!(
            room.has_reached(Cursor::from_millis(4), Duration::from_secs(10))
                .await,
            Reached::Ahead,
            "4 is stored nowhere: a time from the future"
        );
    }

    #[tokio::test]
    async fn held_pops_woken_at_one_cursor_share_one_page_until_a_newer_message_is_cached() {
        let (backend, room) = lagging_room(vec![message(1), message(2), message(3)], 2, 10).await;
        let hold = Duration::from_secs(10);
        // Each wait subscribes when made, so news sent before it is first polled still wakes it.
        let wait = |cursor: u64| {
            let room = room.clone();
            let changes = room.subscribe();
            async move {
                let (page, _) = room
                    .wait_after(Cursor::from_millis(cursor), changes, hold)
                    .await
                    .expect("reads")
                    .expect("woken by a message");
                page
            }
        };
        let (first, second, older) = (wait(2), wait(2), wait(1));
        backend.news.send_replace(3);
        let (first, second, older) = tokio::join!(first, second, older);
        assert!(Arc::ptr_eq(&first, &second), "one page for one cursor");
        assert_eq!(first.messages(), &[message(3)]);
        assert_eq!(
            first.json().get(),
            serde_json::to_string(&[message(3)]).expect("serializes"),
        );
        let times: Vec<u64> = older.messages().iter().map(|m| m.time).collect();
        assert_eq!(times, vec![2, 3], "another cursor, another page");

        backend
            .stored
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(message(4));
        let after_four = wait(2);
        backend.news.send_replace(4);
        let after_four = after_four.await;
        let times: Vec<u64> = after_four.messages().iter().map(|m| m.time).collect();
        assert_eq!(
            times,
            vec![3, 4],
            "the cache has a newer message: a new page"
        );
    }
}
