//! Sending a message (a push) and reporting how it went.

use std::rc::Rc;

use chat_shared::{ChatRequest, Cursor, Message};
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::errors::describe_wire_error;
use crate::services::jsonp::{JsonpClient, REQUEST_TIMEOUT};
use crate::state::{Action, State};

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The sender's nickname.
    pub name: String,
    /// The text, already checked by `State::can_send`.
    pub text: String,
}

/// A callback that pushes a message and then dispatches [`Action::SendSucceeded`] (with the
/// saved message: a push answer's `time` is its time) or [`Action::SendFailed`]. The caller
/// dispatches [`Action::SendStarted`].
#[hook]
pub fn use_send_message(
    client: Rc<JsonpClient>,
    dispatcher: UseReducerDispatcher<State>,
) -> Callback<Outgoing> {
    // The client and the dispatcher never change, so the callback is made once.
    use_callback((), move |outgoing: Outgoing, _| {
        let client = client.clone();
        let dispatcher = dispatcher.clone();
        spawn_local(async move {
            // A push needs some `time` or the server takes it for a join; any whole number
            // does.
            let request = ChatRequest::push(&outgoing.name, &outgoing.text, Cursor::START);
            let action = match client.send(&request, REQUEST_TIMEOUT).await {
                Ok(answer) => match answer.error {
                    None => Action::SendSucceeded {
                        message: Message {
                            name: outgoing.name,
                            msg: outgoing.text,
                            time: answer.time,
                        },
                    },
                    Some(error) => Action::SendFailed {
                        reason: describe_wire_error(&error),
                    },
                },
                Err(error) => Action::SendFailed {
                    reason: format!("Not sent: {error}"),
                },
            };
            // After the page went away this is a no-op.
            dispatcher.dispatch(action);
        });
    })
}
