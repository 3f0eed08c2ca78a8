//! The original server's file layout: `data.json` and `data/<save-time>-<n>.json`, each a JSON
//! array of `{name, msg, time}` written as `JSON.stringify(list, null, 4)` (4-space indent, no
//! trailing newline). Reading is lenient about the entry shape (see
//! [`chat_shared::StoredMessage`]); writing is atomic (temp file, fsync, rename, fsync of the
//! folder), so a crash leaves either the old file or the new one, never half of one.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use chat_shared::{Message, StoredMessage};
use serde::Serialize;

use super::StorageError;

/// The newest-messages file of the original layout, directly in the data folder.
pub const DATA_FILE: &str = "data.json";

/// The folder, inside the data folder, of the original's 100-message chunk files.
pub const CHUNK_DIR: &str = "data";

/// How many messages the original kept in `data.json` and put in each chunk file.
pub const MESSAGES_PER_FILE: usize = 100;

/// Prefix of the temporary files [`write_atomic`] creates; leftovers from a crash are removed
/// at startup.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Reads one JSON array of messages.
///
/// # Errors
/// [`StorageError::Io`] when the file cannot be read, [`StorageError::Corrupt`] naming the file,
/// line and column when it is not a JSON array of messages (an empty file included).
pub fn read_message_file(path: &Path) -> Result<Vec<Message>, StorageError> {
    let text = fs::read_to_string(path).map_err(|source| StorageError::io(path, source))?;
    let stored: Vec<StoredMessage> =
        serde_json::from_str(&text).map_err(|error| StorageError::Corrupt {
            path: path.to_owned(),
            position: format!("line {}, column {}", error.line(), error.column()),
            reason: error.to_string(),
        })?;
    Ok(stored.into_iter().map(Message::from).collect())
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
/// the new one: write a temp file beside it, fsync it, rename it over `path`, fsync the folder.
///
/// # Errors
/// [`StorageError::Io`] naming the file that failed; the old file is then untouched.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), StorageError> {
    let folder = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("file");
    let temp_path = folder.join(format!("{TEMP_PREFIX}{file_name}"));
    let write = || -> std::io::Result<()> {
        let mut temp = File::create(&temp_path)?;
        temp.write_all(contents)?;
        temp.sync_all()?;
        drop(temp);
        fs::rename(&temp_path, path)?;
        sync_dir(folder)
    };
    write().map_err(|source| {
        let _ = fs::remove_file(&temp_path);
        StorageError::io(path, source)
    })
}

/// fsyncs a folder so that a rename or a new file in it survives a crash.
pub fn sync_dir(folder: &Path) -> std::io::Result<()> {
    File::open(folder)?.sync_all()
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

/// Removes temp files left by a crash in the middle of [`write_atomic`].
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
