//! `chat-server check DIR` and `chat-server repair DIR --to NEW_DIR`: every problem of a data
//! folder, and a repaired copy of it.
//!
//! [`check_folder`] only reads, and takes no lock: it may run beside a server using the folder
//! (every file is replaced atomically, so each file it reads is whole; a batch being appended
//! to the log shows as a torn tail, a notice). [`repair_folder`] never writes into the folder
//! it reads: it writes a new one, and holds the folder's lock while it reads (without creating
//! the lock file), so that it refuses a folder a server is using, whose log and `data.json`
//! could change between two reads.
//!
//! A *problem* makes the server refuse to start: a file that is not a JSON array, a record
//! without `name`, `msg` and `time` of the right types, a time that goes back within a file,
//! a damaged log. A *notice* is something loading copes with: copies of messages in several
//! files, a torn last batch in the log, temp files left by a crash.

use std::fs;
use std::path::{Path, PathBuf};

use chat_shared::Message;

use super::files::{self, FileScan, Problem, ProblemKind, CHUNK_DIR, DATA_FILE, TEMP_PREFIX};
use super::{merge, wal, LockWait, StorageError, Store, LOCK_FILE};

/// What [`check_folder`] found.
#[derive(Debug, Clone, Default)]
pub struct FolderReport {
    /// Everything that makes the server refuse to start, file by file, in file order.
    pub problems: Vec<Problem>,
    /// What loading copes with, for the operator.
    pub notices: Vec<String>,
    /// How many messages the folder holds (of the records that can be right, copies counted
    /// once).
    pub n_messages: usize,
}

/// What the folder holds, file by file, as read by [`scan_folder`].
#[derive(Debug, Default)]
struct FolderScan {
    /// Each chunk file and what it holds, by file name.
    chunk_files: Vec<(PathBuf, FileScan)>,
    /// `data.json`, when there is one.
    data_file: Option<FileScan>,
    /// The log.
    log: wal::LogScan,
    /// Temp files left by an interrupted write.
    temp_files: Vec<PathBuf>,
}

impl FolderScan {
    /// Every problem, in the order the files are read at startup.
    fn problems(&self) -> Vec<Problem> {
        let mut problems: Vec<Problem> = self
            .chunk_files
            .iter()
            .flat_map(|(_, scan)| scan.problems.iter().cloned())
            .collect();
        if let Some(data) = &self.data_file {
            problems.extend(data.problems.iter().cloned());
        }
        if let Some(StorageError::Corrupt {
            path,
            position,
            reason,
        }) = &self.log.damage
        {
            problems.push(Problem {
                kind: ProblemKind::DamagedLog,
                path: path.clone(),
                position: position.clone(),
                reason: reason.clone(),
            });
        }
        problems
    }
}

/// Reads every file of the data folder `dir`, changing nothing.
fn scan_folder(dir: &Path) -> Result<FolderScan, StorageError> {
    if !dir.is_dir() {
        let error = std::io::Error::new(std::io::ErrorKind::NotFound, "no such data folder");
        return Err(StorageError::io(dir, error));
    }
    let mut scan = FolderScan::default();
    let chunk_dir = dir.join(CHUNK_DIR);
    for folder in [dir, chunk_dir.as_path()] {
        if let Ok(entries) = fs::read_dir(folder) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                    scan.temp_files.push(entry.path());
                }
            }
        }
    }
    let mut chunk_paths = files::list_chunk_files(&chunk_dir)?;
    chunk_paths.sort();
    for path in chunk_paths {
        let file = files::scan_message_file(&path)?;
        scan.chunk_files.push((path, file));
    }
    let data_path = dir.join(DATA_FILE);
    if data_path.exists() {
        scan.data_file = Some(files::scan_message_file(&data_path)?);
    }
    scan.log = wal::read_log(dir)?;
    Ok(scan)
}

/// The folder's messages (of the records that can be right, each file sorted by time), merged
/// as loading merges them, oldest first; and the notices of what the merge left out.
fn merged_messages(scan: &FolderScan) -> (Vec<Message>, Vec<String>) {
    let sorted = |file: &FileScan| {
        let mut messages = file.messages.clone();
        messages.sort_by_key(|message| message.time);
        messages
    };
    let mut notices = Vec::new();
    let groups = merge::group_chunk_files(
        scan.chunk_files
            .iter()
            .map(|(path, file)| (path.clone(), sorted(file)))
            .collect(),
    );
    for group in groups.iter().filter(|group| group.n_copies > 0) {
        let names: Vec<String> = group
            .paths
            .iter()
            .map(|path| path.display().to_string())
            .collect();
        notices.push(format!(
            "{} copies of messages in more than one of the overlapping chunk files {} (read once)",
            group.n_copies,
            names.join(", ")
        ));
    }
    let data = scan.data_file.as_ref().map(sorted).unwrap_or_default();
    let chunked = groups.iter().flat_map(|group| &group.messages);
    let tail = merge::tail_outside_chunks(chunked, &data, &scan.log.messages);
    let mut all: Vec<Message> = groups
        .into_iter()
        .flat_map(|group| group.messages)
        .collect();
    all.extend(tail);
    // Chunk and tail ranges interleave only in legacy or hand-edited folders.
    all.sort_by_key(|message| message.time);
    (all, notices)
}

/// Checks the data folder `dir` and lists every problem (not only the first) and every
/// notice. Reads only, without the folder's lock (see the module docs).
///
/// # Errors
/// [`StorageError::Io`] when the folder or a file cannot be read (problems in the files are
/// in the report).
pub fn check_folder(dir: &Path) -> Result<FolderReport, StorageError> {
    let scan = scan_folder(dir)?;
    let (all, mut notices) = merged_messages(&scan);
    if scan.log.torn_bytes > 0 && scan.log.damage.is_none() {
        notices.push(format!(
            "{}: a torn last batch of {} bytes (never acknowledged; the next start cuts it off)",
            dir.join(wal::WAL_FILE).display(),
            scan.log.torn_bytes
        ));
    }
    for path in &scan.temp_files {
        notices.push(format!(
            "{}: a temp file left by an interrupted write (the next start removes it)",
            path.display()
        ));
    }
    Ok(FolderReport {
        problems: scan.problems(),
        notices,
        n_messages: all.len(),
    })
}

/// What [`repair_folder`] changed.
#[derive(Debug, Clone, Default)]
pub struct RepairReport {
    /// Records left out because they cannot be right (no `name`, a `time` that is not a whole
    /// number, a file that is not JSON, a damaged log batch and what follows it), with where
    /// they were.
    pub dropped: Vec<Problem>,
    /// Records kept but moved into time order (a time before an earlier record's in its file).
    pub n_moved: usize,
    /// What loading would have coped with and the copy no longer has (copies across files, a
    /// torn log tail, temp files).
    pub notices: Vec<String>,
    /// Messages written into the new folder.
    pub n_written: usize,
}

/// Writes a repaired copy of the data folder `dir` into `new_dir`, which must not exist or be
/// empty: records that cannot be right are left out, the rest is sorted by time and merged
/// (copies across files kept once), and written in the original layout (100 messages per
/// chunk file, the newest in `data.json`). `dir` is never written to. The copy is checked with
/// [`check_folder`] before this returns.
///
/// # Errors
/// [`StorageError::Locked`] when a server uses `dir` (stop it first), [`StorageError::Io`] when
/// `new_dir` exists and is not empty or a file cannot be read or written.
pub fn repair_folder(dir: &Path, new_dir: &Path) -> Result<RepairReport, StorageError> {
    let not_empty = match fs::read_dir(new_dir) {
        Ok(mut entries) => entries.next().is_some(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => false,
        Err(source) => return Err(StorageError::io(new_dir, source)),
    };
    if not_empty {
        let error = std::io::Error::other(
            "exists and is not empty; repair writes into a new or empty folder, never in place",
        );
        return Err(StorageError::io(new_dir, error));
    }
    let inside =
        |folder: &Path| std::path::absolute(folder).map_err(|e| StorageError::io(folder, e));
    if inside(new_dir)?.starts_with(inside(dir)?) {
        let error = std::io::Error::other(
            "is inside the folder to repair; repair writes beside it, never into it",
        );
        return Err(StorageError::io(new_dir, error));
    }
    // A folder without a lock file has never been opened by this server: nothing to wait for.
    let lock_path = dir.join(LOCK_FILE);
    let _lock = match fs::File::open(&lock_path) {
        Ok(file) => match file.try_lock() {
            Ok(()) => Some(file),
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StorageError::Locked { path: lock_path })
            }
            Err(fs::TryLockError::Error(source)) => {
                return Err(StorageError::io(&lock_path, source))
            }
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => return Err(StorageError::io(&lock_path, source)),
    };
    let scan = scan_folder(dir)?;
    let (all, mut notices) = merged_messages(&scan);
    if scan.log.torn_bytes > 0 && scan.log.damage.is_none() {
        notices.push(format!(
            "left out a torn last batch of {} bytes of {} (never acknowledged)",
            scan.log.torn_bytes,
            dir.join(wal::WAL_FILE).display()
        ));
    }
    for path in &scan.temp_files {
        notices.push(format!(
            "left out {}, a temp file of an interrupted write",
            path.display()
        ));
    }
    let dropped: Vec<Problem> = scan
        .problems()
        .into_iter()
        .filter(|problem| problem.kind != ProblemKind::OutOfOrder)
        .collect();
    let n_moved = scan
        .chunk_files
        .iter()
        .map(|(_, file)| file)
        .chain(&scan.data_file)
        .map(|file| file.out_of_order.len())
        .sum();

    let mut loaded = Store::open(new_dir, 1000, LockWait::Refuse)?;
    loaded.store.write_all(&all)?;
    drop(loaded);
    let report = check_folder(new_dir)?;
    if let Some(problem) = report.problems.into_iter().next() {
        return Err(problem.into());
    }
    Ok(RepairReport {
        dropped,
        n_moved,
        notices,
        n_written: all.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(time: u64) -> Message {
        Message::new("a", format!("m{time}"), time)
    }

    #[test]
    fn a_damaged_log_is_a_problem_and_repair_keeps_the_batches_before_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(
            dir.path().join(DATA_FILE),
            files::render_message_file(&[message(1)]),
        )
        .expect("writes");
        let mut log = wal::encode_batch(&[message(2), message(3)]);
        let damaged_at = log.len();
        let mut second = wal::encode_batch(&[message(4)]);
        second[12] ^= 1;
        log.extend_from_slice(&second);
        log.extend_from_slice(&wal::encode_batch(&[message(5)]));
        fs::write(dir.path().join(wal::WAL_FILE), log).expect("writes");

        let report = check_folder(dir.path()).expect("checks");
        let positions: Vec<(ProblemKind, String)> = report
            .problems
            .iter()
            .map(|problem| (problem.kind, problem.position.clone()))
            .collect();
        assert_eq!(
            positions,
            [(ProblemKind::DamagedLog, format!("byte {damaged_at}"))]
        );

        let out = tempfile::tempdir().expect("temp dir");
        let new_dir = out.path().join("repaired");
        let repaired = repair_folder(dir.path(), &new_dir).expect("repairs");
        assert_eq!(repaired.dropped.len(), 1);
        assert_eq!(
            repaired.n_written, 3,
            "data.json and the batch before the damage"
        );
        let loaded = Store::open(&new_dir, 1000, LockWait::Refuse).expect("loads");
        assert_eq!(loaded.store.stored_times(), [1, 2, 3]);
    }
}
