//! Writing and sending a message.

use chat_shared::{TextError, DEFAULT_MAX_MSG_LEN};
use web_sys::HtmlTextAreaElement;
use yew::prelude::*;

use crate::errors::describe_draft_problem;
use crate::state::SendState;

/// Props of [`Composer`]. The draft lives in the page's state so a failed send keeps it.
#[derive(Debug, Clone, PartialEq, Properties)]
pub struct ComposerProps {
    /// The text in the box.
    pub draft: String,
    /// Whether a push is in flight or failed.
    pub send: SendState,
    /// Whether the send button is enabled.
    pub can_send: bool,
    /// Why the draft cannot be sent, if it cannot.
    pub problem: Option<TextError>,
    /// The draft's length in characters.
    pub length: usize,
    /// Whether to show the character counter (near the limit).
    pub counter_visible: bool,
    /// Called with the new text on every edit.
    pub on_input: Callback<String>,
    /// Called to send (or re-send) the draft.
    pub on_send: Callback<()>,
}

/// The message box (`#message-input`), the send button (`#send-button`), the character counter
/// (`#char-counter`), and after a failed send the reason (`#send-error`) with a retry button
/// (`#retry-button`). Enter sends, Shift+Enter starts a new line.
#[component]
pub fn Composer(props: &ComposerProps) -> Html {
    let oninput = {
        let on_input = props.on_input.clone();
        Callback::from(move |event: InputEvent| {
            let textarea: HtmlTextAreaElement = event.target_unchecked_into();
            on_input.emit(textarea.value());
        })
    };
    let onkeydown = {
        let on_send = props.on_send.clone();
        Callback::from(move |event: KeyboardEvent| {
            // While an input method is composing (Chinese, Japanese...), Enter confirms the
            // candidate; it must not send half-typed text.
            let composing = event.is_composing() || event.key_code() == 229;
            if event.key() == "Enter" && !event.shift_key() && !composing {
                event.prevent_default();
                on_send.emit(());
            }
        })
    };
    let onsubmit = {
        let on_send = props.on_send.clone();
        Callback::from(move |event: SubmitEvent| {
            event.prevent_default();
            on_send.emit(());
        })
    };
    let on_retry = {
        let on_send = props.on_send.clone();
        Callback::from(move |_: MouseEvent| on_send.emit(()))
    };

    let sending = matches!(props.send, SendState::Sending { .. });
    let still_sending = matches!(props.send, SendState::StillSending { .. });
    // A blank draft only disables the button; saying so would be noise.
    let problem = props
        .problem
        .as_ref()
        .filter(|problem| **problem != TextError::Empty)
        .map(describe_draft_problem);
    let over_limit = props.length > DEFAULT_MAX_MSG_LEN;
    let failure = match &props.send {
        SendState::Failed { reason } => Some(reason.clone()),
        _ => None,
    };
    let described_by = [
        "composer-hint",
        if props.counter_visible {
            "char-counter"
        } else {
            ""
        },
        if problem.is_some() {
            "draft-problem"
        } else {
            ""
        },
        if failure.is_some() { "send-error" } else { "" },
    ]
    .into_iter()
    .filter(|id| !id.is_empty())
    .collect::<Vec<_>>()
    .join(" ");

    html! {
        <form id="composer" class="composer" {onsubmit}>
            <label for="message-input" class="visually-hidden">{ "Message" }</label>
            <div class="composer-row">
                <textarea
                    id="message-input"
                    class="message-input"
                    rows="2"
                    placeholder="Write a message…"
                    value={props.draft.clone()}
                    aria-describedby={described_by}
                    aria-invalid={(problem.is_some()).to_string()}
                    {oninput}
                    {onkeydown}
                />
                <button id="send-button" type="submit" class="button primary" disabled={!props.can_send}>
                    { if sending || still_sending { "Sending…" } else { "Send" } }
                </button>
            </div>
            <div class="composer-notes">
                <p id="composer-hint" class="hint">{ "Enter sends, Shift+Enter starts a new line" }</p>
                if props.counter_visible {
                    <p id="char-counter" class={classes!("counter", over_limit.then_some("over"))}>
                        { format!("{} / {}", props.length, DEFAULT_MAX_MSG_LEN) }
                    </p>
                }
            </div>
            if let Some(problem) = problem {
                <p id="draft-problem" class="problem">{ problem }</p>
            }
            if still_sending {
                <p id="send-late" class="hint" role="status">
                    { "Still sending: the server has not answered yet. The page keeps trying; the message will be stored once." }
                </p>
            }
            if let Some(reason) = failure {
                <div class="send-failure">
                    <p id="send-error" class="error" role="alert">{ reason }</p>
                    <button id="retry-button" type="button" class="button secondary" onclick={on_retry} disabled={!props.can_send}>
                        { "Retry" }
                    </button>
                </div>
            }
        </form>
    }
}
