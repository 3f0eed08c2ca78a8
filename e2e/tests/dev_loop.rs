//! The page's development loop: `trunk serve` from the repository root (a debug build of the
//! page on its own port) talks to a running chat server named with `?server=`, as the README's
//! "Page development" section says. Chromium opens trunk's page, joins and chats with a user
//! who only talks to the server's API.
//!
//! The first run builds the page's debug profile (minutes on a cold target folder; later runs
//! reuse cargo's cache); trunk writes into a temporary folder, never into `frontend/dist`.

use std::time::Duration;

use anyhow::{ensure, Context};
use chat_e2e::{wait_until, Check, Env, ServerOptions, TrunkServe};

/// How long a message may take to show on the page, or to reach the server.
const SHOW_TIMEOUT: Duration = Duration::from_secs(15);

/// `trunk serve` builds the page and serves it; the page, told `?server=` (the chat server on
/// another port), joins, receives a message pushed through the server's API, and sends one
/// that the server stores.
#[tokio::test]
#[ignore = "browser test: run by scripts/test.sh with --ignored"]
async fn trunk_serve_page_chats_with_a_running_server() -> anyhow::Result<()> {
    // The server does not serve the page here: trunk does.
    let options = ServerOptions {
        serve_page: false,
        ..ServerOptions::default()
    };
    let env = Env::start("dev_loop", options).await?;
    let trunk = TrunkServe::start(&env.http).await?;
    let alice = env.browser("alice").await?;
    let result = env
        .run(&[&alice], async {
            let server = env.server.base_url();
            let mut page_url = reqwest::Url::parse(&trunk.url()).context("trunk's URL")?;
            page_url.query_pairs_mut().append_pair("server", &server);
            alice.open_chat(page_url.as_str()).await?;

            // trunk serves a debug build: its loader names the page's script, and the page
            // says which server it talks to (the status line's title).
            let index = env
                .http
                .get(trunk.url())
                .send()
                .await
                .context("GET trunk's index.html")?
                .text()
                .await?;
            ensure!(
                index.contains("chat-frontend"),
                "trunk's index.html does not load the page: {index}"
            );
            alice.join("Alice").await?;
            let title = alice
                .execute(
                    "return document.getElementById('connection-status').title;",
                    vec![],
                )
                .await?;
            ensure!(
                title.as_str() == Some(&format!("Server: {server}")),
                "the page served by trunk talks to {title}, not to {server}"
            );

            env.push("Bob", "hello from the server's API").await?;
            alice
                .wait_for_message("hello from the server's API", SHOW_TIMEOUT)
                .await?;
            alice.send_message("hello from trunk serve").await?;
            wait_until(
                SHOW_TIMEOUT,
                "the server stores Alice's message sent from trunk's page",
                || async {
                    let history = env.history().await?;
                    Ok(Check::when(
                        history
                            .iter()
                            .any(|m| m.name == "Alice" && m.msg == "hello from trunk serve"),
                        format_args!("{:?}", &history[history.len().saturating_sub(5)..]),
                    ))
                },
            )
            .await?;
            let own = alice
                .wait_for_message("hello from trunk serve", SHOW_TIMEOUT)
                .await?;
            ensure!(own.own, "Alice's own line is not marked .own: {own:?}");
            env.screenshot(&alice, None).await?;
            Ok(())
        })
        .await;
    result.with_context(|| format!("trunk's log tail:\n{}", trunk.log_tail(20)))
}
