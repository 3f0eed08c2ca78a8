//! Rooms (`room=…`) and history on arrival (`last=N`): each named room has its own history,
//! wake-ups, presence and times; a request without `room` is the legacy room, stored and
//! answered exactly as before.

use std::sync::Arc;
use std::time::Duration;

use chat_server::clock::SystemClock;
use serde_json::Value;

use crate::support::{
    call_once, get_text, spawn_app_on, spawn_app_with, spawn_app_with_clock_and, test_settings,
    texts, TestApp,
};

/// Pushes `msg` by `name` into `room`; returns the answer.
async fn push_in(app: &TestApp, room: &str, name: &str, msg: &str) -> Value {
    app.call(
        &format!("/?name={name}&method=push&msg={msg}&time=1&room={room}&presence="),
        "callback",
    )
    .await
}

/// Every message of `room`, paging from the start up to its newest (asked with `last=1`, so
/// that no pop is held).
async fn all_in(app: &TestApp, room: &str) -> Vec<Value> {
    let newest = app
        .call(
            &format!("/?method=pop&time=0&last=1&room={room}"),
            "callback",
        )
        .await["time"]
        .as_u64()
        .unwrap();
    let mut time = 0;
    let mut all = Vec::new();
    while time < newest {
        let answer = app
            .call(&format!("/?method=pop&time={time}&room={room}"), "callback")
            .await;
        time = answer["time"].as_u64().unwrap();
        all.extend(answer["msgList"].as_array().unwrap().iter().cloned());
    }
    all
}

#[tokio::test]
async fn named_rooms_keep_their_own_history_wake_ups_and_presence() {
    let app = spawn_app_with(|settings| settings.poll_timeout = 30.0).await;
    app.push("legacy", "in the legacy room").await;
    let in_a = push_in(&app, "a", "ann", "in+a").await;
    push_in(&app, "b", "bob", "in+b").await;
    assert_eq!(texts(&all_in(&app, "a").await), ["in a"]);
    assert_eq!(texts(&all_in(&app, "b").await), ["in b"]);
    assert_eq!(texts(&app.all_messages().await), ["in the legacy room"]);
    assert_eq!(in_a["online"], serde_json::json!(["ann"]), "{in_a}");

    // A pop held in room a is woken by a push in a, not by one in b or in the legacy room.
    let newest_a = in_a["time"].as_u64().unwrap();
    let held = {
        let client = app.client.clone();
        let url = format!(
            "{}?name=carl&method=pop&time={newest_a}&room=a&presence=",
            app.base_url
        );
        tokio::spawn(async move { get_text(&client, &url).await })
    };
    app.wait_for_held(1).await;
    push_in(&app, "b", "bob", "not+for+a").await;
    app.push("legacy", "not for a either").await;
    let woke = push_in(&app, "a", "ann", "for+a").await;
    let answer = call_once(&held.await.unwrap(), "callback");
    assert_eq!(texts(answer["msgList"].as_array().unwrap()), ["for a"]);
    assert_eq!(answer["time"], woke["time"]);
    let online: Vec<&str> = answer["online"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(online, ["ann", "carl"], "bob and legacy are in other rooms");
    assert_eq!(app.health().await["rooms"], 2);
}

#[tokio::test]
async fn the_legacy_room_stays_where_it_was_and_named_rooms_live_in_rooms_folders() {
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(dir.path());
    let mut app = spawn_app_on(settings.clone(), Arc::new(SystemClock))
        .await
        .unwrap();
    app.push("old", "legacy message").await;
    push_in(&app, "lobby", "new", "room+message").await;
    app.stop().await;
    let legacy = std::fs::read_to_string(dir.path().join("data.json")).unwrap();
    assert!(legacy.contains("legacy message") && !legacy.contains("room message"));
    let lobby = std::fs::read_to_string(dir.path().join("rooms/lobby/data.json")).unwrap();
    assert!(lobby.contains("room message") && !lobby.contains("legacy message"));

    let app = spawn_app_on(settings, Arc::new(SystemClock)).await.unwrap();
    assert_eq!(texts(&all_in(&app, "lobby").await), ["room message"]);
    assert_eq!(texts(&app.all_messages().await), ["legacy message"]);
}

#[tokio::test]
async fn room_names_outside_the_alphabet_get_invalid_room_and_change_nothing() {
    let app = spawn_app_with(|_| {}).await;
    let long = "r".repeat(33);
    for room in ["Lobby", "a%2Fb", "..", "a.b", "%C3%A9", long.as_str()] {
        let answer = push_in(&app, room, "ann", "x").await;
        assert_eq!(answer["error"]["code"], "invalid_room", "{room}: {answer}");
        let pop = app
            .call(&format!("/?method=pop&time=0&room={room}"), "callback")
            .await;
        assert_eq!(pop["error"]["code"], "invalid_room", "{room}: {pop}");
    }
    assert_eq!(app.health().await["messages"], 0);
    assert_eq!(app.health().await["rooms"], 0);
    let empty_is_legacy = push_in(&app, "", "ann", "legacy").await;
    assert_eq!(empty_is_legacy.get("error"), None);
    assert_eq!(app.health().await["messages"], 1);
}

#[tokio::test]
async fn a_new_room_beyond_max_rooms_gets_too_many_rooms_and_open_ones_keep_working() {
    let app = spawn_app_with(|settings| settings.max_rooms = 2).await;
    push_in(&app, "a", "ann", "1").await;
    push_in(&app, "b", "ann", "2").await;
    let third = push_in(&app, "c", "ann", "3").await;
    assert_eq!(third["error"]["code"], "too_many_rooms", "{third}");
    assert_eq!(push_in(&app, "a", "ann", "4").await.get("error"), None);
    assert!(app.push("ann", "legacy still works").await > 0);
    assert_eq!(app.health().await["rooms"], 2);
}

#[tokio::test]
async fn an_idle_room_is_closed_and_opens_again_with_its_history() {
    let (app, clock) = spawn_app_with_clock_and(|settings| settings.room_idle_secs = 60.0).await;
    push_in(&app, "quiet", "ann", "kept").await;
    assert_eq!(app.health().await["rooms"], 1);
    clock.advance(Duration::from_secs(59));
    // Not idle long enough: still open (several sweeps have run by the time a push is done).
    push_in(&app, "other", "ann", "x").await;
    assert_eq!(app.health().await["rooms"], 2);
    clock.advance(Duration::from_secs(61));
    app.wait_for_figure("rooms", 0).await;
    assert_eq!(texts(&all_in(&app, "quiet").await), ["kept"]);
    assert_eq!(app.health().await["rooms"], 1);
}

#[tokio::test]
async fn a_room_with_a_held_pop_is_not_closed_however_long_it_is_idle() {
    let (app, clock) = spawn_app_with_clock_and(|settings| {
        settings.room_idle_secs = 60.0;
        settings.poll_timeout = 60.0;
    })
    .await;
    let pushed = push_in(&app, "busy", "ann", "x").await["time"]
        .as_u64()
        .unwrap();
    let held = {
        let client = app.client.clone();
        let url = format!("{}?method=pop&time={pushed}&room=busy", app.base_url);
        tokio::spawn(async move { get_text(&client, &url).await })
    };
    app.wait_for_held(1).await;
    clock.advance(Duration::from_secs(3600));
    // Another room, opened and left idle too, is closed meanwhile: the sweeps ran.
    push_in(&app, "gone", "ann", "x").await;
    clock.advance(Duration::from_secs(3600));
    app.wait_for_figure("rooms", 1).await;
    let woke = push_in(&app, "busy", "ann", "wake").await;
    let answer = call_once(&held.await.unwrap(), "callback");
    assert_eq!(answer["time"], woke["time"]);
}

#[tokio::test]
async fn a_pop_with_last_answers_at_once_with_the_newest_messages_whatever_its_time() {
    let app = spawn_app_with(|settings| settings.page_size = 100).await;
    let times = app
        .push_many("ann", (1..=60).map(|n| format!("m{n}")))
        .await;
    let newest = *times.last().unwrap();
    for time in ["0".to_owned(), newest.to_string(), "abc".to_owned()] {
        let answer = app
            .call(
                &format!("/?name=new&method=pop&time={time}&last=50"),
                "callback",
            )
            .await;
        let list = answer["msgList"].as_array().unwrap();
        assert_eq!(list.len(), 50, "time={time}");
        assert_eq!(list[0]["msg"], "m11");
        assert_eq!(list[49]["msg"], "m60");
        assert_eq!(answer["time"], newest, "time={time}");
    }
    // Fewer than asked for: all of them; in a named room, its own.
    push_in(&app, "small", "bob", "only").await;
    let answer = app
        .call("/?method=pop&time=0&last=50&room=small", "callback")
        .await;
    assert_eq!(texts(answer["msgList"].as_array().unwrap()), ["only"]);

    for last in ["0", "101", "-1", "x"] {
        let answer = app
            .call(&format!("/?method=pop&time=0&last={last}"), "callback")
            .await;
        assert_eq!(answer["error"]["code"], "invalid_last", "last={last}");
    }
    // Not a pop (a join): `last` means nothing.
    let join = app.call("/?name=j&last=5", "callback").await;
    assert_eq!(join["msg"], "加入聊天室");
}
