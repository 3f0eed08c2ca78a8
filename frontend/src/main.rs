//! The chat room's web page: a Yew application talking script-tag JSONP to the chat server.
//!
//! - `state`: the reducer (pure, unit-tested on the host);
//! - `components/`: the views;
//! - `hooks/`: the poll loop and sending, the browser side of the behaviour;
//! - `services/`: the JSONP transport, the retry schedule, storage, where the server is;
//! - `nickname`, `errors`: rules and wording, pure;
//! - `reading`: grouping, day separators, links, mentions and announcements, pure.
//!
//! Build the page with `trunk build` (see `Trunk.toml` at the repository root); the server
//! serves `frontend/dist`.

mod components;
mod errors;
mod hooks;
mod nickname;
mod reading;
mod services;
mod state;

fn main() {
    // index.html holds a static copy of the first screen in `#app`, painted before this runs;
    // mounting there replaces it (Yew empties its root first). Without it, the body.
    let root = web_sys::window()
        .and_then(|window| window.document())
        .and_then(|document| document.get_element_by_id("app"));
    match root {
        Some(root) => yew::Renderer::<components::app::App>::with_root(root).render(),
        None => yew::Renderer::<components::app::App>::new().render(),
    };
}
