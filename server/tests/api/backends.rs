//! The same scenarios on each backend (the local folder and Redis), then what only a shared
//! backend has: several instances on one Redis, Redis going away and coming back, a bounded
//! history, and moving a room between the local folder and Redis.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_server::Settings;

use crate::support::redis::{unique_prefix, RedisServer};
use crate::support::{call_once, encode, fixture, get_text, spawn_app_with, texts, times, TestApp};

/// Which backend a scenario runs on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Backend {
    Local,
    Redis,
}

/// Starts an app on `backend` (Redis: the shared test server, a prefix of its own); the
/// server is returned so that it outlives the app.
pub(crate) async fn spawn_on(
    backend: Backend,
    redis: &RedisServer,
    prefix: &str,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    spawn_app_with(|settings| {
        if let Backend::Redis = backend {
            settings.backend = Some(redis.url());
            settings.redis_prefix = prefix.to_owned();
        }
        adjust(settings);
    })
    .await
}

/// Join, push, a held pop woken by a push on the same instance, paging through more than a
/// page, presence, exit: the protocol does not depend on where messages live.
async fn the_protocol_is_the_same(backend: Backend) {
    let redis = RedisServer::start(false);
    let app = spawn_on(backend, &redis, &unique_prefix("protocol"), |settings| {
        settings.page_size = 100;
    })
    .await;
    let joined = app.call("/?name=ann&callback=cb", "cb").await;
    assert_eq!(joined["msg"], "加入聊天室", "{backend:?}: {joined}");
    let first = app.push("ann", "hello").await;
    assert!(first > joined["time"].as_u64().unwrap());

    let held = {
        let client = app.client.clone();
        let url = format!(
            "{}?name=bob&method=pop&time={first}&presence=",
            app.base_url
        );
        tokio::spawn(async move { get_text(&client, &url).await })
    };
    app.wait_for_held(1).await;
    let woke = app.push("ann", "wake up").await;
    let answer = call_once(&held.await.unwrap(), "callback");
    assert_eq!(texts(answer["msgList"].as_array().unwrap()), ["wake up"]);
    assert_eq!(answer["time"], woke);
    assert!(
        answer["online"]
            .as_array()
            .unwrap()
            .iter()
            .any(|name| name == "ann"),
        "{backend:?}: {answer}"
    );

    app.push_many("ann", (0..250).map(|n| format!("m{n}")))
        .await;
    let all = app.all_messages().await;
    assert_eq!(all.len(), 253, "{backend:?}");
    let all_times = times(&all);
    assert!(
        all_times.windows(2).all(|pair| pair[0] < pair[1]),
        "{backend:?}: times strictly increase"
    );
    let exit = app
        .call(&format!("/?name=ann&method=exit&time={woke}"), "callback")
        .await;
    assert_eq!(exit["msg"], "离开聊天室");
    assert_eq!(app.health().await["messages"], 254, "{backend:?}");
}

#[tokio::test]
async fn the_protocol_is_the_same_on_the_local_folder() {
    the_protocol_is_the_same(Backend::Local).await;
}

#[tokio::test]
async fn the_protocol_is_the_same_on_redis() {
    the_protocol_is_the_same(Backend::Redis).await;
}

/// `count` instances on one Redis room.
async fn instances(
    redis: &RedisServer,
    count: usize,
    adjust: impl Fn(&mut Settings),
) -> Vec<TestApp> {
    let prefix = unique_prefix("cluster");
    let mut apps = Vec::new();
    for _ in 0..count {
        apps.push(spawn_on(Backend::Redis, redis, &prefix, &adjust).await);
    }
    apps
}

#[tokio::test]
async fn twenty_pushes_at_once_split_over_three_instances_get_twenty_distinct_increasing_times() {
    let redis = RedisServer::start(false);
    let apps = Arc::new(instances(&redis, 3, |_| {}).await);
    let pushes: Vec<_> = (0..20)
        .map(|n| {
            let apps = apps.clone();
            tokio::spawn(async move { apps[n % 3].push("racer", &format!("r{n}")).await })
        })
        .collect();
    let mut pushed = Vec::new();
    for push in pushes {
        pushed.push(push.await.unwrap());
    }
    let distinct: HashSet<u64> = pushed.iter().copied().collect();
    assert_eq!(distinct.len(), 20, "{pushed:?}");
    let newest = *pushed.iter().max().unwrap();
    for app in apps.iter() {
        // An instance hears of the others' saves a moment later.
        app.wait_for_figure("newest_time", newest).await;
        let stored = times(&app.all_messages().await);
        assert_eq!(stored.len(), 20);
        assert!(
            stored.windows(2).all(|pair| pair[0] < pair[1]),
            "{stored:?}"
        );
        let mut sorted = pushed.clone();
        sorted.sort_unstable();
        assert_eq!(stored, sorted, "every instance reads the same history");
    }
}

#[tokio::test]
async fn a_push_on_one_instance_wakes_held_pops_on_the_others() {
    let redis = RedisServer::start(false);
    let apps = instances(&redis, 3, |_| {}).await;
    let start = apps[0].push("ann", "before").await;
    let held: Vec<_> = apps[1..]
        .iter()
        .map(|app| {
            let client = app.client.clone();
            let url = format!("{}?name=bob&method=pop&time={start}", app.base_url);
            tokio::spawn(async move { get_text(&client, &url).await })
        })
        .collect();
    for app in &apps[1..] {
        app.wait_for_held(1).await;
    }
    let pushed_at = Instant::now();
    apps[0].push("ann", "across").await;
    for answer in held {
        let answer = call_once(&answer.await.unwrap(), "callback");
        assert_eq!(texts(answer["msgList"].as_array().unwrap()), ["across"]);
    }
    eprintln!(
        "woken on the other instances within {:?} of the push",
        pushed_at.elapsed()
    );
    // Presence is shared: the other instances list ann once their sync has run.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = apps[2]
            .call("/?name=carol&method=pop&time=x&presence=", "callback")
            .await;
        if answer["online"]
            .as_array()
            .unwrap()
            .iter()
            .any(|name| name == "ann")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ann never listed on another instance: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn fan_out_to_a_thousand_pollers_over_three_instances_delivers_every_message_once_in_order() {
    let redis = RedisServer::start(false);
    let apps = instances(&redis, 3, |settings| settings.poll_timeout = 20.0).await;
    let start = apps[0].push("ann", "start").await;
    let n_messages = 5;
    let pollers: Vec<_> = (0..1000)
        .map(|n| {
            let base_url = apps[n % 3].base_url.clone();
            let client = reqwest::Client::new();
            tokio::spawn(async move {
                let mut cursor = start;
                let mut seen: Vec<String> = Vec::new();
                while seen.len() < n_messages {
                    let body = get_text(
                        &client,
                        &format!("{base_url}?name=p{n}&method=pop&time={cursor}&callback=cb"),
                    )
                    .await;
                    let answer = crate::support::jsonp_object(&body).unwrap();
                    cursor = answer["time"].as_u64().unwrap();
                    seen.extend(texts(answer["msgList"].as_array().unwrap()));
                }
                seen
            })
        })
        .collect();
    for (n, app) in apps.iter().enumerate() {
        app.wait_for_held(if n == 0 { 334 } else { 333 }).await;
    }
    let expected: Vec<String> = (0..n_messages).map(|n| format!("f{n}")).collect();
    for text in &expected {
        apps[1].push("ann", text).await;
    }
    for poller in pollers {
        assert_eq!(poller.await.unwrap(), expected);
    }
}

#[tokio::test]
async fn with_redis_down_saves_are_refused_holds_end_empty_and_all_works_again_when_it_is_back() {
    let mut redis = RedisServer::start(true);
    let app = spawn_on(
        Backend::Redis,
        &redis,
        &unique_prefix("outage"),
        |settings| {
            settings.poll_timeout = 2.0;
        },
    )
    .await;
    let before = app.push("ann", "before the outage").await;
    let held = {
        let client = app.client.clone();
        let url = format!("{}?name=bob&method=pop&time={before}", app.base_url);
        tokio::spawn(async move { get_text(&client, &url).await })
    };
    app.wait_for_held(1).await;
    redis.stop();
    let outage_began = Instant::now();
    let refused = app
        .call(
            &format!("/?name=ann&method=push&msg={}&time=1", encode("lost?")),
            "callback",
        )
        .await;
    assert_eq!(refused["error"]["code"], "storage_failed", "{refused}");
    let health = app.get("/healthz").await;
    assert_eq!(health.status, 503, "{}", health.body);
    assert!(health.body.contains("\"degraded\""), "{}", health.body);
    // The held pop keeps its hold and answers empty at the hold time.
    let answer = call_once(&held.await.unwrap(), "callback");
    assert_eq!(answer["msgList"], serde_json::json!([]));
    assert_eq!(answer["time"], before);
    // Down for 10 s in all, as an operator's restart might take; nothing crashes meanwhile.
    while outage_began.elapsed() < Duration::from_secs(10) {
        let health = app.get("/healthz").await;
        assert_eq!(health.status, 503, "{}", health.body);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        let answer = app
            .call(
                &format!("/?name=ann&method=push&msg={}&time=1", encode("after")),
                "callback",
            )
            .await;
        if answer.get("error").is_none() {
            break answer["time"].as_u64().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "saves never worked again: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(after > before);
    assert_eq!(app.get("/healthz").await.status, 200);
    assert_eq!(
        texts(&app.all_messages().await),
        ["before the outage", "after"],
        "the acknowledged message survived the restart (AOF) and the refused one was not stored"
    );
}

#[tokio::test]
async fn a_redis_restart_under_load_loses_no_acknowledged_message() {
    let mut redis = RedisServer::start(true);
    let app = Arc::new(spawn_on(Backend::Redis, &redis, &unique_prefix("restart"), |_| {}).await);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pushers: Vec<_> = (0..4)
        .map(|worker| {
            let (app, stop) = (app.clone(), stop.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for n in 0.. {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let text = format!("w{worker}-{n}");
                    let url = format!(
                        "{}?name=w&method=push&msg={text}&time=1&callback=cb",
                        app.base_url
                    );
                    let answer =
                        crate::support::jsonp_object(&get_text(&app.client, &url).await).unwrap();
                    if answer.get("error").is_none() {
                        acknowledged.push(text);
                    } else {
                        // Refused while Redis is away: not acknowledged; try the next one soon.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                acknowledged
            })
        })
        .collect();
    // Some load first, then the restart in the middle of it, then some more.
    let deadline = Instant::now() + crate::support::WAIT_DEADLINE;
    let mut seen = 0;
    while seen < 200 {
        assert!(
            Instant::now() < deadline,
            "the load never got going: {seen} messages"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
        seen = app.health().await["messages"].as_u64().unwrap();
    }
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.get("/healthz").await.status != 200
        || app.health().await["messages"].as_u64().unwrap() < seen + 200
    {
        assert!(
            Instant::now() < deadline,
            "saves did not resume after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut acknowledged = Vec::new();
    for pusher in pushers {
        acknowledged.extend(pusher.await.unwrap());
    }
    let stored: HashSet<String> = texts(&app.all_messages().await).into_iter().collect();
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|text| !stored.contains(*text))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged messages lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(acknowledged.len() > 400, "{}", acknowledged.len());
}

#[tokio::test]
async fn a_pop_from_before_the_oldest_kept_gets_what_is_left_with_history_trimmed() {
    let redis = RedisServer::start(false);
    let app = spawn_on(Backend::Redis, &redis, &unique_prefix("trim"), |settings| {
        settings.redis_max_len = Some(10);
        // Everything comes from Redis, not from this instance's cache.
        settings.memory_messages = 5;
    })
    .await;
    app.push_many("ann", (0..400).map(|n| format!("t{n}")))
        .await;
    let answer = app.call("/?name=bob&method=pop&time=0", "callback").await;
    assert_eq!(answer["error"]["code"], "history_trimmed", "{answer}");
    let kept = texts(answer["msgList"].as_array().unwrap());
    assert!(!kept.is_empty() && kept.len() < 400, "{}", kept.len());
    assert_eq!(kept.last().unwrap(), "t399");
    // Pages after the oldest kept are whole and carry no notice.
    let newest = app.health().await["newest_time"].as_u64().unwrap();
    let recent = app
        .call(
            &format!("/?name=bob&method=pop&time={}", newest - 1),
            "callback",
        )
        .await;
    assert!(recent.get("error").is_none(), "{recent}");
}

/// Runs the built binary with `args`; it must succeed. Returns its standard output.
fn run_tool(args: &[&str]) -> String {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|arg| arg.as_ref()).collect();
    let output = crate::support::run_binary(&args);
    assert!(
        output.status.success(),
        "chat-server {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn each_legacy_shape_imported_into_redis_and_exported_again_keeps_every_message() {
    let redis = RedisServer::start(false);
    for shape in [
        "v1-full-request-objects.data.json",
        "v2-three-messages.data.json",
        "v3-empty-with-whitespace.data.json",
    ] {
        let original = tempfile::tempdir().unwrap();
        std::fs::copy(fixture(shape), original.path().join("data.json")).unwrap();
        let prefix = unique_prefix("import");
        let from = original.path().to_str().unwrap();
        run_tool(&[
            "--redis-prefix",
            &prefix,
            "import",
            "--from",
            from,
            "--to",
            &redis.url(),
        ]);

        let local = spawn_app_with(|settings| settings.data_dir = original.path().to_owned()).await;
        let expected = local.all_messages().await;
        drop(local);
        let served = spawn_on(Backend::Redis, &redis, &prefix, |_| {}).await;
        assert_eq!(
            served.all_messages().await,
            expected,
            "{shape}: served from Redis"
        );

        let exported = tempfile::tempdir().unwrap();
        let to = exported.path().join("room");
        run_tool(&[
            "--redis-prefix",
            &prefix,
            "export",
            "--from",
            &redis.url(),
            "--to",
            to.to_str().unwrap(),
        ]);
        let back = spawn_app_with(|settings| settings.data_dir = to.clone()).await;
        assert_eq!(
            back.all_messages().await,
            expected,
            "{shape}: exported again"
        );
        assert!(
            to.join("data.json").is_file(),
            "{shape}: the original layout"
        );
    }
}

/// Saves from several pushers while the write-ahead log is compacted every few messages and the
/// cache keeps only a few: pollers reading at the same time must still see every message once,
/// in order (a reader racing a compaction once skipped what moved to disk meanwhile).
async fn compaction_under_concurrent_readers_skips_nothing(backend: Backend) {
    let redis = RedisServer::start(false);
    let app = Arc::new(
        spawn_on(backend, &redis, &unique_prefix("compaction"), |settings| {
            settings.compact_after = 7;
            settings.memory_messages = 20;
            settings.page_size = 30;
        })
        .await,
    );
    let (final_time, final_rx) = tokio::sync::watch::channel(None::<u64>);
    let readers: Vec<_> = (0..8)
        .map(|n| {
            let (app, mut final_rx) = (app.clone(), final_rx.clone());
            tokio::spawn(async move {
                let mut cursor = 0u64;
                let mut seen: Vec<u64> = Vec::new();
                loop {
                    if final_rx
                        .borrow_and_update()
                        .is_some_and(|last| cursor >= last)
                    {
                        return seen;
                    }
                    let url = format!(
                        "{}?name=r{n}&method=pop&time={cursor}&callback=cb",
                        app.base_url
                    );
                    let answer =
                        crate::support::jsonp_object(&get_text(&app.client, &url).await).unwrap();
                    seen.extend(times(answer["msgList"].as_array().unwrap()));
                    cursor = answer["time"].as_u64().unwrap();
                }
            })
        })
        .collect();
    let pushers: Vec<_> = (0..4)
        .map(|worker| {
            let app = app.clone();
            tokio::spawn(async move {
                app.push_many("w", (0..150).map(|n| format!("w{worker}-{n}")))
                    .await
            })
        })
        .collect();
    for pusher in pushers {
        pusher.await.unwrap();
    }
    let newest = app.health().await["newest_time"].as_u64().unwrap();
    final_time.send_replace(Some(newest));
    // A held pop at the newest time ends at the hold time; a last push ends it sooner.
    app.push("w", "last").await;
    let stored = times(&app.all_messages().await);
    assert_eq!(stored.len(), 601, "{backend:?}");
    for reader in readers {
        let seen = reader.await.unwrap();
        assert_eq!(
            seen,
            stored[..seen.len()],
            "{backend:?}: a reader skipped or repeated a message"
        );
        assert!(seen.len() >= 600, "{backend:?}: {}", seen.len());
    }
}

#[tokio::test]
async fn compaction_under_concurrent_readers_skips_nothing_on_the_local_folder() {
    compaction_under_concurrent_readers_skips_nothing(Backend::Local).await;
}

#[tokio::test]
async fn compaction_under_concurrent_readers_skips_nothing_on_redis() {
    compaction_under_concurrent_readers_skips_nothing(Backend::Redis).await;
}

#[tokio::test]
async fn a_save_retried_on_another_instance_with_its_cid_is_stored_once() {
    let redis = RedisServer::start(false);
    let apps = instances(&redis, 2, |_| {}).await;
    let query = "/?name=ann&method=push&msg=once&time=1&cid=c-7";
    let first = apps[0].call(query, "callback").await;
    // A retry is answered as the first save was, even if its text changed meanwhile.
    let again = apps[1]
        .call(
            "/?name=ann&method=push&msg=twice&time=1&cid=c-7",
            "callback",
        )
        .await;
    assert_eq!(again["time"], first["time"], "{again}");
    assert_eq!(again["msg"], "once", "{again}");
    let other_name = apps[1]
        .call("/?name=bob&method=push&msg=once&time=1&cid=c-7", "callback")
        .await;
    assert_ne!(other_name["time"], first["time"]);
    apps[0]
        .wait_for_figure("newest_time", other_name["time"].as_u64().unwrap())
        .await;
    let all = apps[0].all_messages().await;
    assert_eq!(texts(&all), ["once", "once"], "ann's once and bob's once");
    assert_eq!(all[0]["cid"], "c-7");
}

#[tokio::test]
async fn a_named_room_on_redis_is_shared_by_the_instances_and_apart_from_the_legacy_room() {
    let redis = RedisServer::start(false);
    let apps = instances(&redis, 2, |_| {}).await;
    apps[0].push("legacy", "legacy only").await;
    let first = apps[0]
        .call(
            "/?name=ann&method=push&msg=hello&time=1&room=team",
            "callback",
        )
        .await;
    let first_time = first["time"].as_u64().unwrap();
    let held = {
        let client = apps[1].client.clone();
        let url = format!(
            "{}?name=bob&method=pop&time={first_time}&room=team",
            apps[1].base_url
        );
        tokio::spawn(async move { get_text(&client, &url).await })
    };
    apps[1].wait_for_held(1).await;
    apps[0].push("legacy", "not for the room").await;
    let woke = apps[0]
        .call(
            "/?name=ann&method=push&msg=again&time=1&room=team",
            "callback",
        )
        .await;
    let answer = call_once(&held.await.unwrap(), "callback");
    assert_eq!(texts(answer["msgList"].as_array().unwrap()), ["again"]);
    assert_eq!(answer["time"], woke["time"]);
    let history = apps[1]
        .call("/?method=pop&time=0&last=10&room=team", "callback")
        .await;
    assert_eq!(
        texts(history["msgList"].as_array().unwrap()),
        ["hello", "again"]
    );
    apps[1]
        .wait_for_figure(
            "newest_time",
            apps[0].health().await["newest_time"].as_u64().unwrap(),
        )
        .await;
    assert_eq!(
        texts(&apps[1].all_messages().await),
        ["legacy only", "not for the room"]
    );
}
