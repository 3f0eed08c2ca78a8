//! Durable storage of the room's history in the data folder.
//!
//! Layout (the original server's working folder, plus one file of ours):
//! - `data.json`: the newest messages, at most 100, as the original kept them;
//! - `data/<save-time>-<n>.json`: older messages, 100 per file, immutable once written;
//! - `wal.log`: our write-ahead log of messages saved since the last compaction.
//!
//! A save is acknowledged only after its write-ahead-log record is fsynced (see [`wal`]); many
//! concurrent saves share one fsync (group commit, in [`crate::backend::local`]). Compaction moves the
//! log's messages into the JSON layout, writing every file atomically, and then empties the log;
//! its chunk files are written ahead, on a thread of their own, as soon as 100 messages fill
//! one ([`chunk_writer`]), so that the group commits do not wait for them.
//! It can fail at any step and be retried without writing a message twice (see
//! [`Store::compact`]). A crash between its steps leaves a message in two files; loading keeps
//! one copy of each (see [`merge`]), so nothing is doubled and nothing is lost.
//!
//! Loading checks every record of the JSON files (see [`files::scan_message_text`]): a file
//! that is not JSON, a record without `name`, `msg` and `time` of the right types, or a time
//! that goes back within a file stops the start, naming the file and the record. [`check`]
//! lists every such problem of a folder, and writes a repaired copy.

pub mod check;
pub mod chunk_writer;
pub mod files;
pub mod merge;
pub mod wal;

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chat_shared::Message;

use chunk_writer::{ChunkWriter, Pending, Written};
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
    /// A data file cannot be parsed, or holds a record that cannot be right (see
    /// [`files::scan_message_text`]); the server refuses to start and never overwrites it.
    #[error("{path}: refused at {position}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where, e.g. `line 3, column 7`, `record 2 (line 8, column 5)` or `byte 120`.
        position: String,
        /// What is wrong: what the parser said, or which check failed.
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

/// One immutable chunk file, or several whose time ranges meet (read and merged as one, see
/// [`merge`]), and the range of times they hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkMeta {
    /// Its files (one, unless a legacy folder or an older version of this server left files
    /// that overlap).
    pub paths: Vec<PathBuf>,
    /// Time of its oldest message, ms since the Unix epoch.
    pub first_time: u64,
    /// Time of its newest message, ms since the Unix epoch.
    pub last_time: u64,
}

impl ChunkMeta {
    /// Reads its messages, oldest first, copies across its files left out.
    ///
    /// # Errors
    /// [`StorageError`] when a file cannot be read or holds a record that cannot be right.
    pub fn read(&self) -> Result<Vec<Message>, StorageError> {
        if let [path] = self.paths.as_slice() {
            // Times never decrease within a file (checked when it is read).
            return files::read_message_file(path);
        }
        let contents = self
            .paths
            .iter()
            .map(|path| files::read_message_file(path))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(merge::merge_copies(&contents).0)
    }
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
            for message in meta.read()? {
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
            read.extend(metas[unread].read()?);
        }
        read.sort_by_key(|message| message.time);
        Ok((read, newest_time_of(&metas[..unread])))
    }

    /// Reads chunk files holding messages older than `before_ms`, from the newest back, until
    /// at least `n` such messages are read and the next older file cannot hold a message
    /// sharing a time with the oldest of the newest `n` (legacy files can split such a group
    /// between files), or none is left. Returns the messages older than `before_ms`, oldest
    /// first, and the newest time of the files left unread (0 when all were read).
    ///
    /// # Errors
    /// [`StorageError`] when a chunk cannot be read or parsed.
    pub fn read_before(
        &self,
        before_ms: u64,
        n: usize,
    ) -> Result<(Vec<Message>, u64), StorageError> {
        let metas: Vec<ChunkMeta> = self
            .chunks
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .filter(|meta| meta.first_time < before_ms)
            .cloned()
            .collect();
        let mut read: Vec<Message> = Vec::new();
        let mut unread = metas.len();
        while unread > 0 {
            if read.len() >= n {
                read.sort_by_key(|message| message.time);
                let boundary = read[read.len() - n].time;
                if metas[unread - 1].last_time < boundary {
                    break;
                }
            }
            unread -= 1;
            read.extend(
                metas[unread]
                    .read()?
                    .into_iter()
                    .filter(|message| message.time < before_ms),
            );
        }
        read.sort_by_key(|message| message.time);
        Ok((read, newest_time_of(&metas[..unread])))
    }
}

/// The newest message time in the chunk files `metas` (0 for none).
fn newest_time_of(metas: &[ChunkMeta]) -> u64 {
    metas.iter().map(|meta| meta.last_time).max().unwrap_or(0)
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
/// with its preallocated zeros (for the operators' metrics). Files that vanish while they are
/// counted count as 0.
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
    /// Writes chunk files ahead of compaction (see [`chunk_writer`]). Declared first, so
    /// dropped first: dropping the store waits for the files handed over before the folder
    /// lock goes.
    chunk_writer: ChunkWriter,
    /// Held for the store's life: the exclusive lock on the data folder.
    _lock: fs::File,
    dir: PathBuf,
    wal: Wal,
    /// Messages not in any chunk file (those of `data.json` and the log), oldest first.
    tail: Vec<Message>,
    chunks: ChunkIndex,
    last_time: u64,
    compact_after: usize,
    /// How folders are fsynced (a seam for tests: see [`files::FolderSync`]).
    folder_sync: Arc<dyn files::FolderSync>,
    /// Folders with a new entry (a renamed file, a new folder) whose fsync has not succeeded
    /// yet, in the order they must be synced: a compaction that failed after a file became
    /// visible syncs them first when it is retried.
    unsynced: Vec<PathBuf>,
    /// The chunk files handed to `chunk_writer`, one per full 100-message slice at the front
    /// of `tail`, in order: the first `pending.len() * MESSAGES_PER_FILE` messages of the tail.
    pending: VecDeque<Pending>,
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

impl Store {
    /// Opens the data folder `dir` (creating it if missing) and loads everything in it: the
    /// chunk files, `data.json`, and the write-ahead log. Every record is checked (see
    /// [`files::scan_message_text`]); chunk files whose times meet are read as one, and copies
    /// of a message in several files count once (see [`merge`]).
    ///
    /// `compact_after` is how many log records trigger a compaction.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] naming the first file that cannot be parsed or holds a record
    /// that cannot be right, and where (nothing is then written), [`StorageError::Io`] for
    /// folder or file errors.
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

        // Chunks: immutable; those whose times meet are merged.
        let mut chunk_files: Vec<(PathBuf, Vec<Message>)> = Vec::new();
        for path in files::list_chunk_files(&chunk_dir)? {
            let messages = files::read_message_file(&path)?;
            chunk_files.push((path, messages));
        }
        let groups = merge::group_chunk_files(chunk_files);
        for group in groups.iter().filter(|group| group.n_copies > 0) {
            tracing::warn!(
                files = ?group.paths,
                n_copies = group.n_copies,
                "chunk files hold copies of the same messages (an interrupted or retried compaction); each message is read once"
            );
        }

        // The tail: data.json and the log, minus what a chunk already holds.
        let data_path = dir.join(DATA_FILE);
        let data_messages = if data_path.exists() {
            files::read_message_file(&data_path)?
        } else {
            Vec::new()
        };
        let (wal, wal_messages) = Wal::open(dir)?;
        let chunked = groups.iter().flat_map(|group| &group.messages);
        let tail = merge::tail_outside_chunks(chunked, &data_messages, &wal_messages);
        let n_chunked: usize = groups.iter().map(|group| group.messages.len()).sum();
        let n_messages = (n_chunked + tail.len()) as u64;
        let chunks = ChunkIndex::default();
        for group in groups {
            let (Some(first), Some(last)) = (group.messages.first(), group.messages.last()) else {
                continue;
            };
            chunks.push(ChunkMeta {
                first_time: first.time,
                last_time: last.time,
                paths: group.paths,
            });
        }
        let last_time = tail
            .last()
            .map(|m| m.time)
            .max(Some(chunks.chunked_through()))
            .unwrap_or(0);
        let store = Store {
            chunk_writer: ChunkWriter::start(),
            _lock: lock,
            dir: dir.to_owned(),
            wal,
            tail,
            chunks: chunks.clone(),
            last_time,
            compact_after,
            folder_sync: Arc::new(files::FsyncFolder),
            unsynced: Vec::new(),
            pending: VecDeque::new(),
        };
        Ok(Loaded {
            store,
            n_messages,
            chunks,
        })
    }

    /// Replaces how folders are fsynced during compaction (tests make it fail).
    pub fn set_folder_sync(&mut self, folder_sync: Arc<dyn files::FolderSync>) {
        self.folder_sync = folder_sync;
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
        self.hand_over_full_chunks();
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
    /// It can be retried after any failure and never writes a message into a second chunk
    /// file: a chunk file counts as written (listed, its messages out of the tail) from the
    /// moment its rename succeeded, even when the folder fsync that follows fails; a retry
    /// first fsyncs the folders left unsynced, and the log is emptied only once every file
    /// holding its messages is durable. The order keeps every message on disk at every step:
    /// chunk files durable, then `data.json` replaced and durable, then the log emptied.
    ///
    /// # Errors
    /// [`StorageError::Io`]; what was written so far is consistent, recorded, and the log is
    /// kept.
    pub fn compact(&mut self) -> Result<(), StorageError> {
        if self.wal.n_records() == 0
            && self.unsynced.is_empty()
            && self.tail.len() <= MESSAGES_PER_FILE
            && self.dir.join(DATA_FILE).exists()
        {
            return Ok(());
        }
        // What an earlier attempt made visible is made durable before anything else.
        self.sync_unsynced()?;
        let n_to_chunk = self.n_to_chunk();
        if n_to_chunk > 0 {
            let chunk_dir = self.durable_chunk_dir()?;
            // Every file handed to the chunk writer is known before any is written here, so
            // that the two never pick the same name or write the same messages.
            for pending in &mut self.pending {
                pending.wait();
            }
            for _ in 0..n_to_chunk / MESSAGES_PER_FILE {
                let written_ahead = match self.pending.front_mut() {
                    Some(pending) => pending.wait().clone(),
                    None => Written::Missing,
                };
                let (path, durable) = match written_ahead {
                    Written::Durable(path) => (path, true),
                    Written::Visible(path) => (path, false),
                    Written::Missing => {
                        // As the original: `<save-time>-<n>.json`, save-time being the newest
                        // time.
                        let path = chunk_writer::unused_chunk_path(&chunk_dir, self.last_time);
                        let contents = files::render_message_file(&self.tail[..MESSAGES_PER_FILE]);
                        if let Err(error) = files::replace_file(&path, &contents) {
                            if !path.exists() {
                                return Err(error);
                            }
                            // The rename happened though an error was reported: the file is
                            // there (and whole: it was fsynced before the rename), so it is
                            // counted as written.
                            tracing::warn!(path = %path.display(), error = %error, "a chunk file is in place although writing it reported an error");
                        }
                        (path, false)
                    }
                };
                if !durable {
                    self.mark_unsynced(&chunk_dir);
                }
                self.pending.pop_front();
                self.chunks.push(ChunkMeta {
                    paths: vec![path],
                    first_time: self.tail[0].time,
                    last_time: self.tail[MESSAGES_PER_FILE - 1].time,
                });
                // At once, chunk by chunk, whatever happens next: the file is visible, so a
                // retry must not write these messages into a second chunk file.
                self.tail.drain(..MESSAGES_PER_FILE);
            }
            // The chunk files are durable before data.json stops holding their messages.
            self.sync_unsynced()?;
        }
        let data_path = self.dir.join(DATA_FILE);
        files::swap_in_file(&data_path, &files::render_message_file(&self.tail))?;
        let dir = self.dir.clone();
        self.mark_unsynced(&dir);
        self.sync_unsynced()?;
        self.wal.clear()?;
        tracing::debug!(
            n_chunked = n_to_chunk,
            n_in_data_json = self.tail.len(),
            "compacted the write-ahead log"
        );
        Ok(())
    }

    /// How many of the oldest messages of the tail belong in chunk files: whole 100-message
    /// files, with at least the newest message left for `data.json`.
    fn n_to_chunk(&self) -> usize {
        self.tail.len().saturating_sub(1) / MESSAGES_PER_FILE * MESSAGES_PER_FILE
    }

    /// The chunk folder, made (and its entry in the data folder made durable) if missing.
    fn durable_chunk_dir(&mut self) -> Result<PathBuf, StorageError> {
        let chunk_dir = self.dir.join(CHUNK_DIR);
        if !chunk_dir.exists() {
            fs::create_dir_all(&chunk_dir)
                .map_err(|source| StorageError::io(&chunk_dir, source))?;
            let dir = self.dir.clone();
            self.mark_unsynced(&dir);
            self.sync_unsynced()?;
        }
        Ok(chunk_dir)
    }

    /// Hands each full 100-message slice of the tail that a compaction would put in a chunk
    /// file, and that is not handed over yet, to the chunk writer (making the chunk folder
    /// when it is missing). Only while every folder is durable (else the next compaction sees
    /// to it first).
    fn hand_over_full_chunks(&mut self) {
        if !self.unsynced.is_empty() {
            return;
        }
        let n_to_chunk = self.n_to_chunk();
        let mut handed_over = self.pending.len() * MESSAGES_PER_FILE;
        if handed_over + MESSAGES_PER_FILE > n_to_chunk {
            return;
        }
        let Ok(chunk_dir) = self.durable_chunk_dir() else {
            // The next compaction tries again, and reports what fails.
            return;
        };
        while handed_over + MESSAGES_PER_FILE <= n_to_chunk {
            let slice = self.tail[handed_over..handed_over + MESSAGES_PER_FILE].to_vec();
            self.pending.push_back(self.chunk_writer.write(
                chunk_dir.clone(),
                self.last_time,
                slice,
                self.folder_sync.clone(),
            ));
            handed_over += MESSAGES_PER_FILE;
        }
    }

    /// The times of every stored message, oldest first (for tests).
    #[cfg(test)]
    pub(crate) fn stored_times(&self) -> Vec<u64> {
        self.all_messages()
            .expect("reads")
            .iter()
            .map(|message| message.time)
            .collect()
    }

    /// Waits until every chunk file handed to the chunk writer is written (or has failed).
    #[cfg(test)]
    fn wait_for_chunk_writer(&mut self) {
        for pending in &mut self.pending {
            pending.wait();
        }
    }

    /// Records that `folder` has a new entry not yet fsynced.
    fn mark_unsynced(&mut self, folder: &Path) {
        if !self.unsynced.iter().any(|unsynced| unsynced == folder) {
            self.unsynced.push(folder.to_owned());
        }
    }

    /// fsyncs the folders with new entries, in order; each one synced is forgotten.
    fn sync_unsynced(&mut self) -> Result<(), StorageError> {
        while let Some(folder) = self.unsynced.first() {
            self.folder_sync
                .sync_folder(folder)
                .map_err(|source| StorageError::io(folder, source))?;
            self.unsynced.remove(0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn message(time: u64) -> Message {
        Message::new("a", format!("m{time}"), time)
    }

    /// A folder fsync that fails, while `failing`, for the folders `fails_in` names (all when
    /// empty), as a folder made write-only (`chmod 333`) fails it for a non-root user: renames
    /// into it still succeed.
    #[derive(Debug, Default)]
    struct FlakyFolderSync {
        failing: Mutex<bool>,
        fails_in: Vec<PathBuf>,
        n_failed: Mutex<usize>,
    }

    impl files::FolderSync for FlakyFolderSync {
        fn sync_folder(&self, folder: &Path) -> std::io::Result<()> {
            let failing = *self.failing.lock().expect("not poisoned");
            if failing && (self.fails_in.is_empty() || self.fails_in.iter().any(|f| f == folder)) {
                *self.n_failed.lock().expect("not poisoned") += 1;
                return Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
            }
            files::sync_dir(folder)
        }
    }

    /// Every record of every chunk file on disk, by time.
    fn chunk_records(dir: &Path) -> Vec<u64> {
        let mut times: Vec<u64> = files::list_chunk_files(&dir.join(CHUNK_DIR))
            .expect("lists")
            .iter()
            .flat_map(|path| files::read_message_file(path).expect("reads"))
            .map(|message| message.time)
            .collect();
        times.sort_unstable();
        times
    }

    /// The report's steps, with the folder fsync failing in `fails_in` (all folders when
    /// empty): 101 saves, 104 saves while it fails (each acknowledged and each retrying the
    /// compaction), then one save once it works. `stop_cleanly` ends with the writer's final
    /// compaction; otherwise the store is dropped as a crash would leave it (after the 205th).
    fn run_the_report(dir: &Path, fails_in: Vec<PathBuf>, stop_cleanly: bool) -> Loaded {
        let mut loaded = Store::open(dir, 1, LockWait::Refuse).expect("opens");
        let sync = Arc::new(FlakyFolderSync {
            fails_in,
            ..FlakyFolderSync::default()
        });
        loaded.store.set_folder_sync(sync.clone());
        for time in 1..=101 {
            loaded.store.append(&[message(time)]).expect("saved");
        }
        *sync.failing.lock().expect("not poisoned") = true;
        for time in 102..=205 {
            loaded.store.append(&[message(time)]).expect("acknowledged");
        }
        assert!(
            *sync.n_failed.lock().expect("not poisoned") > 0,
            "the injected fault was hit"
        );
        if stop_cleanly {
            *sync.failing.lock().expect("not poisoned") = false;
            loaded.store.append(&[message(206)]).expect("saved");
            loaded
                .store
                .compact()
                .expect("the final compaction succeeds");
        }
        drop(loaded);
        Store::open(dir, 1, LockWait::Refuse).expect("reopens")
    }

    #[test]
    fn chunk_files_are_written_ahead_of_compaction_and_counted_once_after_a_crash_or_a_compaction()
    {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut loaded = Store::open(dir.path(), 1_000, LockWait::Refuse).expect("opens");
        for time in 1..=350 {
            loaded.store.append(&[message(time)]).expect("saved");
        }
        loaded.store.wait_for_chunk_writer();
        assert_eq!(
            chunk_records(dir.path()),
            (1..=300).collect::<Vec<_>>(),
            "three chunk files written before any compaction moved them out of the log"
        );
        assert_eq!(
            loaded.store.tail().len(),
            350,
            "still in the log and data.json"
        );
        // A crash now: the messages of those files are in the log too, and count once.
        drop(loaded);
        let mut reopened = Store::open(dir.path(), 1_000, LockWait::Refuse).expect("reopens");
        assert_eq!(reopened.n_messages, 350);
        assert_eq!(reopened.store.stored_times(), (1..=350).collect::<Vec<_>>());
        // A compaction takes the files written ahead rather than writing them again.
        for time in 351..=420 {
            reopened.store.append(&[message(time)]).expect("saved");
        }
        reopened.store.compact().expect("compacts");
        assert_eq!(chunk_records(dir.path()), (1..=400).collect::<Vec<_>>());
        assert_eq!(reopened.store.tail().len(), 20);
        assert_eq!(reopened.store.chunked_through(), 400);
    }

    #[test]
    fn compactions_replace_data_json_without_making_or_freeing_an_inode() {
        // Regression: each compaction wrote data.json into a new temp file and renamed it over
        // the old one, freeing an inode 20 times a second in the push benchmark; ext4 without
        // a journal then skipped every such inode when the chunk writer needed a new one
        // (BENCHMARKS.md, change 13).
        use std::os::unix::fs::MetadataExt;
        let inode = |path: &Path| fs::metadata(path).expect("exists").ino();
        let dir = tempfile::tempdir().expect("temp dir");
        let data_path = dir.path().join(DATA_FILE);
        let spare_path = dir
            .path()
            .join(format!("{}{DATA_FILE}", files::TEMP_PREFIX));
        let mut loaded = Store::open(dir.path(), 1, LockWait::Refuse).expect("opens");
        loaded.store.append(&[message(1)]).expect("saved");
        loaded.store.append(&[message(2)]).expect("saved");
        let inodes = [inode(&data_path), inode(&spare_path)];
        assert_ne!(inodes[0], inodes[1]);
        for time in 3..=250 {
            loaded.store.append(&[message(time)]).expect("saved");
            let mut now = [inode(&data_path), inode(&spare_path)];
            now.sort_unstable();
            let mut before = inodes;
            before.sort_unstable();
            assert_eq!(
                now, before,
                "data.json and its spare swap inodes (after {time})"
            );
            let in_data_json = files::read_message_file(&data_path).expect("reads");
            assert_eq!(in_data_json.last().map(|m| m.time), Some(time));
        }
        // The spare is a temp file: a restart removes it and loads each message once.
        drop(loaded);
        let reopened = Store::open(dir.path(), 1, LockWait::Refuse).expect("reopens");
        assert!(!spare_path.exists());
        assert_eq!(reopened.store.stored_times(), (1..=250).collect::<Vec<_>>());
    }

    #[test]
    fn a_compaction_retried_after_a_failed_folder_fsync_never_duplicates_messages() {
        // Regression: with --compact-after 1 and the data folder write-only (its fsync failing
        // after each rename had succeeded), every retry wrote the same messages into a new
        // chunk file: after a restart each came back several times.
        for (case, fails_in) in [
            ("every folder", vec![]),
            ("the chunk folder", vec![PathBuf::from(CHUNK_DIR)]),
            ("the data folder", vec![PathBuf::new()]),
        ] {
            for stop_cleanly in [true, false] {
                let dir = tempfile::tempdir().expect("temp dir");
                let fails_in = fails_in.iter().map(|sub| dir.path().join(sub)).collect();
                let reopened = run_the_report(dir.path(), fails_in, stop_cleanly);
                let n = if stop_cleanly { 206 } else { 205 };
                let context = format!("fsync failing in {case}, clean stop: {stop_cleanly}");
                assert_eq!(reopened.n_messages, n, "{context}");
                assert_eq!(
                    reopened.store.stored_times(),
                    (1..=n).collect::<Vec<_>>(),
                    "{context}"
                );
                let on_disk = chunk_records(dir.path());
                let n_copies = on_disk.windows(2).filter(|pair| pair[0] == pair[1]).count();
                assert_eq!(
                    n_copies, 0,
                    "records in chunk files that another chunk file also holds ({context})"
                );
            }
        }
    }
}
