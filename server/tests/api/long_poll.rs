//! Long polling: unique times, event-driven wake-up, release of abandoned pops, paging.

use std::time::{Duration, Instant};

use crate::support::{call_once, spawn_app_with, spawn_app_with_clock, texts, times};

#[tokio::test]
async fn twenty_pushes_in_the_same_millisecond_get_distinct_times_and_are_all_delivered_once_in_order(
) {
    // The original stamped `+new Date` and lost every message after the first in a millisecond.
    let (app, _frozen_clock) = spawn_app_with_clock().await;
    let start = app.push("a", "before").await;

    // A poller loops from `start` for the whole run, as a legacy page does.
    let poller = {
        let client = app.client.clone();
        let base = app.base_url.clone();
        tokio::spawn(async move {
            let mut time = start;
            let mut received = Vec::new();
            while received.len() < 20 {
                let body =
                    crate::support::get_text(&client, &format!("{base}?method=pop&time={time}"))
                        .await;
                let answer = call_once(&body, "callback");
                received.extend(answer["msgList"].as_array().unwrap().clone());
                time = answer["time"].as_u64().unwrap();
            }
            received
        })
    };
    let pushes: Vec<_> = (0..20)
        .map(|n| {
            let client = app.client.clone();
            let base = app.base_url.clone();
            tokio::spawn(async move {
                let body = crate::support::get_text(
                    &client,
                    &format!("{base}?name=p&method=push&msg=m{n}&time=1"),
                )
                .await;
                call_once(&body, "callback")["time"].as_u64().unwrap()
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for push in pushes {
        acknowledged.push(push.await.unwrap());
    }
    let received = tokio::time::timeout(Duration::from_secs(20), poller)
        .await
        .unwrap()
        .unwrap();
    let received_times = times(&received);
    let mut sorted = acknowledged.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 20, "20 distinct times: {acknowledged:?}");
    assert_eq!(
        received_times, sorted,
        "every message delivered once, in time order"
    );
    assert!(received_times.windows(2).all(|pair| pair[0] < pair[1]));
    assert!(received_times[0] > start);
    assert_eq!(received.len(), 20);
}

#[tokio::test]
async fn a_clock_that_steps_back_still_gives_strictly_increasing_times() {
    let (app, clock) = spawn_app_with_clock().await;
    let first = app.push("a", "one").await;
    clock.set(first - 60_000);
    let second = app.push("a", "two").await;
    clock.set(first - 3_600_000);
    let third = app.push("a", "three").await;
    assert!(first < second && second < third, "{first} {second} {third}");
    assert_eq!(
        texts(&app.pop(first).await["msgList"].as_array().unwrap().clone()),
        ["two", "three"]
    );
    // When the clock is ahead again, real time is used again.
    clock.set(first + 10_000);
    assert_eq!(app.push("a", "four").await, first + 10_000);
}

#[tokio::test]
async fn one_push_wakes_a_thousand_held_pops_at_once() {
    let app = spawn_app_with(|settings| settings.poll_timeout = 60.0).await;
    let newest = app.push("a", "start").await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = format!("{}?method=pop&time={newest}&callback=cb", app.base_url);
    let pollers: Vec<_> = (0..1000)
        .map(|_| {
            let request = client.get(&url);
            tokio::spawn(async move { request.send().await.unwrap().text().await.unwrap() })
        })
        .collect();
    app.wait_for_held(1000).await;
    let pushed_at = Instant::now();
    let pushed_time = app.push("b", "wake up").await;
    let mut bodies = Vec::new();
    for poller in pollers {
        bodies.push(
            tokio::time::timeout(Duration::from_secs(30), poller)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let all_answered = pushed_at.elapsed();
    // Hold time is 60 s: anything near it would mean a timer, not the push, answered them.
    assert!(
        all_answered < Duration::from_secs(10),
        "all 1000 answered {all_answered:?} after the push"
    );
    // Run a sample through the engine; check every body's messages and time.
    let answer = call_once(&bodies[0], "cb");
    assert_eq!(texts(answer["msgList"].as_array().unwrap()), ["wake up"]);
    assert_eq!(answer["time"], pushed_time);
    for body in &bodies {
        let json = body.trim_start_matches("/**/cb(").trim_end_matches(");");
        let answer: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(
            texts(answer["msgList"].as_array().unwrap()),
            ["wake up"],
            "{body}"
        );
        assert_eq!(answer["time"], pushed_time, "{body}");
    }
    assert_eq!(app.health().await["held_polls"], 0);
}

#[tokio::test]
async fn a_held_pop_whose_client_disconnects_is_released() {
    let app = spawn_app_with(|settings| settings.poll_timeout = 60.0).await;
    let newest = app.push("a", "x").await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut stream,
        format!("GET /?method=pop&time={newest} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    app.wait_for_held(1).await;
    let closed_at = Instant::now();
    drop(stream);
    app.wait_for_held(0).await;
    assert!(
        closed_at.elapsed() < Duration::from_secs(5),
        "released {:?} after the disconnect",
        closed_at.elapsed()
    );
}

#[tokio::test]
async fn catch_up_is_paged_through_a_few_thousand_messages() {
    let app = spawn_app_with(|settings| settings.page_size = 500).await;
    push_many(&app, 3000).await;
    let mut time = 0;
    let mut pages = Vec::new();
    let mut all = Vec::new();
    loop {
        let answer = app.pop(time).await;
        let list = answer["msgList"].as_array().unwrap().clone();
        if list.is_empty() {
            break;
        }
        assert_eq!(
            answer["time"],
            list[list.len() - 1]["time"],
            "time is the last one returned"
        );
        pages.push(list.len());
        time = answer["time"].as_u64().unwrap();
        all.extend(list);
    }
    assert_eq!(pages, [500, 500, 500, 500, 500, 500]);
    let expected: Vec<String> = (0..3000).map(|n| format!("m{n}")).collect();
    assert_eq!(texts(&all), expected, "every message once, in order");
}

#[tokio::test]
async fn history_older_than_memory_is_read_from_disk() {
    let app = spawn_app_with(|settings| {
        settings.memory_messages = 150;
        settings.compact_after = 100;
        settings.page_size = 120;
    })
    .await;
    push_many(&app, 1000).await;
    let chunk_dir = app.data_dir.join("data");
    let n_chunks = std::fs::read_dir(&chunk_dir).unwrap().count();
    assert!(n_chunks >= 8, "compaction wrote chunk files: {n_chunks}");
    let all = app.all_messages().await;
    let expected: Vec<String> = (0..1000).map(|n| format!("m{n}")).collect();
    assert_eq!(
        texts(&all),
        expected,
        "pages from disk continue seamlessly into memory"
    );
    // A cursor in the middle of a chunk file.
    let middle = all[333]["time"].as_u64().unwrap();
    let page = app.pop(middle).await;
    assert_eq!(
        texts(&page["msgList"].as_array().unwrap()[..2]),
        ["m334", "m335"]
    );
    assert_eq!(page["msgList"].as_array().unwrap().len(), 120);
}

/// Pushes `m0`..`m{n-1}` in order (sequentially, so their order is known).
pub async fn push_many(app: &crate::support::TestApp, n: usize) {
    for index in 0..n {
        let query = format!("/?name=p&method=push&msg=m{index}&time=1");
        let answer = app.get(&query).await;
        assert!(
            answer.body.contains("\"msgList\":[]") && !answer.body.contains("\"error\""),
            "{}",
            answer.body
        );
    }
}
