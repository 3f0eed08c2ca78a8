//! One line above the message list saying where scrolling back stands: loading earlier
//! messages, or the beginning of the room reached.

use yew::prelude::*;

use crate::state::{Earlier, MAX_KEPT_MESSAGES};

/// Props of [`EarlierStatus`].
#[derive(Debug, Clone, PartialEq, Properties)]
pub struct EarlierStatusProps {
    /// Where scrolling back stands ([`crate::state::State::earlier`]).
    pub earlier: Earlier,
}

/// `#earlier-status`, with `data-state` set to [`Earlier::key`]. Its line keeps its height
/// whether it says something or not, so the list below never moves when the words change (the
/// reader's place is kept while a page is prepended).
#[component]
pub fn EarlierStatus(props: &EarlierStatusProps) -> Html {
    let text = match props.earlier {
        Earlier::Unknown | Earlier::More => String::new(),
        Earlier::Loading => "Loading earlier messages…".to_owned(),
        Earlier::Beginning => "Beginning of the room".to_owned(),
        Earlier::Full => {
            format!("This page keeps the newest {MAX_KEPT_MESSAGES} messages; earlier ones are not loaded")
        }
    };
    html! {
        <p
            id="earlier-status"
            class="earlier-status"
            data-state={props.earlier.key()}
            role="status"
        >
            { text }
        </p>
    }
}
