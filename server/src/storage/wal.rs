//! The write-ahead log: every saved message is written here and fsynced before it is
//! acknowledged; compaction later moves the messages into the original's JSON layout and
//! empties the log.
//!
//! One record per line: `<crc32 of the JSON, 8 hex digits> <message JSON>\n`. Each group commit
//! (one write, one fsync) ends with a commit line, `commit <n records> <crc32 of the batch's
//! record lines, 8 hex digits>\n`: only records followed by their batch's commit line count.
//! A crash can leave a torn batch at the end: an incomplete last line, or zeros anywhere inside
//! it where the disk kept a later page of the write but not an earlier one, even when its
//! commit line reached the disk. It was never acknowledged (its `fdatasync` had not returned),
//! so it is cut off with a warning. A complete line without zeros that fails its check was
//! written whole and changed since (damage), as is a bad line followed by a valid commit line
//! with anything but zeros after it (a later batch is written only once this one is durable):
//! the server refuses to start, naming the file and the byte offset.
//!
//! The file is preallocated: it is extended with zeros (`PREALLOCATE_BYTES`, 256 KiB, at a
//! time, written and fsynced once) ahead of the records, and each group commit overwrites
//! zeros in place. The file's length then stays the same from one group commit to the next, so
//! the `fdatasync` that makes a batch durable writes its data and flushes the disk cache
//! without also writing the inode for a new length (as PostgreSQL does with its zero-filled
//! WAL segments). Zeros after the last complete batch are this free space, not a torn write.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use chat_shared::Message;

use super::StorageError;

/// The log's file name inside the data folder.
pub const WAL_FILE: &str = "wal.log";

/// A group commit of no records: what [`Wal::probe`] writes.
const EMPTY_BATCH: &[u8] = b"commit 0 00000000\n";

/// How much the log grows at a time, in bytes of zeros written and fsynced ahead of the
/// records (see the module docs): 256 KiB, the records between two compactions at the default
/// `--compact-after` of 1 000 and messages of up to about 200 bytes. Compaction empties the
/// file, so the first group commit after it preallocates again.
const PREALLOCATE_BYTES: u64 = 256 * 1024;

/// Zeros written per call while the log is extended, in bytes.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// An open write-ahead log: its valid part (complete batches) ends at `len`, and zeros follow
/// up to `file_len`, the file's length.
#[derive(Debug)]
pub struct Wal {
    path: PathBuf,
    file: File,
    /// Length of the valid part, in bytes: where the next record goes.
    len: u64,
    /// Length of the file, in bytes: from `len` to here it holds zeros (preallocated space).
    file_len: u64,
    /// How many records it holds.
    n_records: usize,
    /// A failed append could not be cut back: the end of the file holds garbage, so nothing
    /// more may be appended behind it until a later cut succeeds (or the next start cuts it
    /// off as a torn tail).
    broken: bool,
}

/// Appends the record line of `message` to `out` (a batch also needs its commit line: see
/// [`encode_batch`]).
pub fn encode_record(out: &mut Vec<u8>, message: &Message) {
    // Strings and integers always serialize.
    let json = serde_json::to_vec(message).expect("message serializes");
    let crc = crc32fast::hash(&json);
    out.extend_from_slice(format!("{crc:08x} ").as_bytes());
    out.extend_from_slice(&json);
    out.push(b'\n');
}

/// The bytes of one group commit: a record line per message, then the commit line.
pub fn encode_batch(messages: &[Message]) -> Vec<u8> {
    let mut out = Vec::with_capacity(messages.len() * 96 + 32);
    for message in messages {
        encode_record(&mut out, message);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(format!("commit {} {crc:08x}\n", messages.len()).as_bytes());
    out
}

/// Decodes a commit line (without its newline) into its record count and checksum.
fn decode_commit(line: &[u8]) -> Option<(usize, u32)> {
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.strip_prefix("commit ")?.split(' ');
    let n = parts.next()?.parse().ok()?;
    let crc_hex = parts.next().filter(|hex| hex.len() == 8)?;
    let crc = u32::from_str_radix(crc_hex, 16).ok()?;
    parts.next().is_none().then_some((n, crc))
}

/// Decodes one line (without its newline); `None` when it is not a valid record.
fn decode_record(line: &[u8]) -> Option<Message> {
    let (crc_hex, json) = (line.get(..8)?, line.get(9..)?);
    if line.get(8) != Some(&b' ') {
        return None;
    }
    let crc = u32::from_str_radix(std::str::from_utf8(crc_hex).ok()?, 16).ok()?;
    if crc32fast::hash(json) != crc {
        return None;
    }
    serde_json::from_slice(json).ok()
}

/// What [`parse_log`] read.
struct ParsedLog {
    /// The messages of the complete batches before any damage.
    messages: Vec<Message>,
    /// Where the last complete batch ends: everything after it is a torn tail (never
    /// acknowledged), or damaged.
    committed_end: usize,
    /// Damage (see the module docs): a [`StorageError::Corrupt`] naming the byte offset.
    damage: Option<StorageError>,
}

/// Reads the records of a log's bytes (see the module docs).
fn parse_log(path: &Path, bytes: &[u8]) -> ParsedLog {
    let mut messages = Vec::new();
    // Records read since the last commit line, and where their batch began.
    let mut pending: Vec<Message> = Vec::new();
    let mut batch_start = 0usize;
    // The end of the last complete batch: everything after it is torn.
    let mut committed_end = 0usize;
    let mut first_bad: Option<usize> = None;
    let mut offset = 0usize;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        let (line, next, complete) = match rest.iter().position(|&b| b == b'\n') {
            Some(end) => (&rest[..end], offset + end + 1, true),
            None => (rest, bytes.len(), false),
        };
        let record = decode_record(line).filter(|_| complete);
        if let Some(message) = record.clone().filter(|_| first_bad.is_none()) {
            pending.push(message);
        } else if record.is_some() {
            // A good record after a hole: part of the same interrupted append.
        } else if let Some((n, crc)) = decode_commit(line).filter(|_| complete) {
            let batch_ok = first_bad.is_none()
                && n == pending.len()
                && crc == crc32fast::hash(&bytes[batch_start..offset]);
            if !batch_ok && first_bad.is_some() && bytes[next..].iter().all(|&b| b == 0) {
                // The last batch written, with a hole: torn by a crash during its `fdatasync`.
                return ParsedLog {
                    messages,
                    committed_end,
                    damage: None,
                };
            }
            if !batch_ok {
                let damage = StorageError::Corrupt {
                    path: path.to_owned(),
                    position: format!("byte {}", first_bad.unwrap_or(batch_start)),
                    reason: "a damaged record is followed by a committed batch".to_owned(),
                };
                return ParsedLog {
                    messages,
                    committed_end,
                    damage: Some(damage),
                };
            }
            messages.append(&mut pending);
            committed_end = next;
            batch_start = next;
        } else if complete && !line.contains(&0) {
            // A torn write leaves an incomplete last line, or the zeros a file system puts
            // where an interrupted append did not reach; a whole line that fails its check
            // was written and then changed.
            let damage = StorageError::Corrupt {
                path: path.to_owned(),
                position: format!("byte {offset}"),
                reason: "a complete line fails its check (damage, not a torn write)".to_owned(),
            };
            return ParsedLog {
                messages,
                committed_end,
                damage: Some(damage),
            };
        } else {
            first_bad.get_or_insert(offset);
        }
        offset = next;
    }
    ParsedLog {
        messages,
        committed_end,
        damage: None,
    }
}

/// Where the bytes after a log's last complete batch end once the zeros of its preallocated
/// space are left out: `committed_end` when nothing but zeros follows it (no torn batch).
fn torn_end(bytes: &[u8], committed_end: usize) -> usize {
    bytes
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last + 1)
        .max(committed_end)
}

/// What [`read_log`] found.
#[derive(Debug, Default)]
pub struct LogScan {
    /// The committed messages, in log order.
    pub messages: Vec<Message>,
    /// Bytes after the last complete batch, up to the last one that is not zero (the zeros
    /// after it are preallocated space): a torn last batch (never acknowledged, cut off by the
    /// next start), or, with `damage`, everything from the damaged batch on.
    pub torn_bytes: usize,
    /// Damage that makes the server refuse to start (a [`StorageError::Corrupt`] naming the
    /// byte offset); `messages` then holds the complete batches before it.
    pub damage: Option<StorageError>,
}

/// Reads the log in `folder` without changing anything (a missing log is empty): for tools
/// that inspect a folder, perhaps while a server is using it.
///
/// # Errors
/// [`StorageError::Io`] when it cannot be read (damage is in the scan).
pub fn read_log(folder: &Path) -> Result<LogScan, StorageError> {
    let path = folder.join(WAL_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => return Err(StorageError::io(&path, source)),
    };
    let parsed = parse_log(&path, &bytes);
    Ok(LogScan {
        messages: parsed.messages,
        torn_bytes: torn_end(&bytes, parsed.committed_end) - parsed.committed_end,
        damage: parsed.damage,
    })
}

impl Wal {
    /// Opens (creating if needed) the log in `folder`, reads every record, and cuts off a torn
    /// last batch; zeros after the last complete batch are kept as preallocated space.
    ///
    /// # Errors
    /// [`StorageError::Io`] when the file cannot be opened, read or truncated;
    /// [`StorageError::Corrupt`] naming the byte offset of a bad record that is followed by a
    /// good one.
    pub fn open(folder: &Path) -> Result<(Wal, Vec<Message>), StorageError> {
        let path = folder.join(WAL_FILE);
        let io_error = |source| StorageError::io(&path, source);
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            // What is there is the log: it is read, then written into, never emptied here.
            .truncate(false)
            .open(&path)
            .map_err(io_error)?;
        if !existed {
            super::files::sync_dir(folder).map_err(io_error)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_error)?;

        let ParsedLog {
            messages,
            committed_end,
            damage,
        } = parse_log(&path, &bytes);
        if let Some(damage) = damage {
            return Err(damage);
        }
        let mut file_len = bytes.len() as u64;
        let torn_end = torn_end(&bytes, committed_end);
        if committed_end < torn_end {
            tracing::warn!(
                path = %path.display(),
                offset = committed_end,
                cut_bytes = torn_end - committed_end,
                "cutting off a torn last batch of the write-ahead log (it was never acknowledged)"
            );
            file.set_len(committed_end as u64).map_err(io_error)?;
            file.sync_all().map_err(io_error)?;
            file_len = committed_end as u64;
        }
        let n_records = messages.len();
        Ok((
            Wal {
                path,
                file,
                len: committed_end as u64,
                file_len,
                n_records,
                broken: false,
            },
            messages,
        ))
    }

    /// Appends an already-encoded batch (see [`encode_batch`]) and fsyncs it: when this
    /// returns `Ok`, they survive a crash. The batch overwrites preallocated zeros; when they
    /// run short the file is first extended (see the module docs). When the extension fails
    /// nothing but zeros was added; when the write or its fsync fails the file is cut back to
    /// the valid part (dropping the preallocated space with it), so no half record stays
    /// behind.
    ///
    /// Returns how long the fsync took.
    ///
    /// # Errors
    /// [`StorageError::Io`]; nothing of `records` is then durable.
    pub fn append(
        &mut self,
        records: &[u8],
        n_records: usize,
    ) -> Result<std::time::Duration, StorageError> {
        self.recover()?;
        self.preallocate(records.len() as u64)
            .map_err(|source| StorageError::io(&self.path, source))?;
        let mut fsync_time = std::time::Duration::ZERO;
        let result = self.file.write_all_at(records, self.len).and_then(|()| {
            let started = std::time::Instant::now();
            let synced = self.file.sync_data();
            fsync_time = started.elapsed();
            synced
        });
        if let Err(source) = result {
            // Drop whatever part of the batch reached the file, or stop appending behind it
            // (the next start cuts it off as a torn tail).
            self.cut_back();
            return Err(StorageError::io(&self.path, source));
        }
        self.len += records.len() as u64;
        self.n_records += n_records;
        Ok(fsync_time)
    }

    /// Makes sure `n` bytes of zeros follow the valid part, extending the file by at least
    /// [`PREALLOCATE_BYTES`] (written, then fsynced with the new length) when they do not.
    ///
    /// # Errors
    /// The write or the fsync failed; zeros that reached the file stay (they are free space).
    fn preallocate(&mut self, n: u64) -> std::io::Result<()> {
        let needed = self.len + n;
        if needed <= self.file_len {
            return Ok(());
        }
        let new_len = needed.max(self.file_len + PREALLOCATE_BYTES);
        let mut at = self.file_len;
        while at < new_len {
            let piece = (new_len - at).min(ZEROS.len() as u64);
            self.file.write_all_at(&ZEROS[..piece as usize], at)?;
            at += piece;
        }
        self.file.sync_data()?;
        self.file_len = new_len;
        Ok(())
    }

    /// Cuts the file back to the valid part after a failed write (dropping the preallocated
    /// space with whatever the write left in it), or marks the log broken when that fails too.
    fn cut_back(&mut self) {
        let cut = self
            .file
            .set_len(self.len)
            .and_then(|()| self.file.sync_data());
        match cut {
            Ok(()) => self.file_len = self.len,
            Err(cut_error) => {
                tracing::error!(error = %cut_error, "cannot cut a failed write off the write-ahead log; refusing further writes");
                self.broken = true;
            }
        }
    }

    /// Cuts off what a failed append left behind it, if an earlier attempt could not (the file
    /// was not writable then): the log is whole again.
    fn recover(&mut self) -> Result<(), StorageError> {
        if self.broken {
            self.file
                .set_len(self.len)
                .and_then(|()| self.file.sync_data())
                .map_err(|source| StorageError::io(&self.path, source))?;
            self.file_len = self.len;
            self.broken = false;
            tracing::info!(path = %self.path.display(), "cut a failed write off the write-ahead log; appending again");
        }
        Ok(())
    }

    /// Checks that the log can take an append right now, as an append would (a write and an
    /// fsync), without adding anything: it writes an empty batch (`commit 0 00000000`, valid
    /// if it stayed) and overwrites it with zeros again. Used to find out when storage that
    /// failed works again, without waiting for a save.
    ///
    /// # Errors
    /// [`StorageError::Io`] when the write, the fsync or the erasing fails.
    pub fn probe(&mut self) -> Result<(), StorageError> {
        self.recover()?;
        let written = self
            .file
            .write_all_at(EMPTY_BATCH, self.len)
            .and_then(|()| self.file.sync_data());
        // Whatever part of it was written is zeros again: free space, as before.
        let erased = self
            .file
            .write_all_at(&ZEROS[..EMPTY_BATCH.len()], self.len)
            .and_then(|()| self.file.sync_data());
        match erased {
            Ok(()) => self.file_len = self.file_len.max(self.len + EMPTY_BATCH.len() as u64),
            Err(_) => self.broken = true,
        }
        written
            .and(erased)
            .map_err(|source| StorageError::io(&self.path, source))
    }

    /// Empties the log after its records were compacted into the JSON files (which must be
    /// durable by then).
    ///
    /// # Errors
    /// [`StorageError::Io`]; when the truncation itself failed the records stay (and are
    /// deduplicated at the next start). When only its fsync failed the log is empty all the
    /// same (a crash may bring the records back, deduplicated then): what this value says
    /// follows the file, so that a later cut-back never lengthens it.
    pub fn clear(&mut self) -> Result<(), StorageError> {
        let io_error = |source| StorageError::io(&self.path, source);
        self.file.set_len(0).map_err(io_error)?;
        self.len = 0;
        self.file_len = 0;
        self.n_records = 0;
        self.file.sync_all().map_err(io_error)
    }

    /// How many records the log holds.
    pub fn n_records(&self) -> usize {
        self.n_records
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn message(time: u64) -> Message {
        Message::new("a", format!("m{time}"), time)
    }

    /// A log in a new temp folder, holding one group commit of `message(1)`.
    fn log_with_message_1() -> (tempfile::TempDir, Wal) {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut wal, _) = Wal::open(dir.path()).expect("opens");
        wal.append(&encode_batch(&[message(1)]), 1)
            .expect("appends");
        (dir, wal)
    }

    /// The length of the log file in `dir`, in bytes.
    fn file_len(dir: &tempfile::TempDir) -> u64 {
        fs::metadata(dir.path().join(WAL_FILE))
            .expect("exists")
            .len()
    }

    #[test]
    fn records_survive_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut wal, loaded) = Wal::open(dir.path()).expect("opens");
        assert!(loaded.is_empty());
        wal.append(&encode_batch(&[message(1), message(2)]), 2)
            .expect("appends");
        wal.append(&encode_batch(&[message(3)]), 1)
            .expect("appends");
        drop(wal);
        let (wal, loaded) = Wal::open(dir.path()).expect("reopens");
        assert_eq!(loaded, [message(1), message(2), message(3)]);
        assert_eq!(wal.n_records(), 3);
    }

    /// A file that refuses writes and cuts, as after `chattr +i wal.log` or a disk gone
    /// read-only: the append fails and cannot be cut back. Once the file takes writes again,
    /// the next append (or a probe) cuts the failed write off and the log goes on, with
    /// nothing of the failed batch in it; before, every append failed until a restart.
    #[test]
    fn a_log_that_could_not_be_cut_back_recovers_once_the_file_is_writable_again() {
        let (dir, mut wal) = log_with_message_1();
        let writable = std::mem::replace(
            &mut wal.file,
            File::open(dir.path().join(WAL_FILE)).expect("opens read-only"),
        );
        assert!(wal.append(&encode_batch(&[message(2)]), 1).is_err());
        assert!(wal.broken, "the cut failed too");
        assert!(wal.probe().is_err(), "still not writable");
        wal.file = writable;
        wal.probe().expect("writable again");
        assert!(!wal.broken);
        wal.append(&encode_batch(&[message(3)]), 1)
            .expect("appends again");
        drop(wal);
        let (wal, loaded) = Wal::open(dir.path()).expect("reopens");
        assert_eq!(loaded, [message(1), message(3)]);
        assert_eq!(wal.n_records(), 2);
    }

    #[test]
    fn a_probe_leaves_the_log_as_it_was() {
        let (dir, mut wal) = log_with_message_1();
        let before = fs::read(dir.path().join(WAL_FILE)).expect("reads");
        wal.probe().expect("probes");
        assert_eq!(fs::read(dir.path().join(WAL_FILE)).expect("reads"), before);
        // An empty batch left by a probe cut short is a valid batch of nothing.
        let mut with_probe = before.clone();
        let at = wal.len as usize;
        with_probe[at..at + EMPTY_BATCH.len()].copy_from_slice(EMPTY_BATCH);
        let (loaded, len) = open_with(&with_probe);
        assert_eq!(loaded.expect("loads"), [message(1)]);
        assert_eq!(len, with_probe.len() as u64);
    }

    fn open_with(bytes: &[u8]) -> (Result<Vec<Message>, StorageError>, u64) {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join(WAL_FILE), bytes).expect("writes");
        let loaded = Wal::open(dir.path()).map(|(_, messages)| messages);
        let len = fs::metadata(dir.path().join(WAL_FILE))
            .expect("exists")
            .len();
        (loaded, len)
    }

    #[test]
    fn torn_last_batch_is_cut_off() {
        let first = encode_batch(&[message(1)]);
        let second = encode_batch(&[message(2), message(3)]);
        for cut in [1, second.len() / 2, second.len() - 1] {
            let mut bytes = first.clone();
            bytes.extend_from_slice(&second[..cut]);
            let (loaded, len) = open_with(&bytes);
            assert_eq!(loaded.expect("loads"), [message(1)], "cut at {cut}");
            assert_eq!(
                len,
                first.len() as u64,
                "the torn batch is cut off (cut at {cut})"
            );
        }
    }

    #[test]
    fn a_zero_filled_tail_is_kept_as_preallocated_space_and_written_over() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(WAL_FILE);
        let first = encode_batch(&[message(1)]);
        let mut bytes = first.clone();
        bytes.extend_from_slice(&[0u8; 4096]);
        fs::write(&path, &bytes).expect("writes");
        let (mut wal, loaded) = Wal::open(dir.path()).expect("opens");
        assert_eq!(loaded, [message(1)]);
        assert_eq!(read_log(dir.path()).expect("reads").torn_bytes, 0);
        assert_eq!(file_len(&dir), 4096 + first.len() as u64);
        wal.append(&encode_batch(&[message(2)]), 1)
            .expect("appends");
        drop(wal);
        assert_eq!(
            file_len(&dir),
            4096 + first.len() as u64,
            "the batch went into the zeros"
        );
        let (_, loaded) = Wal::open(dir.path()).expect("reopens");
        assert_eq!(loaded, [message(1), message(2)]);
    }

    /// Regression for the cost of a group commit: appending at the end changed the file's
    /// length at every commit, so each `fdatasync` also wrote the inode (one more write to the
    /// disk, a third of its time here). Appends now fill preallocated zeros.
    #[test]
    fn group_commits_fill_preallocated_zeros_without_changing_the_file_length() {
        let (dir, mut wal) = log_with_message_1();
        let preallocated = file_len(&dir);
        assert_eq!(preallocated, PREALLOCATE_BYTES);
        // Most of the space in one batch, then group commits of one message each.
        let mut times = 2..;
        let (mut big, mut records) = (Vec::new(), Vec::new());
        while wal.len + (records.len() as u64) < preallocated - 1_000 {
            big.push(message(times.next().expect("a time")));
            encode_record(&mut records, big.last().expect("just pushed"));
        }
        wal.append(&encode_batch(&big), big.len()).expect("appends");
        assert_eq!(file_len(&dir), preallocated);
        while wal.len + 200 < preallocated {
            let time = times.next().expect("a time");
            wal.append(&encode_batch(&[message(time)]), 1)
                .expect("appends");
            assert_eq!(file_len(&dir), preallocated);
        }
        // Past the end of the zeros the file grows by another stretch, and nothing is lost.
        let (last, n) = (times.next().expect("a time"), wal.n_records() + 1);
        let batch: Vec<Message> = (last..last + 5).map(message).collect();
        wal.append(&encode_batch(&batch), batch.len())
            .expect("appends");
        assert_eq!(file_len(&dir), 2 * PREALLOCATE_BYTES);
        drop(wal);
        let (wal, loaded) = Wal::open(dir.path()).expect("reopens");
        assert_eq!(loaded.len(), n + 4);
        assert_eq!(wal.n_records(), n + 4);
        assert!(loaded.windows(2).all(|pair| pair[0].time < pair[1].time));
    }

    #[test]
    fn a_batch_torn_inside_the_preallocated_space_is_cut_off() {
        let first = encode_batch(&[message(1)]);
        let second = encode_batch(&[message(2), message(3)]);
        let mut bytes = first.clone();
        bytes.extend_from_slice(&second[..second.len() / 2]);
        bytes.extend_from_slice(&[0u8; 8192]);
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join(WAL_FILE), &bytes).expect("writes");
        assert_eq!(
            read_log(dir.path()).expect("reads").torn_bytes,
            second.len() / 2,
            "the zeros after the torn batch are not part of it"
        );
        let (loaded, len) = open_with(&bytes);
        assert_eq!(loaded.expect("loads"), [message(1)]);
        assert_eq!(len, first.len() as u64);
    }

    /// Review finding: a batch written over zeros can reach the disk with its commit line
    /// but not an earlier page (the zeros stay there). Its `fdatasync` never returned, so it
    /// was never acknowledged: cut off, not refused as damage.
    #[test]
    fn a_last_batch_with_a_hole_before_its_commit_line_is_torn_not_damage() {
        let first = encode_batch(&[message(1)]);
        let mut second = encode_batch(&[message(2), message(3), message(4)]);
        let record_len = second.iter().position(|&b| b == b'\n').expect("a line") + 1;
        second[..record_len].fill(0);
        let mut bytes = first.clone();
        bytes.extend_from_slice(&second);
        for zeros_after in [0, 8192] {
            let mut bytes = bytes.clone();
            bytes.resize(bytes.len() + zeros_after, 0);
            let (loaded, len) = open_with(&bytes);
            assert_eq!(
                loaded.expect("loads"),
                [message(1)],
                "{zeros_after} zeros after"
            );
            assert_eq!(
                len,
                first.len() as u64,
                "cut off ({zeros_after} zeros after)"
            );
        }
        // With a later batch behind it, it had been acknowledged: damage.
        bytes.extend_from_slice(&encode_batch(&[message(5)]));
        assert!(matches!(
            open_with(&bytes).0,
            Err(StorageError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_cleared_log_is_empty_and_preallocates_again_on_the_next_append() {
        let (dir, mut wal) = log_with_message_1();
        wal.clear().expect("clears");
        assert_eq!(file_len(&dir), 0);
        wal.append(&encode_batch(&[message(2)]), 1)
            .expect("appends");
        assert_eq!(file_len(&dir), PREALLOCATE_BYTES);
        drop(wal);
        assert_eq!(Wal::open(dir.path()).expect("reopens").1, [message(2)]);
    }

    #[test]
    fn power_loss_inside_an_unacknowledged_batch_is_cut_off_not_refused() {
        // A file system may persist the end of an interrupted append but not its middle: valid
        // records after a hole of zeros, and no commit line. None of it was acknowledged.
        let first = encode_batch(&[message(1)]);
        let second = encode_batch(&[message(2), message(3), message(4)]);
        let mut bytes = first.clone();
        let mut torn = second[..second.rfind_commit()].to_vec();
        let record_len = torn.iter().position(|&b| b == b'\n').expect("a line") + 1;
        torn[..record_len].fill(0);
        bytes.extend_from_slice(&torn);
        let (loaded, len) = open_with(&bytes);
        assert_eq!(loaded.expect("loads"), [message(1)]);
        assert_eq!(len, first.len() as u64);
    }

    #[test]
    fn damaged_record_in_a_committed_batch_refuses_to_load() {
        let mut bytes = encode_batch(&[message(1)]);
        let damaged_at = bytes.len();
        let mut second = encode_batch(&[message(2), message(3)]);
        second[12] ^= 1;
        bytes.extend_from_slice(&second);
        match open_with(&bytes).0 {
            Err(StorageError::Corrupt { position, .. }) => {
                assert_eq!(position, format!("byte {damaged_at}"))
            }
            other => panic!("expected corruption, got {other:?}"),
        }
    }

    #[test]
    fn a_changed_byte_in_the_last_commit_line_is_damage_not_a_torn_tail() {
        // Regression: `commit` turned into `bommit` in the last, acknowledged batch was cut off
        // as torn, and its acknowledged messages were lost.
        let mut bytes = encode_batch(&[message(1)]);
        bytes.extend_from_slice(&encode_batch(&[message(2), message(3)]));
        let commit_at = bytes.rfind_commit();
        bytes[commit_at] = b'b';
        match open_with(&bytes).0 {
            Err(StorageError::Corrupt {
                position, reason, ..
            }) => {
                assert_eq!(position, format!("byte {commit_at}"));
                assert!(reason.contains("damage"), "{reason}");
            }
            other => panic!("expected damage, got {other:?}"),
        }
    }

    /// Test helper: where a batch's commit line starts.
    trait RFindCommit {
        fn rfind_commit(&self) -> usize;
    }

    impl RFindCommit for Vec<u8> {
        fn rfind_commit(&self) -> usize {
            let text = String::from_utf8_lossy(self);
            text.rfind("commit ").expect("a commit line")
        }
    }
}
