//! The page's state and the reducer that changes it (`use_reducer` in the `App` component).
//!
//! Pure logic only: no browser calls, times and random numbers come in through [`Action`]s, so
//! every rule here is unit-tested on the host. The browser side (the poll loop, sending) lives
//! in `hooks/` and reports what happened by dispatching actions.

use std::rc::Rc;

use chat_shared::{
    ClientMessageId, Message, MessageText, TextError, DEFAULT_MAX_MSG_LEN, EXIT_MESSAGE,
    JOIN_MESSAGE,
};
use yew::Reducible;

/// The most messages kept in memory; the oldest are dropped beyond it so a tab left open for
/// days stays responsive.
pub const MAX_KEPT_MESSAGES: usize = 5000;

/// The composer shows a character counter once the draft is longer than this many characters
/// (the limit is [`DEFAULT_MAX_MSG_LEN`]).
pub const COUNTER_FROM: usize = DEFAULT_MAX_MSG_LEN - 200;

/// Where the conversation with the server stands, as far as the poll loop knows.
#[derive(Debug, Clone, PartialEq)]
pub enum Link {
    /// No nickname yet, so nothing is running.
    Idle,
    /// Joining (or joining again under a new name); nothing answered yet.
    Connecting,
    /// The last request was answered.
    Connected,
    /// The last request failed; the next attempt starts at `retry_at_ms`.
    Retrying {
        /// When the next attempt starts, in milliseconds since the Unix epoch (`Date.now()`).
        retry_at_ms: f64,
        /// Why the last attempt failed, in words.
        reason: String,
    },
}

/// What the status bar shows: the [`Link`] combined with the browser's own online flag.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectionStatus {
    /// No nickname chosen yet.
    WaitingForName,
    /// Joining; no answer yet.
    Connecting,
    /// The server answers.
    Connected,
    /// Waiting before the next attempt.
    Reconnecting {
        /// When the next attempt starts, in milliseconds since the Unix epoch.
        retry_at_ms: f64,
        /// Why the last attempt failed, in words.
        reason: String,
    },
    /// The browser says it has no network (`navigator.onLine` is false).
    Offline,
}

impl ConnectionStatus {
    /// A stable one-word name, used as `data-state` and CSS class: `waiting`, `connecting`,
    /// `connected`, `reconnecting` or `offline`.
    pub fn key(&self) -> &'static str {
        match self {
            ConnectionStatus::WaitingForName => "waiting",
            ConnectionStatus::Connecting => "connecting",
            ConnectionStatus::Connected => "connected",
            ConnectionStatus::Reconnecting { .. } => "reconnecting",
            ConnectionStatus::Offline => "offline",
        }
    }
}

/// How this tab gets new messages (see `services::tabs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PollRole {
    /// It polls on its own: the browser has no Web Locks or `BroadcastChannel` (or no name is
    /// chosen yet).
    #[default]
    Alone,
    /// It polls for every tab of its group (same server, room and name).
    Leader,
    /// Another tab of its group polls and relays the answers here.
    Follower,
}

impl PollRole {
    /// A stable key for markup (`data-poll`): `alone`, `leader` or `follower`.
    pub fn key(self) -> &'static str {
        match self {
            PollRole::Alone => "alone",
            PollRole::Leader => "leader",
            PollRole::Follower => "follower",
        }
    }
}

/// The composer's sending state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SendState {
    /// Nothing in flight.
    #[default]
    Idle,
    /// A push of `text` is waiting for its answer.
    Sending {
        /// The text being sent.
        text: String,
    },
    /// The push of `text` got no answer in time, and the page is sending it again with the
    /// same `cid` (the server stores it once however many copies arrive): "still sending", not
    /// "not sent", since the first copy may still be queued in the browser.
    StillSending {
        /// The text being sent.
        text: String,
    },
    /// The last push failed; the text stays in the composer for a retry.
    Failed {
        /// Why, in words.
        reason: String,
    },
}

/// Whether earlier history can be loaded above the oldest message shown (scrolling back with
/// `last=N&before=T`, see `docs/protocol.md`, "Earlier history").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Earlier {
    /// Not known: the arrival page has not answered (or failed). Nothing is loaded.
    #[default]
    Unknown,
    /// The server has messages older than the oldest shown.
    More,
    /// A page of earlier messages is on its way.
    Loading,
    /// The oldest message shown is the room's first (or the oldest the server keeps).
    Beginning,
    /// The page holds [`MAX_KEPT_MESSAGES`]: it loads no more, since keeping them would push
    /// out the ones just loaded.
    Full,
}

impl Earlier {
    /// A stable one-word name, used as `data-state`: `unknown`, `more`, `loading`, `beginning`
    /// or `full`.
    pub fn key(self) -> &'static str {
        match self {
            Earlier::Unknown => "unknown",
            Earlier::More => "more",
            Earlier::Loading => "loading",
            Earlier::Beginning => "beginning",
            Earlier::Full => "full",
        }
    }
}

/// How a message is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// Someone entered the room (the server's [`JOIN_MESSAGE`]).
    Joined,
    /// Someone left the room (the server's [`EXIT_MESSAGE`]).
    Left,
    /// Anything else: a chat line.
    Text,
}

/// Whether `message` is a join, a leave or a chat line.
///
/// The protocol has no message type, only the texts the server saves for joins and exits; a
/// person typing exactly that text is shown as a system line too, as the original page did.
pub fn message_kind(message: &Message) -> MessageKind {
    match message.msg.as_str() {
        JOIN_MESSAGE => MessageKind::Joined,
        EXIT_MESSAGE => MessageKind::Left,
        _ => MessageKind::Text,
    }
}

/// Whether `message` was sent under one of `own_names` (every name this tab has used,
/// [`State::own_names`]).
///
/// The protocol has no identity beyond the name, so someone else using the same name is
/// marked too; that is the best a legacy-compatible client can do.
pub fn is_own(own_names: &[String], message: &Message) -> bool {
    own_names.contains(&message.name)
}

/// Whole seconds left until `retry_at_ms`, rounded up (so "in 1 s" shows until the retry
/// starts), never negative. Both times are in milliseconds since the Unix epoch.
pub fn seconds_until(retry_at_ms: f64, now_ms: f64) -> u64 {
    let left = (retry_at_ms - now_ms) / 1000.0;
    if left.is_nan() || left <= 0.0 {
        return 0;
    }
    // `as` saturates for floats; a retry is at most 30 s away anyway.
    left.ceil() as u64
}

/// Everything that changes the [`State`].
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The nickname form was submitted with a name that passed `parse_nickname`.
    ChooseNickname(String),
    /// The reader asked to change their nickname: show the form.
    EditNickname,
    /// The reader closed the form without changing the nickname.
    CancelNicknameEdit,
    /// The server refused the nickname (a join or pop answered with a non-retryable error):
    /// leave the room and ask again, saying why.
    NicknameRefused {
        /// Why, in words.
        reason: String,
    },
    /// An answer arrived. `messages` may be in any order and may repeat messages already held.
    Received {
        /// New messages (`msgList`, plus our own join line).
        messages: Vec<Message>,
        /// Who is online, when the answer said so (`online`).
        online: Option<Vec<String>>,
        /// How many are online in all, when the answer said so (`onlineCount`).
        online_count: Option<u64>,
    },
    /// The arrival page (`last=N`) answered: `more` says whether the room has older messages
    /// than it brought (it brought all N asked for).
    ArrivalHistory {
        /// Whether earlier history can be loaded.
        more: bool,
    },
    /// The reader reached the top of the list: a page of earlier messages is asked for.
    /// Ignored unless [`State::earlier`] is [`Earlier::More`].
    EarlierRequested,
    /// A page of earlier messages arrived (oldest first). Old news: not counted as unread.
    EarlierReceived {
        /// The messages just older than the oldest shown.
        messages: Vec<Message>,
        /// Whether the room has messages older still (the answer's `time` is not 0).
        more: bool,
    },
    /// The page of earlier messages did not come; it may be asked for again.
    EarlierFailed,
    /// A pop's messages came with `history_trimmed`: older ones after our cursor are gone.
    HistoryTrimmed,
    /// A request failed; the poll loop retries at `retry_at_ms`.
    ConnectionLost {
        /// When the next attempt starts, in milliseconds since the Unix epoch.
        retry_at_ms: f64,
        /// Why the request failed, in words.
        reason: String,
    },
    /// The browser's `online`/`offline` events (and `navigator.onLine` at start).
    BrowserOnline(bool),
    /// The composer's text changed.
    DraftChanged(String),
    /// The reader sent the draft with the client message id `cid` (see
    /// [`State::cid_for_draft`]); ignored unless [`State::can_send`].
    SendStarted {
        /// The push's `cid`, remembered with the text until the push succeeds, so that a retry
        /// of the same text reuses it and the server stores the message once.
        cid: ClientMessageId,
    },
    /// The push was saved as `message` (the push answer's `time` is the saved message's).
    SendSucceeded {
        /// The saved message: shown at once, without waiting for the poll loop to bring it
        /// (when it does, its `time` is already held). The draft is cleared only if it still
        /// holds this text.
        message: Message,
    },
    /// The push got no answer in time; the page sends it again with the same `cid`.
    SendLate,
    /// The page was shown (`true`) or hidden (`visibilitychange`); showing it clears the
    /// unread count.
    PageVisible(bool),
    /// This tab started leading its tab group, following it, or polling alone.
    PollRole(PollRole),
    /// The push failed; the draft stays for a retry.
    SendFailed {
        /// Why, in words.
        reason: String,
    },
}

/// The page's state.
///
/// Invariant: the messages are sorted by `time`, no two share a `time`, and there are at most
/// [`MAX_KEPT_MESSAGES`] of them. Answers repeat messages after reconnects and when requests
/// overlap; keeping times unique is what makes those repeats harmless.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// The name we are in the room as; `None` until one is chosen (or after the server refused
    /// it).
    pub nickname: Option<String>,
    /// Whether the nickname form is shown.
    pub editing_nickname: bool,
    /// Why the server refused the last nickname, shown in the form.
    pub nickname_notice: Option<String>,
    /// Every name this tab has been in the room as; their messages are marked as our own.
    pub own_names: Vec<String>,
    /// See the invariant above; read through [`State::messages`].
    messages: Rc<Vec<Message>>,
    /// Who is online, from the last answer that said (sorted by the server).
    pub online: Rc<Vec<String>>,
    /// How many are online in all (the server cuts `online` at 100 names).
    pub online_count: u64,
    /// The poll loop's view of the connection.
    pub link: Link,
    /// The browser's online flag.
    pub browser_online: bool,
    /// The composer's text.
    pub draft: String,
    /// The composer's sending state.
    pub send: SendState,
    /// Whether the page is hidden (another tab, minimized): new messages then count as unread.
    pub page_hidden: bool,
    /// Messages from others that arrived while the page was hidden, shown in the tab's title.
    pub unread: u32,
    /// The text and `cid` of the last push not known to be saved (in flight or failed).
    unconfirmed_send: Option<(String, ClientMessageId)>,
    /// Shown above the messages when the server no longer keeps some of the history this page
    /// asked for (`history_trimmed`).
    pub history_notice: Option<String>,
    /// How this tab gets new messages.
    pub poll_role: PollRole,
    /// Whether earlier history can be loaded above the oldest message shown.
    pub earlier: Earlier,
}

impl Default for State {
    fn default() -> State {
        State::new(None)
    }
}

impl State {
    /// The state at page load: in the room as `remembered_nickname` when there is one (the
    /// name saved by an earlier visit), otherwise asking for a name.
    pub fn new(remembered_nickname: Option<String>) -> State {
        let editing_nickname = remembered_nickname.is_none();
        State {
            own_names: remembered_nickname.iter().cloned().collect(),
            link: if remembered_nickname.is_some() {
                Link::Connecting
            } else {
                Link::Idle
            },
            nickname: remembered_nickname,
            editing_nickname,
            nickname_notice: None,
            messages: Rc::default(),
            online: Rc::default(),
            online_count: 0,
            browser_online: true,
            draft: String::new(),
            send: SendState::Idle,
            page_hidden: false,
            unread: 0,
            unconfirmed_send: None,
            history_notice: None,
            poll_role: PollRole::Alone,
            earlier: Earlier::Unknown,
        }
    }

    /// The `cid` to send the draft with: the one of the last push of the same text that is not
    /// known to be saved (its answer was lost or refused, so this is a retry and the server
    /// must not store it twice), or `None` for a new message, which needs a fresh one.
    pub fn cid_for_draft(&self) -> Option<ClientMessageId> {
        self.unconfirmed_send
            .as_ref()
            .filter(|(text, _)| *text == self.draft)
            .map(|(_, cid)| cid.clone())
    }

    /// The messages, oldest first, unique by `time`.
    pub fn messages(&self) -> &Rc<Vec<Message>> {
        &self.messages
    }

    /// The time of the oldest message shown (ms since the Unix epoch): where the next page of
    /// earlier history ends (`before`).
    pub fn oldest_time(&self) -> Option<u64> {
        self.messages.first().map(|message| message.time)
    }

    /// What the status bar shows.
    pub fn connection_status(&self) -> ConnectionStatus {
        if !self.browser_online {
            return ConnectionStatus::Offline;
        }
        match &self.link {
            Link::Idle => ConnectionStatus::WaitingForName,
            Link::Connecting => ConnectionStatus::Connecting,
            Link::Connected => ConnectionStatus::Connected,
            Link::Retrying {
                retry_at_ms,
                reason,
            } => ConnectionStatus::Reconnecting {
                retry_at_ms: *retry_at_ms,
                reason: reason.clone(),
            },
        }
    }

    /// Why the draft cannot be sent as it is, checked with the server's own rules and default
    /// limit; `None` when it can.
    pub fn draft_problem(&self) -> Option<TextError> {
        MessageText::parse(&self.draft, DEFAULT_MAX_MSG_LEN).err()
    }

    /// The draft's length in characters (Unicode scalar values, as the server counts).
    pub fn draft_len(&self) -> usize {
        self.draft.chars().count()
    }

    /// Whether the composer shows its character counter.
    pub fn counter_visible(&self) -> bool {
        self.draft_len() > COUNTER_FROM
    }

    /// Whether the send button is enabled: in the room, nothing in flight, a valid draft.
    pub fn can_send(&self) -> bool {
        self.nickname.is_some()
            && !matches!(
                self.send,
                SendState::Sending { .. } | SendState::StillSending { .. }
            )
            && self.draft_problem().is_none()
    }

    fn apply(&mut self, action: Action) {
        match action {
            Action::ChooseNickname(name) => self.choose_nickname(name),
            Action::EditNickname => self.editing_nickname = true,
            Action::CancelNicknameEdit => {
                // Without a name there is no room to go back to.
                if self.nickname.is_some() {
                    self.editing_nickname = false;
                }
            }
            Action::NicknameRefused { reason } => {
                self.nickname = None;
                self.editing_nickname = true;
                self.nickname_notice = Some(reason);
                self.link = Link::Idle;
            }
            Action::Received {
                messages,
                online,
                online_count,
            } => {
                let added = self.merge_messages(messages);
                if self.page_hidden {
                    let from_others = added
                        .iter()
                        .filter(|message| !self.own_names.contains(&message.name))
                        .count();
                    self.unread = self
                        .unread
                        .saturating_add(u32::try_from(from_others).unwrap_or(u32::MAX));
                }
                if let Some(online) = online {
                    self.online_count = online_count.unwrap_or(online.len() as u64);
                    self.online = Rc::new(online);
                } else if let Some(count) = online_count {
                    self.online_count = count;
                }
                if self.nickname.is_some() {
                    self.link = Link::Connected;
                }
            }
            Action::ArrivalHistory { more } => {
                self.earlier = if more {
                    Earlier::More
                } else {
                    Earlier::Beginning
                };
            }
            Action::EarlierRequested => {
                if self.earlier == Earlier::More {
                    self.earlier = Earlier::Loading;
                }
            }
            Action::EarlierReceived { messages, more } => {
                self.merge_messages(messages);
                self.earlier = if !more {
                    Earlier::Beginning
                } else if self.messages.len() >= MAX_KEPT_MESSAGES {
                    Earlier::Full
                } else {
                    Earlier::More
                };
            }
            Action::EarlierFailed => {
                if self.earlier == Earlier::Loading {
                    self.earlier = Earlier::More;
                }
            }
            Action::HistoryTrimmed => {
                self.history_notice = Some(
                    crate::errors::describe_code(chat_shared::ErrorCode::HistoryTrimmed).to_owned(),
                );
            }
            Action::ConnectionLost {
                retry_at_ms,
                reason,
            } => {
                if self.nickname.is_some() {
                    self.link = Link::Retrying {
                        retry_at_ms,
                        reason,
                    };
                }
            }
            Action::BrowserOnline(online) => self.browser_online = online,
            Action::DraftChanged(draft) => self.draft = draft,
            Action::SendStarted { cid } => {
                if self.can_send() {
                    self.send = SendState::Sending {
                        text: self.draft.clone(),
                    };
                    self.unconfirmed_send = Some((self.draft.clone(), cid));
                }
            }
            Action::SendSucceeded { message } => {
                if self
                    .unconfirmed_send
                    .as_ref()
                    .is_some_and(|(text, _)| *text == message.msg)
                {
                    self.unconfirmed_send = None;
                }
                // The reader may have typed on while the push was in flight; keep that.
                if self.draft == message.msg {
                    self.draft.clear();
                }
                self.send = SendState::Idle;
                self.merge_messages(vec![message]);
            }
            Action::PollRole(role) => self.poll_role = role,
            Action::PageVisible(visible) => {
                self.page_hidden = !visible;
                if visible {
                    self.unread = 0;
                }
            }
            Action::SendLate => {
                if let SendState::Sending { text } = &self.send {
                    self.send = SendState::StillSending { text: text.clone() };
                }
            }
            Action::SendFailed { reason } => self.send = SendState::Failed { reason },
        }
    }

    fn choose_nickname(&mut self, name: String) {
        self.editing_nickname = false;
        self.nickname_notice = None;
        if self.nickname.as_deref() == Some(name.as_str()) {
            return;
        }
        if !self.own_names.contains(&name) {
            self.own_names.push(name.clone());
        }
        self.nickname = Some(name);
        self.link = Link::Connecting;
    }

    /// Inserts each message at its place by `time`, skipping any whose `time` is already held.
    /// Adds the messages not held yet (by time); returns those it added.
    fn merge_messages(&mut self, incoming: Vec<Message>) -> Vec<Message> {
        let mut added = Vec::new();
        if incoming.is_empty() {
            return added;
        }
        let messages = Rc::make_mut(&mut self.messages);
        for message in incoming {
            // Answers are oldest first and usually newer than everything held, so this is
            // mostly an append.
            if let Err(idx) = messages.binary_search_by_key(&message.time, |held| held.time) {
                added.push(message.clone());
                messages.insert(idx, message);
            }
        }
        if messages.len() > MAX_KEPT_MESSAGES {
            let excess = messages.len() - MAX_KEPT_MESSAGES;
            messages.drain(..excess);
        }
        added
    }
}

impl Reducible for State {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut next = Rc::unwrap_or_clone(self);
        next.apply(action);
        Rc::new(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(name: &str, msg: &str, time: u64) -> Message {
        Message::new(name, msg, time)
    }

    fn received(messages: Vec<Message>) -> Action {
        Action::Received {
            messages,
            online: None,
            online_count: None,
        }
    }

    fn run(state: State, actions: impl IntoIterator<Item = Action>) -> State {
        let mut state = Rc::new(state);
        for action in actions {
            state = state.reduce(action);
        }
        Rc::unwrap_or_clone(state)
    }

    fn times(state: &State) -> Vec<u64> {
        state.messages().iter().map(|m| m.time).collect()
    }

    fn joined_as(name: &str) -> State {
        State::new(Some(name.to_owned()))
    }

    #[test]
    fn adds_messages_oldest_first() {
        let state = run(
            joined_as("alice"),
            [received(vec![
                message("bob", "hi", 10),
                message("carol", "yo", 20),
            ])],
        );
        assert_eq!(times(&state), [10, 20]);
        assert_eq!(state.messages()[0].msg, "hi");
    }

    #[test]
    fn trimmed_history_keeps_the_messages_left_and_says_older_ones_are_gone() {
        let state = run(
            joined_as("alice"),
            [
                received(vec![message("bob", "kept", 10)]),
                Action::HistoryTrimmed,
            ],
        );
        assert_eq!(times(&state), [10]);
        assert!(state
            .history_notice
            .as_deref()
            .is_some_and(|notice| notice.contains("no longer kept")));
        assert!(joined_as("alice").history_notice.is_none());
    }

    fn earlier(messages: Vec<Message>, more: bool) -> Action {
        Action::EarlierReceived { messages, more }
    }

    #[test]
    fn earlier_pages_go_before_the_oldest_shown_without_duplicates_until_the_beginning() {
        let state = run(
            joined_as("alice"),
            [
                received(vec![message("bob", "c", 30), message("bob", "d", 40)]),
                Action::ArrivalHistory { more: true },
            ],
        );
        assert_eq!(state.earlier, Earlier::More);
        assert_eq!(state.oldest_time(), Some(30));
        let state = run(state, [Action::EarlierRequested]);
        assert_eq!(state.earlier, Earlier::Loading);
        // A second request while one is on its way changes nothing.
        let state = run(state, [Action::EarlierRequested]);
        assert_eq!(state.earlier, Earlier::Loading);
        let state = run(
            state,
            [
                // A page that overlaps what is shown (a message polled meanwhile) adds only
                // what is new, in time order.
                earlier(vec![message("bob", "b", 20), message("bob", "c", 30)], true),
                // New messages polled meanwhile still go after.
                received(vec![message("carl", "e", 50)]),
            ],
        );
        assert_eq!(times(&state), [20, 30, 40, 50]);
        assert_eq!(state.earlier, Earlier::More);
        let state = run(
            state,
            [
                Action::EarlierRequested,
                earlier(vec![message("bob", "a", 10)], false),
            ],
        );
        assert_eq!(times(&state), [10, 20, 30, 40, 50]);
        assert_eq!(state.earlier, Earlier::Beginning);
        assert_eq!(state.oldest_time(), Some(10));
        let state = run(state, [Action::EarlierRequested]);
        assert_eq!(state.earlier, Earlier::Beginning, "nothing more to ask for");
    }

    #[test]
    fn a_short_arrival_page_is_the_beginning_and_a_failed_page_may_be_asked_again() {
        let state = run(
            joined_as("alice"),
            [Action::EarlierRequested, Action::EarlierFailed],
        );
        assert_eq!(
            state.earlier,
            Earlier::Unknown,
            "nothing asked before arrival"
        );
        let state = run(state, [Action::ArrivalHistory { more: false }]);
        assert_eq!(state.earlier, Earlier::Beginning);
        let state = run(
            joined_as("alice"),
            [
                Action::ArrivalHistory { more: true },
                Action::EarlierRequested,
                Action::EarlierFailed,
            ],
        );
        assert_eq!(state.earlier, Earlier::More);
    }

    #[test]
    fn earlier_pages_are_old_news_not_unread() {
        let state = run(
            joined_as("alice"),
            [
                received(vec![message("bob", "now", 30)]),
                Action::ArrivalHistory { more: true },
                Action::PageVisible(false),
                Action::EarlierRequested,
                earlier(vec![message("bob", "old", 10)], true),
            ],
        );
        assert_eq!(state.unread, 0);
    }

    #[test]
    fn scrolling_back_stops_when_the_page_keeps_as_many_messages_as_it_may() {
        let newest: Vec<_> = (MAX_KEPT_MESSAGES as u64 + 1..=2 * MAX_KEPT_MESSAGES as u64 - 10)
            .map(|time| message("bob", "x", time))
            .collect();
        let older: Vec<_> = (1..=MAX_KEPT_MESSAGES as u64)
            .map(|time| message("bob", "y", time))
            .collect();
        let state = run(
            joined_as("alice"),
            [
                received(newest),
                Action::ArrivalHistory { more: true },
                Action::EarlierRequested,
                earlier(older, true),
            ],
        );
        assert_eq!(state.messages().len(), MAX_KEPT_MESSAGES);
        assert_eq!(state.earlier, Earlier::Full);
    }

    #[test]
    fn sorts_messages_that_arrive_out_of_order() {
        let state = run(
            joined_as("alice"),
            [
                received(vec![message("a", "3", 30), message("a", "1", 10)]),
                received(vec![message("a", "2", 20), message("a", "4", 40)]),
            ],
        );
        assert_eq!(times(&state), [10, 20, 30, 40]);
    }

    #[test]
    fn ignores_messages_whose_time_is_already_held() {
        // An overlapping request or a retried pop after a reconnect repeats a page.
        let page = vec![message("bob", "hi", 10), message("bob", "again", 11)];
        let state = run(
            joined_as("alice"),
            [
                received(page.clone()),
                received(page),
                received(vec![message("bob", "again", 11), message("bob", "new", 12)]),
            ],
        );
        assert_eq!(times(&state), [10, 11, 12]);
    }

    #[test]
    fn the_first_message_with_a_time_wins() {
        let state = run(
            joined_as("alice"),
            [
                received(vec![message("bob", "first", 10)]),
                received(vec![message("eve", "impostor", 10)]),
            ],
        );
        assert_eq!(state.messages()[0].msg, "first");
    }

    #[test]
    fn keeps_at_most_the_newest_messages() {
        let flood: Vec<_> = (1..=MAX_KEPT_MESSAGES as u64 + 10)
            .map(|time| message("bob", "x", time))
            .collect();
        let state = run(joined_as("alice"), [received(flood)]);
        assert_eq!(state.messages().len(), MAX_KEPT_MESSAGES);
        assert_eq!(state.messages()[0].time, 11, "the oldest were dropped");
    }

    #[test]
    fn marks_messages_under_any_name_this_tab_used() {
        let state = run(
            joined_as("alice"),
            [
                Action::EditNickname,
                Action::ChooseNickname("alicia".into()),
            ],
        );
        assert!(is_own(&state.own_names, &message("alice", "old name", 1)));
        assert!(is_own(&state.own_names, &message("alicia", "new name", 2)));
        assert!(!is_own(
            &state.own_names,
            &message("bob", "someone else", 3)
        ));
        assert_eq!(state.own_names, ["alice", "alicia"]);
    }

    #[test]
    fn recognises_join_and_leave_lines() {
        assert_eq!(
            message_kind(&message("a", JOIN_MESSAGE, 1)),
            MessageKind::Joined
        );
        assert_eq!(
            message_kind(&message("a", EXIT_MESSAGE, 1)),
            MessageKind::Left
        );
        assert_eq!(
            message_kind(&message("a", "加入聊天室!", 1)),
            MessageKind::Text
        );
    }

    #[test]
    fn takes_the_online_list_from_answers_that_carry_it() {
        let state = run(
            joined_as("alice"),
            [Action::Received {
                messages: vec![],
                online: Some(vec!["alice".into(), "bob".into()]),
                online_count: Some(150),
            }],
        );
        assert_eq!(*state.online, ["alice", "bob"]);
        assert_eq!(
            state.online_count, 150,
            "the count covers names beyond the list"
        );

        // Error answers carry no list: keep the last one.
        let state = run(state, [received(vec![])]);
        assert_eq!(*state.online, ["alice", "bob"]);
        assert_eq!(state.online_count, 150);

        // A server without `onlineCount` still gives a count: the list's length.
        let state = run(
            state,
            [Action::Received {
                messages: vec![],
                online: Some(vec!["bob".into()]),
                online_count: None,
            }],
        );
        assert_eq!(state.online_count, 1);
    }

    #[test]
    fn connection_goes_from_connecting_to_connected_to_reconnecting_and_back() {
        let state = joined_as("alice");
        assert_eq!(state.connection_status(), ConnectionStatus::Connecting);

        let state = run(state, [received(vec![])]);
        assert_eq!(state.connection_status(), ConnectionStatus::Connected);

        let lost = Action::ConnectionLost {
            retry_at_ms: 5000.0,
            reason: "no answer".into(),
        };
        let state = run(state, [lost]);
        assert_eq!(
            state.connection_status(),
            ConnectionStatus::Reconnecting {
                retry_at_ms: 5000.0,
                reason: "no answer".into()
            }
        );
        assert_eq!(state.connection_status().key(), "reconnecting");

        let state = run(state, [received(vec![])]);
        assert_eq!(state.connection_status(), ConnectionStatus::Connected);
    }

    #[test]
    fn the_browser_offline_flag_wins_over_the_link() {
        let state = run(
            joined_as("alice"),
            [received(vec![]), Action::BrowserOnline(false)],
        );
        assert_eq!(state.connection_status(), ConnectionStatus::Offline);
        let state = run(
            state,
            [Action::ConnectionLost {
                retry_at_ms: 1.0,
                reason: "x".into(),
            }],
        );
        assert_eq!(state.connection_status(), ConnectionStatus::Offline);
        let state = run(state, [Action::BrowserOnline(true)]);
        assert_eq!(state.connection_status().key(), "reconnecting");
    }

    #[test]
    fn without_a_name_the_page_waits_and_ignores_late_answers() {
        let state = State::default();
        assert!(state.editing_nickname);
        assert_eq!(state.connection_status(), ConnectionStatus::WaitingForName);
        let state = run(
            state,
            [
                received(vec![]),
                Action::ConnectionLost {
                    retry_at_ms: 1.0,
                    reason: "x".into(),
                },
            ],
        );
        assert_eq!(state.connection_status(), ConnectionStatus::WaitingForName);
    }

    #[test]
    fn choosing_a_name_joins_and_closes_the_form() {
        let state = run(State::default(), [Action::ChooseNickname("alice".into())]);
        assert_eq!(state.nickname.as_deref(), Some("alice"));
        assert!(!state.editing_nickname);
        assert_eq!(state.connection_status(), ConnectionStatus::Connecting);
    }

    #[test]
    fn choosing_the_same_name_again_only_closes_the_form() {
        let state = run(joined_as("alice"), [received(vec![]), Action::EditNickname]);
        assert!(state.editing_nickname);
        let state = run(state, [Action::ChooseNickname("alice".into())]);
        assert!(!state.editing_nickname);
        assert_eq!(
            state.connection_status(),
            ConnectionStatus::Connected,
            "no rejoin"
        );
    }

    #[test]
    fn cancelling_the_form_needs_a_name_to_go_back_to() {
        let state = run(
            joined_as("alice"),
            [Action::EditNickname, Action::CancelNicknameEdit],
        );
        assert!(!state.editing_nickname);
        let state = run(State::default(), [Action::CancelNicknameEdit]);
        assert!(state.editing_nickname, "nothing to go back to");
    }

    #[test]
    fn a_refused_name_reopens_the_form_with_the_reason() {
        let state = run(
            joined_as("alice"),
            [Action::NicknameRefused {
                reason: "too long".into(),
            }],
        );
        assert_eq!(state.nickname, None);
        assert!(state.editing_nickname);
        assert_eq!(state.nickname_notice.as_deref(), Some("too long"));
        assert_eq!(state.connection_status(), ConnectionStatus::WaitingForName);
        let state = run(state, [Action::ChooseNickname("al".into())]);
        assert_eq!(state.nickname_notice, None);
    }

    #[test]
    fn blank_drafts_cannot_be_sent() {
        for draft in ["", "   ", "\n\t"] {
            let state = run(joined_as("alice"), [Action::DraftChanged(draft.into())]);
            assert!(!state.can_send(), "{draft:?} should not be sendable");
            let state = run(state, [Action::SendStarted { cid: cid("c1") }]);
            assert_eq!(state.send, SendState::Idle);
        }
    }

    #[test]
    fn drafts_over_the_limit_or_with_control_characters_cannot_be_sent() {
        let long = "x".repeat(DEFAULT_MAX_MSG_LEN + 1);
        let state = run(joined_as("alice"), [Action::DraftChanged(long)]);
        assert!(!state.can_send());
        assert!(matches!(
            state.draft_problem(),
            Some(TextError::TooLong { .. })
        ));

        let state = run(state, [Action::DraftChanged("a\u{b}b".into())]);
        assert!(!state.can_send());

        let state = run(state, [Action::DraftChanged("two\nlines".into())]);
        assert!(state.can_send(), "line feeds are allowed");
    }

    #[test]
    fn the_counter_appears_near_the_limit() {
        let state = run(
            joined_as("alice"),
            [Action::DraftChanged("字".repeat(COUNTER_FROM))],
        );
        assert!(!state.counter_visible());
        assert_eq!(state.draft_len(), COUNTER_FROM, "characters, not bytes");
        let state = run(state, [Action::DraftChanged("字".repeat(COUNTER_FROM + 1))]);
        assert!(state.counter_visible());
    }

    #[test]
    fn a_successful_send_clears_the_draft() {
        let state = run(
            joined_as("alice"),
            [
                Action::DraftChanged("hello".into()),
                Action::SendStarted { cid: cid("c1") },
            ],
        );
        assert_eq!(
            state.send,
            SendState::Sending {
                text: "hello".into()
            }
        );
        assert!(!state.can_send(), "one push at a time");
        let state = run(
            state,
            [Action::SendSucceeded {
                message: message("alice", "hello", 42),
            }],
        );
        assert_eq!(state.draft, "");
        assert_eq!(state.send, SendState::Idle);
        assert_eq!(times(&state), [42], "shown before the poll loop brings it");

        // The poll loop brings it again: still shown once.
        let state = run(state, [received(vec![message("alice", "hello", 42)])]);
        assert_eq!(times(&state), [42]);
    }

    #[test]
    fn text_typed_during_a_send_is_kept() {
        let state = run(
            joined_as("alice"),
            [
                Action::DraftChanged("hello".into()),
                Action::SendStarted { cid: cid("c1") },
                Action::DraftChanged("hello again".into()),
                Action::SendSucceeded {
                    message: message("alice", "hello", 42),
                },
            ],
        );
        assert_eq!(state.draft, "hello again");
    }

    #[test]
    fn a_failed_send_keeps_the_draft_and_allows_a_retry() {
        let state = run(
            joined_as("alice"),
            [
                Action::DraftChanged("hello".into()),
                Action::SendStarted { cid: cid("c1") },
                Action::SendFailed {
                    reason: "offline".into(),
                },
            ],
        );
        assert_eq!(state.draft, "hello");
        assert_eq!(
            state.send,
            SendState::Failed {
                reason: "offline".into()
            }
        );
        assert!(state.can_send(), "retry is possible");
        let state = run(state, [Action::SendStarted { cid: cid("c1") }]);
        assert!(matches!(state.send, SendState::Sending { .. }));
    }

    #[test]
    fn a_retry_after_a_lost_answer_reuses_the_cid_and_a_new_text_needs_a_fresh_one() {
        let sent = run(
            joined_as("alice"),
            [
                Action::DraftChanged("hello".into()),
                Action::SendStarted { cid: cid("c1") },
                Action::SendFailed {
                    reason: "no answer".into(),
                },
            ],
        );
        assert_eq!(sent.cid_for_draft(), Some(cid("c1")), "same text: a retry");
        let edited = run(sent.clone(), [Action::DraftChanged("hello!".into())]);
        assert_eq!(edited.cid_for_draft(), None, "another text: a new message");
        let saved = run(
            sent,
            [
                Action::SendStarted { cid: cid("c1") },
                Action::SendSucceeded {
                    message: message("alice", "hello", 42),
                },
                Action::DraftChanged("hello".into()),
            ],
        );
        assert_eq!(
            saved.cid_for_draft(),
            None,
            "the same words again after a success are a new message"
        );
    }

    #[test]
    fn messages_from_others_while_hidden_are_unread_until_the_page_is_shown() {
        let state = run(
            joined_as("alice"),
            [
                received(vec![message("bob", "seen", 1)]),
                Action::PageVisible(false),
                received(vec![
                    message("bob", "one", 2),
                    message("alice", "mine", 3),
                    message("carl", "two", 4),
                ]),
                // The same messages again (a retried pop): not counted twice.
                received(vec![message("carl", "two", 4)]),
            ],
        );
        assert_eq!(state.unread, 2);
        let state = run(state, [Action::PageVisible(true)]);
        assert_eq!(state.unread, 0);
        let state = run(state, [received(vec![message("bob", "visible", 5)])]);
        assert_eq!(state.unread, 0, "nothing is unread on a visible page");
    }

    #[test]
    fn a_late_answer_says_still_sending_and_a_success_then_clears_it() {
        let state = run(
            joined_as("alice"),
            [
                Action::DraftChanged("hello".into()),
                Action::SendStarted { cid: cid("c1") },
                Action::SendLate,
            ],
        );
        assert_eq!(
            state.send,
            SendState::StillSending {
                text: "hello".into()
            }
        );
        assert!(!state.can_send(), "still one push at a time");
        let state = run(
            state,
            [Action::SendSucceeded {
                message: message("alice", "hello", 42),
            }],
        );
        assert_eq!(state.send, SendState::Idle);
        assert_eq!(state.draft, "");
    }

    fn cid(raw: &str) -> ClientMessageId {
        ClientMessageId::parse(raw).expect("valid cid")
    }

    #[test]
    fn countdown_rounds_up_and_stops_at_zero() {
        assert_eq!(seconds_until(10_000.0, 7_000.0), 3);
        assert_eq!(seconds_until(10_000.0, 7_001.0), 3);
        assert_eq!(seconds_until(10_000.0, 9_999.0), 1);
        assert_eq!(seconds_until(10_000.0, 10_000.0), 0);
        assert_eq!(seconds_until(10_000.0, 12_000.0), 0);
        assert_eq!(seconds_until(f64::NAN, 0.0), 0);
    }
}
