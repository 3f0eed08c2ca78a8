//! What the page remembers in `localStorage`: the nickname, so a returning reader goes straight
//! back in, and whether mention notifications are on.
//!
//! Storage can be missing or full (private browsing, quotas); the page then simply forgets, so
//! every failure here is ignored.

use gloo_storage::{LocalStorage, Storage};

use crate::nickname::parse_nickname;

/// The `localStorage` key. The value is JSON (a string), as `gloo-storage` writes it.
const NICKNAME_KEY: &str = "chat.nickname";

/// The nickname saved by an earlier visit, if there is one and it still passes the page's rule
/// (a stored value may have been written by an older page or edited by hand).
pub fn load_nickname() -> Option<String> {
    let stored: String = LocalStorage::get(NICKNAME_KEY).ok()?;
    parse_nickname(&stored).ok().map(|name| name.into_string())
}

/// Remembers `nickname` for the next visit.
pub fn save_nickname(nickname: &str) {
    // Best effort: a page that cannot remember the name still works.
    let _ignored = LocalStorage::set(NICKNAME_KEY, nickname);
}

/// Forgets the remembered nickname (the server refused it, so offering it again would fail).
pub fn forget_nickname() {
    LocalStorage::delete(NICKNAME_KEY);
}

/// The `localStorage` key of the mention-notification switch (JSON `true`/`false`).
const NOTIFY_MENTIONS_KEY: &str = "chat.notify_mentions";

/// Whether the reader turned mention notifications on in an earlier visit (off when never set
/// or unreadable).
pub fn load_notify_mentions() -> bool {
    LocalStorage::get(NOTIFY_MENTIONS_KEY).unwrap_or(false)
}

/// Remembers the mention-notification switch for the next visit.
pub fn save_notify_mentions(on: bool) {
    // Best effort, as for the nickname.
    let _ignored = LocalStorage::set(NOTIFY_MENTIONS_KEY, on);
}
