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
    yew::Renderer::<components::app::App>::new().render();
}
