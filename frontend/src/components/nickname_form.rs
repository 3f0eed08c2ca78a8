//! Asking for a nickname, on arrival and when the reader changes it.

use chat_shared::DEFAULT_MAX_NAME_LEN;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::nickname::parse_nickname;

/// Props of [`NicknameForm`].
#[derive(Debug, Clone, PartialEq, Properties)]
pub struct NicknameFormProps {
    /// The text the field starts with (the current name when changing it).
    pub initial: String,
    /// Why the server refused the last name, if it did.
    pub notice: Option<String>,
    /// Called with a name that passed `parse_nickname`.
    pub on_submit: Callback<String>,
    /// Called when the reader gives up changing their name; `None` hides the button (there is
    /// no room to go back to before a first name).
    pub on_cancel: Option<Callback<()>>,
}

/// The form: `#nickname-input`, `#nickname-submit`, `#nickname-cancel` (when changing a name),
/// and the reason a name was refused in `#nickname-error`.
#[component]
pub fn NicknameForm(props: &NicknameFormProps) -> Html {
    let value = use_state(|| props.initial.clone());
    let error = use_state(|| None::<String>);
    let input_ref = use_node_ref();

    {
        let input_ref = input_ref.clone();
        use_effect_with((), move |_| {
            if let Some(input) = input_ref.cast::<HtmlInputElement>() {
                let _ignored = input.focus();
                input.select();
            }
        });
    }

    let oninput = {
        let value = value.clone();
        let error = error.clone();
        Callback::from(move |event: InputEvent| {
            let input: HtmlInputElement = event.target_unchecked_into();
            value.set(input.value());
            // The complaint was about the old text; the next submit judges the new one.
            error.set(None);
        })
    };
    let onsubmit = {
        let value = value.clone();
        let error = error.clone();
        let on_submit = props.on_submit.clone();
        Callback::from(move |event: SubmitEvent| {
            event.prevent_default();
            match parse_nickname(&value) {
                Ok(name) => on_submit.emit(name.into_string()),
                Err(problem) => error.set(Some(problem.to_string())),
            }
        })
    };
    let on_cancel = props
        .on_cancel
        .clone()
        .map(|on_cancel| Callback::from(move |_: MouseEvent| on_cancel.emit(())));
    let onkeydown = props.on_cancel.clone().map(|on_cancel| {
        Callback::from(move |event: KeyboardEvent| {
            if event.key() == "Escape" {
                on_cancel.emit(());
            }
        })
    });

    // The server's refusal shows until the reader types; then our own check speaks.
    let shown_error = (*error).clone().or_else(|| props.notice.clone());
    let heading = if props.on_cancel.is_some() {
        "Change your nickname"
    } else {
        "Choose a nickname"
    };

    html! {
        <section class="nickname-panel" aria-labelledby="nickname-heading">
            <form id="nickname-form" class="nickname-form" {onsubmit} {onkeydown} novalidate=true>
                <h2 id="nickname-heading">{ heading }</h2>
                <label for="nickname-input">{ "Nickname" }</label>
                <div class="nickname-row">
                    <input
                        id="nickname-input"
                        ref={input_ref}
                        type="text"
                        name="nickname"
                        autocomplete="nickname"
                        autocapitalize="off"
                        spellcheck="false"
                        required=true
                        value={(*value).clone()}
                        aria-describedby="nickname-hint nickname-error"
                        aria-invalid={shown_error.is_some().to_string()}
                        {oninput}
                    />
                    <button id="nickname-submit" type="submit" class="button primary">{ "Enter the room" }</button>
                    if let Some(on_cancel) = on_cancel {
                        <button id="nickname-cancel" type="button" class="button secondary" onclick={on_cancel}>
                            { "Cancel" }
                        </button>
                    }
                </div>
                <p id="nickname-hint" class="hint">
                    { format!("No spaces, at most {DEFAULT_MAX_NAME_LEN} characters. Remembered on this device.") }
                </p>
                <p id="nickname-error" class="error" role="alert">{ shown_error.unwrap_or_default() }</p>
            </form>
        </section>
    }
}
