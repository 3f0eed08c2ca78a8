//! A load generator for the chat's JSONP long-polling protocol (`docs/protocol.md`), and for
//! nginx + nchan's long-poll protocol, so that both can be measured with the same scenarios.
//!
//! Scenarios (see [`scenarios`]): `fanout` (held pops and a publisher: delivery latency, every
//! message exactly once and in order), `push` (durable pushes per second), `catchup` (paging
//! through a long history), `idle` (server memory per held pop), `flood` (normal pushes' latency
//! beside clients sending 60 KB queries of 15 000 keys).

pub mod client;
pub mod report;
pub mod scenarios;
pub mod stats;

/// Raises this process's open-file limit so it can hold `wanted` connections; returns the
/// limit in force. Each poller is one connection.
pub fn raise_open_file_limit(wanted: u64) -> u64 {
    rlimit::increase_nofile_limit(wanted).unwrap_or(0)
}
