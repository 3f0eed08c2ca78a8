//! A chat server that speaks the JSONP long-polling protocol of the original Node.js chat room
//! (`docs/protocol.md`), so that every jQuery-era page keeps working unchanged, with durable
//! storage in the original's file layout and none of its faults.
//!
//! The pieces, outside in:
//! - [`startup`]: builds the [`startup::Application`] (library, so tests bind port 0) on
//!   listeners that are bound, inherited (socket activation) or taken over ([`handover`]);
//! - [`routes`]: HTTP only, on every path: requests to the protocol, then to the room;
//! - [`protocol`]: queries to typed requests, refusals to error codes, answers to JSONP,
//!   with [`query`] (strict query decoding) and [`jsonp`] (safe JSONP bodies);
//! - [`limits`]: rate and connection limits;
//! - [`room`]: what one instance keeps: held pops, their wake-up, the newest messages;
//! - [`backend`]: the storage seam (messages and presence), with [`backend::local`], the data
//!   folder behind a group-commit writer thread, and [`presence`], who is online;
//! - [`pages`]: paging that keeps messages sharing a time together;
//! - [`storage`]: the write-ahead log and the original's JSON layout;
//! - [`telemetry`]: metrics and the status page for operators.

pub mod backend;
pub mod clock;
pub mod config;
pub mod drain;
pub mod handover;
pub mod hangup;
pub mod jsonp;
pub mod limits;
pub mod logging;
pub mod page_policy;
pub mod pages;
pub mod presence;
pub mod protocol;
pub mod query;
pub mod room;
pub mod rooms;
pub mod routes;
pub mod startup;
pub mod storage;
pub mod telemetry;

pub use config::Settings;
pub use startup::{Application, ListenerSource, Listeners, ShutdownHandle};
