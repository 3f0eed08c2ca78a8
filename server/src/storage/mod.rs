//! Durable storage of the room's history in the data folder.
//!
//! Layout (the original server's working folder, plus one file of ours):
//! - `data.json`: the newest messages, at most 100, as the original kept them;
//! - `data/<save-time>-<n>.json`: older messages, 100 per file, immutable once written;
//! - `wal.log`: our write-ahead log of messages saved since the last compaction.
//!
//! A save is acknowledged only after its write-ahead-log record is fsynced (see [`wal`]); many
//! concurrent saves share one fsync (group commit, in [`crate::backend::local`]). Compaction moves the
//! log's messages into the JSON layout, writing every file atomically, and then empties the log.
//! A crash between those steps leaves a message in two files; loading counts each exact
//! `{name, msg, time}` once per file it could have been copied to, so nothing is doubled and
//! nothing is lost.

pub mod files;
pub mod wal;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chat_shared::Message;

use files::{CHUNK_DIR, DATA_FILE, MESSAGES_PER_FILE};
use wal::Wal;

/// Everything that can go wrong with the data folder.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Another process (a second `chat-server`) has the data folder open.
    #[error("{path}: the data folder is in use by another chat-server process")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A data file cannot be parsed; the server refuses to start and never overwrites it.
    #[error("{path}: cannot be parsed at {position}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where, e.g. `line 3, column 7` or `byte 120`.
        position: String,
        /// What the parser said.
        reason: String,
    },
}

impl StorageError {
    /// An [`StorageError::Io`] for `path`.
    pub fn io(path: &Path, source: std::io::Error) -> StorageError {
        StorageError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// One immutable chunk file and the range of times it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkMeta {
    /// Its path.
    pub path: PathBuf,
    /// Time of its oldest message, ms since the Unix epoch.
    pub first_time: u64,
    /// Time of its newest message, ms since the Unix epoch.
    pub last_time: u64,
}

/// The chunk files, oldest first, shared between the writer (which adds to it) and the readers
/// of old history. Chunk files are never changed or removed once listed.
#[derive(Debug, Clone, Default)]
pub struct ChunkIndex {
    chunks: Arc<RwLock<Vec<ChunkMeta>>>,
}

impl ChunkIndex {
    fn push(&self, meta: ChunkMeta) {
        self.chunks
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(meta);
    }

    /// Reads, from disk, up to `page_size` messages newer than `after_ms` (more when the page
    /// would otherwise split messages that share a time, which legacy files can have). Returns
    /// them oldest first; the caller continues from memory when the chunks run out.
    ///
    /// # Errors
    /// [`StorageError`] when a chunk cannot be read or parsed.
    pub fn read_after(
        &self,
        after_ms: u64,
        page_size: usize,
    ) -> Result<Vec<Message>, StorageError> {
        let candidates: Vec<ChunkMeta> = self
            .chunks
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .filter(|meta| meta.last_time > after_ms)
            .cloned()
            .collect();
        let mut page: Vec<Message> = Vec::new();
        for meta in candidates {
            if let Some(last) = page.last() {
                if page.len() >= page_size && meta.first_time > last.time {
                    break;
                }
            }
            let mut messages = files::read_message_file(&meta.path)?;
            // Legacy files are not guaranteed to be in order; the loader sorted them the same way.
            messages.sort_by_key(|message| message.time);
            for message in messages {
                if message.time <= after_ms {
                    continue;
                }
                if let Some(last) = page.last() {
                    if page.len() >= page_size && message.time > last.time {
                        return Ok(page);
                    }
                }
                page.push(message);
            }
        }
        Ok(page)
    }

    /// Time of the newest chunked message (0 when there are no chunks): every message newer
    /// than this is in none of them.
    pub fn chunked_through(&self) -> u64 {
        self.chunks
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|meta| meta.last_time)
            .max()
            .unwrap_or(0)
    }

    /// Reads chunk files from the newest back until at least `n` messages are read (or none is
    /// left). Returns the messages, oldest first, and the newest time of the files left unread
    /// (0 when all were read).
    ///
    /// # Errors
    /// [`StorageError`] when a chunk cannot be read or parsed.
    pub fn read_newest(&self, n: usize) -> Result<(Vec<Message>, u64), StorageError> {
        let metas: Vec<ChunkMeta> = self
            .chunks
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let mut read: Vec<Message> = Vec::new();
        let mut unread = metas.len();
        while unread > 0 && read.len() < n {
            unread -= 1;
            read.extend(files::read_message_file(&metas[unread].path)?);
        }
        read.sort_by_key(|message| message.time);
        let newest_unread = metas[..unread]
            .iter()
            .map(|meta| meta.last_time)
            .max()
            .unwrap_or(0);
        Ok((read, newest_unread))
    }
}

/// The file whose exclusive lock marks a data folder as in use.
pub const LOCK_FILE: &str = ".chat-server.lock";

/// What [`Store::open`] does when another process holds the data folder's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// Refuse at once with [`StorageError::Locked`]: a second server must not start.
    Refuse,
    /// Wait up to this long for the lock, then refuse: a takeover, where the old process
    /// releases it once it has flushed.
    UpTo(Duration),
}

/// Takes the exclusive lock of the folder `dir` (its file [`LOCK_FILE`]), which marks it as
/// in use by one `chat-server` process; the lock is held while the returned file is open.
///
/// # Errors
/// [`StorageError::Locked`] when another process holds it (after `wait`),
/// [`StorageError::Io`] when the lock file cannot be opened.
pub fn lock_folder(dir: &Path, wait: LockWait) -> Result<fs::File, StorageError> {
    let path = dir.join(LOCK_FILE);
    let open = || {
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| StorageError::io(&path, source))
    };
    let file = open()?;
    match (file.try_lock(), wait) {
        (Ok(()), _) => Ok(file),
        (Err(fs::TryLockError::WouldBlock), LockWait::Refuse) => Err(StorageError::Locked { path }),
        (Err(fs::TryLockError::WouldBlock), LockWait::UpTo(limit)) => {
            // A blocking lock is granted the moment the holder lets go. It runs on a thread of
            // its own so that the wait can end; a thread still waiting then (the holder is
            // stuck) holds its own descriptor and ends with this process, which is refusing
            // to start.
            let (granted, wait_for_grant) = std::sync::mpsc::channel();
            let waiting = open()?;
            std::thread::Builder::new()
                .name("chat-lock-wait".to_owned())
                .spawn(move || {
                    let locked = waiting.lock().map(|()| waiting);
                    let _ = granted.send(locked);
                })
                .map_err(|source| StorageError::io(&path, source))?;
            match wait_for_grant.recv_timeout(limit) {
                Ok(Ok(locked)) => Ok(locked),
                Ok(Err(source)) => Err(StorageError::io(&path, source)),
                Err(_) => Err(StorageError::Locked { path }),
            }
        }
        (Err(fs::TryLockError::Error(source)), _) => Err(StorageError::io(&path, source)),
    }
}

/// Bytes the data folder's files take: `data.json`, the chunk files and the write-ahead log
/// (for the operators' metrics). Files that vanish while they are counted count as 0.
pub fn bytes_on_disk(dir: &Path) -> u64 {
    let size = |path: &Path| fs::metadata(path).map_or(0, |meta| meta.len());
    let chunks: u64 = files::list_chunk_files(&dir.join(CHUNK_DIR))
        .map(|paths| paths.iter().map(|path| size(path)).sum())
        .unwrap_or(0);
    size(&dir.join(DATA_FILE)) + size(&dir.join(wal::WAL_FILE)) + chunks
}

/// What one [`Store::append`] cost, for the operators' metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppendReport {
    /// How long the write-ahead log's fsync took.
    pub fsync: Duration,
    /// How long the compaction it triggered took, when it triggered one.
    pub compaction: Option<Duration>,
}

/// The room's durable history, owned by the writer thread.
#[derive(Debug)]
pub struct Store {
    /// Held for the store's life: the exclusive lock on the data folder.
    _lock: fs::File,
    dir: PathBuf,
    wal: Wal,
    /// Messages not in any chunk file (those of `data.json` and the log), oldest first.
    tail: Vec<Message>,
    chunks: ChunkIndex,
    last_time: u64,
    compact_after: usize,
}

/// What [`Store::open`] found.
#[derive(Debug)]
pub struct Loaded {
    /// The store, ready for appends.
    pub store: Store,
    /// How many messages the folder holds in all.
    pub n_messages: u64,
    /// The chunk files, for reading old history.
    pub chunks: ChunkIndex,
}

/// How many times `message` occurs in each file, so that a message copied into a second file
/// by an interrupted compaction counts once while real repeats inside one file are kept.
fn count_messages<'a>(
    messages: impl IntoIterator<Item = &'a Message>,
) -> HashMap<&'a Message, usize> {
    let mut counts = HashMap::new();
    for message in messages {
        *counts.entry(message).or_insert(0) += 1;
    }
    counts
}

impl Store {
    /// Opens the data folder `dir` (creating it if missing) and loads everything in it: the
    /// chunk files, `data.json`, and the write-ahead log.
    ///
    /// `compact_after` is how many log records trigger a compaction.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] naming the first file that cannot be parsed (nothing is then
    /// written), [`StorageError::Io`] for folder or file errors.
    pub fn open(
        dir: &Path,
        compact_after: usize,
        lock_wait: LockWait,
    ) -> Result<Loaded, StorageError> {
        fs::create_dir_all(dir).map_err(|source| StorageError::io(dir, source))?;
        // Before anything is read or repaired: a second server on the same folder would cut
        // the first one's log and empty it on its way out.
        let lock = lock_folder(dir, lock_wait)?;
        let chunk_dir = dir.join(CHUNK_DIR);
        files::remove_temp_files(dir)?;
        files::remove_temp_files(&chunk_dir)?;

        // Chunks: immutable, sorted by time range.
        let mut chunk_files: Vec<(ChunkMeta, Vec<Message>)> = Vec::new();
        for path in files::list_chunk_files(&chunk_dir)? {
            let mut messages = files::read_message_file(&path)?;
            messages.sort_by_key(|message| message.time);
            let (Some(first), Some(last)) = (messages.first(), messages.last()) else {
                tracing::debug!(path = %path.display(), "skipping an empty chunk file");
                continue;
            };
            let meta = ChunkMeta {
                path: path.clone(),
                first_time: first.time,
                last_time: last.time,
            };
            chunk_files.push((meta, messages));
        }
        chunk_files.sort_by(|(a, _), (b, _)| {
            (a.first_time, a.last_time, &a.path).cmp(&(b.first_time, b.last_time, &b.path))
        });
        for pair in chunk_files.windows(2) {
            if pair[1].0.first_time < pair[0].0.last_time {
                tracing::warn!(
                    first = %pair[0].0.path.display(),
                    second = %pair[1].0.path.display(),
                    "chunk files overlap in time; history reads may interleave them"
                );
            }
        }

        // The tail: data.json and the log, minus what a chunk already holds.
        let data_path = dir.join(DATA_FILE);
        let data_messages = if data_path.exists() {
            files::read_message_file(&data_path)?
        } else {
            Vec::new()
        };
        let (wal, wal_messages) = Wal::open(dir)?;
        let tail = {
            let data_counts = count_messages(&data_messages);
            let wal_counts = count_messages(&wal_messages);
            let chunk_counts =
                count_messages(chunk_files.iter().flat_map(|(_, messages)| messages));
            let mut remaining: HashMap<&Message, usize> = HashMap::new();
            for message in data_counts.keys().chain(wal_counts.keys()) {
                let in_tail = data_counts
                    .get(message)
                    .copied()
                    .unwrap_or(0)
                    .max(wal_counts.get(message).copied().unwrap_or(0));
                let in_chunks = chunk_counts.get(message).copied().unwrap_or(0);
                remaining.insert(message, in_tail.saturating_sub(in_chunks));
            }
            let mut tail = Vec::new();
            for message in data_messages.iter().chain(&wal_messages) {
                if let Some(left) = remaining.get_mut(message) {
                    if *left > 0 {
                        *left -= 1;
                        tail.push(message.clone());
                    }
                }
            }
            tail.sort_by_key(|message| message.time);
            tail
        };

        let n_chunked: usize = chunk_files.iter().map(|(_, messages)| messages.len()).sum();
        let n_messages = (n_chunked + tail.len()) as u64;
        let last_time = tail
            .last()
            .map(|m| m.time)
            .into_iter()
            .chain(chunk_files.last().map(|(meta, _)| meta.last_time))
            .max()
            .unwrap_or(0);

        let chunks = ChunkIndex::default();
        for (meta, _) in chunk_files {
            chunks.push(meta);
        }
        let store = Store {
            _lock: lock,
            dir: dir.to_owned(),
            wal,
            tail,
            chunks: chunks.clone(),
            last_time,
            compact_after,
        };
        Ok(Loaded {
            store,
            n_messages,
            chunks,
        })
    }

    /// The messages in no chunk file (those of `data.json` and the log), oldest first.
    pub fn tail(&self) -> &[Message] {
        &self.tail
    }

    /// Every message of the folder, oldest first (messages sharing a time keep their order).
    ///
    /// # Errors
    /// [`StorageError`] when a chunk file cannot be read.
    pub fn all_messages(&self) -> Result<Vec<Message>, StorageError> {
        let mut all = self.chunks.read_after(0, usize::MAX)?;
        all.extend_from_slice(&self.tail);
        all.sort_by_key(|message| message.time);
        Ok(all)
    }

    /// Writes `messages` (oldest first) into this store, which must be empty, in the original
    /// layout: through the log in batches, then one compaction (an export).
    ///
    /// # Errors
    /// [`StorageError`] when a write fails.
    pub fn write_all(&mut self, messages: &[Message]) -> Result<(), StorageError> {
        for batch in messages.chunks(self.compact_after.max(1)) {
            self.append(batch)?;
        }
        self.compact()
    }

    /// Time of the newest stored message, ms since the Unix epoch (0 for an empty room).
    pub fn last_time(&self) -> u64 {
        self.last_time
    }

    /// Time of the newest message in a chunk file (0 when there are none): messages up to it
    /// can be dropped from memory because a pop can read them from disk.
    pub fn chunked_through(&self) -> u64 {
        self.chunks.chunked_through()
    }

    /// Durably appends `messages` (already timed, strictly increasing, newer than
    /// [`Store::last_time`]) with one fsync, then compacts if the log has grown past its limit.
    ///
    /// # Errors
    /// [`StorageError`] when the log write fails: none of `messages` is then stored. A failed
    /// compaction after a successful append is only logged: the messages are safe in the log.
    pub fn append(&mut self, messages: &[Message]) -> Result<AppendReport, StorageError> {
        let records = wal::encode_batch(messages);
        let fsync = self.wal.append(&records, messages.len())?;
        self.tail.extend_from_slice(messages);
        if let Some(last) = messages.last() {
            self.last_time = last.time;
        }
        let mut compaction = None;
        if self.wal.n_records() >= self.compact_after {
            let started = Instant::now();
            if let Err(error) = self.compact() {
                tracing::error!(error = %error, "compaction failed; messages stay in the write-ahead log");
            }
            compaction = Some(started.elapsed());
        }
        Ok(AppendReport { fsync, compaction })
    }

    /// Whether an append would work right now, found without storing anything (see
    /// [`wal::Wal::probe`]).
    ///
    /// # Errors
    /// [`StorageError::Io`] while the write-ahead log cannot be written.
    pub fn probe(&mut self) -> Result<(), StorageError> {
        self.wal.probe()
    }

    /// [`Store::append`], or nothing at all (no write, no fsync) for an empty batch, such as a
    /// group commit of retried saves only.
    ///
    /// # Errors
    /// As [`Store::append`].
    pub fn append_unless_empty(
        &mut self,
        messages: &[Message],
    ) -> Result<AppendReport, StorageError> {
        if messages.is_empty() {
            return Ok(AppendReport::default());
        }
        self.append(messages)
    }

    /// Moves the log's messages into the original layout: full 100-message chunk files for the
    /// oldest, `data.json` for the newest (at most 100), then empties the log. Every file is
    /// written atomically; see the module docs for what a crash in between leaves.
    ///
    /// # Errors
    /// [`StorageError::Io`]; what was written so far is consistent and the log is kept.
    pub fn compact(&mut self) -> Result<(), StorageError> {
        if self.wal.n_records() == 0
            && self.tail.len() <= MESSAGES_PER_FILE
            && self.dir.join(DATA_FILE).exists()
        {
            return Ok(());
        }
        let n_to_chunk = self.tail.len().saturating_sub(1) / MESSAGES_PER_FILE * MESSAGES_PER_FILE;
        if n_to_chunk > 0 {
            let chunk_dir = self.dir.join(CHUNK_DIR);
            if !chunk_dir.exists() {
                fs::create_dir_all(&chunk_dir)
                    .map_err(|source| StorageError::io(&chunk_dir, source))?;
                files::sync_dir(&self.dir).map_err(|source| StorageError::io(&self.dir, source))?;
            }
            let mut next_index = 0usize;
            for _ in 0..n_to_chunk / MESSAGES_PER_FILE {
                let slice = &self.tail[..MESSAGES_PER_FILE];
                // As the original: `<save-time>-<n>.json`, save-time being the newest time.
                let path = loop {
                    let candidate = chunk_dir.join(format!("{}-{next_index}.json", self.last_time));
                    next_index += 1;
                    if !candidate.exists() {
                        break candidate;
                    }
                };
                files::write_atomic(&path, &files::render_message_file(slice))?;
                let (first, last) = (&slice[0], &slice[slice.len() - 1]);
                self.chunks.push(ChunkMeta {
                    path,
                    first_time: first.time,
                    last_time: last.time,
                });
                // At once, chunk by chunk: if a later chunk fails, a retry must not write these
                // messages into a second chunk file.
                self.tail.drain(..MESSAGES_PER_FILE);
            }
        }
        files::write_atomic(
            &self.dir.join(DATA_FILE),
            &files::render_message_file(&self.tail),
        )?;
        self.wal.clear()?;
        tracing::debug!(
            n_chunked = n_to_chunk,
            n_in_data_json = self.tail.len(),
            "compacted the write-ahead log"
        );
        Ok(())
    }
}
