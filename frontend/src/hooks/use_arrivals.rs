//! Which messages just arrived live, as opposed to the ones a page starts with.

use std::cell::RefCell;
use std::rc::Rc;

use chat_shared::Message;
use yew::prelude::*;

use crate::reading::arrived_since;

/// The latest batch of messages that arrived while the page was open.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Arrivals {
    /// Counts batches, so that an effect runs once per batch (two batches may hold equal
    /// messages, e.g. two identical joins).
    pub batch: u64,
    /// The batch's messages, oldest first; empty before the first live batch.
    pub messages: Rc<Vec<Message>>,
}

/// Watches `messages` (the reducer's list, sorted by time) and returns the latest batch of
/// messages that arrived while the page was open (`reading::arrived_since` the newest time seen
/// at the previous change).
#[hook]
pub fn use_arrivals(messages: Rc<Vec<Message>>) -> Arrivals {
    // Refs, not state: working this out must not cause a render of its own. It is done during
    // the render, from the props alone, so every render sees the same answer.
    let newest_seen: Rc<RefCell<Option<u64>>> = use_mut_ref(|| None);
    let arrivals: Rc<RefCell<Arrivals>> = use_mut_ref(Arrivals::default);
    let newest = messages.last().map(|message| message.time);
    if newest != *newest_seen.borrow() {
        let previous = newest_seen.replace(newest);
        let added = arrived_since(&messages, previous);
        if !added.is_empty() {
            let mut arrivals = arrivals.borrow_mut();
            arrivals.batch += 1;
            arrivals.messages = Rc::new(added);
        }
    }
    let current = arrivals.borrow().clone();
    current
}
