//! The write-ahead log: every saved message is appended here and fsynced before it is
//! acknowledged; compaction later moves the messages into the original's JSON layout and
//! empties the log.
//!
//! One record per line: `<crc32 of the JSON, 8 hex digits> <message JSON>\n`. A crash can leave
//! a torn record at the end (no newline, a bad checksum, or the zeros a file system leaves after
//! an interrupted append); it was never acknowledged, so it is cut off with a warning. A bad
//! record followed by a good one is real corruption, and the server refuses to start.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use chat_shared::Message;

use super::StorageError;

/// The log's file name inside the data folder.
pub const WAL_FILE: &str = "wal.log";

/// An open write-ahead log, positioned at its end.
#[derive(Debug)]
pub struct Wal {
    path: PathBuf,
    file: File,
    /// Length of the valid part, in bytes: where the next record goes.
    len: u64,
    /// How many records it holds.
    n_records: usize,
    /// A failed append could not be cut back: the end of the file holds garbage, so nothing
    /// more may be appended behind it (the next start cuts it off as a torn tail).
    broken: bool,
}

/// Appends the log line of `message` to `out`.
pub fn encode_record(out: &mut Vec<u8>, message: &Message) {
    // Strings and integers always serialize.
    let json = serde_json::to_vec(message).expect("message serializes");
    let crc = crc32fast::hash(&json);
    out.extend_from_slice(format!("{crc:08x} ").as_bytes());
    out.extend_from_slice(&json);
    out.push(b'\n');
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

impl Wal {
    /// Opens (creating if needed) the log in `folder`, reads every record, and cuts off a torn
    /// last record.
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
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_error)?;
        if !existed {
            super::files::sync_dir(folder).map_err(io_error)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_error)?;

        let mut messages = Vec::new();
        let mut offset = 0usize;
        let mut torn_at: Option<usize> = None;
        while offset < bytes.len() {
            let rest = &bytes[offset..];
            let (line, next) = match rest.iter().position(|&b| b == b'\n') {
                Some(end) => (&rest[..end], offset + end + 1),
                None => (rest, bytes.len()),
            };
            let complete = next <= bytes.len() && bytes.get(next - 1) == Some(&b'\n');
            match decode_record(line).filter(|_| complete) {
                Some(message) if torn_at.is_none() => messages.push(message),
                Some(_) => {
                    let position = torn_at.unwrap_or(offset);
                    return Err(StorageError::Corrupt {
                        path: path.clone(),
                        position: format!("byte {position}"),
                        reason: "a damaged record is followed by valid ones".to_owned(),
                    });
                }
                None => {
                    torn_at.get_or_insert(offset);
                }
            }
            offset = next;
        }
        let mut len = bytes.len() as u64;
        if let Some(torn) = torn_at {
            tracing::warn!(
                path = %path.display(),
                offset = torn,
                cut_bytes = bytes.len() - torn,
                "cutting off a torn last record of the write-ahead log (it was never acknowledged)"
            );
            file.set_len(torn as u64).map_err(io_error)?;
            file.sync_all().map_err(io_error)?;
            len = torn as u64;
        }
        let n_records = messages.len();
        Ok((
            Wal {
                path,
                file,
                len,
                n_records,
                broken: false,
            },
            messages,
        ))
    }

    /// Appends already-encoded records (see [`encode_record`]) and fsyncs them: when this
    /// returns `Ok`, they survive a crash. On error the log is cut back to its previous length,
    /// so no half record stays behind.
    ///
    /// # Errors
    /// [`StorageError::Io`]; nothing of `records` is then durable.
    pub fn append(&mut self, records: &[u8], n_records: usize) -> Result<(), StorageError> {
        if self.broken {
            let error = std::io::Error::other(
                "an earlier failed write could not be undone; restart the server",
            );
            return Err(StorageError::io(&self.path, error));
        }
        let result = self
            .file
            .write_all(records)
            .and_then(|()| self.file.sync_data());
        if let Err(source) = result {
            // Drop whatever part of the batch reached the file, or stop appending behind it
            // (the next start cuts it off as a torn tail).
            let cut = self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.sync_data());
            if let Err(cut_error) = cut {
                tracing::error!(error = %cut_error, "cannot cut a failed write off the write-ahead log; refusing further writes");
                self.broken = true;
            }
            return Err(StorageError::io(&self.path, source));
        }
        self.len += records.len() as u64;
        self.n_records += n_records;
        Ok(())
    }

    /// Empties the log after its records were compacted into the JSON files.
    ///
    /// # Errors
    /// [`StorageError::Io`]; the records then stay (and are deduplicated at the next start).
    pub fn clear(&mut self) -> Result<(), StorageError> {
        self.file
            .set_len(0)
            .and_then(|()| self.file.sync_all())
            .map_err(|source| StorageError::io(&self.path, source))?;
        self.len = 0;
        self.n_records = 0;
        Ok(())
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
        Message {
            name: "a".into(),
            msg: format!("m{time}"),
            time,
        }
    }

    #[test]
    fn records_survive_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut wal, loaded) = Wal::open(dir.path()).expect("opens");
        assert!(loaded.is_empty());
        let mut batch = Vec::new();
        encode_record(&mut batch, &message(1));
        encode_record(&mut batch, &message(2));
        wal.append(&batch, 2).expect("appends");
        drop(wal);
        let (wal, loaded) = Wal::open(dir.path()).expect("reopens");
        assert_eq!(loaded, [message(1), message(2)]);
        assert_eq!(wal.n_records(), 2);
    }

    #[test]
    fn torn_last_record_is_cut_off() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut bytes = Vec::new();
        encode_record(&mut bytes, &message(1));
        let good_len = bytes.len();
        let mut second = Vec::new();
        encode_record(&mut second, &message(2));
        bytes.extend_from_slice(&second[..second.len() / 2]);
        fs::write(dir.path().join(WAL_FILE), &bytes).expect("writes");
        let (_, loaded) = Wal::open(dir.path()).expect("opens");
        assert_eq!(loaded, [message(1)]);
        assert_eq!(
            fs::metadata(dir.path().join(WAL_FILE))
                .expect("exists")
                .len(),
            good_len as u64
        );
    }

    #[test]
    fn zero_filled_tail_is_cut_off() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut bytes = Vec::new();
        encode_record(&mut bytes, &message(1));
        bytes.extend_from_slice(&[0u8; 4096]);
        fs::write(dir.path().join(WAL_FILE), &bytes).expect("writes");
        let (_, loaded) = Wal::open(dir.path()).expect("opens");
        assert_eq!(loaded, [message(1)]);
    }

    #[test]
    fn damaged_record_in_the_middle_refuses_to_load() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut bytes = Vec::new();
        encode_record(&mut bytes, &message(1));
        let damaged_at = bytes.len();
        let mut second = Vec::new();
        encode_record(&mut second, &message(2));
        second[12] ^= 1;
        bytes.extend_from_slice(&second);
        encode_record(&mut bytes, &message(3));
        fs::write(dir.path().join(WAL_FILE), &bytes).expect("writes");
        match Wal::open(dir.path()) {
            Err(StorageError::Corrupt { position, .. }) => {
                assert_eq!(position, format!("byte {damaged_at}"))
            }
            other => panic!("expected corruption, got {other:?}"),
        }
    }
}
