//! Browser test of scrolling back through history: a page opened on a room of 180 messages
//! shows the newest 50, and each time the reader scrolls the list to the top it prepends the
//! page before (`last=50&before=<oldest shown>`) without moving what the reader was looking
//! at, until the room's first message and "Beginning of the room".
//!
//! `#[ignore]`d like every browser test; run it after `trunk build --release --offline` with
//! `cargo test -p chat-e2e --test history -- --ignored --test-threads=1`.

use std::time::Duration;

use anyhow::{ensure, Context};
use chat_e2e::{wait_until, Browser, Check, Env, ServerOptions};
use serde_json::json;

/// How long the page may take to show a page of history.
const SHOW_TIMEOUT: Duration = Duration::from_secs(15);

/// How many messages the room holds before the reader arrives.
const SEEDED: usize = 180;

/// How far, in CSS pixels, the message the reader was looking at may move when a page is
/// prepended above it (sub-pixel layout rounds).
const MOVE_TOLERANCE_PX: f64 = 3.0;

/// What the page shows of scrolling back: the list's lines (their `data-time`), how far the
/// list is scrolled, and `#earlier-status`.
#[derive(Debug, Clone)]
struct View {
    times: Vec<u64>,
    scroll_top: f64,
    status: String,
    status_text: String,
}

async fn view(page: &Browser) -> anyhow::Result<View> {
    let seen = page
        .execute(
            "const list = document.getElementById('messages');
             const status = document.getElementById('earlier-status');
             return {
                 times: Array.from(list.querySelectorAll('li.message'))
                     .map(function (li) { return li.getAttribute('data-time'); }),
                 scrollTop: list.scrollTop,
                 status: status ? status.getAttribute('data-state') : '',
                 statusText: status ? status.textContent : ''
             };",
            vec![],
        )
        .await?;
    let times = seen["times"]
        .as_array()
        .context("no lines")?
        .iter()
        .map(|time| {
            time.as_str()
                .and_then(|time| time.parse().ok())
                .with_context(|| format!("a line without a data-time: {seen}"))
        })
        .collect::<anyhow::Result<Vec<u64>>>()?;
    Ok(View {
        times,
        scroll_top: seen["scrollTop"].as_f64().unwrap_or(-1.0),
        status: seen["status"].as_str().unwrap_or_default().to_owned(),
        status_text: seen["statusText"].as_str().unwrap_or_default().to_owned(),
    })
}

/// Scrolls the list to its top edge, as a reader dragging up does, and returns where the line
/// at `time` then is on the screen (its top edge, CSS pixels from the viewport's top), measured
/// before the page has had a chance to load anything.
async fn scroll_to_top_and_measure(page: &Browser, time: u64) -> anyhow::Result<f64> {
    let top = page
        .execute(
            "const list = document.getElementById('messages');
             list.scrollTop = 0;
             const line = list.querySelector('li[data-time=\"' + arguments[0] + '\"]');
             return line ? line.getBoundingClientRect().top : null;",
            vec![json!(time.to_string())],
        )
        .await?;
    top.as_f64()
        .with_context(|| format!("no line with data-time {time}"))
}

/// Where the line at `time` is on the screen now.
async fn screen_top(page: &Browser, time: u64) -> anyhow::Result<f64> {
    let top = page
        .execute(
            "const line = document.querySelector('#messages li[data-time=\"' + arguments[0] + '\"]');
             return line ? line.getBoundingClientRect().top : null;",
            vec![json!(time.to_string())],
        )
        .await?;
    top.as_f64()
        .with_context(|| format!("no line with data-time {time}"))
}

#[tokio::test]
#[ignore = "browser test: run by scripts/test.sh with --ignored"]
async fn scrolling_to_the_top_loads_earlier_pages_in_place_until_the_beginning(
) -> anyhow::Result<()> {
    let options = ServerOptions {
        // A small memory and frequent compaction put most of the history in chunk files, read
        // from disk when the page scrolls back (the harness already lifts the save rate limit
        // for the seeding burst).
        extra_args: ["--memory-messages=60", "--compact-after=50"]
            .map(str::to_owned)
            .to_vec(),
        ..ServerOptions::default()
    };
    let env = Env::start("history_scroll_back", options).await?;
    for n in 1..=SEEDED {
        env.push("seeder", &format!("history {n}")).await?;
    }
    let reader = env.browser("reader").await?;
    env.run(&[&reader], async {
        reader.open_chat(&env.server.base_url()).await?;
        reader.join("Reader").await?;
        // Arrival: the newest 50 (the reader's own join line is the newest of them).
        let arrived = wait_until(SHOW_TIMEOUT, "the newest 50 are shown", || async {
            let view = view(&reader).await?;
            Ok(done_when(
                view.times.len() >= 50 && view.status == "more",
                view,
            ))
        })
        .await?;
        let stored: Vec<u64> = env
            .history()
            .await?
            .iter()
            .map(|message| message.time)
            .collect();
        ensure!(stored.len() == SEEDED + 1, "stored {}", stored.len());
        ensure!(
            arrived.times == stored[stored.len() - 50..],
            "on arrival the page shows the newest 50: {:?}",
            arrived.times
        );
        ensure!(
            arrived.scroll_top > 0.0,
            "the list starts at the bottom: {arrived:?}"
        );

        let mut shown = arrived;
        for round in 1..=10 {
            let top_line = shown.times[0];
            let before = scroll_to_top_and_measure(&reader, top_line).await?;
            let count = shown.times.len();
            shown = wait_until(
                SHOW_TIMEOUT,
                &format!("round {round}: a page of earlier messages is prepended"),
                || async {
                    let view = view(&reader).await?;
                    Ok(done_when(
                        view.times.len() > count && view.status != "loading",
                        view,
                    ))
                },
            )
            .await?;
            let after = screen_top(&reader, top_line).await?;
            ensure!(
                (after - before).abs() <= MOVE_TOLERANCE_PX,
                "round {round}: the line the reader saw on top moved from {before} px to \
                 {after} px"
            );
            ensure!(
                shown.times == stored[stored.len() - shown.times.len()..],
                "round {round}: the newest {} in order, none twice: {:?}",
                shown.times.len(),
                shown.times
            );
            if shown.status == "beginning" {
                break;
            }
        }
        ensure!(
            shown.times == stored,
            "every message is shown once, in order: {} of {}",
            shown.times.len(),
            stored.len()
        );
        ensure!(
            shown.status == "beginning" && shown.status_text == "Beginning of the room",
            "the page says the beginning is reached: {shown:?}"
        );
        let texts = reader.message_texts().await?;
        ensure!(
            texts[0].contains("history 1") && texts[SEEDED - 1].contains("history 180"),
            "the first and last seeded lines: {:?} … {:?}",
            texts[0],
            texts[SEEDED - 1]
        );
        // Scrolling to the top again asks for nothing more: the page stays as it is.
        let top_line = shown.times[0];
        scroll_to_top_and_measure(&reader, top_line).await?;
        let again = view(&reader).await?;
        ensure!(
            again.times == stored && again.status == "beginning",
            "{again:?}"
        );
        env.screenshot(&reader, None).await?;
        Ok(())
    })
    .await
}

/// `Done(view)` when `holds`, else `NotYet` showing it.
fn done_when(holds: bool, view: View) -> Check<View> {
    if holds {
        Check::Done(view)
    } else {
        Check::NotYet(format!("{view:?}"))
    }
}
