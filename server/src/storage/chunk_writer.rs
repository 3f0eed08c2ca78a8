//! Chunk files written ahead of the compaction that needs them, on a thread of their own.
//!
//! A chunk file holds 100 messages that are already durable (in the write-ahead log, or in
//! `data.json`), so it can be written at any time before the compaction that moves them out of
//! the log: a crash in between leaves those messages in a chunk file and in the log, the window
//! every compaction already has, and loading keeps one copy of each (see
//! [`super::merge::tail_outside_chunks`]). Writing a file (create, write, fsync, rename, then
//! the folder's fsync) is most of a compaction's time, and a compaction runs on the thread that
//! does the group commits: while it ran, no save was acknowledged (BENCHMARKS.md measures it).
//!
//! So [`super::Store::append`] hands each full 100-message slice of the tail to the
//! [`ChunkWriter`] as soon as it exists, and [`super::Store::compact`] takes the files it wrote
//! (waiting for those still being written) instead of writing them itself. A slice whose file
//! could not be written is written by the compaction, as before; one whose file was renamed
//! into place but whose folder fsync failed counts as written (its folder is synced by the
//! compaction), so that no message is ever written into two chunk files.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use chat_shared::Message;

use super::files::{self, FolderSync};

/// What became of one chunk file handed to the [`ChunkWriter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// In place and durable: the file and its folder were fsynced.
    Durable(PathBuf),
    /// In place (renamed), but its folder's fsync failed: it must be synced before the log is
    /// emptied, and it must not be written again.
    Visible(PathBuf),
    /// Not in place: the compaction writes it.
    Missing,
}

/// One slice handed to the writer: in flight, or done.
#[derive(Debug)]
enum State {
    InFlight(mpsc::Receiver<Written>),
    Done(Written),
}

/// A chunk file handed to the [`ChunkWriter`], in the order of the tail's slices.
#[derive(Debug)]
pub struct Pending {
    state: State,
}

impl Pending {
    /// What became of the file, waiting for the writer if it is still at work. A writer that
    /// went away without answering wrote nothing that counts: [`Written::Missing`] (a file it
    /// may have renamed into place all the same is then a copy that loading counts once).
    pub fn wait(&mut self) -> &Written {
        if let State::InFlight(done) = &self.state {
            let written = done.recv().unwrap_or(Written::Missing);
            self.state = State::Done(written);
        }
        match &self.state {
            State::Done(written) => written,
            State::InFlight(_) => unreachable!("resolved just above"),
        }
    }
}

/// One file to write.
struct Job {
    chunk_dir: PathBuf,
    /// The newest stored time when it was handed over: the file is named `<save_time>-<n>.json`,
    /// as the original server named its files.
    save_time: u64,
    messages: Vec<Message>,
    folder_sync: Arc<dyn FolderSync>,
    done: mpsc::SyncSender<Written>,
}

/// The thread that writes chunk files ahead of compaction. Dropping it waits for the files
/// handed over so far, so that no file is written after the store's folder lock is released.
#[derive(Debug)]
pub struct ChunkWriter {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl ChunkWriter {
    /// Starts the writer thread. When the thread cannot be started, every slice handed over is
    /// [`Written::Missing`] and compactions write their files themselves.
    pub fn start() -> ChunkWriter {
        let (jobs, received) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("chunk-writer".into())
            .spawn(move || write_until_closed(&received));
        match thread {
            Ok(thread) => ChunkWriter {
                jobs: Some(jobs),
                thread: Some(thread),
            },
            Err(error) => {
                tracing::warn!(error = %error, "cannot start the chunk writer; compactions write their chunk files themselves");
                ChunkWriter {
                    jobs: None,
                    thread: None,
                }
            }
        }
    }

    /// Hands `messages` (one full chunk, oldest first) to the writer, to be written into
    /// `chunk_dir` (an existing, durable folder) and that folder fsynced with `folder_sync`.
    pub fn write(
        &self,
        chunk_dir: PathBuf,
        save_time: u64,
        messages: Vec<Message>,
        folder_sync: Arc<dyn FolderSync>,
    ) -> Pending {
        let (done, receiver) = mpsc::sync_channel(1);
        let job = Job {
            chunk_dir,
            save_time,
            messages,
            folder_sync,
            done,
        };
        let sent = self
            .jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(job).is_ok());
        Pending {
            state: if sent {
                State::InFlight(receiver)
            } else {
                State::Done(Written::Missing)
            },
        }
    }
}

impl Drop for ChunkWriter {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: the jobs waiting are written together, then their folder is fsynced
/// once, then each is answered.
fn write_until_closed(jobs: &mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        batch.extend(jobs.try_iter());
        let mut written: Vec<(Job, Option<PathBuf>)> = Vec::with_capacity(batch.len());
        for job in batch {
            let path = write_one(&job);
            written.push((job, path));
        }
        let mut synced: Vec<(PathBuf, bool)> = Vec::new();
        for (job, path) in written {
            let answer = match path {
                None => Written::Missing,
                Some(path) => {
                    let durable = match synced.iter().find(|(dir, _)| *dir == job.chunk_dir) {
                        Some((_, durable)) => *durable,
                        None => {
                            let durable = job.folder_sync.sync_folder(&job.chunk_dir).is_ok();
                            synced.push((job.chunk_dir.clone(), durable));
                            durable
                        }
                    };
                    if durable {
                        Written::Durable(path)
                    } else {
                        Written::Visible(path)
                    }
                }
            };
            let _ = job.done.send(answer);
        }
    }
}

/// Writes one job's file (atomically: see [`files::replace_file`]) under a name no file has
/// yet; its path when the file is in place, even if writing it reported an error after the
/// rename.
fn write_one(job: &Job) -> Option<PathBuf> {
    let path = unused_chunk_path(&job.chunk_dir, job.save_time);
    match files::replace_file(&path, &files::render_message_file(&job.messages)) {
        Ok(()) => Some(path),
        Err(_) if path.exists() => Some(path),
        Err(error) => {
            tracing::warn!(path = %path.display(), error = %error, "cannot write a chunk file ahead of compaction; the compaction writes it");
            None
        }
    }
}

/// `<save_time>-<n>.json` in `chunk_dir`, with the smallest `n` no file has, as the original
/// named its files.
pub fn unused_chunk_path(chunk_dir: &Path, save_time: u64) -> PathBuf {
    let mut n = 0usize;
    loop {
        let candidate = chunk_dir.join(format!("{save_time}-{n}.json"));
        if !candidate.exists() {
            return candidate;
        }
        n += 1;
    }
}
