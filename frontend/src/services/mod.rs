//! Talking to the outside world: the server (JSONP), the retry schedule, the browser's storage,
//! and where the server is.
//!
//! Only `backoff` and the pure halves of `server_url` and `jsonp` run in host tests; the rest
//! calls browser APIs and is exercised in the browser.

pub mod backoff;
pub mod jsonp;
pub mod server_url;
pub mod storage;
