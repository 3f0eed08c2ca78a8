//! Being in the room: joining, the long-poll loop, reconnecting, and leaving.
//!
//! One task runs per (nickname, run) pair: it leaves under the previous name if there was one,
//! joins under the new one unless the server already has it, then pops forever from the last
//! `time` it saw. A failed request never ends the loop: the task waits a backoff delay (shown
//! as "reconnecting in N s") and tries again from the same `time`, so nothing is missed; after
//! an outage the server answers at once while it has more than a page, which catches up.
//!
//! The task is restarted (cancelling any request in flight) when the nickname changes, when
//! the browser comes back online (no point waiting out the backoff), and when the page returns
//! from the back/forward cache (the exit sent on `pagehide`, a beacon or a keepalive fetch,
//! made us leave, so it joins again).

use std::cell::RefCell;
use std::rc::Rc;

use chat_shared::{ChatRequest, Cursor, ErrorCode, Message, JOIN_MESSAGE};
use futures::future;
use gloo_events::EventListener;
use gloo_timers::future::TimeoutFuture;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;
use web_sys::PageTransitionEvent;
use yew::prelude::*;

use crate::errors::{describe_wire_error, is_retryable};
use crate::services::backoff::backoff_delay;
use crate::services::exit;
use crate::services::jsonp::{JsonpClient, POLL_TIMEOUT, REQUEST_TIMEOUT};
use crate::services::storage;
use crate::state::{Action, State};

/// What outlives one run of the session task. Borrowed briefly, never across an `.await`.
#[derive(Debug, Default)]
struct SessionMemory {
    /// The name the server saw us join as (and no exit since).
    joined_as: Option<String>,
    /// The `time` of the last good answer: the next pop continues from here.
    cursor: Option<Cursor>,
}

type Memory = Rc<RefCell<SessionMemory>>;
type Dispatcher = UseReducerDispatcher<State>;

/// Keeps the page in the room as `nickname` (nowhere when `None`) and reports everything
/// through `dispatcher`: answers, failures, the browser's online flag, a refused name.
#[hook]
pub fn use_chat_session(client: Rc<JsonpClient>, nickname: Option<String>, dispatcher: Dispatcher) {
    let memory: Memory = use_mut_ref(SessionMemory::default);
    // Bumping `run` restarts the task; the counter behind it lives in a ref because the
    // listeners that bump it are created once.
    let run = use_state_eq(|| 0u32);
    let run_counter = use_mut_ref(|| 0u32);

    {
        let client = client.clone();
        let memory = memory.clone();
        let dispatcher = dispatcher.clone();
        let set_run = run.setter();
        let restart: Rc<dyn Fn()> = Rc::new(move || {
            let mut counter = run_counter.borrow_mut();
            *counter = counter.wrapping_add(1);
            set_run.set(*counter);
        });
        use_effect_with((), move |_| {
            let listeners = listen_to_page(&client, &memory, &dispatcher, &restart);
            // Dropping an `EventListener` removes it.
            move || drop(listeners)
        });
    }

    use_effect_with((nickname, *run), move |(nickname, _)| {
        let abort = nickname.clone().map(|name| {
            let (task, abort) = future::abortable(run_session(client, name, memory, dispatcher));
            spawn_local(async move {
                // `Err(Aborted)` is the normal end: the destructor below cancelled it.
                let _ended = task.await;
            });
            abort
        });
        // Cancelling drops the request in flight, which removes its `<script>`.
        move || {
            if let Some(abort) = abort {
                abort.abort();
            }
        }
    });
}

/// Listens for the network going and coming, and for the page being hidden or shown again.
fn listen_to_page(
    client: &Rc<JsonpClient>,
    memory: &Memory,
    dispatcher: &Dispatcher,
    restart: &Rc<dyn Fn()>,
) -> Vec<EventListener> {
    let Some(window) = web_sys::window() else {
        return Vec::new();
    };
    dispatcher.dispatch(Action::BrowserOnline(window.navigator().on_line()));

    let on_online = {
        let dispatcher = dispatcher.clone();
        let restart = restart.clone();
        EventListener::new(&window, "online", move |_| {
            dispatcher.dispatch(Action::BrowserOnline(true));
            restart();
        })
    };
    let on_offline = {
        let dispatcher = dispatcher.clone();
        EventListener::new(&window, "offline", move |_| {
            dispatcher.dispatch(Action::BrowserOnline(false));
        })
    };
    // `pagehide` rather than `beforeunload`/`unload`: it fires on every way of leaving,
    // mobile included, and does not keep the page out of the back/forward cache.
    let on_page_hide = {
        let client = client.clone();
        let memory = memory.clone();
        EventListener::new(&window, "pagehide", move |_| {
            let (joined_as, cursor) = {
                let mut memory = memory.borrow_mut();
                (memory.joined_as.take(), memory.cursor)
            };
            if let Some(name) = joined_as {
                exit::send_exit(&client.exit_url(&name, cursor.unwrap_or(Cursor::START)));
            }
        })
    };
    let on_page_show = {
        let restart = restart.clone();
        EventListener::new(&window, "pageshow", move |event| {
            let restored = event
                .dyn_ref::<PageTransitionEvent>()
                .is_some_and(PageTransitionEvent::persisted);
            if restored {
                restart();
            }
        })
    };
    vec![on_online, on_offline, on_page_hide, on_page_show]
}

/// One run of the session: join if needed, then poll until cancelled or the name is refused.
async fn run_session(
    client: Rc<JsonpClient>,
    name: String,
    memory: Memory,
    dispatcher: Dispatcher,
) {
    let already_joined = memory.borrow().joined_as.as_deref() == Some(name.as_str());
    let first_visit = memory.borrow().cursor.is_none();
    if !already_joined && !join(&client, &name, &memory, &dispatcher).await {
        return;
    }
    if first_visit {
        load_recent_history(&client, &name, &memory, &dispatcher).await;
    }
    poll(&client, &name, &memory, &dispatcher).await;
}

/// How many of the room's newest messages a newcomer sees at once.
pub const HISTORY_ON_ARRIVAL: usize = 50;

/// Shows the room's newest messages on arrival (a pop with `last`, answered at once), and
/// polls on from the newest. Best effort: when it fails, polling starts from our join line.
async fn load_recent_history(
    client: &JsonpClient,
    name: &str,
    memory: &Memory,
    dispatcher: &Dispatcher,
) {
    let cursor = memory.borrow().cursor.unwrap_or(Cursor::START);
    let request = ChatRequest::pop(name, cursor).with_last(HISTORY_ON_ARRIVAL);
    if let Ok(answer) = client.send(&request, REQUEST_TIMEOUT).await {
        if answer.error.is_none() {
            memory.borrow_mut().cursor = Some(Cursor::from_millis(answer.time));
            dispatcher.dispatch(Action::Received {
                messages: answer.msg_list,
                online: answer.online,
                online_count: answer.online_count,
            });
        }
    }
}

/// Leaves under the previous name, if any, then joins as `name`, retrying until the server
/// answers. Returns false when the server refused the name.
async fn join(client: &JsonpClient, name: &str, memory: &Memory, dispatcher: &Dispatcher) -> bool {
    let previous = memory.borrow_mut().joined_as.take();
    if let Some(previous) = previous {
        let cursor = memory.borrow().cursor.unwrap_or(Cursor::START);
        // Best effort, once: the room only misses a "left" line if this is lost.
        let _ignored = client
            .send(&ChatRequest::exit(&previous, cursor), REQUEST_TIMEOUT)
            .await;
    }

    let mut attempt = 0;
    loop {
        let failure = match client.send(&ChatRequest::join(name), REQUEST_TIMEOUT).await {
            Ok(answer) => match answer.error {
                None => {
                    {
                        let mut memory = memory.borrow_mut();
                        memory.joined_as = Some(name.to_owned());
                        // A first join starts the history at our own join line; after a name
                        // change, polling continues where it was so nothing in between is lost.
                        memory
                            .cursor
                            .get_or_insert(Cursor::from_millis(answer.time));
                    }
                    // The join answer's `time` is our join line's; show it without waiting for
                    // a pop (which only returns messages newer than the cursor).
                    let join_line = Message {
                        name: name.to_owned(),
                        msg: JOIN_MESSAGE.to_owned(),
                        time: answer.time,
                        cid: None,
                    };
                    dispatcher.dispatch(Action::Received {
                        messages: vec![join_line],
                        online: answer.online,
                        online_count: answer.online_count,
                    });
                    return true;
                }
                Some(error) if is_retryable(error.code) => describe_wire_error(&error),
                Some(error) => {
                    refuse_name(memory, dispatcher, describe_wire_error(&error));
                    return false;
                }
            },
            Err(error) => error.to_string(),
        };
        attempt += 1;
        wait_before_retry(attempt, failure, dispatcher).await;
    }
}

/// Pops forever from the last `time`; returns only when the server refuses the name.
async fn poll(client: &JsonpClient, name: &str, memory: &Memory, dispatcher: &Dispatcher) {
    let mut attempt = 0;
    loop {
        let cursor = memory.borrow().cursor.unwrap_or(Cursor::START);
        let failure = match client
            .send(&ChatRequest::pop(name, cursor), POLL_TIMEOUT)
            .await
        {
            Ok(answer) => match answer.error {
                None => {
                    attempt = 0;
                    // Taken as is, even when it goes backwards: a server that lost its newest
                    // messages answers with its own newest time, and only that cursor gets us
                    // new messages again.
                    memory.borrow_mut().cursor = Some(Cursor::from_millis(answer.time));
                    dispatcher.dispatch(Action::Received {
                        messages: answer.msg_list,
                        online: answer.online,
                        online_count: answer.online_count,
                    });
                    continue;
                }
                // Not a refusal: the messages that are left, from the oldest kept on.
                Some(error) if error.code == ErrorCode::HistoryTrimmed => {
                    attempt = 0;
                    memory.borrow_mut().cursor = Some(Cursor::from_millis(answer.time));
                    dispatcher.dispatch(Action::HistoryTrimmed);
                    dispatcher.dispatch(Action::Received {
                        messages: answer.msg_list,
                        online: answer.online,
                        online_count: answer.online_count,
                    });
                    continue;
                }
                // The cursor is kept: an error answer's `time` may be past messages we have
                // not seen.
                Some(error) if is_retryable(error.code) => describe_wire_error(&error),
                Some(error) => {
                    refuse_name(memory, dispatcher, describe_wire_error(&error));
                    return;
                }
            },
            Err(error) => error.to_string(),
        };
        attempt += 1;
        wait_before_retry(attempt, failure, dispatcher).await;
    }
}

/// The server will not take this name: forget it and ask for another.
fn refuse_name(memory: &Memory, dispatcher: &Dispatcher, reason: String) {
    memory.borrow_mut().joined_as = None;
    storage::forget_nickname();
    dispatcher.dispatch(Action::NicknameRefused { reason });
}

/// Reports the failure with the time of the next attempt, then waits until then.
async fn wait_before_retry(attempt: u32, reason: String, dispatcher: &Dispatcher) {
    let delay = backoff_delay(attempt, js_sys::Math::random());
    dispatcher.dispatch(Action::ConnectionLost {
        retry_at_ms: js_sys::Date::now() + delay.as_secs_f64() * 1000.0,
        reason,
    });
    TimeoutFuture::new(u32::try_from(delay.as_millis()).unwrap_or(u32::MAX)).await;
}
