//! End-to-end tests of the chat server over real sockets, each JSONP answer run in a real
//! JavaScript engine.

#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod backends;
mod bad_input;
mod clients;
mod cluster;
mod framing;
mod heads;
mod history;
mod long_poll;
mod methods;
mod metrics;
mod names;
mod page;
mod presence;
mod process;
mod protocol;
mod restart;
mod retries;
mod rooms;
mod storage;
mod storage_outage;
