//! Many tabs of one browser share one long poll (issue: "with 6 tabs open, a send waits 18 to
//! 22 s before it even leaves the browser"): one Chromium profile, the server's real 25 s hold,
//! 6 and 8 tabs under one name. A message sent from the last tab shows in every tab within
//! 1 s, the server holds at most 2 pops from the browser, and when the leading tab closes the
//! others carry on with no gap and no duplicate.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use chat_e2e::{texts_of, wait_until, Check, ConnectionStatus, Env, ServerOptions, Tabs};

/// How soon a message must show in every tab, in ms (the bar).
const SHOW_WITHIN_MS: f64 = 1_000.0;

/// How long a check may wait before it fails (well above the bar, so that a failure says by
/// how much it was missed rather than timing out).
const WAIT: Duration = Duration::from_secs(30);

/// Most pops the server may hold from one browser, whatever its number of tabs.
const MAX_HELD_POPS: u64 = 2;

/// The server's own hold (`--poll-timeout` default): a held pop keeps its connection this long.
const REAL_HOLD_SECS: f64 = 25.0;

#[tokio::test]
#[ignore = "browser test: run by scripts/test.sh with --ignored"]
async fn six_tabs_share_one_poll_and_sends_do_not_stall() -> anyhow::Result<()> {
    tabs_share_one_poll("six_tabs", 6).await
}

#[tokio::test]
#[ignore = "browser test: run by scripts/test.sh with --ignored"]
async fn eight_tabs_share_one_poll_and_the_next_leads_when_the_leader_closes() -> anyhow::Result<()>
{
    tabs_share_one_poll("eight_tabs", 8).await
}

#[tokio::test]
#[ignore = "browser test: run by scripts/test.sh with --ignored"]
async fn ten_tabs_share_one_poll() -> anyhow::Result<()> {
    tabs_share_one_poll("ten_tabs", 10).await
}

/// Without the Web Locks API, each tab polls on its own (and, below six tabs, chats as well).
#[tokio::test]
#[ignore = "browser test: run by scripts/test.sh with --ignored"]
async fn without_web_locks_each_tab_polls_on_its_own() -> anyhow::Result<()> {
    const N_TABS: usize = 3;
    const NO_LOCKS: &str = "Object.defineProperty(Navigator.prototype, 'locks', \
        { get: function () { return undefined; } });";
    let env = Env::start("tabs_without_locks", ServerOptions::default()).await?;
    let browser = env.browser("old").await?;
    let url = env.server.base_url();
    env.run(&[&browser], async {
        browser.run_before_each_page(NO_LOCKS).await?;
        browser.open_chat(&url).await?;
        browser.join("Old").await?;
        let mut tabs = Tabs::new(&browser).await?;
        while tabs.len() < N_TABS {
            tabs.open_blank().await?;
            browser.run_before_each_page(NO_LOCKS).await?;
            browser.open_chat(&url).await?;
            browser
                .wait_status(ConnectionStatus::Connected, WAIT)
                .await?;
        }
        let roles = tabs.poll_roles().await?;
        ensure!(
            roles.iter().all(|role| role == "alone"),
            "roles without Web Locks: {roles:?}"
        );
        wait_until(WAIT, "the server holds one pop per tab", || async {
            let held = env.held_polls().await?;
            Ok(Check::when(
                held == N_TABS as u64,
                format_args!("{held} held"),
            ))
        })
        .await?;
        let text = "each tab on its own";
        tabs.watch_for(text).await?;
        let pushed_at = env.push("bob", text).await? as f64;
        wait_for_arrivals(&tabs, text, pushed_at).await?;
        Ok(())
    })
    .await
}

async fn tabs_share_one_poll(scenario: &str, n_tabs: usize) -> anyhow::Result<()> {
    let options = ServerOptions {
        poll_timeout_secs: REAL_HOLD_SECS,
        ..ServerOptions::default()
    };
    let env = Env::start(scenario, options).await?;
    let browser = env.browser("ann").await?;
    let url = env.server.base_url();
    env.run(&[&browser], async {
        browser.open_chat(&url).await?;
        browser.join("Ann").await?;
        let mut tabs = Tabs::new(&browser).await?;
        // The nickname is remembered: every further tab is in the room at once.
        while tabs.len() < n_tabs {
            let index = tabs.open(&url).await?;
            browser
                .wait_status(ConnectionStatus::Connected, WAIT)
                .await
                .with_context(|| format!("tab {index} connects"))?;
        }
        wait_for_one_leader(&tabs, n_tabs).await?;
        check_held_pops(&env, "with every tab open").await?;

        // A send from the last tab shows everywhere within the bar.
        let text = format!("hello from tab {n_tabs}");
        tabs.watch_for(&text).await?;
        let last = tabs.switch(n_tabs - 1).await?;
        let sent_at = now_ms(last).await?;
        last.send_message(&text).await?;
        wait_for_arrivals(&tabs, &text, sent_at).await?;
        check_held_pops(&env, "after the send").await?;

        // The leader goes; a message saved just before and one just after show in the others,
        // once each.
        let leader = leader_index(&tabs).await?;
        env.push("bob", "just before the leader closes").await?;
        tabs.close(leader).await?;
        let after = "right after the leader closed";
        tabs.watch_for(after).await?;
        let pushed_at = env.push("bob", after).await? as f64;
        wait_for_arrivals(&tabs, after, pushed_at).await?;
        wait_for_one_leader(&tabs, n_tabs - 1).await?;
        check_held_pops(&env, "after the leader closed").await?;
        for index in 0..tabs.len() {
            let page = tabs.switch(index).await?;
            let messages = page.messages().await?;
            let texts = texts_of(&messages);
            for wanted in [text.as_str(), "just before the leader closes", after] {
                let n_shown = texts.iter().filter(|shown| shown.contains(wanted)).count();
                ensure!(
                    n_shown == 1,
                    "tab {index} shows {wanted:?} {n_shown} times: {texts:?}"
                );
            }
        }

        // One person in many tabs joined once and, with tabs still open, never left.
        let history = env.history().await?;
        let joins = history
            .iter()
            .filter(|message| message.name == "Ann" && message.msg == "加入聊天室")
            .count();
        let exits = history
            .iter()
            .filter(|message| message.name == "Ann" && message.msg == "离开聊天室")
            .count();
        ensure!(
            joins == 1 && exits == 0,
            "Ann joined {joins} times and left {exits} times with tabs open"
        );
        tabs.switch(0).await?;
        env.screenshot(&browser, None).await?;
        Ok(())
    })
    .await
}

/// The page's clock (the arrivals are noted on it).
async fn now_ms(page: &chat_e2e::Browser) -> anyhow::Result<f64> {
    page.execute("return Date.now();", vec![])
        .await?
        .as_f64()
        .context("Date.now() is not a number")
}

/// Waits until exactly one of the `n_tabs` tabs leads and the rest follow.
async fn wait_for_one_leader(tabs: &Tabs<'_>, n_tabs: usize) -> anyhow::Result<()> {
    wait_until(WAIT, "one tab leads and the others follow", || async {
        let roles = tabs.poll_roles().await?;
        let leaders = roles.iter().filter(|role| *role == "leader").count();
        let followers = roles.iter().filter(|role| *role == "follower").count();
        Ok(Check::when(
            roles.len() == n_tabs && leaders == 1 && followers == n_tabs - 1,
            format_args!("{roles:?}"),
        ))
    })
    .await
}

/// The index of the leading tab.
async fn leader_index(tabs: &Tabs<'_>) -> anyhow::Result<usize> {
    let roles = tabs.poll_roles().await?;
    roles
        .iter()
        .position(|role| role == "leader")
        .with_context(|| format!("no tab leads: {roles:?}"))
}

/// The server holds at most [`MAX_HELD_POPS`] pops (this browser is its only client).
async fn check_held_pops(env: &Env, when: &str) -> anyhow::Result<()> {
    let held = env.held_polls().await?;
    ensure!(
        held <= MAX_HELD_POPS,
        "{when}: the server holds {held} pops from one browser"
    );
    Ok(())
}

/// Waits until every tab shows `text`, then checks each did within [`SHOW_WITHIN_MS`] of
/// `since` (ms since the Unix epoch).
async fn wait_for_arrivals(tabs: &Tabs<'_>, text: &str, since: f64) -> anyhow::Result<()> {
    let started = Instant::now();
    let arrivals = wait_until(WAIT, &format!("every tab shows {text:?}"), || async {
        let arrivals = tabs.arrivals().await?;
        Ok(if arrivals.iter().all(Option::is_some) {
            Check::Done(arrivals)
        } else {
            Check::NotYet(format!("{arrivals:?}"))
        })
    })
    .await
    .with_context(|| format!("after {:?}", started.elapsed()))?;
    let delays: Vec<f64> = arrivals
        .iter()
        .map(|arrival| arrival.unwrap_or(f64::INFINITY) - since)
        .collect();
    ensure!(
        delays.iter().all(|delay| *delay <= SHOW_WITHIN_MS),
        "{text:?} showed in the tabs after {delays:?} ms (bar: {SHOW_WITHIN_MS} ms)"
    );
    Ok(())
}
