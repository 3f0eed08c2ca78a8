//! The original server's file layout: `data.json` and `data/<save-time>-<n>.json`, each a JSON
//! array of `{name, msg, time}` written as `JSON.stringify(list, null, 4)` (4-space indent, no
//! trailing newline). Writing is atomic (temp file, fsync, rename, fsync of the folder), so a
//! crash leaves either the old file or the new one, never half of one; `data.json`, replaced at
//! every compaction, is swapped with its temp file instead (see [`swap_in_file`]).
//!
//! Reading checks every record (see [`scan_message_text`]): a value that parses but cannot be
//! right (a renamed key, a time of the wrong type, a time that goes back within a file) is a
//! [`Problem`] naming the file and the record's position, never a message served without a
//! name or out of order.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use chat_shared::Message;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::StorageError;

/// The newest-messages file of the original layout, directly in the data folder.
pub const DATA_FILE: &str = "data.json";

/// The folder, inside the data folder, of the original's 100-message chunk files.
pub const CHUNK_DIR: &str = "data";

/// How many messages the original kept in `data.json` and put in each chunk file.
pub const MESSAGES_PER_FILE: usize = 100;

/// The largest message time accepted from a data file, in ms: 15 digits, the most a client
/// cursor has (`chat_shared::Cursor::parse`): a later time could never be sent back, and its
/// client would loop.
pub const MAX_TIME_MS: u64 = 999_999_999_999_999;

/// Prefix of the temporary files [`replace_file`] creates; leftovers from a crash are removed
/// at startup.
pub const TEMP_PREFIX: &str = ".tmp-";

/// What kind of [`Problem`] a data file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// The file is not a JSON array (nothing in it can be read).
    NotJson,
    /// A record without `name`, `msg` or `time`, or with one of the wrong type.
    BadRecord,
    /// A record whose time is before an earlier record's in the same file.
    OutOfOrder,
    /// Damage in the write-ahead log (see [`super::wal`]).
    DamagedLog,
}

/// One thing wrong with a data file: which file, where in it, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What kind.
    pub kind: ProblemKind,
    /// The file.
    pub path: PathBuf,
    /// Where: `record 3 (line 14, column 5)` (records count from 1, lines and columns from 1,
    /// columns in bytes), or `line 2, column 7` for a file that is not JSON, or `byte 120` in
    /// the write-ahead log.
    pub position: String,
    /// What is wrong, e.g. `no "name"` or `time 4 is before the previous record's 1000003`.
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.path.display(),
            self.position,
            self.reason
        )
    }
}

impl From<Problem> for StorageError {
    fn from(problem: Problem) -> StorageError {
        StorageError::Corrupt {
            path: problem.path,
            position: problem.position,
            reason: problem.reason,
        }
    }
}

/// What [`scan_message_text`] found in one message file.
#[derive(Debug, Clone, Default)]
pub struct FileScan {
    /// The records that can be right, in file order.
    pub messages: Vec<Message>,
    /// Everything wrong, in file order (empty for a good file). A file that is not a JSON
    /// array has one problem and no messages.
    pub problems: Vec<Problem>,
    /// Indexes in `messages` of records whose time is before an earlier record's (they are
    /// also in `problems`); a repair sorts them into place.
    pub out_of_order: Vec<usize>,
}

/// Line and column (both from 1; the column in bytes, as serde_json counts) of `offset` in
/// `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |idx| idx + 1);
    (line, offset - line_start + 1)
}

/// The JSON type of `value`, for messages.
fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Checks one record: an object with `name` and `msg` strings and `time` a whole number of
/// ms up to [`MAX_TIME_MS`] (the largest cursor a client can send back). Other keys are
/// allowed: the original's first version stored the whole request (`method`, `__t`,
/// `callback`), and later versions of ours may add optional fields.
fn check_record(value: &serde_json::Value) -> Result<Message, String> {
    let object = value
        .as_object()
        .ok_or_else(|| format!("the record is {}, not an object", json_kind(value)))?;
    for key in ["name", "msg"] {
        match object.get(key) {
            None => return Err(format!("no {key:?} (a record needs name, msg and time)")),
            Some(serde_json::Value::String(_)) => {}
            Some(other) => {
                return Err(format!("{key:?} is {}, not a string", json_kind(other)));
            }
        }
    }
    match object.get("time") {
        None => return Err("no \"time\" (a record needs name, msg and time)".to_owned()),
        Some(time) => match time.as_u64() {
            Some(ms) if ms <= MAX_TIME_MS => {}
            Some(ms) => {
                return Err(format!(
                    "time {ms} is beyond {MAX_TIME_MS}, the largest time a client can send back"
                ));
            }
            None => {
                return Err(format!(
                    "\"time\" is {} ({time}), not a whole number of ms",
                    json_kind(time)
                ));
            }
        },
    }
    // The three fields have their types: the message's own deserializer reads them (and any
    // optional field the message type has).
    Message::deserialize(value).map_err(|error| error.to_string())
}

/// Reads and checks the text of one message file: a JSON array of records, each with `name`,
/// `msg` and `time` of the right types, times never decreasing within the file (equal times
/// are allowed: the original could save several messages in one millisecond). Every problem is
/// listed, not only the first.
pub fn scan_message_text(path: &Path, text: &str) -> FileScan {
    // The common case, a good file, in one pass; any problem is then looked for record by
    // record, with positions.
    if let Ok(messages) = serde_json::from_str::<Vec<Message>>(text) {
        let in_range = messages.iter().all(|message| message.time <= MAX_TIME_MS);
        let in_order = messages.windows(2).all(|pair| pair[0].time <= pair[1].time);
        if in_range && in_order {
            return FileScan {
                messages,
                ..FileScan::default()
            };
        }
    }
    let mut scan = FileScan::default();
    let records: Vec<&RawValue> = match serde_json::from_str(text) {
        Ok(records) => records,
        Err(error) => {
            scan.problems.push(Problem {
                kind: ProblemKind::NotJson,
                path: path.to_owned(),
                position: format!("line {}, column {}", error.line(), error.column()),
                reason: error.to_string(),
            });
            return scan;
        }
    };
    let mut newest: Option<u64> = None;
    for (idx, raw) in records.iter().enumerate() {
        let problem = |kind, reason: String| {
            // `raw` borrows from `text`: its offset is where the record starts.
            let offset = raw.get().as_ptr() as usize - text.as_ptr() as usize;
            let (line, column) = line_and_column(text, offset);
            Problem {
                kind,
                path: path.to_owned(),
                position: format!("record {} (line {line}, column {column})", idx + 1),
                reason,
            }
        };
        let checked = serde_json::from_str::<serde_json::Value>(raw.get())
            .map_err(|error| error.to_string())
            .and_then(|value| check_record(&value));
        let message = match checked {
            Ok(message) => message,
            Err(reason) => {
                scan.problems.push(problem(ProblemKind::BadRecord, reason));
                continue;
            }
        };
        match newest {
            Some(previous) if message.time < previous => {
                scan.problems.push(problem(ProblemKind::OutOfOrder, format!(
                    "time {} is before an earlier record's {previous} (times never decrease within a file)",
                    message.time
                )));
                scan.out_of_order.push(scan.messages.len());
            }
            _ => newest = Some(message.time),
        }
        scan.messages.push(message);
    }
    scan
}

/// Reads one message file and checks every record (see [`scan_message_text`]).
///
/// # Errors
/// [`StorageError::Io`] when the file cannot be read (problems in it are in the scan).
pub fn scan_message_file(path: &Path) -> Result<FileScan, StorageError> {
    let text = fs::read_to_string(path).map_err(|source| StorageError::io(path, source))?;
    Ok(scan_message_text(path, &text))
}

/// Reads one message file whose every record must be right (see [`scan_message_text`]).
///
/// # Errors
/// [`StorageError::Io`] when the file cannot be read, [`StorageError::Corrupt`] naming the file
/// and the position of its first problem: not a JSON array (an empty file included; line and
/// column), or a record that cannot be right (record number, line and column).
pub fn read_message_file(path: &Path) -> Result<Vec<Message>, StorageError> {
    let scan = scan_message_file(path)?;
    match scan.problems.into_iter().next() {
        Some(problem) => Err(problem.into()),
        None => Ok(scan.messages),
    }
}

/// `messages` as the original wrote them: `JSON.stringify(list, null, 4)`.
pub fn render_message_file(messages: &[Message]) -> Vec<u8> {
    let mut out = Vec::with_capacity(messages.len() * 96 + 2);
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    // Serializing plain strings and integers into a Vec cannot fail.
    messages
        .serialize(&mut serializer)
        .expect("messages serialize");
    out
}

/// Replaces `path` with `contents` so that a crash at any moment leaves either the old file or
/// the new one: write a temp file beside it, fsync it, rename it over `path`. The new file is
/// visible when this returns `Ok`, but survives a crash only once its folder is fsynced (see
/// [`FolderSync`]): the caller does that, and must count the file as written even when that
/// fsync fails, or a retry would write the same messages into a second file.
///
/// # Errors
/// [`StorageError::Io`] naming the file that failed; `path` is then untouched (the temp file
/// is removed).
pub fn replace_file(path: &Path, contents: &[u8]) -> Result<(), StorageError> {
    let temp_path = temp_path_of(path);
    let write = || -> std::io::Result<()> {
        write_synced(&temp_path, contents)?;
        fs::rename(&temp_path, path)
    };
    write().map_err(|source| {
        let _ = fs::remove_file(&temp_path);
        StorageError::io(path, source)
    })
}

/// [`replace_file`] for a file replaced again and again (`data.json`, at every compaction),
/// without making or freeing an inode: the new contents go into the spare file beside `path`
/// (the temp file of [`replace_file`], kept from the last call), which is fsynced and then
/// swapped with `path` in one `renameat2(RENAME_EXCHANGE)`, so the spare holds the old
/// contents for the next call. A crash at any moment leaves `path` old or new, whole; the
/// spare is a temp file, removed at startup. On a filesystem without the exchange, or when
/// `path` does not exist yet, it is a plain rename.
///
/// Why: making a file costs a free inode, and ext4 without a journal skips every inode freed
/// in the last minutes while it looks for one (`recently_deleted`); a `data.json` freed 20
/// times a second made each new chunk file's inode cost a scan over hundreds of them (a sixth
/// of the server's CPU in the push benchmark, BENCHMARKS.md, change 13).
///
/// # Errors
/// [`StorageError::Io`] naming the file that failed; `path` is then untouched.
pub fn swap_in_file(path: &Path, contents: &[u8]) -> Result<(), StorageError> {
    let spare_path = temp_path_of(path);
    let write = || -> std::io::Result<()> {
        write_synced(&spare_path, contents)?;
        let exchanged = rustix::fs::renameat_with(
            rustix::fs::CWD,
            &spare_path,
            rustix::fs::CWD,
            path,
            rustix::fs::RenameFlags::EXCHANGE,
        );
        match exchanged {
            Ok(()) => Ok(()),
            // Nothing to swap with yet, or no exchange on this filesystem.
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
                fs::rename(&spare_path, path)
            }
            Err(error) => Err(error.into()),
        }
    };
    write().map_err(|source| StorageError::io(path, source))
}

/// Makes `path` (or empties it) and writes `contents` into it, fsynced.
fn write_synced(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// The temp file beside `path` that [`replace_file`] and [`swap_in_file`] write first.
fn temp_path_of(path: &Path) -> PathBuf {
    let folder = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("file");
    folder.join(format!("{TEMP_PREFIX}{file_name}"))
}

/// fsyncs a folder so that a rename or a new file in it survives a crash.
pub fn sync_dir(folder: &Path) -> std::io::Result<()> {
    File::open(folder)?.sync_all()
}

/// How compaction makes a folder's new entries durable: [`sync_dir`] in production. A seam so
/// that tests can make it fail: a folder fsync that fails after a rename succeeded is the
/// step after which a file is visible but not known to be durable.
pub trait FolderSync: std::fmt::Debug + Send + Sync {
    /// fsyncs `folder`.
    ///
    /// # Errors
    /// The operating system's error; the folder's new entries may then be lost by a crash.
    fn sync_folder(&self, folder: &Path) -> std::io::Result<()>;
}

/// The real [`FolderSync`]: [`sync_dir`].
#[derive(Debug, Clone, Copy, Default)]
pub struct FsyncFolder;

impl FolderSync for FsyncFolder {
    fn sync_folder(&self, folder: &Path) -> std::io::Result<()> {
        sync_dir(folder)
    }
}

/// The entries of `folder`; a folder that does not exist has none.
fn folder_entries(folder: &Path) -> Result<Vec<fs::DirEntry>, StorageError> {
    match fs::read_dir(folder) {
        Ok(entries) => entries
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|source| StorageError::io(folder, source)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(StorageError::io(folder, source)),
    }
}

/// Removes temp files left by a crash in the middle of [`replace_file`].
pub fn remove_temp_files(folder: &Path) -> Result<(), StorageError> {
    for entry in folder_entries(folder)? {
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            tracing::warn!(path = %entry.path().display(), "removing a temp file left by an interrupted write");
            fs::remove_file(entry.path())
                .map_err(|source| StorageError::io(&entry.path(), source))?;
        }
    }
    Ok(())
}

/// Whether `file_name` is a chunk file of the original layout: `<digits>-<digits>.json`.
pub fn is_chunk_file_name(file_name: &str) -> bool {
    let Some(stem) = file_name.strip_suffix(".json") else {
        return false;
    };
    let Some((save_time, index)) = stem.split_once('-') else {
        return false;
    };
    let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    all_digits(save_time) && all_digits(index)
}

/// The chunk files in `chunk_dir`, in no particular order (an absent folder has none).
pub fn list_chunk_files(chunk_dir: &Path) -> Result<Vec<PathBuf>, StorageError> {
    let mut paths = Vec::new();
    for entry in folder_entries(chunk_dir)? {
        if is_chunk_file_name(&entry.file_name().to_string_lossy()) {
            paths.push(entry.path());
        } else {
            tracing::debug!(path = %entry.path().display(), "ignoring a file that is not a chunk");
        }
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_exactly_like_json_stringify_with_four_spaces() {
        let messages = [Message {
            name: "(匿名)".into(),
            msg: "加入聊天室".into(),
            time: 1_420_037_323_074,
            cid: None,
        }];
        let expected = "[\n    {\n        \"name\": \"(匿名)\",\n        \"msg\": \"加入聊天室\",\n        \"time\": 1420037323074\n    }\n]";
        assert_eq!(
            String::from_utf8(render_message_file(&messages)).expect("utf-8"),
            expected
        );
        assert_eq!(render_message_file(&[]), b"[]");
    }

    #[test]
    fn every_problem_of_a_file_is_listed_with_its_record_line_and_column() {
        let text = "[\n  {\"oame\": \"a\", \"msg\": \"1\", \"time\": 5},\n  {\"name\": \"a\", \"msg\": \"2\", \"time\": 9},\n  {\"name\": \"a\", \"msg\": \"3\", \"time\": 7},\n  {\"name\": \"a\", \"msg\": \"4\", \"time\": \"8\"}\n]";
        let scan = scan_message_text(Path::new("data.json"), text);
        let found: Vec<(ProblemKind, &str)> = scan
            .problems
            .iter()
            .map(|problem| (problem.kind, problem.position.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (ProblemKind::BadRecord, "record 1 (line 2, column 3)"),
                (ProblemKind::OutOfOrder, "record 3 (line 4, column 3)"),
                (ProblemKind::BadRecord, "record 4 (line 5, column 3)"),
            ]
        );
        let texts: Vec<&str> = scan.messages.iter().map(|m| m.msg.as_str()).collect();
        assert_eq!(texts, ["2", "3"], "the records that can be right");
        assert_eq!(scan.out_of_order, [1]);
    }

    #[test]
    fn equal_times_and_extra_fields_are_allowed() {
        // Legacy groups share a time; the v1 shape and later optional fields add keys.
        let text = r#"[{"name":"a","msg":"1","time":5,"cid":"c-1"},
            {"name":"b","method":"push","msg":"2","__t":"1","callback":"cb","time":5}]"#;
        let scan = scan_message_text(Path::new("data.json"), text);
        assert!(scan.problems.is_empty(), "{:?}", scan.problems);
        assert_eq!(scan.messages.len(), 2);
    }

    #[test]
    fn chunk_file_names() {
        assert!(is_chunk_file_name("1420037323074-0.json"));
        assert!(is_chunk_file_name("1-12.json"));
        for name in [
            "data.json",
            "-0.json",
            "1-.json",
            "1-0.json.tmp",
            ".tmp-1-0.json",
            "a-0.json",
        ] {
            assert!(!is_chunk_file_name(name), "{name}");
        }
    }
}
