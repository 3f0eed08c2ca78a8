//! The conversation, oldest first, following new messages unless the reader scrolled up.

use std::cell::RefCell;
use std::rc::Rc;

use chat_shared::Message;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::Element;
use yew::prelude::*;

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
    /// Said above the messages when older history is no longer kept by the server.
    #[prop_or_default]
    pub history_notice: Option<String>,
}

/// The message log: `<ol id="messages">` of `<li class="message" data-time="...">`, with
/// `own` and `system` classes. New messages scroll into view while the reader is at the
/// bottom; when they have scrolled up, a "new messages" button appears instead.
#[component]
pub fn MessageList(props: &MessageListProps) -> Html {
    let list_ref = use_node_ref();
    // Whether the reader is at the bottom: read in the effect, written on scroll. A ref, not
    // state, because scrolling alone changes nothing on screen.
    let following: Rc<RefCell<bool>> = use_mut_ref(|| true);
    let unseen = use_state_eq(|| false);

    let newest = props.messages.last();
    let newest_is_own = newest.is_some_and(|message| is_own(&props.own_names, message));
    {
        let list_ref = list_ref.clone();
        let following = following.clone();
        let unseen = unseen.clone();
        // Runs after the DOM has the new messages, so the scroll height includes them.
        use_effect_with(
            (newest.map(|message| message.time), props.messages.len()),
            move |_| {
                // Our own message is always shown: we just sent it.
                if *following.borrow() || newest_is_own {
                    scroll_to_bottom(&list_ref);
                    *following.borrow_mut() = true;
                    unseen.set(false);
                } else {
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

    html! {
        <div class="message-pane">
            if let Some(notice) = &props.history_notice {
                <p class="history-notice" role="status">{ notice.clone() }</p>
            }
            if props.messages.is_empty() {
                <p class="empty-hint">{ "No messages yet. Say hello!" }</p>
            }
            <ol
                id="messages"
                class="messages"
                ref={list_ref}
                role="log"
                aria-live="polite"
                aria-relevant="additions"
                aria-label="Messages"
                tabindex="0"
                {onscroll}
            >
                { for props.messages.iter().map(|message| {
                    view_message(message, is_own(&props.own_names, message), local_time(message.time))
                }) }
            </ol>
            if *unseen {
                <button id="new-messages" type="button" class="new-messages" onclick={on_show_new}>
                    { "New messages ↓" }
                </button>
            }
        </div>
    }
}

/// One `<li>`, given the message's `(clock, full_date)` from [`local_time`]. Every piece of
/// message content is a text node, which Yew escapes: no markup a sender writes is ever
/// interpreted. The name and the text each sit in their own `<bdi>` (direction isolate,
/// direction from their own first strong character), so that a text-direction control inside
/// them (U+202E RIGHT-TO-LEFT OVERRIDE, an unclosed U+2067 isolate) cannot reorder the name,
/// the time or the words around them.
fn view_message(message: &Message, own: bool, (clock, full_date): (String, String)) -> Html {
    let kind = message_kind(message);
    let classes = classes!(
        "message",
        own.then_some("own"),
        (kind != MessageKind::Text).then_some("system"),
        match kind {
            MessageKind::Joined => Some("joined"),
            MessageKind::Left => Some("left"),
            MessageKind::Text => None,
        },
    );
    let time = html! {
        <time class="time" datetime={full_date.clone()} title={full_date}>{ clock }</time>
    };
    let body = match kind {
        MessageKind::Text => html! {
            <>
                <div class="meta">
                    <bdi class="name">{ message.name.clone() }</bdi>
                    if own {
                        <span class="visually-hidden">{ " (you)" }</span>
                    }
                    { time }
                </div>
                <p class="text"><bdi>{ message.msg.clone() }</bdi></p>
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

/// `HH:MM` in the reader's time zone, and the full date-time (ISO 8601, UTC) for `datetime`.
fn local_time(time_ms: u64) -> (String, String) {
    // Millisecond times stay below 2^53 for the next 285,000 years, so `f64` is exact.
    let date = js_sys::Date::new(&JsValue::from_f64(time_ms as f64));
    let clock = format!("{:02}:{:02}", date.get_hours(), date.get_minutes());
    (clock, String::from(date.to_iso_string()))
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

    #[test]
    fn a_right_to_left_override_in_a_message_is_isolated_from_the_name_and_time() {
        let clock = ("12:00".to_owned(), "2015-01-01T00:00:00.000Z".to_owned());
        let name = "ali\u{202E}ce";
        let cases = [
            ("a text", "abc\u{202E}def"),
            ("a join", chat_shared::JOIN_MESSAGE),
            ("a leave", chat_shared::EXIT_MESSAGE),
        ];
        for (what, msg) in cases {
            let message = Message::new(name, msg, 1_420_070_400_000);
            for own in [false, true] {
                let html = view_message(&message, own, clock.clone());
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
}
