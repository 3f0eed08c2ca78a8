//! Pages of messages, with the one rule legacy data needs everywhere: messages that share a
//! time (the original server could save several in one millisecond) are never split, not
//! between pages, not between memory and disk, so a client's cursor (a time) never skips half
//! of a group.

use std::collections::VecDeque;

use chat_shared::Message;

/// Up to `page_size` messages of `messages` (oldest first) newer than `after` (ms), extended to
/// keep messages that share the last time together.
pub fn take_page(messages: &VecDeque<Message>, after: u64, page_size: usize) -> Vec<Message> {
    let start = messages.partition_point(|message| message.time <= after);
    let mut end = (start + page_size).min(messages.len());
    if end > start {
        let last_time = messages[end - 1].time;
        while end < messages.len() && messages[end].time == last_time {
            end += 1;
        }
    }
    messages.range(start..end).cloned().collect()
}

/// The newest `n` of `all` (oldest first), extended back to keep a group sharing a time whole,
/// and the time of the newest message left out (0 when none is).
pub fn newest_whole_groups(mut all: Vec<Message>, n: usize) -> (Vec<Message>, u64) {
    let mut split = all.len().saturating_sub(n);
    while split > 0 && split < all.len() && all[split - 1].time == all[split].time {
        split -= 1;
    }
    let older_through = split.checked_sub(1).map_or(0, |idx| all[idx].time);
    (all.split_off(split), older_through)
}

/// The newest `n` of `messages` (oldest first) older than `before` (ms), extended back to keep
/// a group sharing a time whole, and the time of the newest message older than those (0 when
/// `messages` holds none). A page of earlier history (`last=N&before=T`).
pub fn newest_before(messages: &VecDeque<Message>, before: u64, n: usize) -> (Vec<Message>, u64) {
    let end = messages.partition_point(|message| message.time < before);
    let mut start = end.saturating_sub(n);
    while start > 0 && start < end && messages[start - 1].time == messages[start].time {
        start -= 1;
    }
    let older_through = start.checked_sub(1).map_or(0, |idx| messages[idx].time);
    (messages.range(start..end).cloned().collect(), older_through)
}

/// Drops the oldest messages of `messages` while it holds more than `limit`, only whole groups
/// sharing a time. Returns the time of the newest message dropped, if any.
pub fn evict_oldest(messages: &mut VecDeque<Message>, limit: usize) -> Option<u64> {
    let mut dropped_through = None;
    while messages.len() > limit {
        let Some(oldest) = messages.front().map(|message| message.time) else {
            break;
        };
        while messages
            .front()
            .is_some_and(|message| message.time == oldest)
        {
            messages.pop_front();
        }
        dropped_through = Some(oldest);
    }
    dropped_through
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(times: &[u64]) -> VecDeque<Message> {
        times
            .iter()
            .map(|&time| Message::new("a", time.to_string(), time))
            .collect()
    }

    fn times<'a>(page: impl IntoIterator<Item = &'a Message>) -> Vec<u64> {
        page.into_iter().map(|message| message.time).collect()
    }

    #[test]
    fn page_starts_after_the_cursor_and_is_bounded() {
        let all = messages(&[1, 2, 3, 4, 5]);
        assert_eq!(times(&take_page(&all, 0, 2)), [1, 2]);
        assert_eq!(times(&take_page(&all, 2, 2)), [3, 4]);
        assert_eq!(times(&take_page(&all, 4, 2)), [5]);
        assert!(take_page(&all, 5, 2).is_empty());
    }

    #[test]
    fn legacy_messages_sharing_a_time_are_never_split_across_pages() {
        let all = messages(&[1, 2, 2, 2, 3]);
        assert_eq!(times(&take_page(&all, 0, 2)), [1, 2, 2, 2]);
        assert_eq!(times(&take_page(&all, 2, 2)), [3]);
    }

    #[test]
    fn eviction_keeps_groups_sharing_a_time_whole() {
        let mut all = messages(&[1, 2, 2, 2, 3, 4, 5]);
        // Dropping 1 leaves 6 > 4, so the group at 2 goes, whole, even though that leaves 3.
        assert_eq!(evict_oldest(&mut all, 4), Some(2));
        assert_eq!(times(&all), [3, 4, 5]);
        assert_eq!(evict_oldest(&mut all, 4), None);
    }

    #[test]
    fn a_page_before_a_time_is_the_newest_older_ones_in_whole_groups() {
        let all = messages(&[1, 2, 2, 3, 4, 5]);
        let cases: [(u64, usize, &[u64], u64); 7] = [
            (5, 2, &[3, 4], 2),
            (4, 2, &[2, 2, 3], 1),
            (4, 1, &[3], 2),
            (3, 1, &[2, 2], 1),
            (2, 5, &[1], 0),
            (1, 5, &[], 0),
            (100, 10, &[1, 2, 2, 3, 4, 5], 0),
        ];
        for (before, n, expected, older_through) in cases {
            let (page, older) = newest_before(&all, before, n);
            assert_eq!(times(&page), expected, "before={before} n={n}");
            assert_eq!(older, older_through, "before={before} n={n}");
        }
    }

    #[test]
    fn the_newest_are_taken_in_whole_groups() {
        let all: Vec<Message> = messages(&[1, 2, 2, 3]).into();
        let (newest, older_through) = newest_whole_groups(all.clone(), 2);
        assert_eq!(times(&newest), [2, 2, 3]);
        assert_eq!(older_through, 1);
        let (newest, older_through) = newest_whole_groups(all, 10);
        assert_eq!(times(&newest), [1, 2, 2, 3]);
        assert_eq!(older_through, 0);
    }
}
