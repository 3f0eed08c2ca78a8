//! Desktop notifications (the Notifications API), for mentions of the reader.
//!
//! Permission is asked only from a click (`request_permission` is called by the toggle's
//! handler, never at load): browsers ignore or penalise pages that ask unprompted, and a reader
//! deserves to know why they are asked.

use gloo_events::EventListener;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Notification, NotificationOptions, NotificationPermission};

use crate::reading::Notice;

/// The `tag` of every mention notification: a new one replaces the previous one instead of
/// piling up.
const TAG: &str = "chat-mention";

/// Whether this browser has the Notifications API at all (not on some phones, nor in an
/// insecure context other than localhost).
pub fn supported() -> bool {
    web_sys::window().is_some_and(|window| {
        js_sys::Reflect::has(&window, &JsValue::from_str("Notification")).unwrap_or(false)
    })
}

/// The page's notification permission; `None` without the API.
pub fn permission() -> Option<NotificationPermission> {
    supported().then(Notification::permission)
}

/// Asks the reader for permission (call from a click handler only) and returns whether it was
/// granted. A browser that refuses to ask, or a reader who closes the prompt, counts as no.
pub async fn request_permission() -> bool {
    if !supported() {
        return false;
    }
    let Ok(promise) = Notification::request_permission() else {
        return false;
    };
    JsFuture::from(promise)
        .await
        .ok()
        .and_then(|answer| answer.as_string())
        .is_some_and(|answer| answer == "granted")
}

/// A notification on screen; clicking it brings the page's tab forward. Dropping it detaches
/// that handler (the notification itself stays until the system removes it).
#[derive(Debug)]
pub struct Shown {
    _on_click: EventListener,
}

/// Shows `notice` as a desktop notification, if permitted. Failures (permission withdrawn
/// meanwhile, the system refusing) give `None`: the message is on the page anyway.
pub fn show(notice: &Notice) -> Option<Shown> {
    if permission() != Some(NotificationPermission::Granted) {
        return None;
    }
    let options = NotificationOptions::new();
    options.set_body(&notice.body);
    options.set_tag(TAG);
    let notification = Notification::new_with_options(&notice.title, &options).ok()?;
    let clicked = notification.clone();
    let on_click = EventListener::new(&notification, "click", move |_| {
        if let Some(window) = web_sys::window() {
            let _ignored = window.focus();
        }
        clicked.close();
    });
    Some(Shown {
        _on_click: on_click,
    })
}

/// Whether the page is hidden (another tab, a minimised window): notifications are for
/// messages the reader cannot see.
pub fn page_hidden() -> bool {
    web_sys::window()
        .and_then(|window| window.document())
        .is_some_and(|document| document.hidden())
}
