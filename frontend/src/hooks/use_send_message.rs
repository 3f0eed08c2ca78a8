//! Sending a message (a push) and reporting how it went.

use std::rc::Rc;

use chat_shared::{ChatRequest, ClientMessageId, Cursor, Message};
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::errors::describe_wire_error;
use crate::services::jsonp::{JsonpClient, JsonpError, REQUEST_TIMEOUT};

/// How many times a push that gets no answer is sent (with the same `cid`) before the page
/// says it was not sent: a minute in all, at [`REQUEST_TIMEOUT`] each.
pub const SEND_ATTEMPTS: u32 = 4;
use crate::state::{Action, State};

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The sender's nickname.
    pub name: String,
    /// The text, already checked by `State::can_send`.
    pub text: String,
    /// Its client message id: fresh for a new message, the same for a retry of it.
    pub cid: ClientMessageId,
}

/// A new client message id: the time in ms and 52 random bits, in hex (24 characters of the
/// `cid` alphabet), so that two tabs or two reloads never pick the same one.
pub fn fresh_cid() -> ClientMessageId {
    // Both are whole numbers below 2^53, so the casts are exact.
    let now_ms = js_sys::Date::now() as u64;
    let random = (js_sys::Math::random() * 4_503_599_627_370_496.0) as u64;
    ClientMessageId::parse(&format!("{now_ms:x}-{random:x}"))
        .expect("hex digits and '-' form a cid")
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
            let request = ChatRequest::push(&outgoing.name, &outgoing.text, Cursor::START)
                .with_cid(outgoing.cid.clone());
            let mut attempts = 0;
            let sent = loop {
                attempts += 1;
                match client.send(&request, REQUEST_TIMEOUT).await {
                    // No answer in time: the request may still be queued in the browser (six
                    // held pops of other tabs fill its connections) or its answer lost. Sent
                    // again with the same `cid`, it is stored once whichever copy arrives.
                    Err(JsonpError::Timeout(_)) if attempts < SEND_ATTEMPTS => {
                        dispatcher.dispatch(Action::SendLate);
                    }
                    other => break other,
                }
            };
            let action = match sent {
                Ok(answer) => match answer.error {
                    None => Action::SendSucceeded {
                        message: Message {
                            name: outgoing.name,
                            msg: outgoing.text,
                            time: answer.time,
                            cid: Some(outgoing.cid.as_str().to_owned()),
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
