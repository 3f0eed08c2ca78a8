//! Leaving the room as the page closes: the one request that is not a `<script>` tag.
//!
//! `pagehide` leaves no time to wait for an answer, so the exit goes out as a request the
//! browser keeps alive past the page: `navigator.sendBeacon(url)` first (a POST, queued by
//! the browser), and when the browser refuses to queue it (`sendBeacon` returns `false`: its
//! beacon quota is used up, or an extension or policy blocks beacons) a `fetch` with
//! `keepalive: true`, sent through gloo-net. Both are bodiless POSTs to the same URL, which
//! the server takes as an exit because the query says `method=exit` (docs/protocol.md,
//! rule 1). The fetch is `no-cors`: the chat server may be on another origin (`trunk serve`,
//! `?server=`), the request is a simple one, and nobody reads the answer.

use gloo_net::http::Request;
use wasm_bindgen::JsValue;
use web_sys::{RequestInit, RequestMode};

/// How the exit went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitSent {
    /// `navigator.sendBeacon` queued it.
    Beacon,
    /// The beacon was refused; a keepalive `fetch` was started instead.
    KeepaliveFetch,
    /// Neither could be started (no window, or the URL was refused by both).
    NotSent,
}

/// Sends the exit request `url` (a chat URL with `method=exit`, see
/// `JsonpClient::exit_url`) so that it survives the page closing.
pub fn send_exit(url: &str) -> ExitSent {
    let Some(window) = web_sys::window() else {
        return ExitSent::NotSent;
    };
    if window.navigator().send_beacon(url).unwrap_or(false) {
        return ExitSent::Beacon;
    }
    match keepalive_post(url) {
        Ok(request) => {
            // The fetch starts when the future is first polled, in the microtask checkpoint
            // right after this `pagehide` handler returns, before the page goes away; a
            // keepalive request then outlives the page. The answer (opaque, `no-cors`) is of
            // no use.
            wasm_bindgen_futures::spawn_local(async move {
                let _ignored = request.send().await;
            });
            ExitSent::KeepaliveFetch
        }
        Err(_) => ExitSent::NotSent,
    }
}

/// A bodiless `POST url` with `keepalive: true` and `mode: no-cors`, as a gloo-net request.
///
/// Neither gloo-net 0.5's `RequestBuilder` nor web-sys 0.3's `RequestInit` has a `keepalive`
/// setter, so the `RequestInit` is built here, its `keepalive` member set as the plain
/// property it is (Fetch standard, `RequestInit` dictionary), and the `web_sys::Request`
/// handed to gloo-net, which sends it on the page's `window`.
///
/// # Errors
/// The browser refuses the URL or the options (`TypeError` from `new Request`).
fn keepalive_post(url: &str) -> Result<Request, JsValue> {
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_mode(RequestMode::NoCors);
    js_sys::Reflect::set(&init, &JsValue::from_str("keepalive"), &JsValue::TRUE)?;
    web_sys::Request::new_with_str_and_init(url, &init).map(Request::from)
}
