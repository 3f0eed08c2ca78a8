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
//!
//! Tabs of the page in the same room under the same name share one poll (see
//! [`crate::services::tabs`]): each shows the room's recent history itself, then waits to lead
//! its tab group; meanwhile it shows what the leader relays. Only the leader joins (when no
//! tab of the group has) and polls, and a closing tab sends the exit only when it is the
//! group's last.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use chat_shared::{ChatRequest, Cursor, ErrorCode, Message, RoomName, JOIN_MESSAGE};
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
use crate::services::tabs::{fresh_tab_id, group_key, TabEvent, TabGroup};
use crate::state::{Action, PollRole, State};

/// What outlives one run of the session task. Borrowed briefly, never across an `.await`.
#[derive(Debug)]
struct SessionMemory {
    /// The name the server saw us join as (and no exit since); in a tab group, also set when
    /// the leader says it has joined.
    joined_as: Option<String>,
    /// The `time` of the last good answer: the next pop continues from here. In a tab group,
    /// the leader's.
    cursor: Option<Cursor>,
    /// This tab's id in tab groups, the same for the page's life.
    tab_id: String,
    /// The tab group of the current run, when the browser has one.
    group: Weak<TabGroup>,
    /// Whether this tab leads its group (polls for all).
    leading: bool,
    /// The `presenceTag` of the online list shown (empty: none yet), sent as `presence` so
    /// that answers carry the list only when it changed.
    presence_tag: String,
}

impl Default for SessionMemory {
    fn default() -> SessionMemory {
        SessionMemory {
            joined_as: None,
            cursor: None,
            tab_id: fresh_tab_id(),
            group: Weak::new(),
            leading: false,
            presence_tag: String::new(),
        }
    }
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
            let (joined_as, cursor, group) = {
                let mut memory = memory.borrow_mut();
                (
                    memory.joined_as.take(),
                    memory.cursor,
                    memory.group.upgrade(),
                )
            };
            // One person with several tabs open leaves when the last of them closes.
            if let Some(group) = group {
                group.say_closing();
                if group.has_other_tabs() {
                    return;
                }
            }
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
/// In a tab group, only while leading it (see the module docs).
async fn run_session(
    client: Rc<JsonpClient>,
    name: String,
    memory: Memory,
    dispatcher: Dispatcher,
) {
    let room = client.room().map(RoomName::as_str);
    let key = group_key(client.base_url(), room, &name);
    let tab_id = memory.borrow().tab_id.clone();
    let group = TabGroup::join(key, tab_id, follow_leader(&name, &memory, &dispatcher));
    let _membership = Membership::new(&memory, group.as_ref());
    let relay = Relay {
        dispatcher,
        group: group.clone(),
    };

    let first_visit = memory.borrow().cursor.is_none();
    let Some(group) = group else {
        // No tab group: this tab polls on its own.
        relay.dispatcher.dispatch(Action::PollRole(PollRole::Alone));
        let already_joined = memory.borrow().joined_as.as_deref() == Some(name.as_str());
        if !already_joined && !join(&client, &name, &memory, &relay).await {
            return;
        }
        if first_visit {
            load_recent_history(&client, &name, &memory, &relay.dispatcher).await;
        }
        poll(&client, &name, &memory, &relay).await;
        return;
    };

    // The group's first tab leads at once: it joins, then shows the room's recent history
    // (ending with its own join line), as a tab alone does. Another tab shows the recent
    // history at once (a pop answered at once holds no connection), then follows the leader
    // until it leads.
    let (_leadership, history_loaded) = match group.try_lead().await {
        Some(leadership) => (leadership, false),
        None => {
            relay
                .dispatcher
                .dispatch(Action::PollRole(PollRole::Follower));
            if first_visit {
                load_recent_history(&client, &name, &memory, &relay.dispatcher).await;
            }
            (group.lead().await, first_visit)
        }
    };
    let _leading = Leading::new(&memory);
    relay
        .dispatcher
        .dispatch(Action::PollRole(PollRole::Leader));
    let already_joined = memory.borrow().joined_as.as_deref() == Some(name.as_str());
    if !already_joined && !join(&client, &name, &memory, &relay).await {
        return;
    }
    if first_visit && !history_loaded {
        load_recent_history(&client, &name, &memory, &relay.dispatcher).await;
    }
    let cursor = memory.borrow().cursor.unwrap_or(Cursor::START);
    group.post(&TabEvent::Leading {
        cursor: cursor.as_millis(),
    });
    poll(&client, &name, &memory, &relay).await;
}

/// How a follower tab takes what its group's other tabs say.
fn follow_leader(
    name: &str,
    memory: &Memory,
    dispatcher: &Dispatcher,
) -> impl Fn(&TabGroup, TabEvent) + 'static {
    let name = name.to_owned();
    let memory = memory.clone();
    let dispatcher = dispatcher.clone();
    move |group: &TabGroup, event: TabEvent| {
        let leading = memory.borrow().leading;
        match event {
            TabEvent::Opened { .. } => {
                group.refresh_others();
                let (joined, cursor) = {
                    let memory = memory.borrow();
                    (memory.joined_as.is_some(), memory.cursor)
                };
                if let (true, true, Some(cursor)) = (leading, joined, cursor) {
                    group.post(&TabEvent::Leading {
                        cursor: cursor.as_millis(),
                    });
                }
            }
            TabEvent::Closing { .. } => group.refresh_others(),
            // A leader only ever hears these from a tab that led before it.
            _ if leading => {}
            TabEvent::Leading { cursor } => {
                let mut memory = memory.borrow_mut();
                memory.joined_as = Some(name.clone());
                memory.cursor = Some(Cursor::from_millis(cursor));
            }
            TabEvent::Answer {
                cursor,
                messages,
                online,
                online_count,
                presence_tag,
                trimmed,
            } => {
                {
                    let mut memory = memory.borrow_mut();
                    memory.joined_as = Some(name.clone());
                    memory.cursor = Some(Cursor::from_millis(cursor));
                    // The tag of the list shown, for when this tab leads.
                    if let Some(tag) = presence_tag {
                        memory.presence_tag = tag;
                    }
                }
                group.refresh_others();
                if trimmed {
                    dispatcher.dispatch(Action::HistoryTrimmed);
                }
                dispatcher.dispatch(Action::Received {
                    messages,
                    online,
                    online_count,
                });
            }
            TabEvent::Lost {
                retry_at_ms,
                reason,
            } => dispatcher.dispatch(Action::ConnectionLost {
                retry_at_ms,
                reason,
            }),
        }
    }
}

/// Keeps [`SessionMemory::group`] pointing at the run's tab group while the run lasts.
struct Membership {
    memory: Memory,
}

impl Membership {
    fn new(memory: &Memory, group: Option<&Rc<TabGroup>>) -> Membership {
        memory.borrow_mut().group = group.map(Rc::downgrade).unwrap_or_default();
        Membership {
            memory: memory.clone(),
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.memory.borrow_mut().group = Weak::new();
    }
}

/// Keeps [`SessionMemory::leading`] set while this tab leads.
struct Leading {
    memory: Memory,
}

impl Leading {
    fn new(memory: &Memory) -> Leading {
        memory.borrow_mut().leading = true;
        Leading {
            memory: memory.clone(),
        }
    }
}

impl Drop for Leading {
    fn drop(&mut self) {
        self.memory.borrow_mut().leading = false;
    }
}

/// Shows what the poll loop learns, and relays it to the other tabs of the group when this
/// tab leads one.
struct Relay {
    dispatcher: Dispatcher,
    group: Option<Rc<TabGroup>>,
}

impl Relay {
    /// An answer: `messages` to show, who is online, and the cursor after it.
    fn answer(
        &self,
        cursor: Cursor,
        messages: Vec<Message>,
        online: Option<Vec<String>>,
        online_count: Option<u64>,
        presence_tag: Option<String>,
        trimmed: bool,
    ) {
        // This tab first, so that it never shows less than the tabs it relays to.
        let relayed = self.group.as_ref().map(|_| TabEvent::Answer {
            cursor: cursor.as_millis(),
            messages: messages.clone(),
            online: online.clone(),
            online_count,
            presence_tag,
            trimmed,
        });
        if trimmed {
            self.dispatcher.dispatch(Action::HistoryTrimmed);
        }
        self.dispatcher.dispatch(Action::Received {
            messages,
            online,
            online_count,
        });
        if let (Some(group), Some(event)) = (&self.group, relayed) {
            group.post(&event);
            group.refresh_others();
        }
    }

    /// A failed request; the next attempt starts at `retry_at_ms` (ms since the Unix epoch).
    fn lost(&self, retry_at_ms: f64, reason: String) {
        if let Some(group) = &self.group {
            group.post(&TabEvent::Lost {
                retry_at_ms,
                reason: reason.clone(),
            });
        }
        self.dispatcher.dispatch(Action::ConnectionLost {
            retry_at_ms,
            reason,
        });
    }
}

/// How many of the room's newest messages a newcomer sees at once.
pub const HISTORY_ON_ARRIVAL: usize = 50;

/// Shows the room's newest messages on arrival (a pop with `last`, answered at once), says
/// whether there are earlier ones to scroll back to, and polls on from the newest. Best effort: when it fails, polling starts from our join line.
async fn load_recent_history(
    client: &JsonpClient,
    name: &str,
    memory: &Memory,
    dispatcher: &Dispatcher,
) {
    let cursor = memory.borrow().cursor.unwrap_or(Cursor::START);
    let request = ChatRequest::pop(name, cursor)
        .with_last(HISTORY_ON_ARRIVAL)
        .with_presence(&presence_tag(memory));
    if let Ok(answer) = client.send(&request, REQUEST_TIMEOUT).await {
        if answer.error.is_none() {
            keep_presence_tag(memory, answer.presence_tag.as_deref());
            // Never back: in a tab group the leader's answers may already have moved it on
            // (anything between is in this answer or in theirs).
            let newest = Cursor::from_millis(answer.time);
            {
                let mut memory = memory.borrow_mut();
                memory.cursor = Some(memory.cursor.map_or(newest, |cursor| cursor.max(newest)));
            }
            // A full page may have more before it; a short one is the whole room.
            let more = answer.msg_list.len() >= HISTORY_ON_ARRIVAL;
            dispatcher.dispatch(Action::Received {
                messages: answer.msg_list,
                online: answer.online,
                online_count: answer.online_count,
            });
            dispatcher.dispatch(Action::ArrivalHistory { more });
        }
    }
}

/// Leaves under the previous name, if any (unless another tab still uses it), then joins as
/// `name`, retrying until the server answers. Returns false when the server refused the name.
async fn join(client: &JsonpClient, name: &str, memory: &Memory, relay: &Relay) -> bool {
    let previous = memory.borrow_mut().joined_as.take();
    if let Some(previous) = previous {
        let room = client.room().map(RoomName::as_str);
        let previous_group = group_key(client.base_url(), room, &previous);
        let tab_id = memory.borrow().tab_id.clone();
        if !TabGroup::others_open(&previous_group, &tab_id).await {
            let cursor = memory.borrow().cursor.unwrap_or(Cursor::START);
            // Best effort, once: the room only misses a "left" line if this is lost.
            let _ignored = client
                .send(&ChatRequest::exit(&previous, cursor), REQUEST_TIMEOUT)
                .await;
        }
    }

    let mut attempt = 0;
    loop {
        let request = ChatRequest::join(name).with_presence(&presence_tag(memory));
        let failure = match client.send(&request, REQUEST_TIMEOUT).await {
            Ok(answer) => match answer.error {
                None => {
                    keep_presence_tag(memory, answer.presence_tag.as_deref());
                    let cursor = {
                        let mut memory = memory.borrow_mut();
                        memory.joined_as = Some(name.to_owned());
                        // A first join starts the history at our own join line; after a name
                        // change, polling continues where it was so nothing in between is lost.
                        *memory
                            .cursor
                            .get_or_insert(Cursor::from_millis(answer.time))
                    };
                    // The join answer's `time` is our join line's; show it without waiting for
                    // a pop (which only returns messages newer than the cursor).
                    let join_line = Message {
                        name: name.to_owned(),
                        msg: JOIN_MESSAGE.to_owned(),
                        time: answer.time,
                        cid: None,
                    };
                    relay.answer(
                        cursor,
                        vec![join_line],
                        answer.online,
                        answer.online_count,
                        answer.presence_tag,
                        false,
                    );
                    return true;
                }
                Some(error) if is_retryable(error.code) => describe_wire_error(&error),
                Some(error) => {
                    refuse_name(memory, &relay.dispatcher, describe_wire_error(&error));
                    return false;
                }
            },
            Err(error) => error.to_string(),
        };
        attempt += 1;
        wait_before_retry(attempt, failure, relay).await;
    }
}

/// Pops forever from the last `time`; returns only when the server refuses the name.
async fn poll(client: &JsonpClient, name: &str, memory: &Memory, relay: &Relay) {
    let mut attempt = 0;
    loop {
        let cursor = memory.borrow().cursor.unwrap_or(Cursor::START);
        let failure = match client
            .send(
                &ChatRequest::pop(name, cursor).with_presence(&presence_tag(memory)),
                POLL_TIMEOUT,
            )
            .await
        {
            Ok(answer) => {
                // `history_trimmed` is not a refusal: the messages that are left, from the
                // oldest kept on.
                let trimmed = answer
                    .error
                    .as_ref()
                    .is_some_and(|error| error.code == ErrorCode::HistoryTrimmed);
                match answer.error {
                    // The cursor is kept: an error answer's `time` may be past messages we
                    // have not seen.
                    Some(error) if !trimmed => {
                        if !is_retryable(error.code) {
                            refuse_name(memory, &relay.dispatcher, describe_wire_error(&error));
                            return;
                        }
                        describe_wire_error(&error)
                    }
                    _ => {
                        attempt = 0;
                        keep_presence_tag(memory, answer.presence_tag.as_deref());
                        // Taken as is, even when it goes backwards: a server that lost its
                        // newest messages answers with its own newest time, and only that
                        // cursor gets us new messages again.
                        let cursor = Cursor::from_millis(answer.time);
                        memory.borrow_mut().cursor = Some(cursor);
                        relay.answer(
                            cursor,
                            answer.msg_list,
                            answer.online,
                            answer.online_count,
                            answer.presence_tag,
                            trimmed,
                        );
                        continue;
                    }
                }
            }
            Err(error) => error.to_string(),
        };
        attempt += 1;
        wait_before_retry(attempt, failure, relay).await;
    }
}

/// The `presence` to send: the tag of the online list shown.
fn presence_tag(memory: &Memory) -> String {
    memory.borrow().presence_tag.clone()
}

/// Remembers the tag of an answer's online list (an answer without one leaves it).
fn keep_presence_tag(memory: &Memory, tag: Option<&str>) {
    if let Some(tag) = tag {
        memory.borrow_mut().presence_tag = tag.to_owned();
    }
}

/// The server will not take this name: forget it and ask for another.
fn refuse_name(memory: &Memory, dispatcher: &Dispatcher, reason: String) {
    memory.borrow_mut().joined_as = None;
    storage::forget_nickname();
    dispatcher.dispatch(Action::NicknameRefused { reason });
}

/// Reports the failure with the time of the next attempt, then waits until then.
async fn wait_before_retry(attempt: u32, reason: String, relay: &Relay) {
    let delay = backoff_delay(attempt, js_sys::Math::random());
    relay.lost(js_sys::Date::now() + delay.as_secs_f64() * 1000.0, reason);
    TimeoutFuture::new(u32::try_from(delay.as_millis()).unwrap_or(u32::MAX)).await;
}
