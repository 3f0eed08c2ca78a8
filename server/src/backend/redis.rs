//! The shared backend: Redis 7 Streams, so that several stateless instances behind a load
//! balancer serve one room (as nchan, Centrifugo and Faye do).
//!
//! Keys, under the prefix (`--redis-prefix`, default `chat:`):
//! - `<prefix>messages`: the room's stream. Each entry's id is `<time>-0` (a legacy group of
//!   messages sharing a time, imported from an original folder, uses `-1`, `-2`, …), so a
//!   stream id is the protocol's `time`; fields `name` and `msg`.
//! - `<prefix>presence`: a sorted set, name → when last seen (ms), shared by all instances.
//!
//! Appends go through one Lua script ([`APPEND_SCRIPT`]) that gives each message the time
//! `max(now_ms, last + 1)` from Redis's own `TIME`, atomically: two instances can never produce
//! the same time or a decreasing one, whatever their clocks say. An acknowledgement means the
//! entry is in Redis (durable as Redis is configured: see `deploy/redis.conf`). Each instance
//! runs one `XREAD BLOCK` loop (not one per held pop) and publishes the newest time to its room.
//! Catch-up pages are `XRANGE … COUNT <page size>`.
//!
//! When Redis is unreachable, appends and reads fail ([`BackendError::Storage`]), the status is
//! degraded, the connection manager reconnects with backoff, and the loop retries with backoff
//! and jitter, logging once per outage; everything works again when Redis is back.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_shared::{Cursor, Message};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use redis::Value;
use tokio::sync::watch;

use super::{BackendError, BackendStatus, Draft, Flush, MessageBackend, PresenceStore, Recent};
use crate::presence::{OnlineSnapshot, Presence};
use crate::storage::StorageError;

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "chat:";

/// Appends a batch: `KEYS[1]` the stream, `ARGV[1]` the approximate maximum length (`""` for
/// none), then `name`, `msg` pairs. Returns the stream's length, then the times given, in
/// order.
pub const APPEND_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = 0
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #newest > 0 then
  last = tonumber(string.match(newest[1][1], '^(%d+)-'))
end
local times = {}
for i = 2, #ARGV, 2 do
  local time = math.max(now, last + 1)
  last = time
  local id = string.format('%.0f-0', time)
  if ARGV[1] ~= '' then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], id, 'name', ARGV[i], 'msg', ARGV[i + 1])
  else
    redis.call('XADD', KEYS[1], id, 'name', ARGV[i], 'msg', ARGV[i + 1])
  end
  times[#times + 1] = time
end
table.insert(times, 1, redis.call('XLEN', KEYS[1]))
return times
";

/// How long one `XREAD` blocks before the loop refreshes its figures, in ms.
const XREAD_BLOCK_MS: usize = 5_000;

/// Backoff of the read loop after a failure: from this …
const RETRY_MIN: Duration = Duration::from_millis(100);
/// … doubling up to this, with full jitter.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// How often presence is written to and read from Redis.
const PRESENCE_SYNC_EVERY: Duration = Duration::from_millis(500);

/// The keys of one room.
#[derive(Debug, Clone)]
pub struct Keys {
    /// The stream of messages.
    pub stream: String,
    /// The presence sorted set.
    pub presence: String,
}

impl Keys {
    /// The keys of the legacy room under `prefix`.
    pub fn new(prefix: &str) -> Keys {
        Keys {
            stream: format!("{prefix}messages"),
            presence: format!("{prefix}presence"),
        }
    }
}

/// Where to connect, and how the room's stream is kept.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://HOST:PORT/DB`.
    pub url: String,
    /// The key prefix.
    pub prefix: String,
    /// Trim the stream to about this many entries (`XADD MAXLEN ~`); `None` keeps everything.
    pub max_len: Option<usize>,
}

fn storage_error(context: &str, error: impl std::fmt::Display) -> BackendError {
    BackendError::Storage(Arc::new(StorageError::io(
        Path::new("redis"),
        std::io::Error::other(format!("{context}: {error}")),
    )))
}

/// Connects a connection manager (it reconnects by itself, with backoff) to `url`.
///
/// # Errors
/// A URL that is not a Redis URL, or Redis unreachable at start.
pub async fn connect(
    url: &str,
    response_timeout: Option<Duration>,
) -> Result<ConnectionManager, BackendError> {
    let client = redis::Client::open(url).map_err(|error| storage_error(url, error))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(response_timeout)
        .set_max_delay(RETRY_MAX)
        .set_number_of_retries(2);
    ConnectionManager::new_with_config(client, config)
        .await
        .map_err(|error| storage_error(&format!("cannot connect to {url}"), error))
}

/// The time part of a stream id `<ms>-<seq>`.
fn id_time(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
}

fn field(entry: &StreamId, name: &str) -> String {
    match entry.map.get(name) {
        Some(Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        Some(Value::SimpleString(text)) => text.clone(),
        _ => String::new(),
    }
}

fn to_message(entry: &StreamId) -> Option<Message> {
    Some(Message {
        name: field(entry, "name"),
        msg: field(entry, "msg"),
        time: id_time(&entry.id)?,
    })
}

/// What the read loop knows of the stream.
#[derive(Debug, Default)]
struct Figures {
    n_messages: AtomicU64,
    trimmed_through: AtomicU64,
}

impl Figures {
    /// A length just read. Without trimming the stream only grows, so an older reading that
    /// arrives late never moves the count back.
    fn set_length(&self, length: u64, trimming: bool) {
        if trimming {
            self.n_messages.store(length, Ordering::SeqCst);
        } else {
            self.n_messages.fetch_max(length, Ordering::SeqCst);
        }
    }
}

/// The stream's length, and the newest time it no longer keeps (0 when it keeps everything):
/// when more entries were added than it holds (`entries-added` > `length`, Redis 7), those
/// before its first entry (`recorded-first-entry-id`) were trimmed.
async fn stream_figures(
    conn: &mut ConnectionManager,
    stream: &str,
) -> Result<(u64, u64), BackendError> {
    let info: Value = match redis::cmd("XINFO")
        .arg("STREAM")
        .arg(stream)
        .query_async(conn)
        .await
    {
        Ok(info) => info,
        // No stream yet: nothing stored, nothing trimmed.
        Err(error) if error.to_string().contains("no such key") => return Ok((0, 0)),
        Err(error) => return Err(storage_error("XINFO", error)),
    };
    let pairs: Vec<(Value, Value)> = match info {
        Value::Array(items) => items
            .chunks(2)
            .filter_map(|pair| match pair {
                [key, value] => Some((key.clone(), value.clone())),
                _ => None,
            })
            .collect(),
        Value::Map(pairs) => pairs,
        _ => Vec::new(),
    };
    let text = |value: &Value| match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    };
    let number = |value: &Value| match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        _ => None,
    };
    let (mut length, mut added, mut first_id) = (0, 0, None);
    for (key, value) in &pairs {
        match text(key).as_deref() {
            Some("length") => length = number(value).unwrap_or(0),
            Some("entries-added") => added = number(value).unwrap_or(0),
            Some("recorded-first-entry-id") => first_id = text(value),
            _ => {}
        }
    }
    let trimmed = match first_id.as_deref() {
        Some(first) if added > length => {
            let time = id_time(first).unwrap_or(0);
            // A first entry that is not the first of its time (`<time>-1` of an imported
            // legacy group) lost some of its group too.
            if first.ends_with("-0") {
                time.saturating_sub(1)
            } else {
                time
            }
        }
        _ => 0,
    };
    Ok((length, trimmed))
}

/// The Redis backend. Start it with [`RedisBackend::start`].
#[derive(Debug)]
pub struct RedisBackend {
    conn: ConnectionManager,
    keys: Keys,
    max_len: Option<usize>,
    append: redis::Script,
    newest: watch::Sender<u64>,
    figures: Arc<Figures>,
    available: Arc<AtomicBool>,
    closed: AtomicBool,
    reader: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The instance's folder lock, held while it runs (see [`crate::storage::lock_folder`]).
    _folder_lock: Mutex<Option<std::fs::File>>,
}

impl RedisBackend {
    /// Connects to Redis and starts the read loop.
    ///
    /// # Errors
    /// Redis is unreachable or answers an error at start.
    pub async fn start(
        config: &RedisConfig,
        folder_lock: std::fs::File,
    ) -> Result<RedisBackend, BackendError> {
        let keys = Keys::new(&config.prefix);
        let mut conn = connect(&config.url, Some(Duration::from_secs(5))).await?;
        let newest_entry: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(&keys.stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await
            .map_err(|error| storage_error("XREVRANGE", error))?;
        let newest_id = newest_entry
            .ids
            .first()
            .map_or_else(|| "0-0".to_owned(), |entry| entry.id.clone());
        let newest_time = id_time(&newest_id).unwrap_or(0);
        let (length, trimmed) = stream_figures(&mut conn, &keys.stream).await?;
        let figures = Arc::new(Figures {
            n_messages: length.into(),
            trimmed_through: trimmed.into(),
        });
        let (newest, _) = watch::channel(newest_time);
        let available = Arc::new(AtomicBool::new(true));
        // A connection of its own: a blocking XREAD would hold up the commands queued behind it.
        let reader_conn = connect(&config.url, None).await?;
        let reader = tokio::spawn(read_loop(
            reader_conn,
            keys.stream.clone(),
            newest_id,
            newest.clone(),
            figures.clone(),
            available.clone(),
        ));
        Ok(RedisBackend {
            conn,
            keys,
            max_len: config.max_len,
            append: redis::Script::new(APPEND_SCRIPT),
            newest,
            figures,
            available,
            closed: AtomicBool::new(false),
            reader: Mutex::new(Some(reader)),
            _folder_lock: Mutex::new(Some(folder_lock)),
        })
    }

    /// The keys this backend uses.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    fn failed(&self, context: &str, error: impl std::fmt::Display) -> BackendError {
        self.available.store(false, Ordering::SeqCst);
        storage_error(context, error)
    }

    async fn range(
        &self,
        start: String,
        end: String,
        count: Option<usize>,
    ) -> Result<Vec<Message>, BackendError> {
        let mut cmd = redis::cmd("XRANGE");
        cmd.arg(&self.keys.stream).arg(start).arg(end);
        if let Some(count) = count {
            cmd.arg("COUNT").arg(count);
        }
        let reply: StreamRangeReply = cmd
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|error| self.failed("XRANGE", error))?;
        Ok(reply.ids.iter().filter_map(to_message).collect())
    }
}

/// One `XREAD BLOCK` loop per instance: publishes the newest time whenever entries arrive, and
/// refreshes the stream's figures.
async fn read_loop(
    mut conn: ConnectionManager,
    stream: String,
    mut last_id: String,
    newest: watch::Sender<u64>,
    figures: Arc<Figures>,
    available: Arc<AtomicBool>,
) {
    let mut failures = 0u32;
    loop {
        let read: Result<Option<StreamReadReply>, redis::RedisError> = redis::cmd("XREAD")
            .arg("BLOCK")
            .arg(XREAD_BLOCK_MS)
            .arg("STREAMS")
            .arg(&stream)
            .arg(&last_id)
            .query_async(&mut conn)
            .await;
        let figured = match read {
            Ok(reply) => {
                if let Some(entry) = reply
                    .as_ref()
                    .and_then(|reply| reply.keys.first())
                    .and_then(|key| key.ids.last())
                {
                    last_id = entry.id.clone();
                    if let Some(time) = id_time(&last_id) {
                        newest.send_if_modified(|newest| {
                            let moved = time > *newest;
                            *newest = (*newest).max(time);
                            moved
                        });
                    }
                }
                stream_figures(&mut conn, &stream).await
            }
            Err(error) => Err(storage_error("XREAD", error)),
        };
        match figured {
            Ok((length, trimmed)) => {
                figures.set_length(length, trimmed > 0);
                figures.trimmed_through.store(trimmed, Ordering::SeqCst);
                if failures > 0 {
                    tracing::info!(failures, "Redis is reachable again");
                }
                failures = 0;
                available.store(true, Ordering::SeqCst);
            }
            Err(error) => {
                if failures == 0 {
                    tracing::error!(error = %error, "Redis is unreachable; retrying with backoff");
                }
                failures = failures.saturating_add(1);
                available.store(false, Ordering::SeqCst);
                tokio::time::sleep(backoff_with_jitter(failures)).await;
            }
        }
    }
}

/// Full-jitter exponential backoff: a random delay up to `min(RETRY_MAX, RETRY_MIN · 2^n)`.
fn backoff_with_jitter(n_failures: u32) -> Duration {
    let ceiling = RETRY_MIN
        .saturating_mul(1u32 << n_failures.min(16))
        .min(RETRY_MAX);
    ceiling.mul_f64(rand::random::<f64>())
}

#[async_trait::async_trait]
impl MessageBackend for RedisBackend {
    async fn append(&self, drafts: Vec<Draft>) -> Result<Vec<Message>, BackendError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(BackendError::Closed);
        }
        let mut invocation = self.append.key(&self.keys.stream);
        invocation.arg(self.max_len.map_or_else(String::new, |n| n.to_string()));
        for draft in &drafts {
            invocation.arg(draft.name.as_str()).arg(draft.msg.as_str());
        }
        let reply: Vec<u64> = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|error| self.failed("append", error))?;
        self.available.store(true, Ordering::SeqCst);
        let (length, times) = reply
            .split_first()
            .ok_or_else(|| self.failed("append", "an empty answer"))?;
        self.figures.set_length(*length, self.max_len.is_some());
        let messages: Vec<Message> = drafts
            .into_iter()
            .zip(times)
            .map(|(draft, &time)| Message {
                name: draft.name.into_string(),
                msg: draft.msg.into_string(),
                time,
            })
            .collect();
        if let Some(last) = messages.last() {
            // This instance's own saves are published at once, not one XREAD later.
            let time = last.time;
            self.newest.send_if_modified(|newest| {
                let moved = time > *newest;
                *newest = (*newest).max(time);
                moved
            });
        }
        Ok(messages)
    }

    async fn read_after(
        &self,
        after: Cursor,
        page_size: usize,
    ) -> Result<Vec<Message>, BackendError> {
        let start = format!("{}-0", after.as_millis().saturating_add(1));
        let mut page = self.range(start, "+".to_owned(), Some(page_size)).await?;
        if page.len() >= page_size {
            // Keep a legacy group sharing the last time whole.
            if let Some(last) = page.last().map(|message| message.time) {
                let seen = page.iter().filter(|message| message.time == last).count();
                let group = self
                    .range(format!("{last}-0"), format!("{last}"), None)
                    .await?;
                page.extend(group.into_iter().skip(seen));
            }
        }
        Ok(page)
    }

    async fn recent(&self, n: usize) -> Result<Recent, BackendError> {
        let mut cmd = redis::cmd("XREVRANGE");
        cmd.arg(&self.keys.stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(n.saturating_add(1));
        let reply: StreamRangeReply = cmd
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|error| self.failed("XREVRANGE", error))?;
        let mut newest_first: Vec<Message> = reply.ids.iter().filter_map(to_message).collect();
        newest_first.reverse();
        let mut all = newest_first;
        // The entry just before the oldest read may share its time: read the whole group.
        if all.len() > n {
            if let Some(boundary) = all.first().map(|message| message.time) {
                let group = self
                    .range(format!("{boundary}-0"), format!("{boundary}"), None)
                    .await?;
                let read = all
                    .iter()
                    .filter(|message| message.time == boundary)
                    .count();
                let missing = group.len().saturating_sub(read);
                let mut whole: Vec<Message> = group.into_iter().take(missing).collect();
                whole.append(&mut all);
                all = whole;
            }
        }
        let (messages, older_through) = crate::pages::newest_whole_groups(all, n);
        let trimmed = self.figures.trimmed_through.load(Ordering::SeqCst);
        Ok(Recent {
            messages,
            older_through: older_through.max(trimmed),
        })
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.newest.subscribe()
    }

    async fn newest_time(&self) -> Result<u64, BackendError> {
        let reply: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(&self.keys.stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|error| self.failed("XREVRANGE", error))?;
        Ok(reply
            .ids
            .first()
            .and_then(|entry| id_time(&entry.id))
            .unwrap_or(0))
    }

    fn n_messages(&self) -> u64 {
        self.figures.n_messages.load(Ordering::SeqCst)
    }

    fn trimmed_through(&self) -> u64 {
        self.figures.trimmed_through.load(Ordering::SeqCst)
    }

    fn status(&self) -> BackendStatus {
        if self.available.load(Ordering::SeqCst) {
            BackendStatus::Ok
        } else {
            BackendStatus::Degraded("Redis is unreachable".to_owned())
        }
    }

    async fn close(&self, _flush: Flush) {
        // Every acknowledged append is already in Redis: nothing to flush.
        self.closed.store(true, Ordering::SeqCst);
        let reader = self
            .reader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(reader) = reader {
            reader.abort();
        }
        drop(
            self._folder_lock
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take(),
        );
    }
}

/// Presence shared through Redis: this instance's own events are kept in memory (so its own
/// answers list a name at once), and every [`PRESENCE_SYNC_EVERY`] a task writes the names
/// this instance sees (`ZADD` with the time, held pops refreshed) and reads every instance's
/// names seen within the linger time. The list in answers is the union.
#[derive(Debug)]
pub struct RedisPresence {
    local: Presence,
    shared: Mutex<SharedNames>,
}

#[derive(Debug, Default)]
struct SharedNames {
    /// Names online on other instances (from the last read), sorted.
    remote: Vec<String>,
    /// Names this instance saw leave since the last sync.
    left: Vec<String>,
    /// The union snapshot, rebuilt when either side changed.
    merged: Option<(usize, Arc<OnlineSnapshot>)>,
    /// Bumped whenever `remote` changes.
    remote_version: usize,
}

impl RedisPresence {
    /// Starts the presence of one instance, syncing with Redis at `url` under `keys`.
    ///
    /// # Errors
    /// Redis unreachable at start.
    pub async fn start(
        url: &str,
        keys: &Keys,
        linger: Duration,
    ) -> Result<Arc<RedisPresence>, BackendError> {
        let conn = connect(url, Some(Duration::from_secs(5))).await?;
        let presence = Arc::new(RedisPresence {
            local: Presence::new(linger),
            shared: Mutex::new(SharedNames::default()),
        });
        tokio::spawn(sync_presence(
            Arc::downgrade(&presence),
            conn,
            keys.presence.clone(),
            linger,
        ));
        Ok(presence)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SharedNames> {
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Writes this instance's names and reads everyone's, until the presence is dropped.
async fn sync_presence(
    presence: std::sync::Weak<RedisPresence>,
    mut conn: ConnectionManager,
    key: String,
    linger: Duration,
) {
    let mut every = tokio::time::interval(PRESENCE_SYNC_EVERY);
    loop {
        every.tick().await;
        let Some(presence) = presence.upgrade() else {
            return;
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64);
        let mine = presence.local.online_names();
        let left = std::mem::take(&mut presence.lock().left);
        let mut pipe = redis::pipe();
        for name in &mine {
            pipe.cmd("ZADD").arg(&key).arg(now_ms).arg(name).ignore();
        }
        for name in &left {
            pipe.cmd("ZREM").arg(&key).arg(name).ignore();
        }
        let since = now_ms.saturating_sub(linger.as_millis() as u64);
        pipe.cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(format!("({since}"))
            .ignore();
        pipe.cmd("ZRANGEBYSCORE").arg(&key).arg(since).arg("+inf");
        match pipe.query_async::<(Vec<String>,)>(&mut conn).await {
            Ok((mut everyone,)) => {
                everyone.sort();
                let mut shared = presence.lock();
                if shared.remote != everyone {
                    shared.remote = everyone;
                    shared.remote_version += 1;
                }
            }
            Err(error) => {
                tracing::debug!(error = %error, "cannot sync presence with Redis");
                // Tell the leaves again next time.
                presence.lock().left.extend(left);
            }
        }
    }
}

impl PresenceStore for RedisPresence {
    fn seen(&self, name: &str) {
        self.local.seen(name);
    }

    fn left(&self, name: &str) {
        self.local.left(name);
        let mut shared = self.lock();
        shared.left.push(name.to_owned());
        shared.remote.retain(|remote| remote != name);
        shared.remote_version += 1;
    }

    fn hold(&self, name: &str) -> bool {
        self.local.hold(name)
    }

    fn release(&self, name: &str) {
        self.local.release(name);
    }

    fn snapshot(&self) -> Arc<OnlineSnapshot> {
        let local = self.local.snapshot();
        let mut shared = self.lock();
        // The local snapshot is rebuilt (a new Arc) whenever it changes.
        let version = shared
            .remote_version
            .wrapping_mul(31)
            .wrapping_add(Arc::as_ptr(&local) as usize);
        if let Some((built_for, merged)) = &shared.merged {
            if *built_for == version {
                return merged.clone();
            }
        }
        let mine = self.local.online_names();
        let mut all: BTreeMap<&str, ()> = BTreeMap::new();
        for name in mine.iter().chain(&shared.remote) {
            all.insert(name.as_str(), ());
        }
        let count = all.len();
        let names = all
            .keys()
            .take(chat_shared::MAX_ONLINE_NAMES)
            .map(|name| (*name).to_owned())
            .collect();
        let merged = Arc::new(OnlineSnapshot::from_names(names, count));
        shared.merged = Some((version, merged.clone()));
        merged
    }
}

/// Loads messages into the room's stream with their own times (import of an original or local
/// folder): ids `<time>-<n>`, `n` counting messages that share a time. Only into an empty
/// stream, so nothing is doubled.
///
/// # Errors
/// The stream is not empty, or Redis fails.
pub async fn import(url: &str, prefix: &str, messages: &[Message]) -> Result<usize, BackendError> {
    let keys = Keys::new(prefix);
    let mut conn = connect(url, Some(Duration::from_secs(30))).await?;
    let length: u64 = redis::cmd("XLEN")
        .arg(&keys.stream)
        .query_async(&mut conn)
        .await
        .map_err(|error| storage_error("XLEN", error))?;
    if length > 0 {
        return Err(storage_error(
            "import",
            format!(
                "{} already holds {length} messages; import only into an empty stream",
                keys.stream
            ),
        ));
    }
    let mut sequence: HashMap<u64, u64> = HashMap::new();
    for chunk in messages.chunks(1000) {
        let mut pipe = redis::pipe();
        for message in chunk {
            let n = sequence.entry(message.time).or_insert(0);
            // Ids must grow: a legacy time of 0 gets the first id after 0-0.
            let id = if message.time == 0 {
                format!("0-{}", *n + 1)
            } else {
                format!("{}-{n}", message.time)
            };
            *n += 1;
            pipe.cmd("XADD")
                .arg(&keys.stream)
                .arg(id)
                .arg("name")
                .arg(&message.name)
                .arg("msg")
                .arg(&message.msg)
                .ignore();
        }
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|error| storage_error("XADD", error))?;
    }
    Ok(messages.len())
}

/// Reads every message of the room's stream, oldest first (for an export).
///
/// # Errors
/// Redis fails.
pub async fn export(url: &str, prefix: &str) -> Result<Vec<Message>, BackendError> {
    let keys = Keys::new(prefix);
    let mut conn = connect(url, Some(Duration::from_secs(30))).await?;
    let mut all = Vec::new();
    let mut start = "-".to_owned();
    loop {
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(&keys.stream)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .map_err(|error| storage_error("XRANGE", error))?;
        let Some(last) = reply.ids.last() else {
            return Ok(all);
        };
        start = format!("({}", last.id);
        all.extend(reply.ids.iter().filter_map(to_message));
    }
}
