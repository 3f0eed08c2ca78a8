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
    // A named region, not an `<aside>`: it sits inside `<main>`, where a complementary landmark
    // is not allowed (axe `landmark-complementary-is-top-level`).
    html! {
        <section class="online" aria-labelledby="online-heading">
            <h2 id="online-heading">
                { "Online " }<span id="online-count" class="count">{ props.count }</span>
            </h2>
            <ul id="online-list" class="online-list">
                { for props.names.iter().map(|name| view_name(name, *name == props.own_name)) }
            </ul>
            if unlisted > 0 {
                <p class="hint">{ format!("and {unlisted} more") }</p>
            }
        </section>
    }
}

/// One entry: its text is the name alone (tests and scripts read it; "(you)" comes from CSS),
/// inside a `<bdi>` so that a right-to-left name, or a text-direction character in a name saved
/// before names were checked, cannot reorder the "(you)" mark or the next entries.
fn view_name(name: &str, own: bool) -> Html {
    html! {
        <li key={name.to_owned()} class={classes!(own.then_some("own"))}>
            <bdi>{ name.to_owned() }</bdi>
        </li>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::message_list::tests::ancestors_of;

    #[test]
    fn each_online_name_is_isolated_in_a_bdi() {
        for name in ["alice", "\u{5D0}\u{5D1}", "a\u{202E}b"] {
            for own in [false, true] {
                assert_eq!(
                    ancestors_of(&view_name(name, own), name),
                    ["li", "bdi"],
                    "{name:?}"
                );
            }
        }
    }
}
