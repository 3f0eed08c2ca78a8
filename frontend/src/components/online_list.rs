//! Who is in the room.

use std::rc::Rc;

use yew::prelude::*;

/// Props of [`OnlineList`].
#[derive(Debug, Clone, PartialEq, Properties)]
pub struct OnlineListProps {
    /// The names the server listed (`online`, sorted, at most 100).
    pub names: Rc<Vec<String>>,
    /// How many are online in all (`onlineCount`).
    pub count: u64,
    /// The reader's current name, marked in the list.
    pub own_name: String,
}

/// `#online-list` with one `<li>` per name (its text is exactly the name; the reader's own has
/// class `own`), and the total in `#online-count`.
#[component]
pub fn OnlineList(props: &OnlineListProps) -> Html {
    let listed = props.names.len() as u64;
    let unlisted = props.count.saturating_sub(listed);
    html! {
        <aside class="online" aria-labelledby="online-heading">
            <h2 id="online-heading">
                { "Online " }<span id="online-count" class="count">{ props.count }</span>
            </h2>
            <ul id="online-list" class="online-list">
                { for props.names.iter().map(|name| {
                    let own = *name == props.own_name;
                    html! {
                        // The text is the name alone (tests and scripts read it); "(you)"
                        // comes from CSS.
                        <li key={name.clone()} class={classes!(own.then_some("own"))}>
                            { name.clone() }
                        </li>
                    }
                }) }
            </ul>
            if unlisted > 0 {
                <p class="hint">{ format!("and {unlisted} more") }</p>
            }
        </aside>
    }
}
