//! Desktop notifications when someone mentions the reader while the page is hidden, behind a
//! switch the reader turns on (which is when the browser asks for permission).

use yew::prelude::*;

use super::use_arrivals::Arrivals;
use crate::reading::mention_notice;
use crate::services::{notify, storage};

/// The switch's state, for the toggle button.
#[derive(Debug, Clone, PartialEq)]
pub struct MentionNotifications {
    /// On: the reader asked for them and the browser permits them.
    pub enabled: bool,
    /// Why the switch could not be turned on, in words.
    pub problem: Option<String>,
    /// Turns the switch off, or on (asking the browser's permission first if not yet given).
    pub on_toggle: Callback<()>,
}

/// Watches `arrivals` and, when the switch is on and the page hidden, shows a notification for
/// messages from others that mention `nickname` (see `reading::mention_notice`). The switch is
/// remembered in `localStorage`; the permission prompt comes only from `on_toggle`, never on
/// load.
#[hook]
pub fn use_mention_notifications(
    arrivals: &Arrivals,
    own_names: &[String],
    nickname: Option<String>,
) -> MentionNotifications {
    let wanted = use_state_eq(storage::load_notify_mentions);
    let problem = use_state_eq(|| None::<String>);
    // Read at each render: the reader may withdraw the permission in the browser's settings.
    let enabled = *wanted && notify::permission() == Some(web_sys::NotificationPermission::Granted);

    // The latest notification's click handler, kept until the next one or until the page
    // goes away.
    let shown = use_mut_ref(|| None::<notify::Shown>);
    {
        let shown = shown.clone();
        use_effect_with((), move |_| move || drop(shown.borrow_mut().take()));
    }
    {
        let messages = arrivals.messages.clone();
        let own_names = own_names.to_vec();
        use_effect_with(arrivals.batch, move |_| {
            if enabled && notify::page_hidden() {
                if let Some(notice) = nickname
                    .as_deref()
                    .and_then(|name| mention_notice(&messages, &own_names, name))
                {
                    if let Some(now_shown) = notify::show(&notice) {
                        *shown.borrow_mut() = Some(now_shown);
                    }
                }
            }
        });
    }

    let on_toggle = {
        let wanted = wanted.clone();
        let problem = problem.clone();
        Callback::from(move |()| {
            if enabled {
                wanted.set(false);
                storage::save_notify_mentions(false);
                return;
            }
            let turn_on = {
                let wanted = wanted.clone();
                let problem = problem.clone();
                move |granted: bool| {
                    if granted {
                        wanted.set(true);
                        problem.set(None);
                        storage::save_notify_mentions(true);
                    } else {
                        problem.set(Some(
                            "Notifications are blocked for this page in the browser's settings."
                                .to_owned(),
                        ));
                    }
                }
            };
            match notify::permission() {
                None => problem.set(Some("This browser cannot show notifications.".to_owned())),
                Some(web_sys::NotificationPermission::Granted) => turn_on(true),
                Some(web_sys::NotificationPermission::Denied) => turn_on(false),
                Some(_) => wasm_bindgen_futures::spawn_local(async move {
                    turn_on(notify::request_permission().await);
                }),
            }
        })
    };

    MentionNotifications {
        enabled,
        problem: (*problem).clone(),
        on_toggle,
    }
}
