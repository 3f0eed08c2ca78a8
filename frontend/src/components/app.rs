//! The page: state, the connection, and the layout of the other components.

use std::rc::Rc;

use yew::prelude::*;

use super::composer::Composer;
use super::earlier_status::EarlierStatus;
use super::live_announcer::LiveAnnouncer;
use super::message_list::MessageList;
use super::nickname_form::NicknameForm;
use super::online_list::OnlineList;
use super::room_switcher::RoomSwitcher;
use super::status_bar::StatusBar;
use crate::hooks::use_arrivals::use_arrivals;
use crate::hooks::use_chat_session::use_chat_session;
use crate::hooks::use_earlier_history::use_earlier_history;
use crate::hooks::use_mention_notifications::use_mention_notifications;
use crate::hooks::use_send_message::{fresh_cid, use_send_message, Outgoing};
use crate::reading::announcement;
use crate::services::jsonp::JsonpClient;
use crate::services::{room, server_url, storage};
use crate::state::{Action, State};

/// The whole chat page.
#[component]
pub fn App() -> Html {
    let state = use_reducer(|| State::new(storage::load_nickname()));
    let client: Rc<JsonpClient> = use_memo((), |_| {
        JsonpClient::new(server_url::server_base_url(), room::current_room())
    });
    use_chat_session(client.clone(), state.nickname.clone(), state.dispatcher());
    let send_message = use_send_message(client.clone(), state.dispatcher());
    use_earlier_history(
        client.clone(),
        state.nickname.clone(),
        state.earlier,
        state.oldest_time(),
        state.dispatcher(),
    );
    let arrivals = use_arrivals(state.messages().clone());
    let notifications =
        use_mention_notifications(&arrivals, &state.own_names, state.nickname.clone());

    // Browser tests wait for this before touching the page.
    {
        let title = room::tab_title(client.room(), state.unread);
        use_effect_with(title, |title| {
            if let Some(document) = web_sys::window().and_then(|window| window.document()) {
                document.set_title(title);
            }
        });
    }
    {
        let dispatcher = state.dispatcher();
        use_effect_with((), move |_| {
            mark_body("data-ready", "1");
            // Messages that arrive while the page is hidden count as unread, in the title.
            let visibility =
                web_sys::window()
                    .and_then(|window| window.document())
                    .map(|document| {
                        let watched = document.clone();
                        gloo_events::EventListener::new(&document, "visibilitychange", move |_| {
                            dispatcher.dispatch(Action::PageVisible(!watched.hidden()));
                        })
                    });
            // Another room is another page: the address's fragment changing (the room
            // switcher, or the reader editing it) loads the page again in that room.
            let listener = web_sys::window().map(|window| {
                gloo_events::EventListener::new(&window, "hashchange", |_| {
                    if let Some(window) = web_sys::window() {
                        let _ = window.location().reload();
                    }
                })
            });
            move || drop((listener, visibility))
        });
    }

    use_effect_with(state.nickname.clone(), |nickname| {
        if let Some(nickname) = nickname {
            storage::save_nickname(nickname);
        }
    });

    // Leaving the nickname form puts the cursor where the reader will type next.
    let in_room = state.nickname.is_some() && !state.editing_nickname;
    use_effect_with(in_room, |in_room| {
        if *in_room {
            focus_element("message-input");
        }
    });

    let on_choose_nickname = {
        let dispatcher = state.dispatcher();
        Callback::from(move |name: String| dispatcher.dispatch(Action::ChooseNickname(name)))
    };
    let on_cancel_nickname = {
        let dispatcher = state.dispatcher();
        Callback::from(move |()| dispatcher.dispatch(Action::CancelNicknameEdit))
    };
    let on_change_name = {
        let dispatcher = state.dispatcher();
        Callback::from(move |_: MouseEvent| dispatcher.dispatch(Action::EditNickname))
    };
    let on_draft = {
        let dispatcher = state.dispatcher();
        Callback::from(move |draft: String| dispatcher.dispatch(Action::DraftChanged(draft)))
    };
    let on_send = {
        let state = state.clone();
        Callback::from(move |()| {
            // Read at the time of the click: `state` derefs to the latest state, so a second
            // Enter before the next render sees `Sending` and is ignored.
            let Some(name) = state.nickname.clone() else {
                return;
            };
            if !state.can_send() {
                return;
            }
            let text = state.draft.clone();
            let cid = state.cid_for_draft().unwrap_or_else(fresh_cid);
            state.dispatch(Action::SendStarted { cid: cid.clone() });
            send_message.emit(Outgoing { name, text, cid });
            // The send button disables itself while sending: keep the keyboard in the box.
            focus_element("message-input");
        })
    };

    let nickname_form = state.editing_nickname.then(|| {
        html! {
            <NicknameForm
                initial={state.nickname.clone().unwrap_or_default()}
                notice={state.nickname_notice.clone()}
                on_submit={on_choose_nickname}
                on_cancel={state.nickname.is_some().then_some(on_cancel_nickname)}
            />
        }
    });

    let room = state.nickname.as_ref().map(|nickname| {
        html! {
            <div class="room">
                <section class="conversation" aria-label="Conversation">
                    <EarlierStatus earlier={state.earlier} />
                    <MessageList
                        messages={state.messages().clone()}
                        own_names={state.own_names.clone()}
                        nickname={state.nickname.clone()}
                        history_notice={state.history_notice.clone()}
                    />
                    <LiveAnnouncer
                        seq={arrivals.batch}
                        text={announcement(&arrivals.messages, &state.own_names)}
                    />
                    <Composer
                        draft={state.draft.clone()}
                        send={state.send.clone()}
                        can_send={state.can_send()}
                        problem={state.draft_problem()}
                        length={state.draft_len()}
                        counter_visible={state.counter_visible()}
                        on_input={on_draft}
                        on_send={on_send}
                    />
                </section>
                <OnlineList
                    names={state.online.clone()}
                    count={state.online_count}
                    own_name={nickname.clone()}
                />
            </div>
        }
    });

    let on_toggle_notifications = {
        let on_toggle = notifications.on_toggle.clone();
        Callback::from(move |_: MouseEvent| on_toggle.emit(()))
    };

    html! {
        <div class="app">
            <header class="top-bar">
                <h1 class="title">{ room::page_title(client.room()) }</h1>
                <RoomSwitcher current={client.room().cloned()} />
                <StatusBar status={state.connection_status()} server={client.base_url().to_owned()} poll_role={state.poll_role} />
                if let Some(nickname) = &state.nickname {
                    <div class="identity">
                        <span class="identity-name">
                            { "You are " }<strong id="own-name">{ nickname.clone() }</strong>
                        </span>
                        if !state.editing_nickname {
                            <button id="change-name" type="button" class="button secondary" onclick={on_change_name}>
                                { "Change name" }
                            </button>
                        }
                        // A switch: `aria-pressed` says whether it is on.
                        <button
                            id="notify-toggle"
                            type="button"
                            class="button secondary"
                            aria-pressed={notifications.enabled.to_string()}
                            onclick={on_toggle_notifications}
                        >
                            { "Notify me of mentions" }
                        </button>
                        <span id="notify-problem" class="problem" role="status">
                            { notifications.problem.clone().unwrap_or_default() }
                        </span>
                    </div>
                }
            </header>
            // The one main landmark, from the first screen on: the nickname form, then the room.
            <main class="main">
                { nickname_form }
                { room }
            </main>
        </div>
    }
}

/// Sets an attribute on `<body>`; nothing happens outside a browser.
fn mark_body(attribute: &str, value: &str) {
    if let Some(body) = web_sys::window()
        .and_then(|window| window.document())
        .and_then(|document| document.body())
    {
        let _ignored = body.set_attribute(attribute, value);
    }
}

/// Moves keyboard focus to the element with this `id`, if it exists.
fn focus_element(id: &str) {
    use wasm_bindgen::JsCast;

    if let Some(element) = web_sys::window()
        .and_then(|window| window.document())
        .and_then(|document| document.get_element_by_id(id))
        .and_then(|element| element.dyn_into::<web_sys::HtmlElement>().ok())
    {
        let _ignored = element.focus();
    }
}
