//! The connection's state in words: connected, reconnecting in N s, offline.

use yew::prelude::*;

use crate::hooks::use_now::use_now_ms;
use crate::state::{seconds_until, ConnectionStatus, PollRole};

/// Props of [`StatusBar`].
#[derive(Debug, Clone, PartialEq, Properties)]
pub struct StatusBarProps {
    /// What to show.
    pub status: ConnectionStatus,
    /// The server's address, shown as a tooltip.
    pub server: String,
    /// How this tab gets new messages, in `data-poll`.
    #[prop_or_default]
    pub poll_role: PollRole,
}

/// `#connection-status`, with `data-state` set to `ConnectionStatus::key`, `data-poll` to
/// `PollRole::key`, and a text that
/// contains "connected", "reconnecting" or "offline". Only the state word is a live region:
/// announcing the countdown every second would drown a screen reader.
#[component]
pub fn StatusBar(props: &StatusBarProps) -> Html {
    let reconnecting = matches!(props.status, ConnectionStatus::Reconnecting { .. });
    let now_ms = use_now_ms(reconnecting);

    let (word, detail) = match &props.status {
        ConnectionStatus::WaitingForName => ("not in the room yet", None),
        ConnectionStatus::Connecting => ("connecting…", None),
        ConnectionStatus::Connected => ("connected", None),
        ConnectionStatus::Reconnecting {
            retry_at_ms,
            reason,
        } => {
            let seconds = seconds_until(*retry_at_ms, now_ms);
            let countdown = if seconds == 0 {
                " now…".to_owned()
            } else {
                format!(" in {seconds} s")
            };
            ("reconnecting", Some((countdown, reason.clone())))
        }
        ConnectionStatus::Offline => ("offline", None),
    };
    let key = props.status.key();

    html! {
        <p
            id="connection-status"
            class={classes!("status", format!("status-{key}"))}
            data-state={key}
            data-poll={props.poll_role.key()}
            title={format!("Server: {}", props.server)}
        >
            <span class="status-dot" aria-hidden="true"></span>
            <span role="status" class="status-word">{ word }</span>
            if let Some((countdown, reason)) = detail {
                <span class="status-countdown" aria-hidden="true">{ countdown }</span>
                <span class="status-reason">{ format!(" ({reason})") }</span>
            }
        </p>
    }
}
