//! A chat server that speaks the JSONP long-polling protocol of the original Node.js chat room
//! (`docs/protocol.md`), so that every jQuery-era page keeps working unchanged, with durable
//! storage in the original's file layout and none of its faults.
//!
//! The pieces, outside in:
//! - [`startup`]: builds the [`startup::Application`] (library, so tests bind port 0) on
//!   listeners that are bound, inherited (socket activation) or taken over ([`handover`]);
//! - [`routes`]: the protocol's rules, on every path;
//! - [`query`] and [`jsonp`]: strict query decoding and safe JSONP bodies;
//! - [`limits`]: rate and connection limits;
//! - [`presence`]: who is online;
//! - [`room`]: the in-memory room and the event-driven wake-up of held pops;
//! - [`writer`]: the group-commit writer thread;
//! - [`storage`]: the write-ahead log and the original's JSON layout;
//! - [`telemetry`]: metrics and the status page for operators.

pub mod clock;
pub mod config;
pub mod handover;
pub mod jsonp;
pub mod limits;
pub mod presence;
pub mod query;
pub mod room;
pub mod routes;
pub mod startup;
pub mod storage;
pub mod telemetry;
pub mod writer;

pub use config::Settings;
pub use startup::{Application, ListenerSource, Listeners, ShutdownHandle};
