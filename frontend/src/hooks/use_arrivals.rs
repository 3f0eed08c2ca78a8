//! Which messages just arrived live, as opposed to the ones a page starts with.

use std::cell::RefCell;
use std::rc::Rc;

use chat_shared::Message;
use yew::prelude::*;

/// The latest batch of messages that arrived while the page was open.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Arrivals {
    /// Counts batches, so that an effect runs once per batch (two batches may hold equal
    /// messages, e.g. two identical joins).
    pub batch: u64,
    /// The batch's messages, oldest first; empty before the first live batch.
    pub messages: Rc<Vec<Message>>,
}

/// Watches `messages` (the reducer's list, sorted by time) and returns the messages newer than
/// the newest one seen at the previous change. The first messages the page holds are history,
/// not arrivals: they are not returned. Messages merged in below the newest one (a late answer
/// of an overlapping request) are not new to the reader either way and are not returned.
#[hook]
pub fn use_arrivals(messages: Rc<Vec<Message>>) -> Arrivals {
    // Refs, not state: working this out must not cause a render of its own. It is done during
    // the render, from the props alone, so every render sees the same answer.
    let newest_seen: Rc<RefCell<Option<u64>>> = use_mut_ref(|| None);
    let arrivals: Rc<RefCell<Arrivals>> = use_mut_ref(Arrivals::default);
    let newest = messages.last().map(|message| message.time);
    if newest != *newest_seen.borrow() {
        let previous = newest_seen.replace(newest);
        if let (Some(previous), Some(_)) = (previous, newest) {
            let added: Vec<Message> = messages
                .iter()
                .rev()
                .take_while(|message| message.time > previous)
                .cloned()
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let mut arrivals = arrivals.borrow_mut();
            arrivals.batch += 1;
            arrivals.messages = Rc::new(added);
        }
    }
    let current = arrivals.borrow().clone();
    current
}
