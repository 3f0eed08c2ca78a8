//! Harness of the browser end-to-end tests (`tests/*.rs`): it starts the real `chat-server`
//! binary and a chromedriver (and, for the development loop, `trunk serve`), opens headless
//! Chromium sessions (any window size, light or dark) on the Yew page or on the legacy jQuery
//! page (`legacy/jquery.html`), and waits for what a user would see.
//!
//! The tests are `#[ignore]`d so that `cargo test --workspace` does not need a browser; they
//! run with `cargo test -p chat-e2e -- --ignored --test-threads=1` once the page is built
//! (`trunk build --release --offline`) and Chromium, chromedriver and the legacy page's npm
//! packages are installed (`scripts/setup.sh`). A missing piece fails the test with a message
//! that says how to get it.
//!
//! ```no_run
//! use std::time::Duration;
//! use chat_e2e::{wait_until, Check, Env, ServerOptions};
//!
//! # async fn example() -> anyhow::Result<()> {
//! let env = Env::start("example", ServerOptions::default()).await?;
//! let alice = env.browser("alice").await?;
//! env.run(&[&alice], async {
//!     alice.open_chat(&env.server.base_url()).await?;
//!     alice.join("Alice").await?;
//!     env.push("relay", "hello").await?;
//!     wait_until(Duration::from_secs(10), "Alice sees the relay's message", || async {
//!         let texts = alice.message_texts().await?;
//!         Ok(Check::when(texts.iter().any(|t| t.contains("hello")), format!("{texts:?}")))
//!     })
//!     .await?;
//!     Ok(())
//! })
//! .await
//! # }
//! ```

mod browser;
mod cluster;
mod env;
mod paths;
mod server;
mod tabs;
mod trunk;
mod wait;

pub use browser::{
    texts_of, AxeViolation, Browser, BrowserOptions, ColorScheme, ConnectionStatus, ShownMessage,
};
pub use cluster::{Nginx, Redis};
pub use env::{ChromeDriver, Env, StoredMessage};
pub use paths::{
    axe_script_path, legacy_page_path, screenshot_dir, target_dir, web_page_dir, workspace_root,
};
pub use server::{ChatServer, ServerOptions, StopSignal};
pub use tabs::Tabs;
pub use trunk::{TrunkServe, TRUNK_BIN_VAR};
pub use wait::{wait_until, Check, POLL_INTERVAL};
