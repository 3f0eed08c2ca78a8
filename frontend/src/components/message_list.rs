//! The conversation, oldest first, by local day and sender group (the layout rules are in
//! `reading.rs`), following new messages unless the reader scrolled up.

use std::cell::RefCell;
use std::rc::Rc;

use chat_shared::Message;
use gloo_timers::callback::Timeout;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::Element;
use yew::prelude::*;

use crate::reading::{lay_out, mentions, pieces, relative_day_name, Day, DaySection, Piece};
use crate::services::local_time::LocalTime;
use crate::state::{is_own, message_kind, MessageKind};

/// How close to the bottom, in CSS pixels, still counts as "at the bottom" (a reader rarely
/// lands exactly on it, and zoom makes sizes fractional).
const AT_BOTTOM_SLACK_PX: i32 = 48;

/// Props of [`MessageList`].
#[derive(Debug, Clone, PartialEq, Properties)]
pub struct MessageListProps {
    /// The messages, sorted by time and unique (the reducer's invariant).
    pub messages: Rc<Vec<Message>>,
    /// The names whose messages are marked as the reader's own.
    pub own_names: Vec<String>,
    /// The reader's current nickname, highlighted where others mention it.
    #[prop_or_default]
    pub nickname: Option<String>,
    /// Said above the messages when older history is no longer kept by the server.
    #[prop_or_default]
    pub history_notice: Option<String>,
}

/// The message log: `<section id="messages">` holding one `<div class="day">` per local day
/// (an `<h2 class="day-separator">` and an `<ol>` of `<li class="message" data-time="...">`,
/// with `own`, `system`, `continued` and `mentions-you` classes). New messages scroll into view while the reader is at the
/// bottom; when they have scrolled up, a "new messages" button appears instead.
#[component]
pub fn MessageList(props: &MessageListProps) -> Html {
    let list_ref = use_node_ref();
    // Whether the reader is at the bottom: read in the effect, written on scroll. A ref, not
    // state, because scrolling alone changes nothing on screen.
    let following: Rc<RefCell<bool>> = use_mut_ref(|| true);
    let unseen = use_state_eq(|| false);
    // The newest time the effect below last saw: only a newer one is "new messages" (earlier
    // history prepended above, scrolling back, is not).
    let seen_newest: Rc<RefCell<Option<u64>>> = use_mut_ref(|| None);

    let newest = props.messages.last();
    let newest_is_own = newest.is_some_and(|message| is_own(&props.own_names, message));
    {
        let list_ref = list_ref.clone();
        let following = following.clone();
        let unseen = unseen.clone();
        // Runs after the DOM has the new messages, so the scroll height includes them.
        use_effect_with(
            (newest.map(|message| message.time), props.messages.len()),
            move |(newest_time, _)| {
                let newer = seen_newest.replace(*newest_time) != *newest_time;
                // Our own message is always shown: we just sent it.
                if *following.borrow() || newest_is_own {
                    scroll_to_bottom(&list_ref);
                    *following.borrow_mut() = true;
                    unseen.set(false);
                } else if newer {
                    unseen.set(true);
                }
            },
        );
    }

    {
        let list_ref = list_ref.clone();
        let following = following.clone();
        // The list gets shorter when the window does (a phone turned, its keyboard opened) or
        // when the composer or the online strip grows; the browser keeps `scrollTop`, which
        // would leave the newest lines below the fold of a reader who was following them.
        use_effect_with((), move |_| {
            let keep_bottom = Closure::<dyn FnMut()>::new({
                let list_ref = list_ref.clone();
                move || {
                    if *following.borrow() {
                        scroll_to_bottom(&list_ref);
                    }
                }
            });
            let observer = web_sys::ResizeObserver::new(keep_bottom.as_ref().unchecked_ref()).ok();
            if let (Some(observer), Some(list)) = (&observer, list_ref.cast::<Element>()) {
                observer.observe(&list);
            }
            move || {
                if let Some(observer) = observer {
                    observer.disconnect();
                }
                drop(keep_bottom);
            }
        });
    }

    let onscroll = {
        let list_ref = list_ref.clone();
        let following = following.clone();
        let unseen = unseen.clone();
        Callback::from(move |_: Event| {
            let at_bottom = list_ref
                .cast::<Element>()
                .is_some_and(|list| is_at_bottom(&list));
            *following.borrow_mut() = at_bottom;
            if at_bottom {
                unseen.set(false);
            }
        })
    };

    let on_show_new = {
        let list_ref = list_ref.clone();
        let unseen = unseen.clone();
        Callback::from(move |_: MouseEvent| {
            scroll_to_bottom(&list_ref);
            *following.borrow_mut() = true;
            unseen.set(false);
            if let Some(list) = list_ref.cast::<web_sys::HtmlElement>() {
                // Keyboard users continue from the conversation, not from a vanished button.
                let _ignored = list.focus();
            }
        })
    };

    let local_time = use_memo((), |_| LocalTime::default());
    let today = LocalTime::today();
    {
        // "Today" becomes "Yesterday" at local midnight without any message arriving.
        let force_update = use_force_update();
        use_effect_with(today, move |_| {
            let timer = Timeout::new(LocalTime::ms_until_tomorrow(), move || {
                force_update.force_update();
            });
            // Dropping the `Timeout` cancels it.
            move || drop(timer)
        });
    }
    let nickname = props.nickname.as_deref();
    let sections = lay_out(&props.messages, LocalTime::day);

    html! {
        <div class="message-pane">
            if let Some(notice) = &props.history_notice {
                <p class="history-notice" role="status">{ notice.clone() }</p>
            }
            if props.messages.is_empty() {
                <p class="empty-hint">{ "No messages yet. Say hello!" }</p>
            }
            // Not a live region itself: the announcer (`LiveAnnouncer`) speaks for it, so that a
            // catch-up of a hundred lines is one sentence, not a hundred.
            <section
                id="messages"
                class="messages"
                ref={list_ref}
                aria-label="Messages"
                tabindex="0"
                {onscroll}
            >
                { for sections.iter().map(|section| {
                    view_day(section, today, &local_time, &props.own_names, nickname)
                }) }
            </section>
            if *unseen {
                <button id="new-messages" type="button" class="new-messages" onclick={on_show_new}>
                    { "New messages ↓" }
                </button>
            }
        </div>
    }
}

/// One day: a separator heading ("Today", "Yesterday" or the full local date) and the day's
/// messages as an `<ol>`. Headings let a screen reader jump from day to day.
fn view_day(
    section: &DaySection<'_>,
    today: Day,
    local_time: &LocalTime,
    own_names: &[String],
    nickname: Option<&str>,
) -> Html {
    let first_time = section
        .entries
        .first()
        .map_or(0, |entry| entry.message.time);
    let label = relative_day_name(section.day, today)
        .map_or_else(|| local_time.full_date(first_time), str::to_owned);
    html! {
        <div class="day" key={section.day.iso()}>
            <h2 class="day-separator">
                <time datetime={section.day.iso()}>{ label }</time>
            </h2>
            <ol class="day-messages">
                { for section.entries.iter().map(|entry| {
                    let message = entry.message;
                    let stamp = Stamp {
                        clock: LocalTime::clock(message.time),
                        iso: LocalTime::iso(message.time),
                        full: local_time.full_date_time(message.time),
                    };
                    let line = Line {
                        own: is_own(own_names, message),
                        starts_group: entry.starts_group,
                        nickname,
                    };
                    view_message(message, &line, stamp)
                }) }
            </ol>
        </div>
    }
}

/// How one line is shown, besides its message.
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    /// Sent under one of the reader's names.
    own: bool,
    /// Shows the name/time header (see `reading::lay_out`).
    starts_group: bool,
    /// The reader's current name, highlighted where others mention it.
    nickname: Option<&'a str>,
}

/// A message's time, formatted by [`LocalTime`].
#[derive(Debug, Clone)]
struct Stamp {
    /// `HH:MM`, local.
    clock: String,
    /// ISO 8601, for `datetime`.
    iso: String,
    /// The full local date and time, for `title`.
    full: String,
}

/// One `<li>`. Every piece of message content is a text node, which Yew escapes: no markup a
/// sender writes is ever interpreted; links are made only for `http(s)://` addresses found by
/// `reading::pieces`. The name and the text each sit in their own `<bdi>` (direction isolate,
/// direction from their own first strong character), so that a text-direction control inside
/// them (U+202E RIGHT-TO-LEFT OVERRIDE, an unclosed U+2067 isolate) cannot reorder the name,
/// the time or the words around them.
///
/// A line that continues its sender's group keeps its name, visually hidden, and its time,
/// shown on hover and keyboard focus: a screen reader moving line by line still hears who said
/// it and when, and the line's text still names its sender.
fn view_message(message: &Message, line: &Line<'_>, stamp: Stamp) -> Html {
    let kind = message_kind(message);
    // Mentions are looked for in others' chat lines only.
    let mention_name = line
        .nickname
        .filter(|_| !line.own && kind == MessageKind::Text);
    let mentioned = mention_name.is_some_and(|name| mentions(&message.msg, name));
    let classes = classes!(
        "message",
        line.own.then_some("own"),
        (kind != MessageKind::Text).then_some("system"),
        match kind {
            MessageKind::Joined => Some("joined"),
            MessageKind::Left => Some("left"),
            MessageKind::Text => None,
        },
        (kind == MessageKind::Text && !line.starts_group).then_some("continued"),
        mentioned.then_some("mentions-you"),
    );
    let time = html! {
        <time class="time" datetime={stamp.iso} title={stamp.full}>{ stamp.clock }</time>
    };
    let body = match kind {
        MessageKind::Text => html! {
            <>
                if line.starts_group {
                    <div class="meta">
                        <bdi class="name">{ message.name.clone() }</bdi>
                        if line.own {
                            <span class="visually-hidden">{ " (you)" }</span>
                        }
                        { " " }
                        { time }
                    </div>
                } else {
                    // The name for screen readers only; the time shows on hover and focus.
                    <div class="meta">
                        <span class="visually-hidden">
                            <bdi class="name">{ message.name.clone() }</bdi>
                            if line.own {
                                { " (you)" }
                            }
                            { " " }
                        </span>
                        { time }
                    </div>
                }
                <p class="text"><bdi>{ view_pieces(&message.msg, mention_name) }</bdi></p>
            </>
        },
        MessageKind::Joined | MessageKind::Left => {
            let verb = if kind == MessageKind::Joined {
                "joined"
            } else {
                "left"
            };
            html! {
                <p class="text">
                    <bdi class="name">{ message.name.clone() }</bdi>
                    { format!(" {verb} ") }
                    <span class="original" lang="zh">{ "(" }<bdi>{ message.msg.clone() }</bdi>{ ")" }</span>
                    { " " }
                    { time }
                </p>
            }
        }
    };
    html! {
        <li key={message.time.to_string()} class={classes} data-time={message.time.to_string()}>
            { body }
        </li>
    }
}

/// The text with its links as anchors and mentions of `nickname` marked.
fn view_pieces(text: &str, nickname: Option<&str>) -> Html {
    pieces(text, nickname)
        .into_iter()
        .map(|piece| match piece {
            Piece::Text(part) => html! { { part.to_owned() } },
            // A new tab keeps the conversation open; `noopener noreferrer` keeps the linked
            // page from reaching back into this one or learning its address, and
            // `nofollow ugc` tells search engines that a visitor, not the site, wrote the link.
            Piece::Link(address) => html! {
                <a href={address.to_owned()} target="_blank" rel="noopener noreferrer nofollow ugc">
                    { address.to_owned() }
                </a>
            },
            Piece::Mention(name) => html! { <mark class="mention">{ name.to_owned() }</mark> },
        })
        .collect()
}

fn is_at_bottom(list: &Element) -> bool {
    list.scroll_height() - list.scroll_top() - list.client_height() <= AT_BOTTOM_SLACK_PX
}

fn scroll_to_bottom(list_ref: &NodeRef) {
    if let Some(list) = list_ref.cast::<Element>() {
        list.set_scroll_top(list.scroll_height());
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every text node of `node` with the tags enclosing it, outermost first.
    pub(crate) fn texts_with_ancestors(node: &Html) -> Vec<(String, Vec<String>)> {
        fn walk(node: &Html, ancestors: &mut Vec<String>, found: &mut Vec<(String, Vec<String>)>) {
            match node {
                Html::VTag(tag) => {
                    ancestors.push(tag.tag().to_owned());
                    if let Some(children) = tag.children() {
                        walk(children, ancestors, found);
                    }
                    ancestors.pop();
                }
                Html::VList(list) => {
                    for child in list.iter() {
                        walk(child, ancestors, found);
                    }
                }
                Html::VText(text) => found.push((text.text.to_string(), ancestors.clone())),
                _ => {}
            }
        }
        let mut found = Vec::new();
        walk(node, &mut Vec::new(), &mut found);
        found
    }

    /// The tags enclosing the text node that is exactly `text`.
    pub(crate) fn ancestors_of(node: &Html, text: &str) -> Vec<String> {
        texts_with_ancestors(node)
            .into_iter()
            .find(|(found, _)| found == text)
            .map(|(_, ancestors)| ancestors)
            .unwrap_or_else(|| panic!("no text node {text:?} in {node:?}"))
    }

    fn stamp() -> Stamp {
        Stamp {
            clock: "12:00".to_owned(),
            iso: "2015-01-01T00:00:00.000Z".to_owned(),
            full: "Thursday, January 1, 2015 at 12:00:00 AM UTC".to_owned(),
        }
    }

    /// Every element of `node` with its tag and attributes, depth first.
    fn elements(node: &Html) -> Vec<(String, Vec<(String, String)>)> {
        fn walk(node: &Html, found: &mut Vec<(String, Vec<(String, String)>)>) {
            match node {
                Html::VTag(tag) => {
                    let attributes = tag
                        .attributes
                        .iter()
                        .map(|(key, value)| (key.to_owned(), value.to_owned()))
                        .collect();
                    found.push((tag.tag().to_owned(), attributes));
                    if let Some(children) = tag.children() {
                        walk(children, found);
                    }
                }
                Html::VList(list) => {
                    for child in list.iter() {
                        walk(child, found);
                    }
                }
                _ => {}
            }
        }
        let mut found = Vec::new();
        walk(node, &mut found);
        found
    }

    #[test]
    fn a_right_to_left_override_in_a_message_is_isolated_from_the_name_and_time() {
        let name = "ali\u{202E}ce";
        let cases = [
            ("a text", "abc\u{202E}def"),
            ("a join", chat_shared::JOIN_MESSAGE),
            ("a leave", chat_shared::EXIT_MESSAGE),
        ];
        for (what, msg) in cases {
            let message = Message::new(name, msg, 1_420_070_400_000);
            for (own, starts_group) in [(false, true), (true, true), (false, false)] {
                let line = Line {
                    own,
                    starts_group,
                    nickname: Some("bob"),
                };
                let html = view_message(&message, &line, stamp());
                for text in [name, msg] {
                    let ancestors = ancestors_of(&html, text);
                    assert_eq!(
                        ancestors.last().map(String::as_str),
                        Some("bdi"),
                        "{what}: {text:?} sits directly in a <bdi>: {ancestors:?}"
                    );
                }
                let time = ancestors_of(&html, "12:00");
                assert!(
                    !time.iter().any(|tag| tag == "bdi"),
                    "{what}: the time is outside every isolate: {time:?}"
                );
            }
        }
    }

    #[test]
    fn http_addresses_are_links_that_open_apart_and_other_schemes_stay_text() {
        let text = "see https://example.com/x and javascript:alert(1) and data:text/html,hi";
        let message = Message::new("bob", text, 1);
        let line = Line {
            own: false,
            starts_group: true,
            nickname: None,
        };
        let html = view_message(&message, &line, stamp());
        let anchors: Vec<_> = elements(&html)
            .into_iter()
            .filter(|(tag, _)| tag == "a")
            .map(|(_, attributes)| attributes)
            .collect();
        let attribute = |attributes: &[(String, String)], key: &str| {
            attributes
                .iter()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value.clone())
        };
        assert_eq!(anchors.len(), 1, "one link: {anchors:?}");
        assert_eq!(
            attribute(&anchors[0], "href").as_deref(),
            Some("https://example.com/x")
        );
        assert_eq!(
            attribute(&anchors[0], "rel").as_deref(),
            Some("noopener noreferrer nofollow ugc")
        );
        assert_eq!(attribute(&anchors[0], "target").as_deref(), Some("_blank"));
        assert_eq!(
            ancestors_of(&html, " and javascript:alert(1) and data:text/html,hi")
                .last()
                .map(String::as_str),
            Some("bdi"),
            "the other schemes are plain text"
        );
    }

    #[test]
    fn others_mentioning_the_reader_are_marked_and_own_lines_are_not() {
        let message = Message::new("bob", "hi Alice!", 1);
        for (own, marked) in [(false, true), (true, false)] {
            let line = Line {
                own,
                starts_group: true,
                nickname: Some("alice"),
            };
            let html = view_message(&message, &line, stamp());
            let in_mark = texts_with_ancestors(&html)
                .into_iter()
                .any(|(text, ancestors)| {
                    text == "Alice" && ancestors.last().is_some_and(|tag| tag == "mark")
                });
            assert_eq!(in_mark, marked, "own = {own}");
        }
    }

    #[test]
    fn a_continued_line_hides_its_header_but_keeps_it_for_screen_readers() {
        let message = Message::new("bob", "again", 1);
        let line = Line {
            own: false,
            starts_group: false,
            nickname: None,
        };
        let html = view_message(&message, &line, stamp());
        let classes: Vec<String> = elements(&html)
            .into_iter()
            .filter_map(|(_, attributes)| {
                attributes
                    .into_iter()
                    .find(|(key, _)| key == "class")
                    .map(|(_, value)| value)
            })
            .collect();
        assert!(
            classes.iter().any(|class| class.contains("continued")),
            "{classes:?}"
        );
        assert!(
            classes.iter().any(|class| class == "visually-hidden"),
            "the name's span is visually hidden: {classes:?}"
        );
        assert_eq!(ancestors_of(&html, "bob"), ["li", "div", "span", "bdi"]);
        assert_eq!(ancestors_of(&html, "12:00"), ["li", "div", "time"]);
    }
}
