//! Scrolling back through history (`last=N&before=T`): pages of earlier messages answered at
//! once, from memory while it reaches back and from the data folder or Redis beyond it, groups
//! of messages sharing a time never split, each room apart, on both backends.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_server::clock::SystemClock;
use chat_server::storage::files;
use chat_server::Settings;
use chat_shared::Message;
use serde_json::Value;

use crate::backends::Backend;
use crate::support::redis::{unique_prefix, RedisServer};
use crate::support::{
    encode, get_text, jsonp_object, run_binary, spawn_app_on, spawn_app_with, test_settings, texts,
    times, TestApp,
};

/// Starts an app on `backend` with its data folder `dir` (the local folder; Redis: the test
/// server under `prefix`), settings changed by `adjust`.
async fn start(
    backend: Backend,
    dir: &Path,
    redis: &RedisServer,
    prefix: &str,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = test_settings(dir);
    if let Backend::Redis = backend {
        settings.backend = Some(redis.url());
        settings.redis_prefix = prefix.to_owned();
    }
    adjust(&mut settings);
    spawn_app_on(settings, Arc::new(SystemClock)).await.unwrap()
}

/// `&room=<room>`, or nothing for the legacy room.
fn room_param(room: Option<&str>) -> String {
    room.map_or_else(String::new, |room| format!("&room={room}"))
}

/// Saves `text` by `name` in `room`; returns its time.
async fn push_in(app: &TestApp, room: Option<&str>, name: &str, text: &str) -> u64 {
    let url = format!(
        "{}?name={name}&method=push&msg={}&time=1&callback=cb{}",
        app.base_url,
        encode(text),
        room_param(room)
    );
    let answer = jsonp_object(&get_text(&app.client, &url).await).unwrap();
    assert!(answer.get("error").is_none(), "push refused: {answer}");
    answer["time"].as_u64().unwrap()
}

/// The answer to a pop in `room` with `extra` parameters (e.g. `last=5&before=7`).
async fn pop_with(app: &TestApp, room: Option<&str>, extra: &str) -> Value {
    let url = format!(
        "{}?name=reader&method=pop&time=0&{extra}&callback=cb{}",
        app.base_url,
        room_param(room)
    );
    jsonp_object(&get_text(&app.client, &url).await).unwrap()
}

/// Scrolls back through `room` as the page does: the newest `n` on arrival (`last=n`), then
/// `last=n&before=<oldest shown>` until an answer's `time` is 0. Returns the pages, newest
/// first, after checking each against the protocol: a full page (at least `n`) unless it is the
/// last, and a `time` older than its messages.
async fn scroll_back(app: &TestApp, room: Option<&str>, n: usize) -> Vec<Vec<Value>> {
    let arrival = pop_with(app, room, &format!("last={n}")).await;
    assert!(arrival.get("error").is_none(), "{arrival}");
    let mut pages = vec![arrival["msgList"].as_array().unwrap().clone()];
    let Some(mut oldest) = pages[0]
        .first()
        .map(|message| message["time"].as_u64().unwrap())
    else {
        return pages;
    };
    for _ in 0..10_000 {
        let answer = pop_with(app, room, &format!("last={n}&before={oldest}")).await;
        assert!(answer.get("error").is_none(), "before={oldest}: {answer}");
        assert_eq!(answer["before"], oldest.to_string(), "echoed: {answer}");
        let page = answer["msgList"].as_array().unwrap().clone();
        let older_through = answer["time"].as_u64().unwrap();
        if let Some(first) = page.first() {
            let first = first["time"].as_u64().unwrap();
            let last = page.last().unwrap()["time"].as_u64().unwrap();
            assert!(
                last < oldest,
                "before={oldest}: only older messages: {answer}"
            );
            assert!(older_through < first, "before={oldest}: {answer}");
            oldest = first;
        }
        if older_through == 0 {
            pages.push(page);
            return pages;
        }
        assert!(
            page.len() >= n,
            "before={oldest}: a page short of {n} is the last (time 0): {answer}"
        );
        pages.push(page);
    }
    panic!("scrolling back never reached the beginning");
}

/// The pages of [`scroll_back`] as one history, oldest first.
fn oldest_first(pages: &[Vec<Value>]) -> Vec<Value> {
    pages.iter().rev().flatten().cloned().collect()
}

/// 230 messages in one room and 23 in another, with the cache keeping 30 and the log compacted
/// into chunk files every 40: scrolling back from the newest reaches every message once, in
/// order, each room its own, and again after a restart (from disk, or from Redis).
async fn scrolling_back_reaches_every_message_beyond_memory_and_after_a_restart(backend: Backend) {
    let redis = RedisServer::start(false);
    let prefix = unique_prefix("history");
    let dir = tempfile::tempdir().unwrap();
    let adjust = |settings: &mut Settings| {
        settings.memory_messages = 30;
        settings.compact_after = 40;
        settings.page_size = 100;
    };
    let mut app = start(backend, dir.path(), &redis, &prefix, adjust).await;
    let (mut in_hist, mut in_other) = (Vec::new(), Vec::new());
    for n in 0..230 {
        let text = format!("h{n}");
        push_in(&app, Some("hist"), "ann", &text).await;
        in_hist.push(text);
        if n % 10 == 0 {
            let text = format!("o{}", n / 10);
            push_in(&app, Some("other"), "bob", &text).await;
            in_other.push(text);
        }
    }
    let check = |pages: &[Vec<Value>], expected: &[String], when: &str| {
        let all = oldest_first(pages);
        assert_eq!(texts(&all), expected, "{backend:?} {when}");
        let all_times = times(&all);
        assert!(
            all_times.windows(2).all(|pair| pair[0] < pair[1]),
            "{backend:?} {when}: times strictly increase, no message twice"
        );
    };
    let pages = scroll_back(&app, Some("hist"), 40).await;
    assert_eq!(pages.len(), 6, "{backend:?}: 40 × 5 and the last 30");
    check(&pages, &in_hist, "hist");
    check(
        &scroll_back(&app, Some("other"), 7).await,
        &in_other,
        "other",
    );
    assert_eq!(
        scroll_back(&app, None, 10).await,
        [Vec::<Value>::new()],
        "{backend:?}: the legacy room is empty"
    );
    app.stop().await;
    drop(app);

    let app = start(backend, dir.path(), &redis, &prefix, adjust).await;
    check(
        &scroll_back(&app, Some("hist"), 50).await,
        &in_hist,
        "hist after a restart",
    );
    check(
        &scroll_back(&app, Some("other"), 3).await,
        &in_other,
        "other after a restart",
    );
}

#[tokio::test]
async fn scrolling_back_reaches_every_message_beyond_memory_and_after_a_restart_on_the_local_folder(
) {
    scrolling_back_reaches_every_message_beyond_memory_and_after_a_restart(Backend::Local).await;
}

#[tokio::test]
async fn scrolling_back_reaches_every_message_beyond_memory_and_after_a_restart_on_redis() {
    scrolling_back_reaches_every_message_beyond_memory_and_after_a_restart(Backend::Redis).await;
}

fn write_messages(path: &Path, messages: &[Message]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, files::render_message_file(messages)).unwrap();
}

/// A legacy data folder whose messages share times in groups: within a chunk file, across two
/// chunk files, and across the last chunk file and `data.json`.
fn legacy_folder_with_groups(dir: &Path) {
    let base = 1_420_037_300_000;
    let at = |offsets: &[(u64, &str)]| -> Vec<Message> {
        offsets
            .iter()
            .map(|&(offset, text)| Message::new("old", text, base + offset))
            .collect()
    };
    write_messages(
        &dir.join("data/1420037300100-0.json"),
        &at(&[(1, "a"), (2, "b"), (2, "c"), (3, "d"), (4, "e"), (4, "f")]),
    );
    write_messages(
        &dir.join("data/1420037300200-0.json"),
        &at(&[(4, "g"), (5, "h"), (6, "i"), (6, "j"), (6, "k")]),
    );
    write_messages(
        &dir.join("data/1420037300300-0.json"),
        &at(&[(7, "l"), (8, "m"), (9, "n"), (9, "o")]),
    );
    write_messages(
        &dir.join("data.json"),
        &at(&[(9, "p"), (10, "q"), (11, "r"), (11, "s"), (12, "t")]),
    );
}

/// Scrolling back two at a time through legacy data whose messages share times, with a cache
/// of two: every group comes whole in one page (a page is longer than asked for rather than
/// split), and the pages put together are the history a looping client reads forward.
async fn groups_sharing_a_time_are_never_split_between_pages(backend: Backend) {
    let redis = RedisServer::start(false);
    let prefix = unique_prefix("groups");
    let legacy = tempfile::tempdir().unwrap();
    legacy_folder_with_groups(legacy.path());
    let empty = tempfile::tempdir().unwrap();
    let dir = match backend {
        Backend::Local => legacy.path(),
        Backend::Redis => {
            let output = run_binary(&[
                "--redis-prefix".as_ref(),
                prefix.as_ref(),
                "import".as_ref(),
                "--from".as_ref(),
                legacy.path().as_os_str(),
                "--to".as_ref(),
                redis.url().as_ref(),
            ]);
            assert!(
                output.status.success(),
                "import: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            empty.path()
        }
    };
    let app = start(backend, dir, &redis, &prefix, |settings| {
        settings.memory_messages = 2;
        settings.page_size = 10;
    })
    .await;
    let forward = app.all_messages().await;
    assert_eq!(forward.len(), 20, "{backend:?}");
    let pages = scroll_back(&app, None, 2).await;
    assert_eq!(oldest_first(&pages), forward, "{backend:?}");
    for pair in pages.windows(2) {
        let (newer, older) = (times(&pair[0]), times(&pair[1]));
        assert!(
            older.last() < newer.first(),
            "{backend:?}: a time is in one page only: {older:?} then {newer:?}"
        );
    }
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert!(
        sizes.contains(&3),
        "{backend:?}: the group of three at +6 came whole: {sizes:?}"
    );
}

#[tokio::test]
async fn groups_sharing_a_time_are_never_split_between_pages_on_the_local_folder() {
    groups_sharing_a_time_are_never_split_between_pages(Backend::Local).await;
}

#[tokio::test]
async fn groups_sharing_a_time_are_never_split_between_pages_on_redis() {
    groups_sharing_a_time_are_never_split_between_pages(Backend::Redis).await;
}

#[tokio::test]
async fn before_is_checked_answered_at_once_and_means_nothing_outside_a_pop() {
    let app = spawn_app_with(|settings| {
        settings.page_size = 100;
        settings.poll_timeout = 60.0;
    })
    .await;
    let pushed = app.push_many("ann", (1..=5).map(|n| format!("m{n}"))).await;
    let newest = pushed[4];
    let cases = [
        ("last=5&before=abc", "invalid_before"),
        ("last=5&before=-1", "invalid_before"),
        ("last=5&before=1.5", "invalid_before"),
        ("last=5&before=1e3", "invalid_before"),
        ("before=5", "invalid_before"),
        ("last=0&before=5", "invalid_last"),
        ("last=101&before=5", "invalid_last"),
    ];
    for (extra, code) in cases {
        let answer = pop_with(&app, None, extra).await;
        assert_eq!(answer["error"]["code"], code, "{extra}: {answer}");
        assert_eq!(answer["msgList"], serde_json::json!([]), "{extra}");
    }
    // An empty `before` is none: a plain `last`.
    let plain = pop_with(&app, None, "last=2&before=").await;
    assert_eq!(texts(plain["msgList"].as_array().unwrap()), ["m4", "m5"]);

    // Answered at once even when the pop's own time would be held (the hold time is 60 s).
    let started = Instant::now();
    let url = format!(
        "{}?name=r&method=pop&time={newest}&last=2&before={}&callback=cb",
        app.base_url, pushed[2]
    );
    let answer = jsonp_object(&get_text(&app.client, &url).await).unwrap();
    assert!(started.elapsed() < Duration::from_secs(30), "not held");
    assert_eq!(texts(answer["msgList"].as_array().unwrap()), ["m1", "m2"]);
    assert_eq!(answer["time"], 0, "nothing before m1");
    assert_eq!(answer["last"], "2");
    let middle = pop_with(&app, None, &format!("last=1&before={}", pushed[2])).await;
    assert_eq!(texts(middle["msgList"].as_array().unwrap()), ["m2"]);
    assert_eq!(middle["time"], pushed[0], "m1 is older still");
    let nothing = pop_with(&app, None, "last=3&before=1").await;
    assert_eq!(nothing["msgList"], serde_json::json!([]));
    assert_eq!(nothing["time"], 0);

    // Not a pop: `before` changes nothing of a push (a legacy client never sends it).
    let url = format!(
        "{}?name=ann&method=push&msg=m6&time=1&before=abc&callback=cb",
        app.base_url
    );
    let saved = jsonp_object(&get_text(&app.client, &url).await).unwrap();
    assert!(saved.get("error").is_none(), "{saved}");
    assert_eq!(app.health().await["messages"], 6);
}
