//! Many tabs, one long poll: the tabs of this page that talk to the same server, in the same
//! room, under the same nickname (a *tab group*) share one held pop.
//!
//! Why: a browser opens at most 6 connections to one host. With one held pop per tab, six tabs
//! fill them all, and a send from any tab then waits in the browser until a pop is answered
//! (up to the server's 25 s hold); tabs seven and up cannot even connect.
//!
//! How:
//! - **Leader election** with the Web Locks API (`navigator.locks`). Every tab of a group asks
//!   for the lock named after the group ([`group_key`]); the browser grants it to one tab at a
//!   time, the *leader*, and hands it to the next waiting tab the moment the leader's tab
//!   closes, crashes or ends its session. Only the leader joins and polls.
//! - **Fan-out to the other tabs** over a `BroadcastChannel` of the same name: the leader posts
//!   every answer it gets (messages, who is online, its cursor after the answer) and every
//!   failure of its poll loop ([`TabEvent`]). The others (*followers*) show them as if they had
//!   polled, and keep the leader's cursor, so whichever tab leads next continues from there: no
//!   gap, and no message shown twice (the page merges messages by time).
//! - **Sends** go from the tab where the reader typed: a push is answered at once, so it never
//!   holds a connection, and with one held pop per group five connections stay free.
//! - **Who is still here**: each tab also holds a lock of its own for its lifetime
//!   (`<group>#tab#<id>`). The browser releases it when the tab goes, so a query of the held
//!   locks lists the group's open tabs. A closing tab sends the exit only when it is the last
//!   one (one person with three tabs open is in the room until the last is closed).
//!
//! Where `navigator.locks` or `BroadcastChannel` is missing (old browsers, some embedded
//! views), [`TabGroup::join`] returns `None` and each tab polls on its own, as before.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::{Rc, Weak};

use chat_shared::Message;
use futures::channel::oneshot;
use js_sys::{Array, Function, Promise, Reflect};
use serde::{Deserialize, Serialize};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{BroadcastChannel, MessageEvent};

#[wasm_bindgen]
extern "C" {
    /// `navigator.locks` (the Web Locks API). Bound here rather than through web-sys, whose
    /// binding needs the `web_sys_unstable_apis` cfg for the whole build.
    type LockManager;

    /// `locks.request(name, callback)`: `callback` runs once the lock is granted, and the lock
    /// is held until the promise it returns settles.
    #[wasm_bindgen(method, js_name = request)]
    fn request(this: &LockManager, name: &str, callback: &JsValue) -> Promise;

    /// `locks.request(name, options, callback)`; with `{ifAvailable: true}`, `callback` runs
    /// at once, with `null` when another holds the lock.
    #[wasm_bindgen(method, js_name = request)]
    fn request_with_options(
        this: &LockManager,
        name: &str,
        options: &JsValue,
        callback: &JsValue,
    ) -> Promise;

    /// `locks.query()`: a promise of `{held: [{name, ...}], pending: [...]}`.
    #[wasm_bindgen(method)]
    fn query(this: &LockManager) -> Promise;
}

/// What one tab of a group tells the others, as JSON over the group's `BroadcastChannel`.
///
/// This crosses tabs that may run different builds of the page (one reloaded after a deploy,
/// one not): fields are added with `#[serde(default)]`, never renamed, and an event a tab
/// cannot read is ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TabEvent {
    /// A tab of the group opened (so the others refresh their list of tabs, and the leader
    /// tells it where it is with [`TabEvent::Leading`]).
    Opened {
        /// The new tab's id.
        tab: String,
    },
    /// A tab of the group is closing (sent from its `pagehide`).
    Closing {
        /// The closing tab's id.
        tab: String,
    },
    /// The leader has joined and polls from `cursor` (the answer to [`TabEvent::Opened`], and
    /// the first thing a new leader says).
    Leading {
        /// The leader's cursor: the `time` of its last answer, in ms.
        cursor: u64,
    },
    /// An answer the leader's poll (or join) got.
    Answer {
        /// The leader's cursor after this answer (the answer's `time`), in ms.
        cursor: u64,
        /// The answer's messages (`msgList`, or the leader's own join line).
        messages: Vec<Message>,
        /// `online`, when the answer had it.
        online: Option<Vec<String>>,
        /// `onlineCount`, when the answer had it.
        online_count: Option<u64>,
        /// `presenceTag`, when the answer had it: the tag of the online list shown.
        #[serde(default)]
        presence_tag: Option<String>,
        /// The answer said `history_trimmed`.
        #[serde(default)]
        trimmed: bool,
    },
    /// The leader's request failed; it tries again at `retry_at_ms`.
    Lost {
        /// When the leader's next attempt starts, in ms since the Unix epoch.
        retry_at_ms: f64,
        /// Why, in words.
        reason: String,
    },
}

/// The name of the lock and of the channel of the tabs that share a poll: the same server
/// (`base_url`), room (`None`: the legacy room) and nickname.
///
/// Each part is escaped with `|` as separator, so that no two groups share a key.
pub fn group_key(base_url: &str, room: Option<&str>, nickname: &str) -> String {
    let escape = |part: &str| part.replace('\\', "\\\\").replace('|', "\\|");
    format!(
        "chat-poll|{}|{}|{}",
        escape(base_url),
        escape(room.unwrap_or("")),
        escape(nickname)
    )
}

/// The prefix of the per-tab locks of the group `key`.
fn tab_lock_prefix(key: &str) -> String {
    format!("{key}#tab#")
}

/// A fresh id for a tab: the time in ms and random bits, in hex. Made once per page load, so
/// that a name change (a move to another group) can tell its own tab from the others.
pub fn fresh_tab_id() -> String {
    // Both are whole numbers below 2^53, so the casts are exact.
    let now_ms = js_sys::Date::now() as u64;
    let random = (js_sys::Math::random() * 4_503_599_627_370_496.0) as u64;
    format!("{now_ms:x}-{random:x}")
}

/// `navigator.locks`, when the browser has it.
fn lock_manager() -> Option<LockManager> {
    let navigator = web_sys::window()?.navigator();
    let locks = Reflect::get(&navigator, &JsValue::from_str("locks")).ok()?;
    if locks.is_undefined() || locks.is_null() {
        return None;
    }
    Some(locks.unchecked_into())
}

/// This tab's place in a tab group. Dropping it closes the channel and releases this tab's
/// own lock (the leadership, a [`Leadership`], is released by dropping that).
pub struct TabGroup {
    key: String,
    tab_id: String,
    locks: LockManager,
    channel: BroadcastChannel,
    /// The ids of the other tabs of the group believed open: from the last query of the held
    /// locks, less those that said [`TabEvent::Closing`] since.
    others: Rc<RefCell<HashSet<String>>>,
    /// Tabs that said [`TabEvent::Closing`]: a query made while they close may still list them.
    closed: Rc<RefCell<HashSet<String>>>,
    /// Resolving it releases this tab's own lock.
    release_own_lock: Rc<RefCell<Option<Function>>>,
    /// Set once dropped: a lock granted after that is released at once.
    dropped: Rc<Cell<bool>>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

impl TabGroup {
    /// Joins the group `key` (see [`group_key`]) as the tab `tab_id` (see [`fresh_tab_id`]):
    /// opens its channel, takes this tab's own lock and says [`TabEvent::Opened`]. `on_event`
    /// gets every event the other tabs post, with the group (to answer through).
    ///
    /// Returns `None` when the browser lacks `navigator.locks` or `BroadcastChannel`: the tab
    /// then polls on its own.
    pub fn join(
        key: String,
        tab_id: String,
        on_event: impl Fn(&TabGroup, TabEvent) + 'static,
    ) -> Option<Rc<TabGroup>> {
        let locks = lock_manager()?;
        let channel = BroadcastChannel::new(&key).ok()?;
        // The handler reaches the group through this (a strong handle would be a cycle).
        let this: Rc<RefCell<Weak<TabGroup>>> = Rc::new(RefCell::new(Weak::new()));
        let others = Rc::new(RefCell::new(HashSet::new()));
        let closed = Rc::new(RefCell::new(HashSet::new()));

        let on_message = {
            let others = others.clone();
            let closed = closed.clone();
            let this = this.clone();
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                let Some(text) = event.data().as_string() else {
                    return;
                };
                // From a newer or older build of the page: not ours to read.
                let Ok(event) = serde_json::from_str::<TabEvent>(&text) else {
                    return;
                };
                match &event {
                    TabEvent::Opened { tab } => {
                        others.borrow_mut().insert(tab.clone());
                    }
                    TabEvent::Closing { tab } => {
                        others.borrow_mut().remove(tab);
                        closed.borrow_mut().insert(tab.clone());
                    }
                    _ => {}
                }
                let group = this.borrow().upgrade();
                if let Some(group) = group {
                    on_event(&group, event);
                }
            })
        };
        channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));

        let group = Rc::new(TabGroup {
            key,
            tab_id,
            locks,
            channel,
            others,
            closed,
            release_own_lock: Rc::new(RefCell::new(None)),
            dropped: Rc::new(Cell::new(false)),
            _on_message: on_message,
        });
        *this.borrow_mut() = Rc::downgrade(&group);
        group.hold_own_lock();
        group.post(&TabEvent::Opened {
            tab: group.tab_id.clone(),
        });
        group.refresh_others();
        Some(group)
    }

    /// Posts `event` to the other tabs of the group (never to this one).
    pub fn post(&self, event: &TabEvent) {
        // A `TabEvent` always serializes; a closed channel refuses quietly.
        if let Ok(text) = serde_json::to_string(event) {
            let _ignored = self.channel.post_message(&JsValue::from_str(&text));
        }
    }

    /// Whether another tab of the group is believed open (so this one closing is not the
    /// person leaving). Read synchronously from the last query of the held locks, because a
    /// `pagehide` handler cannot wait.
    pub fn has_other_tabs(&self) -> bool {
        !self.others.borrow().is_empty()
    }

    /// Says [`TabEvent::Closing`] (from `pagehide`), so the others stop counting this tab.
    pub fn say_closing(&self) {
        self.post(&TabEvent::Closing {
            tab: self.tab_id.clone(),
        });
    }

    /// Queries the held locks again and keeps the group's other tabs from it (a tab that
    /// crashed without saying [`TabEvent::Closing`] drops out here). Call it whenever the
    /// group changes or an answer arrives; it finishes in the background.
    pub fn refresh_others(&self) {
        let query = self.locks.query();
        let prefix = tab_lock_prefix(&self.key);
        let own = format!("{prefix}{}", self.tab_id);
        let others = self.others.clone();
        let closed = self.closed.clone();
        spawn_local(async move {
            let Ok(snapshot) = JsFuture::from(query).await else {
                return;
            };
            let held = Reflect::get(&snapshot, &JsValue::from_str("held"))
                .ok()
                .map(|held| Array::from(&held))
                .unwrap_or_default();
            let closed = closed.borrow();
            let open: HashSet<String> = held
                .iter()
                .filter_map(|lock| Reflect::get(&lock, &JsValue::from_str("name")).ok())
                .filter_map(|name| name.as_string())
                .filter(|name| *name != own)
                .filter_map(|name| name.strip_prefix(&prefix).map(str::to_owned))
                .filter(|tab| !closed.contains(tab))
                .collect();
            *others.borrow_mut() = open;
        });
    }

    /// Whether the group `key` has a tab other than `tab_id` open right now, asked of the
    /// browser (for a name change, where waiting is fine; see [`TabGroup::has_other_tabs`] for
    /// `pagehide`).
    pub async fn others_open(key: &str, tab_id: &str) -> bool {
        let Some(locks) = lock_manager() else {
            return false;
        };
        let Ok(snapshot) = JsFuture::from(locks.query()).await else {
            return false;
        };
        let prefix = tab_lock_prefix(key);
        let own = format!("{prefix}{tab_id}");
        Reflect::get(&snapshot, &JsValue::from_str("held"))
            .ok()
            .map(|held| Array::from(&held))
            .unwrap_or_default()
            .iter()
            .filter_map(|lock| Reflect::get(&lock, &JsValue::from_str("name")).ok())
            .filter_map(|name| name.as_string())
            .any(|name| name.starts_with(&prefix) && name != own)
    }

    /// Waits until this tab leads the group: at once when no other tab does, else when the
    /// leader's tab closes or its session ends. The lock is held until the [`Leadership`] is
    /// dropped (or the tab goes).
    pub async fn lead(&self) -> Leadership {
        loop {
            let (granted, release) = oneshot::channel::<Option<Function>>();
            let _pending = self.locks.request(&self.key, &hold_until_released(granted));
            // The sender is only dropped unsent when the page is torn down; ask again then.
            if let Ok(Some(release)) = release.await {
                return Leadership { release };
            }
        }
    }

    /// Leads the group if no other tab does right now (`ifAvailable`), else `None` at once.
    pub async fn try_lead(&self) -> Option<Leadership> {
        let (granted, release) = oneshot::channel::<Option<Function>>();
        let options = js_sys::Object::new();
        Reflect::set(&options, &JsValue::from_str("ifAvailable"), &JsValue::TRUE).ok()?;
        let _pending =
            self.locks
                .request_with_options(&self.key, &options, &hold_until_released(granted));
        let release = release.await.ok().flatten()?;
        Some(Leadership { release })
    }

    /// Takes this tab's own lock (held for the group's lifetime), which the others' queries
    /// see.
    fn hold_own_lock(&self) {
        let (granted, release) = oneshot::channel::<Option<Function>>();
        let name = format!("{}{}", tab_lock_prefix(&self.key), self.tab_id);
        let _pending = self.locks.request(&name, &hold_until_released(granted));
        let slot = self.release_own_lock.clone();
        let dropped = self.dropped.clone();
        spawn_local(async move {
            if let Ok(Some(release)) = release.await {
                if dropped.get() {
                    let _ignored = release.call0(&JsValue::NULL);
                } else {
                    *slot.borrow_mut() = Some(release);
                }
            }
        });
    }
}

impl Drop for TabGroup {
    fn drop(&mut self) {
        self.dropped.set(true);
        self.channel.set_onmessage(None);
        self.channel.close();
        if let Some(release) = self.release_own_lock.borrow_mut().take() {
            let _ignored = release.call0(&JsValue::NULL);
        }
    }
}

/// The callback of a `locks.request`: once the lock is granted, it sends the function that
/// releases it through `granted` and holds the lock until that is called. When nobody waits
/// for `granted` any more (the session that asked ended first), it releases the lock at once.
/// When it was not granted (`ifAvailable` and held elsewhere: the lock is `null`), it sends
/// `None`.
fn hold_until_released(granted: oneshot::Sender<Option<Function>>) -> JsValue {
    Closure::once_into_js(move |lock: JsValue| -> Promise {
        if lock.is_null() {
            let _ignored = granted.send(None);
            return Promise::resolve(&JsValue::UNDEFINED);
        }
        let mut resolve_slot = None;
        let held = Promise::new(&mut |resolve, _reject| resolve_slot = Some(resolve));
        if let Some(resolve) = resolve_slot {
            if let Err(Some(resolve)) = granted.send(Some(resolve)) {
                let _ignored = resolve.call0(&JsValue::NULL);
            }
        }
        held
    })
}

/// The leadership of a tab group: this tab polls for all. Dropping it releases the lock, and
/// the next waiting tab of the group takes over.
pub struct Leadership {
    release: Function,
}

impl Drop for Leadership {
    fn drop(&mut self) {
        let _ignored = self.release.call0(&JsValue::NULL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_keys_differ_by_server_room_and_name_and_cannot_be_forged() {
        let key = group_key("http://a/", Some("lobby"), "ann");
        assert_eq!(key, "chat-poll|http://a/|lobby|ann");
        assert_ne!(key, group_key("http://b/", Some("lobby"), "ann"));
        assert_ne!(key, group_key("http://a/", None, "ann"));
        assert_ne!(key, group_key("http://a/", Some("lobby"), "bob"));
        // A `|` in a nickname cannot make it look like another room's group.
        assert_ne!(
            group_key("http://a/", Some("x"), "y|z"),
            group_key("http://a/", Some("x|y"), "z")
        );
    }

    #[test]
    fn tab_events_round_trip_and_unknown_ones_are_refused() {
        let answer = TabEvent::Answer {
            cursor: 7,
            messages: vec![Message::new("ann", "hi", 7)],
            online: Some(vec!["ann".into()]),
            online_count: Some(1),
            presence_tag: Some("0123456789abcdef".into()),
            trimmed: false,
        };
        let text = serde_json::to_string(&answer).expect("an event serializes");
        let read = serde_json::from_str::<TabEvent>(&text).expect("its own JSON reads back");
        assert_eq!(read, answer);
        // An older build's answer without `trimmed` or `presence_tag` still reads.
        let old = r#"{"kind":"answer","cursor":1,"messages":[],"online":null,"online_count":null}"#;
        assert!(matches!(
            serde_json::from_str::<TabEvent>(old),
            Ok(TabEvent::Answer { trimmed: false, .. })
        ));
        assert!(serde_json::from_str::<TabEvent>(r#"{"kind":"newer_thing"}"#).is_err());
    }
}
