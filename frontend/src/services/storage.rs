//! The remembered nickname, in `localStorage`, so a returning reader goes straight back in.
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
