//! The screen-reader voice of the conversation: a visually hidden polite live region.

use std::cell::RefCell;
use std::rc::Rc;

use yew::prelude::*;

/// Props of [`LiveAnnouncer`].
#[derive(Debug, Clone, PartialEq, Properties)]
pub struct LiveAnnouncerProps {
    /// Counts announcements, so that saying the same words twice ("bob: ok", "bob: ok") is
    /// still a change the screen reader hears.
    pub seq: u64,
    /// What to say (`reading::announcement`); `None` (a batch of the reader's own messages)
    /// leaves the last announcement in place.
    pub text: Option<String>,
}

/// `#live-announcer`: always in the page while in the room (a live region must exist before
/// its content changes to be heard), holding only the latest announcement. Polite, so it waits
/// for the reader's own speech to finish; the message list itself is not live, so a batch is
/// heard once, as one sentence or a summary.
#[component]
pub fn LiveAnnouncer(props: &LiveAnnouncerProps) -> Html {
    // The last thing said, with its `seq`: emptying the region would say nothing useful, and a
    // ref is enough since it changes only with the props.
    let spoken: Rc<RefCell<Option<(u64, String)>>> = use_mut_ref(|| None);
    if let Some(text) = &props.text {
        let mut spoken = spoken.borrow_mut();
        if spoken.as_ref().is_none_or(|(seq, _)| *seq != props.seq) {
            *spoken = Some((props.seq, text.clone()));
        }
    }
    let spoken = spoken.borrow().clone();
    html! {
        <div id="live-announcer" class="visually-hidden" aria-live="polite" aria-atomic="true">
            if let Some((seq, text)) = spoken {
                <p key={seq.to_string()}>{ text }</p>
            }
        </div>
    }
}
