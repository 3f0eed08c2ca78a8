//! Copies of one message in several files, and how loading keeps one.
//!
//! A compaction interrupted by a crash leaves a message in two files (a chunk file and
//! `data.json` or the log), and compactions retried by older versions of this server wrote the
//! same messages into several chunk files. A *copy* is a message equal to another in
//! `name`, `msg` and `time` (every field) but in another file: messages that only share a time
//! are a legacy group, never copies (see [`crate::pages`]). Inside one file, equal messages are
//! real repeats (the original could save the same join twice in one millisecond) and are kept:
//! each distinct message is kept as many times as the one file holding it most often.

use std::collections::HashMap;
use std::path::PathBuf;

use chat_shared::Message;

/// How many times each message occurs in `messages`.
pub fn count_messages<'a>(
    messages: impl IntoIterator<Item = &'a Message>,
) -> HashMap<&'a Message, usize> {
    let mut counts = HashMap::new();
    for message in messages {
        *counts.entry(message).or_insert(0) += 1;
    }
    counts
}

/// Merges files that may hold copies of one another (each oldest first) into one list, oldest
/// first: messages sharing a time keep the order of the files, then of their file; each
/// distinct message is kept as many times as the one file holding it most often. Returns the
/// list and how many copies were left out.
pub fn merge_copies(files: &[Vec<Message>]) -> (Vec<Message>, usize) {
    let mut allowed: HashMap<&Message, usize> = HashMap::new();
    for file in files {
        for (message, n) in count_messages(file) {
            let kept = allowed.entry(message).or_insert(0);
            *kept = (*kept).max(n);
        }
    }
    let mut all: Vec<&Message> = files.iter().flatten().collect();
    // Stable: equal times keep the files' order.
    all.sort_by_key(|message| message.time);
    let n_read = all.len();
    let mut merged = Vec::with_capacity(n_read);
    for message in all {
        if let Some(left) = allowed.get_mut(message) {
            if *left > 0 {
                *left -= 1;
                merged.push(message.clone());
            }
        }
    }
    let n_copies = n_read - merged.len();
    (merged, n_copies)
}

/// Chunk files whose time ranges meet (one begins at or before another ends), read as one:
/// only such files can hold copies of one another, and history is read from them merged.
#[derive(Debug, Clone)]
pub struct ChunkGroup {
    /// The files, by first time, then last time, then path.
    pub paths: Vec<PathBuf>,
    /// Their messages, merged (see [`merge_copies`]), oldest first.
    pub messages: Vec<Message>,
    /// How many copies the merge left out.
    pub n_copies: usize,
}

/// Groups chunk files (each with its messages, oldest first) into [`ChunkGroup`]s, oldest
/// first; files without messages are left out. Files whose ranges only touch (a legacy group
/// sharing a time split between two files) are grouped too, so that the group is read whole.
pub fn group_chunk_files(mut files: Vec<(PathBuf, Vec<Message>)>) -> Vec<ChunkGroup> {
    files.retain(|(_, messages)| !messages.is_empty());
    let range = |messages: &[Message]| {
        let first = messages.iter().map(|m| m.time).min().unwrap_or(0);
        let last = messages.iter().map(|m| m.time).max().unwrap_or(0);
        (first, last)
    };
    files.sort_by(|(a_path, a), (b_path, b)| (range(a), a_path).cmp(&(range(b), b_path)));
    let mut groups: Vec<(Vec<PathBuf>, Vec<Vec<Message>>, u64)> = Vec::new();
    for (path, messages) in files {
        let (first, last) = range(&messages);
        match groups.last_mut() {
            Some((paths, contents, group_last)) if first <= *group_last => {
                paths.push(path);
                contents.push(messages);
                *group_last = (*group_last).max(last);
            }
            _ => groups.push((vec![path], vec![messages], last)),
        }
    }
    groups
        .into_iter()
        .map(|(paths, contents, _)| {
            let (messages, n_copies) = if contents.len() == 1 {
                let mut only = contents;
                (only.pop().unwrap_or_default(), 0)
            } else {
                merge_copies(&contents)
            };
            ChunkGroup {
                paths,
                messages,
                n_copies,
            }
        })
        .collect()
}

/// The messages of `data.json` and of the log that are in no chunk file: a message copied
/// into a chunk file by a compaction that did not finish counts once. `data.json` and the log
/// hold the same messages between two compactions, so each message counts as often as the one
/// of them holding it most often, less its copies in `chunked` (the chunk files, merged).
/// Oldest first; messages sharing a time keep their order.
pub fn tail_outside_chunks<'a>(
    chunked: impl IntoIterator<Item = &'a Message>,
    data: &[Message],
    wal: &[Message],
) -> Vec<Message> {
    let data_counts = count_messages(data);
    let wal_counts = count_messages(wal);
    let chunk_counts = count_messages(chunked);
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
    for message in data.iter().chain(wal) {
        if let Some(left) = remaining.get_mut(message) {
            if *left > 0 {
                *left -= 1;
                tail.push(message.clone());
            }
        }
    }
    tail.sort_by_key(|message| message.time);
    tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(name: &str, msg: &str, time: u64) -> Message {
        Message::new(name, msg, time)
    }

    #[test]
    fn copies_across_files_are_kept_once_and_a_group_sharing_a_time_is_not_a_copy() {
        let a = message("a", "1", 5);
        let b = message("b", "1", 5);
        let c = message("a", "2", 5);
        let d = message("a", "3", 6);
        let (merged, n_copies) = merge_copies(&[
            vec![a.clone(), b.clone(), c.clone()],
            vec![a.clone(), b.clone(), c.clone(), d.clone()],
            vec![c.clone(), d.clone()],
        ]);
        assert_eq!(merged, [a, b, c, d]);
        assert_eq!(n_copies, 5);
    }

    #[test]
    fn repeats_inside_one_file_are_real_and_kept() {
        let join = message("(匿名)", "加入聊天室", 5);
        let (merged, n_copies) =
            merge_copies(&[vec![join.clone(), join.clone()], vec![join.clone()]]);
        assert_eq!(merged, [join.clone(), join]);
        assert_eq!(n_copies, 1);
    }

    #[test]
    fn chunk_files_are_grouped_only_when_their_times_meet() {
        let file = |name: &str, times: &[u64]| {
            (
                PathBuf::from(name),
                times
                    .iter()
                    .map(|&t| message("a", &t.to_string(), t))
                    .collect::<Vec<_>>(),
            )
        };
        let groups = group_chunk_files(vec![
            file("c", &[7, 8]),
            file("a", &[1, 2, 3]),
            file("b", &[1, 2, 3]),
            file("d", &[8, 9]),
            file("e", &[]),
            file("f", &[20]),
        ]);
        let paths: Vec<Vec<String>> = groups
            .iter()
            .map(|group| {
                group
                    .paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect()
            })
            .collect();
        assert_eq!(paths, [vec!["a", "b"], vec!["c", "d"], vec!["f"]]);
        assert_eq!(groups[0].messages.len(), 3);
        assert_eq!(groups[0].n_copies, 3);
        // c and d both hold the message at 8: one copy is left out.
        assert_eq!(groups[1].messages.len(), 3);
        assert_eq!(groups[1].n_copies, 1);
    }
}
