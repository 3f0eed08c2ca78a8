//! The page's function components. They render state and turn events into callbacks; the
//! work happens in `hooks/` and the rules in `state.rs` and `reading.rs`.

pub mod app;
pub mod composer;
pub mod earlier_status;
pub mod live_announcer;
pub mod message_list;
pub mod nickname_form;
pub mod online_list;
pub mod room_switcher;
pub mod status_bar;
