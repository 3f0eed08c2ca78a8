//! Going to another room: a field for its name, in the page's header.

use chat_shared::{RoomName, MAX_ROOM_LEN};
use web_sys::HtmlInputElement;
use yew::prelude::*;

/// Props of [`RoomSwitcher`].
#[derive(Debug, Clone, PartialEq, Properties)]
pub struct RoomSwitcherProps {
    /// The room the page is in (`None`: the legacy room).
    pub current: Option<RoomName>,
}

/// What the switcher does with the text typed into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomChoice {
    /// Go to this room (its fragment, `#lobby`; `""` for the legacy room).
    Go(String),
    /// Not a room name: say why.
    Invalid(String),
}

/// Reads the switcher's text: a room name (a leading `#` and capitals are allowed), or empty
/// for the legacy room.
pub fn choose_room(typed: &str) -> RoomChoice {
    let wanted = typed.trim().trim_start_matches('#').to_lowercase();
    if wanted.is_empty() {
        return RoomChoice::Go(String::new());
    }
    match RoomName::parse(&wanted) {
        Ok(room) => RoomChoice::Go(format!("#{room}")),
        Err(_) => RoomChoice::Invalid(format!(
            "A room name has 1 to {MAX_ROOM_LEN} letters a-z, digits, - or _"
        )),
    }
}

/// The switcher: `#room-input`, `#room-go`, and why a name cannot be used in `#room-error`.
/// Going sets the page's fragment; the page then loads again in that room.
#[component]
pub fn RoomSwitcher(props: &RoomSwitcherProps) -> Html {
    let error = use_state(|| None::<String>);
    let input_ref = use_node_ref();
    let onsubmit = {
        let error = error.clone();
        let input_ref = input_ref.clone();
        Callback::from(move |event: SubmitEvent| {
            event.prevent_default();
            let typed = input_ref
                .cast::<HtmlInputElement>()
                .map(|input| input.value())
                .unwrap_or_default();
            match choose_room(&typed) {
                RoomChoice::Go(fragment) => {
                    error.set(None);
                    if let Some(window) = web_sys::window() {
                        // `hashchange` reloads the page in that room (see `App`).
                        let _ = window.location().set_hash(&fragment);
                    }
                }
                RoomChoice::Invalid(why) => error.set(Some(why)),
            }
        })
    };
    let current = props
        .current
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    html! {
        <form class="room-switcher" onsubmit={onsubmit} aria-label="Go to another room">
            <label for="room-input">{ "Room" }</label>
            <input
                id="room-input"
                ref={input_ref}
                type="text"
                value={current}
                placeholder="(main room)"
                maxlength={(MAX_ROOM_LEN + 1).to_string()}
                autocomplete="off"
                spellcheck="false"
                aria-describedby="room-error"
            />
            <button id="room-go" type="submit" class="button secondary">{ "Go" }</button>
            <span id="room-error" class="room-error" role="alert">
                { (*error).clone().unwrap_or_default() }
            </span>
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_name_becomes_a_fragment_and_empty_is_the_main_room() {
        assert_eq!(choose_room(" #Lobby "), RoomChoice::Go("#lobby".into()));
        assert_eq!(choose_room("team-2"), RoomChoice::Go("#team-2".into()));
        assert_eq!(choose_room("  "), RoomChoice::Go(String::new()));
    }

    #[test]
    fn a_name_outside_the_alphabet_says_why() {
        for typed in ["a b", "é", "a/b", &"r".repeat(33)] {
            assert!(
                matches!(choose_room(typed), RoomChoice::Invalid(_)),
                "{typed:?}"
            );
        }
    }
}
