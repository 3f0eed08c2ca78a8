//! Scrolling back: when the reader reaches the top of the message list, the page asks for the
//! messages just older than the oldest shown (`last=50&before=<its time>`, answered at once;
//! `docs/protocol.md`, "Earlier history") and prepends them, keeping what the reader was
//! looking at where it was.
//!
//! The list is `#messages`, rendered by `MessageList`; this hook only listens to its scroll
//! events and moves its scroll position, so the list's own rendering stays its own. Keeping the
//! place: just before the page is handed to the reducer, the hook notes how far the oldest
//! shown message (the page's `before`) is from the list's top edge; once the page is in the
//! DOM, it scrolls by however far that message moved. Measuring that one message, rather than
//! the list's height, is right even when new messages arrive at the bottom in the same render.

use std::cell::RefCell;
use std::rc::Rc;

use chat_shared::{ChatRequest, Cursor};
use gloo_events::EventListener;
use gloo_timers::future::TimeoutFuture;
use wasm_bindgen_futures::spawn_local;
use web_sys::Element;
use yew::prelude::*;

use crate::services::jsonp::{JsonpClient, REQUEST_TIMEOUT};
use crate::state::{Action, Earlier, State};

/// How many messages one page of earlier history holds (as many as the page shows on arrival).
pub const EARLIER_PAGE: usize = crate::hooks::use_chat_session::HISTORY_ON_ARRIVAL;

/// How close to the top, in CSS pixels, counts as "at the top": the next page is asked for a
/// little before the reader hits the edge.
const AT_TOP_SLACK_PX: i32 = 48;

/// How long after a failed page the page may be asked for again, in ms: a reader waiting at the
/// top is not left without it, and a server in trouble is not asked in a loop.
const RETRY_AFTER_MS: u32 = 2_000;

/// The `id` of the scrolling message list (`MessageList`'s `<ol>`).
const LIST_ID: &str = "messages";

/// Where the oldest shown message was, before a page was prepended above it.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    /// Its time (`data-time`).
    time: u64,
    /// Its top edge below the list's top edge, in CSS pixels.
    offset: f64,
}

/// What the scroll listener and the request task need of the latest render. Borrowed briefly,
/// never across an `.await`.
#[derive(Debug, Default)]
struct Latest {
    name: Option<String>,
    earlier: Earlier,
    oldest: Option<u64>,
    /// A request is on its way (the reducer's `Loading` may not have rendered yet when the
    /// next scroll event comes).
    in_flight: bool,
    /// Set when a page is handed to the reducer; used once that render is in the DOM.
    anchor: Option<Anchor>,
    /// [`Latest::earlier`] as the last run of the after-render effect saw it.
    seen_earlier: Earlier,
}

type Shared = Rc<RefCell<Latest>>;
type Dispatcher = UseReducerDispatcher<State>;

/// Loads earlier history into the page while the reader is at the top of `#messages`, as
/// `nickname` (nothing is loaded without one). `earlier` and `oldest` are the reducer's
/// [`State::earlier`] and [`State::oldest_time`].
#[hook]
pub fn use_earlier_history(
    client: Rc<JsonpClient>,
    nickname: Option<String>,
    earlier: Earlier,
    oldest: Option<u64>,
    dispatcher: Dispatcher,
) {
    let latest: Shared = use_mut_ref(Latest::default);
    {
        let mut latest = latest.borrow_mut();
        latest.name = nickname.clone();
        latest.earlier = earlier;
        latest.oldest = oldest;
    }

    // The list exists while the page is in the room.
    {
        let client = client.clone();
        let latest = latest.clone();
        let dispatcher = dispatcher.clone();
        use_effect_with(nickname.is_some(), move |in_room| {
            let listener = in_room.then(list).flatten().map(|element| {
                let watched = element.clone();
                EventListener::new(&element, "scroll", move |_| {
                    if watched.scroll_top() <= AT_TOP_SLACK_PX {
                        load_earlier(&client, &latest, &dispatcher);
                    }
                })
            });
            move || drop(listener)
        });
    }

    // After each page (and after a failure): keep the reader's place, then ask for more if the
    // reader is still at the top (no scroll event would come), or whenever the list is too
    // short to scroll at all. Not "at the top" on arrival: the list may not have been scrolled
    // to its bottom yet when this runs.
    use_effect_with((oldest, earlier), move |(_, earlier)| {
        let (anchor, after_loading) = {
            let mut latest = latest.borrow_mut();
            let after_loading = latest.seen_earlier == Earlier::Loading;
            latest.seen_earlier = *earlier;
            (latest.anchor.take(), after_loading)
        };
        if let Some(element) = list() {
            if let Some(anchor) = anchor {
                if let Some(offset) = offset_in_list(&element, anchor.time) {
                    element.scroll_by_with_x_and_y(0.0, offset - anchor.offset);
                }
            }
            let short = element.scroll_height() <= element.client_height();
            let at_top = element.scroll_top() <= AT_TOP_SLACK_PX;
            if short || (after_loading && at_top) {
                load_earlier(&client, &latest, &dispatcher);
            }
        }
    });
}

/// Asks for the page before the oldest shown message, unless one is on its way or there is
/// none to ask for.
fn load_earlier(client: &Rc<JsonpClient>, latest: &Shared, dispatcher: &Dispatcher) {
    let (name, before) = {
        let mut latest = latest.borrow_mut();
        if latest.in_flight || latest.earlier != Earlier::More {
            return;
        }
        let (Some(name), Some(oldest)) = (latest.name.clone(), latest.oldest) else {
            return;
        };
        latest.in_flight = true;
        (name, Cursor::from_millis(oldest))
    };
    dispatcher.dispatch(Action::EarlierRequested);
    let client = client.clone();
    let latest = latest.clone();
    let dispatcher = dispatcher.clone();
    spawn_local(async move {
        // The pop's own `time` is not used by a `before` page; the oldest time is as good as any.
        let request = ChatRequest::pop(&name, before).with_before(EARLIER_PAGE, before);
        match client.send(&request, REQUEST_TIMEOUT).await {
            Ok(answer) if answer.error.is_none() => {
                let anchor = list().and_then(|element| {
                    let time = before.as_millis();
                    offset_in_list(&element, time).map(|offset| Anchor { time, offset })
                });
                {
                    let mut latest = latest.borrow_mut();
                    latest.in_flight = false;
                    latest.anchor = anchor;
                }
                // `time` 0: nothing older. An empty page with more is not possible by the
                // protocol; taken as the beginning, so the page never asks in a loop.
                let more = answer.time != 0 && !answer.msg_list.is_empty();
                dispatcher.dispatch(Action::EarlierReceived {
                    messages: answer.msg_list,
                    more,
                });
            }
            _ => {
                TimeoutFuture::new(RETRY_AFTER_MS).await;
                latest.borrow_mut().in_flight = false;
                dispatcher.dispatch(Action::EarlierFailed);
            }
        }
    });
}

/// The message list, when it is on the page.
fn list() -> Option<Element> {
    web_sys::window()?.document()?.get_element_by_id(LIST_ID)
}

/// How far the top edge of the message with time `time` is below the list's top edge, in CSS
/// pixels (negative when scrolled above it).
fn offset_in_list(list: &Element, time: u64) -> Option<f64> {
    let line = list
        .query_selector(&format!("li[data-time=\"{time}\"]"))
        .ok()??;
    Some(line.get_bounding_client_rect().top() - list.get_bounding_client_rect().top())
}
