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
//! Catch-up pages are `XRANGE … COUNT <page size>`; pages of earlier history (`before`) and the
//! newest at start are `XREVRANGE … COUNT <n + 1>`.
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

use super::{
    backoff_with_jitter, BackendError, BackendStatus, Draft, Flush, MessageBackend, PresenceStore,
    Recent, RETRY_MAX,
};
use crate::clock::Clock;
use crate::presence::{OnlineSnapshot, Presence};
use crate::storage::StorageError;

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "chat:";

/// Appends a batch: `KEYS[1]` the stream, `KEYS[2]` the key of the newest trimmed time,
/// `KEYS[3]` the prefix of the client-message-id keys, `ARGV[1]` the most entries to keep (`""`
/// to keep all), `ARGV[2]` how long a client message id is remembered (ms), then `name`, `msg`,
/// `cid` triples (`cid` `""` when none). Returns the stream's length, the newest trimmed time (0
/// when none), then for each draft, in order, the time given and the first save's text for a
/// retry (nil for a new message).
///
/// A draft with a `cid` whose key `KEYS[3] .. len(name) .. ":" .. name .. ":" .. cid` exists
/// (a save of the window under the same name and `cid`, by any instance) is not added: its time
/// and text are the first save's. The key (`"<time> <text>"`) is written with the entry,
/// expiring after the window. (These keys are derived inside the script, so the backend needs a
/// single Redis, not a cluster.)
///
/// Trimming is exact and amortized: once the stream holds `max + slack` entries (slack: a tenth
/// of `max`, between 100 and 10 000), the oldest beyond `max` are removed at once and the time of
/// the newest removed is kept in `KEYS[2]`, so that a pop can tell exactly whether messages after
/// its cursor are gone (`XADD MAXLEN ~` would not say which were).
pub const APPEND_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  -- The last id ever given, even if that entry was deleted since.
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      last = tonumber(string.match(info[i + 1], '^(%d+)-'))
    end
  end
end
local times = {}
for i = 3, #ARGV, 3 do
  local name, msg, cid = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local cid_key = KEYS[3] .. string.len(name) .. ':' .. name .. ':' .. cid
  local first = false
  if cid ~= '' then
    first = redis.call('GET', cid_key)
  end
  if first then
    local space = string.find(first, ' ', 1, true)
    times[#times + 1] = tonumber(string.sub(first, 1, space - 1))
    times[#times + 1] = string.sub(first, space + 1)
  else
    local time = math.max(now, last + 1)
    last = time
    local id = string.format('%.0f-0', time)
    if cid ~= '' then
      redis.call('XADD', KEYS[1], id, 'name', name, 'msg', msg, 'cid', cid)
      redis.call('SET', cid_key, string.format('%.0f', time) .. ' ' .. msg, 'PX', ARGV[2])
    else
      redis.call('XADD', KEYS[1], id, 'name', name, 'msg', msg)
    end
    times[#times + 1] = time
    times[#times + 1] = false
  end
end
local length = redis.call('XLEN', KEYS[1])
if ARGV[1] ~= '' then
  local max = tonumber(ARGV[1])
  local slack = math.min(math.max(100, math.floor(max / 10)), 10000)
  if length >= max + slack then
    local cut = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', length - max + 1)
    local newest_trimmed = cut[#cut - 1][1]
    redis.call('XTRIM', KEYS[1], 'MINID', cut[#cut][1])
    redis.call('SET', KEYS[2], string.match(newest_trimmed, '^(%d+)-'))
    length = redis.call('XLEN', KEYS[1])
  end
end
table.insert(times, 1, tonumber(redis.call('GET', KEYS[2]) or '0'))
table.insert(times, 1, length)
return times
";

/// How long one `XREAD` blocks before the loop refreshes its figures, in ms.
const XREAD_BLOCK_MS: usize = 5_000;

/// How often presence is written to and read from Redis.
const PRESENCE_SYNC_EVERY: Duration = Duration::from_millis(500);

/// The keys of one room.
#[derive(Debug, Clone)]
pub struct Keys {
    /// The stream of messages.
    pub stream: String,
    /// The time of the newest message trimmed from the stream (absent: none was).
    pub trimmed: String,
    /// The presence sorted set.
    pub presence: String,
    /// The prefix of the keys remembering client message ids (see [`APPEND_SCRIPT`]).
    pub cids: String,
}

impl Keys {
    /// The keys of the legacy room under `prefix`.
    pub fn new(prefix: &str) -> Keys {
        Keys {
            stream: format!("{prefix}messages"),
            trimmed: format!("{prefix}trimmed"),
            presence: format!("{prefix}presence"),
            cids: format!("{prefix}cid:"),
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
    /// Keep the newest this many entries (see [`APPEND_SCRIPT`] for when trimming happens);
    /// `None` keeps everything.
    pub max_len: Option<usize>,
}

fn storage_error(context: &str, error: impl std::fmt::Display) -> BackendError {
    BackendError::Storage(Arc::new(StorageError::io(
        Path::new("redis"),
        std::io::Error::other(format!("{context}: {error}")),
    )))
}

/// Connects a connection manager (it reconnects by itself, with backoff) to `url`; a command
/// without an answer within `response_timeout` fails (`None`: it waits forever).
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

/// Whether `error` says Redis could not be reached (rather than Redis answering an error).
fn is_unreachable(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.is_timeout()
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
        cid: entry.map.contains_key("cid").then(|| field(entry, "cid")),
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

/// The stream's length, and the time of the newest message it no longer keeps (0 when it
/// keeps everything).
async fn stream_figures(
    conn: &mut ConnectionManager,
    keys: &Keys,
) -> Result<(u64, u64), BackendError> {
    let (length, trimmed): (u64, Option<u64>) = redis::pipe()
        .cmd("XLEN")
        .arg(&keys.stream)
        .cmd("GET")
        .arg(&keys.trimmed)
        .query_async(conn)
        .await
        .map_err(|error| storage_error("XLEN", error))?;
    Ok((length, trimmed.unwrap_or(0)))
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
    /// The instance's folder lock, held while it runs (see [`crate::storage::lock_folder`]);
    /// only the legacy room's backend holds it.
    _folder_lock: Mutex<Option<std::fs::File>>,
}

impl RedisBackend {
    /// Connects to Redis and starts the read loop of the room whose keys start with
    /// `config.prefix`; `folder_lock` is the instance's folder lock, held while the backend runs
    /// (the legacy room's backend holds it; other rooms' have none).
    ///
    /// # Errors
    /// Redis is unreachable or answers an error at start.
    pub async fn start(
        config: &RedisConfig,
        folder_lock: Option<std::fs::File>,
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
        let (length, trimmed) = stream_figures(&mut conn, &keys).await?;
        let figures = Arc::new(Figures {
            n_messages: length.into(),
            trimmed_through: trimmed.into(),
        });
        let (newest, _) = watch::channel(newest_time);
        let available = Arc::new(AtomicBool::new(true));
        // A connection of its own: a blocking XREAD would hold up the commands queued behind it.
        // Its answers may take the whole block time, and a little more; a connection that
        // hangs past that (a half-open socket) is given up and made again.
        let reader_conn = connect(
            &config.url,
            Some(Duration::from_millis(XREAD_BLOCK_MS as u64) + Duration::from_secs(5)),
        )
        .await?;
        let reader = tokio::spawn(read_loop(
            reader_conn,
            keys.clone(),
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
            _folder_lock: Mutex::new(folder_lock),
        })
    }

    /// The keys this backend uses.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The error of a failed command; a failure to reach Redis (not an error Redis answered,
    /// such as a script's) marks the backend unavailable until a command succeeds again.
    fn failed(&self, context: &str, error: &redis::RedisError) -> BackendError {
        if is_unreachable(error) {
            self.available.store(false, Ordering::SeqCst);
        }
        storage_error(context, error)
    }

    /// The newest `n` entries up to the id `end` (`+`, or a time: every entry of that ms),
    /// oldest first, extended back to keep a group sharing a time whole, and the time of the
    /// newest entry older than those (0 when none is left): `XREVRANGE … COUNT n+1`.
    async fn newest_through(
        &self,
        end: String,
        n: usize,
    ) -> Result<(Vec<Message>, u64), BackendError> {
        let mut cmd = redis::cmd("XREVRANGE");
        cmd.arg(&self.keys.stream)
            .arg(end)
            .arg("-")
            .arg("COUNT")
            .arg(n.saturating_add(1));
        let reply: StreamRangeReply = cmd
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|error| self.failed("XREVRANGE", &error))?;
        let mut all: Vec<Message> = reply.ids.iter().filter_map(to_message).collect();
        all.reverse();
        let Some(boundary) = all.first().map(|message| message.time) else {
            return Ok((all, 0));
        };
        if all.len() <= n {
            return Ok((all, 0));
        }
        // The entry just before the oldest read may share its time: read the whole group.
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
        let (page, older_through) = crate::pages::newest_whole_groups(whole, n);
        if page.first().map(|message| message.time) != Some(boundary) {
            return Ok((page, older_through));
        }
        // The page begins with the group the read ended in: what lies before it is one more
        // entry back (a legacy group sharing a time; message times are unique otherwise).
        let Some(before_group) = boundary.checked_sub(1) else {
            return Ok((page, 0));
        };
        let older_through = self.newest_time_through(&before_group.to_string()).await?;
        Ok((page, older_through))
    }

    /// The time of the newest entry whose id is at most `end` (an id, a time in ms, or `+`
    /// for the newest of all); 0 when there is none.
    async fn newest_time_through(&self, end: &str) -> Result<u64, BackendError> {
        let reply: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(&self.keys.stream)
            .arg(end)
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|error| self.failed("XREVRANGE", &error))?;
        Ok(reply
            .ids
            .first()
            .and_then(|entry| id_time(&entry.id))
            .unwrap_or(0))
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
            .map_err(|error| self.failed("XRANGE", &error))?;
        Ok(reply.ids.iter().filter_map(to_message).collect())
    }
}

/// One `XREAD BLOCK` loop per instance: publishes the newest time whenever entries arrive, and
/// refreshes the stream's figures.
async fn read_loop(
    mut conn: ConnectionManager,
    keys: Keys,
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
            .arg(&keys.stream)
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
                stream_figures(&mut conn, &keys).await
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

#[async_trait::async_trait]
impl MessageBackend for RedisBackend {
    async fn append(&self, drafts: Vec<Draft>) -> Result<Vec<Message>, BackendError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(BackendError::Closed);
        }
        let mut invocation = self.append.key(&self.keys.stream);
        invocation.key(&self.keys.trimmed).key(&self.keys.cids);
        invocation.arg(self.max_len.map_or_else(String::new, |n| n.to_string()));
        invocation.arg(chat_shared::CID_WINDOW_MS);
        for draft in &drafts {
            invocation
                .arg(draft.name.as_str())
                .arg(draft.msg.as_str())
                .arg(draft.cid.as_ref().map_or("", |cid| cid.as_str()));
        }
        let reply: Vec<Value> = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|error| self.failed("append", &error))?;
        self.available.store(true, Ordering::SeqCst);
        let number = |value: &Value| redis::from_redis_value::<u64>(value.clone()).ok();
        let (Some(length), Some(trimmed)) = (
            reply.first().and_then(number),
            reply.get(1).and_then(number),
        ) else {
            return Err(storage_error("append", "a short answer"));
        };
        self.figures.set_length(length, self.max_len.is_some());
        self.figures
            .trimmed_through
            .fetch_max(trimmed, Ordering::SeqCst);
        let timed = reply.get(2..).unwrap_or_default().chunks(2);
        if timed.len() != drafts.len() {
            return Err(storage_error("append", "an answer of the wrong length"));
        }
        let mut messages: Vec<Message> = Vec::with_capacity(drafts.len());
        for (draft, pair) in drafts.into_iter().zip(timed) {
            let time = pair
                .first()
                .and_then(number)
                .ok_or_else(|| storage_error("append", "a time that is not a number"))?;
            let mut message = draft.timed(time);
            // A retry: answered with what the first save stored.
            if let Some(Value::BulkString(first_text)) = pair.get(1) {
                message.msg = String::from_utf8_lossy(first_text).into_owned();
            }
            messages.push(message);
        }
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
        let (messages, older_through) = self.newest_through("+".to_owned(), n).await?;
        let trimmed = self.figures.trimmed_through.load(Ordering::SeqCst);
        Ok(Recent {
            messages,
            older_through: older_through.max(trimmed),
        })
    }

    async fn read_before(&self, before: Cursor, n: usize) -> Result<Recent, BackendError> {
        let Some(end) = before.as_millis().checked_sub(1) else {
            return Ok(Recent::default());
        };
        // Trimmed messages are gone: `older_through` says only what can still be read, so a
        // client scrolling back stops at the oldest kept.
        let (messages, older_through) = self.newest_through(end.to_string(), n).await?;
        Ok(Recent {
            messages,
            older_through,
        })
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.newest.subscribe()
    }

    async fn newest_time(&self) -> Result<u64, BackendError> {
        self.newest_time_through("+").await
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
    /// The union snapshot, with the local snapshot and the remote version it was built from
    /// (holding that local snapshot keeps its address from being reused by a newer one).
    merged: Option<(Arc<OnlineSnapshot>, usize, Arc<OnlineSnapshot>)>,
    /// Bumped whenever `remote` changes.
    remote_version: usize,
}

impl RedisPresence {
    /// Starts the presence of one instance, syncing with Redis at `url` under `keys`; names
    /// seen here linger for `linger` as measured by `clock` (see [`Presence::new`]).
    ///
    /// # Errors
    /// Redis unreachable at start.
    pub async fn start(
        url: &str,
        keys: &Keys,
        linger: Duration,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<RedisPresence>, BackendError> {
        let conn = connect(url, Some(Duration::from_secs(5))).await?;
        let presence = Arc::new(RedisPresence {
            local: Presence::new(linger, clock),
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
        if !mine.is_empty() {
            let add = pipe.cmd("ZADD").arg(&key);
            for name in &mine {
                add.arg(now_ms).arg(name);
            }
            add.ignore();
        }
        if !left.is_empty() {
            pipe.cmd("ZREM").arg(&key).arg(&left).ignore();
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
        if let Some((built_from, remote_version, merged)) = &shared.merged {
            if Arc::ptr_eq(built_from, &local) && *remote_version == shared.remote_version {
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
        shared.merged = Some((local, shared.remote_version, merged.clone()));
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
