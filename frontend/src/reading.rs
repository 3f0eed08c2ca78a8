//! How the conversation reads: messages grouped by sender, days separated, links and mentions
//! found in a text, and what a screen reader or a desktop notification says about new
//! messages.
//!
//! Pure logic only, unit-tested on the host: the reader's time zone comes in as a function from
//! a message time to its local [`Day`] (the browser side uses `js_sys::Date`), and nothing here
//! touches the page.

use std::ops::Range;

use chat_shared::Message;
use linkify::{LinkFinder, LinkKind};

use crate::state::{is_own, message_kind, MessageKind};

/// Two chat lines from the same name at most this far apart, in milliseconds, share one
/// name/time header (5 minutes, as issue 10 asks; the usual value in chat apps).
pub const GROUP_WINDOW_MS: u64 = 5 * 60 * 1000;

/// Up to this many messages arriving at once are read out one by one; more become a summary
/// ("5 new messages"), so a burst does not flood a screen reader.
pub const ANNOUNCE_ONE_BY_ONE_UP_TO: usize = 3;

/// The longest message text, in characters, put in a desktop notification (the system cuts
/// long bodies anyway; the whole text is on the page).
pub const NOTIFICATION_BODY_CHARS: usize = 200;

/// A calendar day in the reader's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day {
    /// The year, e.g. 2026.
    pub year: i32,
    /// The month, 1 to 12.
    pub month: u32,
    /// The day of the month, 1 to 31.
    pub day: u32,
}

impl Day {
    /// The day before this one (month lengths and leap years of the Gregorian calendar).
    pub fn previous(self) -> Day {
        if self.day > 1 {
            return Day {
                day: self.day - 1,
                ..self
            };
        }
        let (year, month) = if self.month > 1 {
            (self.year, self.month - 1)
        } else {
            (self.year - 1, 12)
        };
        Day {
            year,
            month,
            day: days_in_month(year, month),
        }
    }

    /// `YYYY-MM-DD`, the form a `<time datetime>` takes for a date, and a stable key.
    pub fn iso(self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// "Today" or "Yesterday" when `day` is one of them, relative to the reader's `today`; `None`
/// for any other day, which the page then names by its full date.
pub fn relative_day_name(day: Day, today: Day) -> Option<&'static str> {
    if day == today {
        Some("Today")
    } else if day == today.previous() {
        Some("Yesterday")
    } else {
        None
    }
}

/// One message as laid out in the conversation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry<'a> {
    /// The message.
    pub message: &'a Message,
    /// Whether it shows the name/time header: false for a chat line that continues its
    /// sender's group.
    pub starts_group: bool,
}

/// The messages of one local day, under a day separator.
#[derive(Debug, Clone, PartialEq)]
pub struct DaySection<'a> {
    /// The day, in the reader's time zone.
    pub day: Day,
    /// Its messages, oldest first.
    pub entries: Vec<Entry<'a>>,
}

/// Whether the chat line `message` continues the group of `previous` (the line just above it
/// on the same day): both are chat lines (a join or leave line between two lines ends the
/// group), from the same name, at most [`GROUP_WINDOW_MS`] apart.
pub fn continues_group(previous: &Message, message: &Message) -> bool {
    message_kind(previous) == MessageKind::Text
        && message_kind(message) == MessageKind::Text
        && previous.name == message.name
        && message.time.saturating_sub(previous.time) <= GROUP_WINDOW_MS
}

/// Splits `messages` (sorted by time, as the reducer keeps them) into local days, marking which
/// lines start a sender group. `day_of` gives a message time's (ms since the Unix epoch) day in
/// the reader's time zone. A new day always starts a new group.
pub fn lay_out(messages: &[Message], day_of: impl Fn(u64) -> Day) -> Vec<DaySection<'_>> {
    let mut sections: Vec<DaySection<'_>> = Vec::new();
    for message in messages {
        let day = day_of(message.time);
        match sections.last_mut() {
            Some(section) if section.day == day => {
                let starts_group = section
                    .entries
                    .last()
                    .is_none_or(|previous| !continues_group(previous.message, message));
                section.entries.push(Entry {
                    message,
                    starts_group,
                });
            }
            _ => sections.push(DaySection {
                day,
                entries: vec![Entry {
                    message,
                    starts_group: true,
                }],
            }),
        }
    }
    sections
}

/// A piece of a message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Shown as it is.
    Text(&'a str),
    /// An `http://` or `https://` address, shown as a link to itself.
    Link(&'a str),
    /// The reader's nickname, highlighted.
    Mention(&'a str),
}

/// The byte ranges of the `http://` and `https://` addresses in `text`, found by `linkify`
/// (which leaves out the trailing punctuation of a sentence and unbalanced closing brackets).
/// Every other scheme (`javascript:`, `data:`, `file:`, `mailto:`…) and bare domains stay text:
/// only these two can be opened without running anything or reaching outside the web.
pub fn link_ranges(text: &str) -> Vec<Range<usize>> {
    let mut finder = LinkFinder::new();
    finder.kinds(&[LinkKind::Url]).url_must_have_scheme(true);
    finder
        .links(text)
        .filter(|link| {
            let found = link.as_str();
            ["http://", "https://"].iter().any(|scheme| {
                found
                    .get(..scheme.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(scheme))
            })
        })
        .map(|link| link.start()..link.end())
        .collect()
}

/// The byte ranges where `nickname` appears in `text` as a whole word, ignoring case (Unicode
/// simple case folding by lowercasing each character). A word boundary is the text's start or
/// end, or a character that is neither alphanumeric nor `_`, so "bob" is found in "@bob," and
/// "Bob!" but not in "bobby" or "kebob". An empty nickname is found nowhere.
pub fn mention_ranges(text: &str, nickname: &str) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    if nickname.is_empty() {
        return found;
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut start = 0;
    while start < text.len() {
        let before_ok = text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !is_word(c));
        if before_ok {
            if let Some(len) = caseless_prefix_len(&text[start..], nickname) {
                let end = start + len;
                if text[end..].chars().next().is_none_or(|c| !is_word(c)) {
                    found.push(start..end);
                    start = end;
                    continue;
                }
            }
        }
        // Next character boundary.
        start += text[start..].chars().next().map_or(1, char::len_utf8);
    }
    found
}

/// The length in bytes of the prefix of `haystack` that equals `needle` ignoring case, if
/// there is one.
fn caseless_prefix_len(haystack: &str, needle: &str) -> Option<usize> {
    let mut chars = haystack.char_indices();
    for wanted in needle.chars() {
        let (_, got) = chars.next()?;
        if !got.to_lowercase().eq(wanted.to_lowercase()) {
            return None;
        }
    }
    Some(chars.next().map_or(haystack.len(), |(idx, _)| idx))
}

/// Whether `text` mentions `nickname` (see [`mention_ranges`]).
pub fn mentions(text: &str, nickname: &str) -> bool {
    !mention_ranges(text, nickname).is_empty()
}

/// `text` cut into plain text, links ([`link_ranges`]) and mentions of `nickname`
/// ([`mention_ranges`], outside links only: a name inside an address stays part of the link).
/// Concatenating the pieces gives `text` back.
pub fn pieces<'a>(text: &'a str, nickname: Option<&str>) -> Vec<Piece<'a>> {
    let mut out = Vec::new();
    let push_text = |out: &mut Vec<Piece<'a>>, part: &'a str| {
        let mut at = 0;
        for range in nickname.map_or_else(Vec::new, |name| mention_ranges(part, name)) {
            if range.start > at {
                out.push(Piece::Text(&part[at..range.start]));
            }
            out.push(Piece::Mention(&part[range.clone()]));
            at = range.end;
        }
        if at < part.len() {
            out.push(Piece::Text(&part[at..]));
        }
    };
    let mut at = 0;
    for range in link_ranges(text) {
        push_text(&mut out, &text[at..range.start]);
        out.push(Piece::Link(&text[range.clone()]));
        at = range.end;
    }
    push_text(&mut out, &text[at..]);
    out
}

/// The messages of `messages` (sorted by time) newer than `previous_newest`, the newest time
/// held before they came: what just arrived. With no previous newest (the page's first
/// messages) nothing counts as arrived: that is history. Messages merged in below the previous
/// newest (the late answer of an overlapping request) are not new to the reader either.
pub fn arrived_since(messages: &[Message], previous_newest: Option<u64>) -> Vec<Message> {
    let Some(previous) = previous_newest else {
        return Vec::new();
    };
    let first_new = messages.partition_point(|message| message.time <= previous);
    messages[first_new..].to_vec()
}

/// How a message is read out: "bob: hello", "bob joined", "bob left".
fn spoken(message: &Message) -> String {
    match message_kind(message) {
        MessageKind::Text => format!("{}: {}", message.name, message.msg),
        MessageKind::Joined => format!("{} joined", message.name),
        MessageKind::Left => format!("{} left", message.name),
    }
}

/// What the polite live region says about `arrived` (messages that just arrived, oldest
/// first): nothing for the reader's own messages (they just sent them), each of the others for
/// up to [`ANNOUNCE_ONE_BY_ONE_UP_TO`] of them, otherwise one summary ("5 new messages"), so a
/// catch-up after a reconnect is one sentence rather than a flood.
pub fn announcement(arrived: &[Message], own_names: &[String]) -> Option<String> {
    let others: Vec<&Message> = arrived
        .iter()
        .filter(|message| !is_own(own_names, message))
        .collect();
    match others.len() {
        0 => None,
        n if n <= ANNOUNCE_ONE_BY_ONE_UP_TO => Some(
            others
                .iter()
                .map(|message| spoken(message))
                .collect::<Vec<_>>()
                .join(". "),
        ),
        n => Some(format!("{n} new messages")),
    }
}

/// A desktop notification's title and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// E.g. "bob mentioned you", or "3 mentions of you".
    pub title: String,
    /// The (newest) mentioning text, cut at [`NOTIFICATION_BODY_CHARS`] characters.
    pub body: String,
}

/// The notification for the chat lines among `arrived` that are from someone else and mention
/// `nickname`, if any.
pub fn mention_notice(arrived: &[Message], own_names: &[String], nickname: &str) -> Option<Notice> {
    let mentioning: Vec<&Message> = arrived
        .iter()
        .filter(|message| {
            !is_own(own_names, message)
                && message_kind(message) == MessageKind::Text
                && mentions(&message.msg, nickname)
        })
        .collect();
    let newest = mentioning.last()?;
    let title = match mentioning.len() {
        1 => format!("{} mentioned you", newest.name),
        n => format!("{n} mentions of you"),
    };
    let mut body: String = newest.msg.chars().take(NOTIFICATION_BODY_CHARS).collect();
    if body.len() < newest.msg.len() {
        body.push('…');
    }
    Some(Notice { title, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_shared::{EXIT_MESSAGE, JOIN_MESSAGE};

    const MIN: u64 = 60 * 1000;

    fn msg(name: &str, text: &str, time: u64) -> Message {
        Message::new(name, text, time)
    }

    /// Days of 1000 minutes, so tests can cross a day boundary with small numbers.
    fn thousand_minute_days(time: u64) -> Day {
        let n = u32::try_from(time / (1000 * MIN)).expect("small test time");
        Day {
            year: 2026,
            month: 1,
            day: 1 + n,
        }
    }

    /// (name, starts_group) per section, to compare layouts at a glance.
    fn shape(messages: &[Message]) -> Vec<Vec<(String, bool)>> {
        lay_out(messages, thousand_minute_days)
            .into_iter()
            .map(|section| {
                section
                    .entries
                    .iter()
                    .map(|entry| (entry.message.name.clone(), entry.starts_group))
                    .collect()
            })
            .collect()
    }

    fn row(name: &str, starts: bool) -> (String, bool) {
        (name.to_owned(), starts)
    }

    #[test]
    fn lines_from_one_name_within_five_minutes_share_a_header() {
        let messages = [
            msg("bob", "one", 10 * MIN),
            msg("bob", "two", 14 * MIN),
            // Exactly 5 minutes after the previous line: still the same group.
            msg("bob", "three", 19 * MIN),
            // 5 minutes and 1 ms after the previous line: a new header.
            msg("bob", "four", 24 * MIN + 1),
            msg("alice", "five", 25 * MIN),
            msg("bob", "six", 26 * MIN),
        ];
        assert_eq!(
            shape(&messages),
            [vec![
                row("bob", true),
                row("bob", false),
                row("bob", false),
                row("bob", true),
                row("alice", true),
                row("bob", true),
            ]]
        );
    }

    #[test]
    fn a_join_or_leave_line_ends_a_group_and_is_never_part_of_one() {
        let messages = [
            msg("bob", "one", MIN),
            msg("carl", JOIN_MESSAGE, 2 * MIN),
            msg("bob", "two", 3 * MIN),
            msg("bob", JOIN_MESSAGE, 4 * MIN),
            msg("bob", EXIT_MESSAGE, 5 * MIN),
            msg("bob", "three", 6 * MIN),
        ];
        assert_eq!(
            shape(&messages),
            [vec![
                row("bob", true),
                row("carl", true),
                row("bob", true),
                row("bob", true),
                row("bob", true),
                row("bob", true),
            ]]
        );
    }

    #[test]
    fn a_new_day_gets_its_own_section_and_starts_a_group() {
        let messages = [
            msg("bob", "late", 999 * MIN),
            msg("bob", "after midnight", 1000 * MIN + 1),
            msg("bob", "two days later", 3000 * MIN),
        ];
        let sections = lay_out(&messages, thousand_minute_days);
        let days: Vec<u32> = sections.iter().map(|section| section.day.day).collect();
        assert_eq!(days, [1, 2, 4]);
        assert!(sections
            .iter()
            .all(|section| section.entries.len() == 1 && section.entries[0].starts_group));
        assert!(lay_out(&[], thousand_minute_days).is_empty());
    }

    #[test]
    fn the_previous_day_crosses_months_years_and_leap_days() {
        let day = |year, month, day| Day { year, month, day };
        let cases = [
            (day(2026, 11, 29), day(2026, 11, 28)),
            (day(2026, 12, 1), day(2026, 11, 30)),
            (day(2026, 1, 1), day(2025, 12, 31)),
            (day(2024, 3, 1), day(2024, 2, 29)),
            (day(2026, 3, 1), day(2026, 2, 28)),
            (day(2000, 3, 1), day(2000, 2, 29)),
            (day(1900, 3, 1), day(1900, 2, 28)),
            (day(2026, 8, 1), day(2026, 7, 31)),
        ];
        for (from, expected) in cases {
            assert_eq!(from.previous(), expected, "the day before {}", from.iso());
        }
        assert_eq!(day(2026, 3, 7).iso(), "2026-03-07");
    }

    #[test]
    fn today_and_yesterday_are_named_other_days_are_not() {
        let today = Day {
            year: 2026,
            month: 1,
            day: 1,
        };
        assert_eq!(relative_day_name(today, today), Some("Today"));
        assert_eq!(
            relative_day_name(today.previous(), today),
            Some("Yesterday")
        );
        assert_eq!(relative_day_name(today.previous().previous(), today), None);
    }

    /// The linked parts of `text`.
    fn links(text: &str) -> Vec<&str> {
        link_ranges(text)
            .into_iter()
            .map(|range| &text[range])
            .collect()
    }

    #[test]
    fn only_http_and_https_addresses_become_links() {
        let cases: [(&str, &[&str]); 12] = [
            (
                "see https://example.com/a?b=1#c now",
                &["https://example.com/a?b=1#c"],
            ),
            ("http://example.com.", &["http://example.com"]),
            ("(https://example.com/x)", &["https://example.com/x"]),
            ("HTTPS://EXAMPLE.COM", &["HTTPS://EXAMPLE.COM"]),
            (
                "two: http://a.example and https://b.example/",
                &["http://a.example", "https://b.example/"],
            ),
            ("javascript:alert(1)", &[]),
            ("javascript://example.com/%0aalert(1)", &[]),
            ("data:text/html,<script>alert(1)</script>", &[]),
            ("file:///etc/passwd", &[]),
            ("ftp://example.com/file", &[]),
            ("mailto:a@example.com and example.com", &[]),
            ("no links here", &[]),
        ];
        for (text, expected) in cases {
            assert_eq!(links(text), expected, "links in {text:?}");
        }
    }

    #[test]
    fn a_mention_is_a_whole_word_in_any_case() {
        let cases: [(&str, &str, &[&str]); 9] = [
            ("hi bob", "bob", &["bob"]),
            ("Hi BOB, and @Bob!", "bob", &["BOB", "Bob"]),
            ("bobby and kebob and bob_x", "bob", &[]),
            ("bob", "bob", &["bob"]),
            ("你好小明。", "小明", &[]),
            ("你好 小明。", "小明", &["小明"]),
            ("ÉMILE est là", "émile", &["ÉMILE"]),
            ("a.b.c a.b.cd", "a.b.c", &["a.b.c"]),
            ("anything", "", &[]),
        ];
        for (text, name, expected) in cases {
            let found: Vec<&str> = mention_ranges(text, name)
                .into_iter()
                .map(|range| &text[range])
                .collect();
            assert_eq!(found, expected, "{name:?} in {text:?}");
            assert_eq!(mentions(text, name), !expected.is_empty());
        }
    }

    #[test]
    fn pieces_give_the_text_back_with_links_and_mentions_marked() {
        let text = "bob: see https://example.com/bob, Bob";
        let cut = pieces(text, Some("bob"));
        assert_eq!(
            cut,
            [
                Piece::Mention("bob"),
                Piece::Text(": see "),
                Piece::Link("https://example.com/bob"),
                Piece::Text(", "),
                Piece::Mention("Bob"),
            ]
        );
        let joined: String = cut
            .iter()
            .map(|piece| match piece {
                Piece::Text(part) | Piece::Link(part) | Piece::Mention(part) => *part,
            })
            .collect();
        assert_eq!(joined, text);
        assert_eq!(pieces("plain", None), [Piece::Text("plain")]);
        assert_eq!(pieces("", Some("bob")), []);
    }

    #[test]
    fn only_messages_newer_than_the_previous_newest_have_arrived() {
        let messages = [msg("a", "1", 10), msg("b", "2", 20), msg("c", "3", 30)];
        let times = |arrived: Vec<Message>| arrived.iter().map(|m| m.time).collect::<Vec<_>>();
        assert_eq!(times(arrived_since(&messages, None)), [0u64; 0], "history");
        assert_eq!(times(arrived_since(&messages, Some(10))), [20, 30]);
        assert_eq!(times(arrived_since(&messages, Some(15))), [20, 30]);
        assert_eq!(times(arrived_since(&messages, Some(30))), [0u64; 0]);
        assert_eq!(times(arrived_since(&[], Some(30))), [0u64; 0]);
    }

    #[test]
    fn a_few_new_messages_are_read_out_and_a_burst_is_summarised() {
        let own = vec!["alice".to_owned()];
        assert_eq!(announcement(&[], &own), None);
        assert_eq!(
            announcement(&[msg("alice", "mine", 1)], &own),
            None,
            "the reader's own message is not announced"
        );
        assert_eq!(
            announcement(
                &[
                    msg("bob", "hi", 1),
                    msg("alice", "mine", 2),
                    msg("carl", JOIN_MESSAGE, 3),
                    msg("dan", EXIT_MESSAGE, 4),
                ],
                &own
            )
            .as_deref(),
            Some("bob: hi. carl joined. dan left")
        );
        let burst: Vec<Message> = (0..5).map(|n| msg("bob", "x", n)).collect();
        assert_eq!(
            announcement(&burst, &own).as_deref(),
            Some("5 new messages")
        );
    }

    #[test]
    fn a_notification_comes_for_mentions_by_others_only() {
        let own = vec!["alice".to_owned()];
        assert_eq!(
            mention_notice(
                &[
                    msg("alice", "alice talks to herself", 1),
                    msg("bob", "no name here", 2),
                    msg("bob", "aliceX is not alice's name", 3),
                ],
                &own,
                "alice"
            ),
            Some(Notice {
                title: "bob mentioned you".into(),
                body: "aliceX is not alice's name".into()
            }),
            "\"alice's\" is a mention: the apostrophe is a word boundary"
        );
        assert_eq!(
            mention_notice(&[msg("bob", "no name", 1)], &own, "alice"),
            None
        );
        let long = format!("Alice {}", "x".repeat(300));
        let notice = mention_notice(
            &[msg("bob", "hey alice", 1), msg("carl", &long, 2)],
            &own,
            "alice",
        )
        .expect("two mentions");
        assert_eq!(notice.title, "2 mentions of you");
        assert_eq!(notice.body.chars().count(), NOTIFICATION_BODY_CHARS + 1);
        assert!(notice.body.starts_with("Alice x") && notice.body.ends_with('…'));
    }
}
