//! Custom hooks: the browser side of the page's behaviour, kept out of the components.
//!
//! Each hook owns what it starts (tasks, timers, event listeners) and stops it in its effect's
//! destructor.

pub mod use_arrivals;
pub mod use_chat_session;
pub mod use_earlier_history;
pub mod use_mention_notifications;
pub mod use_now;
pub mod use_send_message;
