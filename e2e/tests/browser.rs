//! Browser end-to-end tests: real headless Chromium sessions on the Yew page (served by the
//! real `chat-server` binary) and on the legacy jQuery page, as users would use them.
//!
//! Each test is `#[ignore]`d so that `cargo test --workspace` needs no browser. Run them after
//! building the page (`trunk build --release --offline`) with
//! `cargo test -p chat-e2e -- --ignored --test-threads=1`. Each scenario saves a screenshot in
//! `target/e2e-screenshots/<scenario>.png` (and `<scenario>-failure-<user>.png` when it fails).

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use chat_e2e::{
    texts_of, wait_until, Browser, ChatServer, Check, ConnectionStatus, Env, Nginx, Redis,
    ServerOptions, ShownMessage, StopSignal, StoredMessage,
};
use serde_json::json;

/// How long a message, a join or a leave may take to show on another page.
const SHOW_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a page may take to notice that the server went away, and to come back.
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(45);

/// What the server stores as the text of an exit.
const LEAVE_TEXT: &str = "离开聊天室";

/// Whether `names` holds `name`.
fn lists(names: &[String], name: &str) -> bool {
    names.iter().any(|shown| shown == name)
}

/// Opens the Yew page from the server and joins as `name`.
async fn open_and_join(env: &Env, page: &Browser, name: &str) -> anyhow::Result<()> {
    page.open_chat(&env.server.base_url()).await?;
    page.join(name)
        .await
        .with_context(|| format!("{} joins as {name}", page.label()))
}

/// Checks what every page must keep true: each line has a `data-time`, no time is shown twice,
/// and lines are in time order.
fn check_times_unique_and_ordered(page: &str, messages: &[ShownMessage]) -> anyhow::Result<()> {
    let mut seen = HashSet::new();
    let mut previous = 0;
    for message in messages {
        let time = message
            .time
            .with_context(|| format!("{page}: a line without data-time: {message:?}"))?;
        ensure!(
            seen.insert(time),
            "{page}: data-time {time} is shown twice (a duplicate): {:?}",
            texts_of(messages)
        );
        ensure!(
            time > previous,
            "{page}: lines out of time order at {message:?}: {:?}",
            texts_of(messages)
        );
        previous = time;
    }
    Ok(())
}

/// The stored message saved by `name` with text `msg` (the newest such one).
fn stored<'a>(history: &'a [StoredMessage], name: &str, msg: &str) -> Option<&'a StoredMessage> {
    history
        .iter()
        .rev()
        .find(|message| message.name == name && message.msg == msg)
}

/// Scenario 1: two users on the Yew page chat both ways and see each other online.
#[tokio::test]
#[ignore = "browser test: run by scripts/test.sh with --ignored"]
async fn two_users_chat_both_ways_and_see_each_other_online() -> anyhow::Result<()> {
    let env = Env::start("two_users_chat", ServerOptions::default()).await?;
    let alice = env.browser("alice").await?;
    let bob = env.browser("bob").await?;
    env.run(&[&alice, &bob], async {
        open_and_join(&env, &alice, "Alice").await?;
        open_and_join(&env, &bob, "Bob").await?;

        for page in [&alice, &bob] {
            page.wait_online("lists Alice and Bob", SHOW_TIMEOUT, |names| {
                lists(names, "Alice") && lists(names, "Bob")
            })
            .await?;
        }
        alice
            .wait_for_messages("shows Bob's join line", SHOW_TIMEOUT, |messages| {
                messages
                    .iter()
                    .any(|message| message.system && message.text.contains("Bob"))
            })
            .await?;

        let from_alice = "Hello Bob, 你好! <b>not bold</b>";
        let from_bob = "Hi Alice & all, 再见";
        alice.send_message(from_alice).await?;
        bob.send_message_with_enter(from_bob).await?;

        for (page, own_text, other_text) in
            [(&alice, from_alice, from_bob), (&bob, from_bob, from_alice)]
        {
            let mine = page.wait_for_message(own_text, SHOW_TIMEOUT).await?;
            let theirs = page.wait_for_message(other_text, SHOW_TIMEOUT).await?;
            ensure!(
                mine.own && !mine.system,
                "{}: its own message is not marked .own: {mine:?}",
                page.label()
            );
            ensure!(
                !theirs.own && !theirs.system,
                "{}: the other user's message is marked .own or .system: {theirs:?}",
                page.label()
            );
        }

        // Each line's data-time is the stored message's time.
        let history = env.history().await?;
        for page in [&alice, &bob] {
            let messages = page.messages().await?;
            check_times_unique_and_ordered(page.label(), &messages)?;
            for (name, text) in [("Alice", from_alice), ("Bob", from_bob)] {
                let saved = stored(&history, name, text)
                    .with_context(|| format!("the server did not store {text:?}: {history:?}"))?;
                let shown: Vec<_> = messages
                    .iter()
                    .filter(|message| message.text.contains(text))
                    .collect();
                ensure!(
                    shown.len() == 1 && shown[0].time == Some(saved.time),
                    "{}: {text:?} should be shown once with data-time {}, shown: {shown:?}",
                    page.label(),
                    saved.time
                );
            }
        }
        env.screenshot(&alice, None).await?;
        env.screenshot(&bob, Some("bob")).await?;
        Ok(())
    })
    .await
}

/// Scenario 2: the legacy page using jQuery `$.ajax({dataType: 'jsonp'})` and the Yew page
/// chat both ways.
async fn legacy_page_chats_with_yew_page(jquery_major: u8) -> anyhow::Result<()> {
    let env = Env::start(
        &format!("legacy_jquery{jquery_major}"),
        ServerOptions::default(),
    )
    .await?;
    let yew = env.browser("yew").await?;
    let legacy = env.browser(&format!("jquery{jquery_major}")).await?;
    env.run(&[&yew, &legacy], async {
        open_and_join(&env, &yew, "Yew").await?;
        let legacy_name = format!("老页面jq{jquery_major}");
        legacy
            .open_legacy(jquery_major, &env.server.base_url(), &legacy_name)
            .await?;
        let version = legacy.jquery_version().await?;
        let expected_prefix = if jquery_major == 1 { "1.12." } else { "3.7." };
        ensure!(
            version.starts_with(expected_prefix),
            "the legacy page runs jQuery {version}, not {expected_prefix}x"
        );

        // The Yew page sees the legacy user arrive: its join line and its name online (a pop
        // counts as presence).
        yew.wait_for_messages(
            "shows the legacy user's join line",
            SHOW_TIMEOUT,
            |messages| {
                messages
                    .iter()
                    .any(|message| message.system && message.text.contains(&legacy_name))
            },
        )
        .await?;
        yew.wait_online("lists the legacy user", SHOW_TIMEOUT, |names| {
            lists(names, &legacy_name) && lists(names, "Yew")
        })
        .await?;

        // Legacy to Yew.
        let from_legacy = format!("jQuery {version} says hi & <b>bold?</b> 你好");
        legacy.legacy_send(&from_legacy).await?;
        let shown = yew.wait_for_message(&from_legacy, SHOW_TIMEOUT).await?;
        ensure!(
            !shown.own && !shown.system && shown.text.contains(&legacy_name),
            "the Yew page shows the legacy message oddly: {shown:?}"
        );
        legacy
            .wait_for_legacy_line(&format!("{legacy_name}:{from_legacy}"), SHOW_TIMEOUT)
            .await?;

        // Yew to legacy.
        let from_yew = "Yew answers: hello old friend <i>&amp;</i> 老朋友好";
        yew.send_message(from_yew).await?;
        legacy
            .wait_for_legacy_line(&format!("Yew:{from_yew}"), SHOW_TIMEOUT)
            .await?;
        let own = yew.wait_for_message(from_yew, SHOW_TIMEOUT).await?;
        ensure!(own.own, "the Yew page's own message is not .own: {own:?}");
        check_times_unique_and_ordered(yew.label(), &yew.messages().await?)?;

        // Nothing doubled on the legacy page.
        let lines = legacy.legacy_lines().await?;
        let unique: HashSet<&String> = lines.iter().collect();
        ensure!(
            unique.len() == lines.len(),
            "the legacy page shows a line twice: {lines:?}"
        );

        env.screenshot(&legacy, None).await?;
        env.screenshot(&yew, Some("yew")).await?;
        Ok(())
    })
    .await
}

/// Scenario 2 with jQuery 1.12.4.
#[tokio::test]
#[ignore = "browser test: run by scripts/test.sh with --ignored"]
async fn legacy_jquery1_page_chats_with_yew_page() -> anyhow::Result<()> {
    legacy_page_chats_with_yew_page(1).await
}

/// Scenario 2 with jQuery 3.7.1.
#[tokio::test]
#[ignore = "browser test: run by scripts/test.sh with --ignored"]
async fn legacy_jquery3_page_chats_with_yew_page() -> anyhow::Result<()> {
    legacy_page_chats_with_yew_page(3).await
}

/// The jQuery 1.x legacy page never hears of a `<script>` that failed to load, so a single
/// refused connection ends its poll loop for good (what every plain restart did to it). Here
/// it stays open through two takeovers, each while it holds a pop, and keeps receiving and
/// sending with no gap and no duplicate.
#[tokio::test]
#[ignore = "browser test: run by scripts/test.sh with --ignored"]
async fn legacy_jquery1_page_keeps_chatting_through_takeovers() -> anyhow::Result<()> {
    let env = Env::start("legacy_jquery1_takeover", ServerOptions::default()).await?;
    let legacy = env.browser("jquery1").await?;
    env.run(&[&legacy], async {
        let name = "老页面";
        legacy.open_legacy(1, &env.server.base_url(), name).await?;
        let mut expected = Vec::new();
        for round in 1..=2 {
            // The page's pop is held: the takeover must answer it and the page must poll the
            // successor through the same address.
            wait_until(SHOW_TIMEOUT, "the legacy page holds a pop", || async {
                let held = env.held_polls().await?;
                Ok(if held >= 1 {
                    Check::Done(())
                } else {
                    Check::NotYet(format!("{held} held pops"))
                })
            })
            .await?;
            env.server.take_over().await?;
            let text = format!("after takeover {round}");
            env.push("outside", &text).await?;
            let line = format!("outside:{text}");
            legacy.wait_for_legacy_line(&line, SHOW_TIMEOUT).await?;
            expected.push(line);
        }
        let own = "the old page still sends";
        legacy.legacy_send(own).await?;
        let line = format!("{name}:{own}");
        legacy.wait_for_legacy_line(&line, SHOW_TIMEOUT).await?;
        expected.push(line);

        let lines = legacy.legacy_lines().await?;
        let shown: Vec<&String> = lines
            .iter()
            .filter(|line| expected.contains(line))
            .collect();
        ensure!(
            shown == expected.iter().collect::<Vec<_>>(),
            "the legacy page shows {lines:?}, expected {expected:?} once each, in order"
        );
        env.screenshot(&legacy, None).await?;
        Ok(())
    })
    .await
}

/// Three instances on one Redis room, nginx in front: the Yew page on the first instance, the
/// jQuery 1.x page on the second, and a jQuery 3 page through nginx chat in every direction.
#[tokio::test]
#[ignore = "browser test: run by scripts/test.sh with --ignored"]
async fn pages_on_different_instances_of_one_redis_room_chat_in_every_direction(
) -> anyhow::Result<()> {
    let redis = Redis::start().await?;
    let options = ServerOptions {
        extra_args: vec!["--backend".to_owned(), redis.url()],
        ..ServerOptions::default()
    };
    let env = Env::start("cluster_three_instances", options.clone()).await?;
    let second = ChatServer::start(options.clone()).await?;
    let third = ChatServer::start(options).await?;
    let nginx = Nginx::start(&[env.server.addr(), second.addr(), third.addr()]).await?;
    let yew = env.browser("yew").await?;
    let old = env.browser("jquery1").await?;
    let proxied = env.browser("jquery3-nginx").await?;
    env.run(&[&yew, &old, &proxied], async {
        open_and_join(&env, &yew, "Yew").await?;
        old.open_legacy(1, &second.base_url(), "老页面").await?;
        proxied.open_legacy(3, &nginx.base_url(), "代理页").await?;

        let from_old = "from the jQuery 1 page on the second instance";
        old.legacy_send(from_old).await?;
        yew.wait_for_message(from_old, SHOW_TIMEOUT).await?;
        proxied
            .wait_for_legacy_line(&format!("老页面:{from_old}"), SHOW_TIMEOUT)
            .await?;

        let from_yew = "from the Yew page on the first instance";
        yew.send_message(from_yew).await?;
        old.wait_for_legacy_line(&format!("Yew:{from_yew}"), SHOW_TIMEOUT)
            .await?;
        proxied
            .wait_for_legacy_line(&format!("Yew:{from_yew}"), SHOW_TIMEOUT)
            .await?;

        let from_proxied = "from the jQuery 3 page through nginx";
        proxied.legacy_send(from_proxied).await?;
        yew.wait_for_message(from_proxied, SHOW_TIMEOUT).await?;
        old.wait_for_legacy_line(&format!("代理页:{from_proxied}"), SHOW_TIMEOUT)
            .await?;

        check_times_unique_and_ordered(yew.label(), &yew.messages().await?)?;
        for page in [&old, &proxied] {
            let lines = page.legacy_lines().await?;
            let unique: HashSet<&String> = lines.iter().collect();
            ensure!(
                unique.len() == lines.len(),
                "{} shows a line twice: {lines:?}",
                page.label()
            );
        }
        env.screenshot(&yew, None).await?;
        Ok(())
    })
    .await?;
    drop((nginx, third, second, redis));
    Ok(())
}

/// Waits until the server has stored `name`'s exit, and until `watcher` shows it as a system
/// line with the same time; returns that line.
async fn wait_for_leave_line(
    env: &Env,
    watcher: &Browser,
    name: &str,
    after: u64,
) -> anyhow::Result<ShownMessage> {
    let exit = wait_until(
        SHOW_TIMEOUT,
        &format!("the server stores {name}'s exit (sent by the closing page)"),
        || async {
            let history = env.history().await?;
            Ok(
                match history
                    .iter()
                    .find(|m| m.name == name && m.msg == LEAVE_TEXT && m.time > after)
                {
                    Some(exit) => Check::Done(exit.clone()),
                    None => {
                        Check::NotYet(format!("{:?}", &history[history.len().saturating_sub(5)..]))
                    }
                },
            )
        },
    )
    .await?;
    let messages = watcher
        .wait_for_messages(
            &format!("shows {name}'s leave line (data-time {})", exit.time),
            SHOW_TIMEOUT,
            |messages| messages.iter().any(|m| m.time == Some(exit.time)),
        )
        .await?;
    let line = messages
        .into_iter()
        .find(|m| m.time == Some(exit.time))
        .context("the leave line vanished")?;
    let lower = line.text.to_lowercase();
    ensure!(
        line.system
            && line.text.contains(name)
            && (line.text.contains("离开") || lower.contains("left") || lower.contains("leave")),
        "{}: {name}'s leave line should be a .system line naming them and saying they left: {line:?}",
        watcher.label()
    );
    Ok(line)
}

/// Scenario 3: reloading a page, then closing one, sends exit: the others see the leave line
/// and the online list shrinks.
#[tokio::test]
#[ignore = "browser test: run by scripts/test.sh with --ignored"]
async fn closing_or_reloading_a_page_sends_exit() -> anyhow::Result<()> {
    let env = Env::start("leave_on_close_and_reload", ServerOptions::default()).await?;
    let alice = env.browser("alice").await?;
    let bob = env.browser("bob").await?;
    let carol = env.browser("carol").await?;
    env.run(&[&alice, &bob, &carol], async {
        open_and_join(&env, &alice, "Alice").await?;
        open_and_join(&env, &bob, "Bob").await?;
        open_and_join(&env, &carol, "Carol").await?;
        alice
            .wait_online("lists all three", SHOW_TIMEOUT, |names| {
                ["Alice", "Bob", "Carol"]
                    .iter()
                    .all(|name| lists(names, name))
            })
            .await?;
        let before = env
            .history()
            .await?
            .last()
            .map_or(0, |message| message.time);

        // Carol reloads: the page sends exit, then comes back (asking for the nickname again
        // unless it remembers it).
        carol
            .client()
            .refresh()
            .await
            .context("reloading Carol's page")?;
        let leave = wait_for_leave_line(&env, &alice, "Carol", before).await?;
        eprintln!("Carol's leave line on Alice's page: {:?}", leave.text);
        carol.wait_ready().await?;
        if carol.nickname_form_shown().await? {
            carol.join("Carol").await?;
        } else {
            carol
                .wait_status(ConnectionStatus::Connected, SHOW_TIMEOUT)
                .await?;
        }
        alice
            .wait_online(
                "lists Carol again after her reload",
                SHOW_TIMEOUT,
                |names| lists(names, "Carol"),
            )
            .await?;

        // Bob closes his tab.
        bob.close_window().await?;
        wait_for_leave_line(&env, &alice, "Bob", leave.time.unwrap_or(before)).await?;
        alice
            .wait_online(
                "drops Bob after he closed his page",
                SHOW_TIMEOUT,
                |names| !lists(names, "Bob") && lists(names, "Alice") && lists(names, "Carol"),
            )
            .await?;
        check_times_unique_and_ordered(alice.label(), &alice.messages().await?)?;
        env.screenshot(&alice, None).await?;
        Ok(())
    })
    .await
}

/// Scenario 4: the server stops under a connected page and comes back on the same port; the
/// page says it is reconnecting, then catches up with no gap and no duplicate, including
/// messages saved while it could not connect.
async fn page_catches_up_after_server_restart(signal: StopSignal) -> anyhow::Result<()> {
    let scenario = match signal {
        StopSignal::Kill => "server_restart_sigkill",
        StopSignal::Terminate => "server_restart_sigterm",
    };
    let env = Env::start(scenario, ServerOptions::default()).await?;
    let alice = env.browser("alice").await?;
    env.run(&[&alice], async {
        open_and_join(&env, &alice, "Alice").await?;
        let mut expected = Vec::new();
        for n in 1..=3 {
            let text = format!("before stop #{n}");
            env.push("relay", &text).await?;
            expected.push(text);
        }
        alice
            .wait_for_message("before stop #3", SHOW_TIMEOUT)
            .await?;

        env.server.stop(signal).await?;
        alice
            .wait_status(ConnectionStatus::Reconnecting, RECONNECT_TIMEOUT)
            .await
            .context("the page should say it is reconnecting while the server is down")?;
        env.screenshot(&alice, Some("reconnecting")).await?;

        // Saved while the page cannot reach the server: through a second server process on the
        // same data folder, on another port.
        let away: Vec<String> = (1..=3).map(|n| format!("while away #{n}")).collect();
        let away_pairs: Vec<(&str, &str)> =
            away.iter().map(|text| ("relay", text.as_str())).collect();
        env.server.push_while_away(&env.http, &away_pairs).await?;
        expected.extend(away.iter().cloned());
        ensure!(
            alice.status().await? == ConnectionStatus::Reconnecting,
            "the page left the reconnecting state while the server was down"
        );

        // Back on the same port; push at once, before the page's next retry.
        env.server.restart().await?;
        for n in 1..=3 {
            let text = format!("after restart #{n}");
            env.push("relay", &text).await?;
            expected.push(text);
        }
        // Informative only: the page's retry timer decides whether these arrive in its
        // catch-up pop or in a live one; both must show each message once.
        let status_after_pushes = alice.status().await?;
        eprintln!("after the restart's pushes the page's status was {status_after_pushes:?}");

        alice
            .wait_status(ConnectionStatus::Connected, RECONNECT_TIMEOUT)
            .await
            .context("the page should reconnect once the server is back")?;
        let last_expected = expected.last().cloned().unwrap_or_default();
        alice
            .wait_for_message(&last_expected, RECONNECT_TIMEOUT)
            .await?;

        // The loop still runs: a live message arrives after the catch-up.
        env.push("relay", "live after reconnect").await?;
        expected.push("live after reconnect".to_owned());
        alice
            .wait_for_message("live after reconnect", SHOW_TIMEOUT)
            .await?;

        let messages = alice.messages().await?;
        check_times_unique_and_ordered(alice.label(), &messages)?;
        for text in &expected {
            let n_shown = messages
                .iter()
                .filter(|m| m.text.contains(text.as_str()))
                .count();
            ensure!(
                n_shown == 1,
                "{text:?} is shown {n_shown} times (expected once): {:?}",
                texts_of(&messages)
            );
        }
        // No gap: every message stored since the page's first line is shown, and nothing else.
        let first_time = messages
            .first()
            .and_then(|m| m.time)
            .context("the page shows no message")?;
        let history = env.history().await?;
        let stored_times: Vec<u64> = history
            .iter()
            .map(|m| m.time)
            .filter(|&time| time >= first_time)
            .collect();
        let shown_times: Vec<u64> = messages.iter().filter_map(|m| m.time).collect();
        if stored_times != shown_times {
            let stored_set: BTreeSet<u64> = stored_times.iter().copied().collect();
            let shown_set: BTreeSet<u64> = shown_times.iter().copied().collect();
            let missing: Vec<_> = history
                .iter()
                .filter(|m| m.time >= first_time && !shown_set.contains(&m.time))
                .collect();
            let extra: Vec<_> = shown_set.difference(&stored_set).collect();
            bail!(
                "the page's lines differ from the stored messages since {first_time}: \
                 missing {missing:?}, not stored {extra:?}"
            );
        }
        env.screenshot(&alice, None).await?;
        Ok(())
    })
    .await
}

/// Scenario 4 with SIGKILL.
#[tokio::test]
#[ignore = "browser test: run by scripts/test.sh with --ignored"]
async fn page_catches_up_after_server_sigkill_and_restart() -> anyhow::Result<()> {
    page_catches_up_after_server_restart(StopSignal::Kill).await
}

/// Scenario 4 with SIGTERM.
#[tokio::test]
#[ignore = "browser test: run by scripts/test.sh with --ignored"]
async fn page_catches_up_after_server_sigterm_and_restart() -> anyhow::Result<()> {
    page_catches_up_after_server_restart(StopSignal::Terminate).await
}

/// Scenario 5: markup in a message (and in a nickname) is shown as text and runs nothing.
#[tokio::test]
#[ignore = "browser test: run by scripts/test.sh with --ignored"]
async fn markup_in_messages_is_shown_as_text_and_runs_nothing() -> anyhow::Result<()> {
    const PAYLOAD: &str = "<img src=x onerror=alert(1)>";
    const NAME_PAYLOAD: &str = "<img src=y onerror=alert(2)>";
    const SCRIPT_PAYLOAD: &str = "<script>alert(3)</script><svg onload=alert(4)>";
    let env = Env::start("markup_as_text", ServerOptions::default()).await?;
    // Alice's page counts alert calls; Bob's keeps the real alert, so a dialog would show.
    let alice = env.browser("alice").await?;
    let bob = env.browser("bob").await?;
    env.run(&[&alice, &bob], async {
        open_and_join(&env, &alice, "Alice").await?;
        open_and_join(&env, &bob, "Bob").await?;
        alice
            .execute(
                "window.__alerts = 0; window.alert = function () { window.__alerts += 1; };",
                vec![],
            )
            .await?;

        alice.send_message(PAYLOAD).await?;
        env.push(NAME_PAYLOAD, SCRIPT_PAYLOAD).await?;
        for page in [&alice, &bob] {
            page.wait_for_message(PAYLOAD, SHOW_TIMEOUT).await?;
            page.wait_for_message(SCRIPT_PAYLOAD, SHOW_TIMEOUT).await?;
        }

        // Let an error event of an <img src=x> have its chance: a control image with the same
        // URL (`/x`, no query string, so the server answers with the page, not a chat join),
        // created now, reports its error after any inserted one would have.
        for page in [&alice, &bob] {
            page.execute(
                "window.__control_done = false; var img = new Image();
                 img.onerror = img.onload = function () { window.__control_done = true; };
                 img.src = 'x';",
                vec![],
            )
            .await?;
            wait_until(
                SHOW_TIMEOUT,
                &format!("{}'s control image has loaded or failed", page.label()),
                || async {
                    let done = page
                        .execute("return window.__control_done;", vec![])
                        .await?;
                    Ok(Check::when(done == json!(true), &done))
                },
            )
            .await?;
        }

        for page in [&alice, &bob] {
            let found = page
                .execute(
                    "var root = document.getElementById('messages');
                     var exact = function (text) {
                         return Array.from(root.querySelectorAll('*'))
                             .some(function (e) { return e.textContent.trim() === text; });
                     };
                     return {
                         images: root.querySelectorAll('img').length,
                         scripts: root.querySelectorAll('script').length,
                         svgs: root.querySelectorAll('svg[onload]').length,
                         handlers: root.querySelectorAll('[onerror],[onload]').length,
                         payloadElement: exact(arguments[0]),
                         scriptPayloadElement: exact(arguments[1]),
                         namePayloadShown: root.textContent.indexOf(arguments[2]) >= 0
                     };",
                    vec![json!(PAYLOAD), json!(SCRIPT_PAYLOAD), json!(NAME_PAYLOAD)],
                )
                .await?;
            let label = page.label();
            ensure!(
                found["images"] == json!(0)
                    && found["scripts"] == json!(0)
                    && found["svgs"] == json!(0)
                    && found["handlers"] == json!(0),
                "{label}: markup from a message became elements in #messages: {found}"
            );
            ensure!(
                found["payloadElement"] == json!(true)
                    && found["scriptPayloadElement"] == json!(true),
                "{label}: no element's text equals the message text exactly: {found}"
            );
            ensure!(
                found["namePayloadShown"] == json!(true),
                "{label}: the markup nickname is not shown as text: {found}"
            );
            if let Ok(text) = page.client().get_alert_text().await {
                bail!("{label}: an alert dialog is open: {text:?}");
            }
        }
        let alerts = alice.execute("return window.__alerts;", vec![]).await?;
        ensure!(
            alerts == json!(0),
            "alice: alert() was called {alerts} times"
        );
        env.screenshot(&alice, None).await?;
        Ok(())
    })
    .await
}

/// The legacy page itself: jQuery 1.x and 3.x pages chat with each other over JSONP (no Yew
/// page involved, so a broken page build does not hide a broken legacy path).
#[tokio::test]
#[ignore = "browser test: run by scripts/test.sh with --ignored"]
async fn legacy_jquery1_and_jquery3_pages_chat_with_each_other() -> anyhow::Result<()> {
    let options = ServerOptions {
        serve_page: false,
        ..ServerOptions::default()
    };
    let env = Env::start("legacy_pages_together", options).await?;
    let old = env.browser("jquery1").await?;
    let new = env.browser("jquery3").await?;
    env.run(&[&old, &new], async {
        let server = env.server.base_url();
        old.open_legacy(1, &server, "老王").await?;
        new.open_legacy(3, &server, "小李").await?;
        // The first page sees the second one join (the join's text is the default).
        old.wait_for_legacy_line("小李:加入聊天室", SHOW_TIMEOUT)
            .await?;

        let from_old = "from jQuery 1 <script>x</script> & 你好 100%";
        old.legacy_send(from_old).await?;
        let from_new = "from jQuery 3: a+b=c?d#e";
        new.legacy_send(from_new).await?;
        for page in [&old, &new] {
            page.wait_for_legacy_line(&format!("老王:{from_old}"), SHOW_TIMEOUT)
                .await?;
            page.wait_for_legacy_line(&format!("小李:{from_new}"), SHOW_TIMEOUT)
                .await?;
        }
        let history = env.history().await?;
        ensure!(
            stored(&history, "老王", from_old).is_some()
                && stored(&history, "小李", from_new).is_some(),
            "the server did not store both messages exactly: {history:?}"
        );
        env.screenshot(&old, None).await?;
        Ok(())
    })
    .await
}

/// Issue 10: a newcomer sees the room's recent history at once; rooms are apart, named in the
/// title, and reached from the address or the room switcher; the legacy room is unchanged.
#[tokio::test]
#[ignore = "browser test: run by scripts/test.sh with --ignored"]
async fn a_newcomer_sees_the_rooms_recent_history_and_rooms_are_apart() -> anyhow::Result<()> {
    let env = Env::start("rooms_and_history", ServerOptions::default()).await?;
    let base = env.server.base_url();
    for n in 1..=3 {
        env.push_in_room("lobby", "early", &format!("lobby said {n}"))
            .await?;
    }
    env.push("early", "the main room said this").await?;

    let newcomer = env.browser("newcomer").await?;
    let main = env.browser("main").await?;
    env.run(&[&newcomer, &main], async {
        newcomer.open_chat(&format!("{base}#lobby")).await?;
        newcomer.join("Newcomer").await?;
        newcomer
            .wait_for_messages("shows the lobby's history", SHOW_TIMEOUT, |messages| {
                ["lobby said 1", "lobby said 2", "lobby said 3"]
                    .iter()
                    .all(|text| messages.iter().any(|message| message.text.contains(text)))
            })
            .await?;
        let shown = newcomer.message_texts().await?;
        ensure!(
            !shown.iter().any(|text| text.contains("main room")),
            "the lobby shows the main room's message: {shown:?}"
        );
        let title = newcomer.execute("return document.title", vec![]).await?;
        ensure!(title == json!("#lobby · Chat"), "title {title}");

        open_and_join(&env, &main, "Main").await?;
        main.wait_for_message("the main room said this", SHOW_TIMEOUT)
            .await?;
        newcomer.send_message("hello lobby").await?;
        // After Send (which disables itself while sending), the keyboard stays in the box.
        let focused = newcomer
            .execute(
                "return document.activeElement && document.activeElement.id",
                vec![],
            )
            .await?;
        ensure!(focused == json!("message-input"), "focus went to {focused}");
        env.push("early", "main again").await?;
        main.wait_for_message("main again", SHOW_TIMEOUT).await?;
        let in_main = main.message_texts().await?;
        ensure!(
            !in_main.iter().any(|text| text.contains("lobby")),
            "the main room shows the lobby's messages: {in_main:?}"
        );

        // The switcher takes the main page into the lobby, with its history.
        let input = main.wait_for_element("#room-input").await?;
        input.clear().await?;
        input.send_keys("Lobby").await?;
        main.wait_for_element("#room-go").await?.click().await?;
        main.wait_ready().await?;
        main.wait_for_message("hello lobby", SHOW_TIMEOUT).await?;
        let title = main.execute("return document.title", vec![]).await?;
        ensure!(
            title == json!("#lobby · Chat"),
            "title after switching {title}"
        );
        env.screenshot(&newcomer, None).await?;
        Ok(())
    })
    .await
}
