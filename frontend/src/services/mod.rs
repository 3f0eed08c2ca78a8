//! Talking to the outside world: the server (JSONP, and the exit sent as the page closes), the
//! retry schedule, the browser's storage, where the server is, and which room the page is in.
//!
//! Only `backoff` and the pure halves of `server_url` and `jsonp` run in host tests; the rest
//! calls browser APIs and is exercised in the browser.

pub mod backoff;
pub mod exit;
pub mod jsonp;
pub mod local_time;
pub mod notify;
pub mod room;
pub mod server_url;
pub mod storage;
pub mod tabs;
