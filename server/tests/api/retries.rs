//! Saves whose answer was lost: a client that half-closes its connection still gets the
//! answer, and a save sent again with its `cid` is stored once, also across a restart.

use std::sync::Arc;

use chat_server::clock::SystemClock;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{
    call_once, spawn_app_on, spawn_app_with, spawn_app_with_clock, test_settings,
};

/// Shuts down the sending side of `stream` and reads what the server sends until it closes
/// (at most 10 s): the head and the body of its answer.
async fn half_close_and_read(mut stream: tokio::net::TcpStream, why: &str) -> (String, String) {
    stream.shutdown().await.unwrap();
    let mut received = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut received),
    )
    .await
    .expect(why)
    .unwrap();
    let received = String::from_utf8_lossy(&received).into_owned();
    let (head, body) = received.split_once("\r\n\r\n").expect("a whole answer");
    (head.to_owned(), body.to_owned())
}

/// The JSONP object of a push of `msg` by `name` with client message id `cid`.
async fn push_with_cid(app: &crate::support::TestApp, name: &str, msg: &str, cid: &str) -> Value {
    app.call(
        &format!("/?name={name}&method=push&msg={msg}&time=1&cid={cid}"),
        "callback",
    )
    .await
}

#[tokio::test]
async fn a_push_sent_again_with_its_cid_is_stored_once_and_answered_with_the_first_time() {
    let app = spawn_app_with(|_| {}).await;
    let first = push_with_cid(&app, "ann", "hello", "m-1").await;
    let again = push_with_cid(&app, "ann", "hello+again", "m-1").await;
    assert_eq!(again["time"], first["time"], "{again}");
    assert_eq!(
        again["msg"], "hello",
        "answered as the first save was: {again}"
    );
    assert_eq!(again.get("error"), None, "{again}");
    assert_eq!(app.health().await["messages"], 1);
    let messages = app.all_messages().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0]["cid"], "m-1",
        "the page recognizes its own message"
    );

    // The key is the name and the cid: another name, or another cid, is another message.
    push_with_cid(&app, "bob", "hello", "m-1").await;
    push_with_cid(&app, "ann", "hello", "m-2").await;
    assert_eq!(app.health().await["messages"], 3);
}

#[tokio::test]
async fn ten_copies_of_one_save_sent_at_once_store_one_message() {
    let app = spawn_app_with(|_| {}).await;
    let copies = (0..10).map(|_| push_with_cid(&app, "ann", "once", "burst"));
    let answers = futures_util::future::join_all(copies).await;
    let first_time = &answers[0]["time"];
    assert!(
        answers.iter().all(|answer| &answer["time"] == first_time),
        "{answers:?}"
    );
    assert_eq!(app.health().await["messages"], 1);
}

#[tokio::test]
async fn a_retry_after_the_ten_minute_window_is_a_new_message() {
    let (app, clock) = spawn_app_with_clock().await;
    let start = chat_server::clock::Clock::now_ms(clock.as_ref());
    let first = push_with_cid(&app, "ann", "hello", "late").await;
    clock.set(start + chat_shared::CID_WINDOW_MS);
    let within = push_with_cid(&app, "ann", "hello", "late").await;
    assert_eq!(
        within["time"], first["time"],
        "the window's last millisecond counts"
    );
    clock.set(start + chat_shared::CID_WINDOW_MS + 2);
    let after = push_with_cid(&app, "ann", "hello", "late").await;
    assert_ne!(after["time"], first["time"]);
    assert_eq!(app.health().await["messages"], 2);
}

#[tokio::test]
async fn a_cid_outside_its_alphabet_or_length_is_refused_with_invalid_cid() {
    let app = spawn_app_with(|_| {}).await;
    let long = "x".repeat(65);
    for cid in ["a.b", "a%20b", "%C3%A9", long.as_str()] {
        let answer = push_with_cid(&app, "ann", "hello", cid).await;
        assert_eq!(answer["error"]["code"], "invalid_cid", "{cid}: {answer}");
    }
    let empty = push_with_cid(&app, "ann", "hello", "").await;
    assert_eq!(empty.get("error"), None, "an empty cid is none: {empty}");
    assert_eq!(app.health().await["messages"], 1);
}

#[tokio::test]
async fn a_retry_is_recognized_after_a_restart_and_after_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    // Every save is compacted at once: the retry's first copy is in data.json, and older ones
    // in chunk files.
    settings.compact_after = 1;
    let mut app = spawn_app_on(settings.clone(), Arc::new(SystemClock))
        .await
        .unwrap();
    let first = push_with_cid(&app, "ann", "before the restart", "r-1").await;
    app.push_many("bob", (0..150).map(|n| format!("m{n}")))
        .await;
    let second = push_with_cid(&app, "ann", "also before", "r-2").await;
    app.stop().await;

    let app = spawn_app_on(settings, Arc::new(SystemClock)).await.unwrap();
    let retried_first = push_with_cid(&app, "ann", "before the restart", "r-1").await;
    let retried_second = push_with_cid(&app, "ann", "also before", "r-2").await;
    assert_eq!(retried_first["time"], first["time"], "from a chunk file");
    assert_eq!(retried_second["time"], second["time"], "from data.json");
    assert_eq!(app.health().await["messages"], 152);
}

/// `shutdown(SHUT_WR)` right after the request: the client can still read, so the save that
/// began is answered; before, the server dropped it unanswered (and a retry stored it twice).
#[tokio::test]
async fn a_push_from_a_client_that_half_closes_is_answered_and_its_retry_stored_once() {
    let app = spawn_app_with(|_| {}).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(
            b"GET /?name=ann&method=push&msg=half&time=1&cid=h-1&callback=cb HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await
        .unwrap();
    let (head, body) =
        half_close_and_read(stream, "the server ends the connection after answering").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head:?}");
    let answer = call_once(&body, "cb");
    let retried = push_with_cid(&app, "ann", "half", "h-1").await;
    assert_eq!(retried["time"], answer["time"]);
    assert_eq!(app.health().await["messages"], 1);
}

/// A pop whose client half-closes is not held for its hold time (its permit and presence are
/// freed at once): it is answered at once, and the client, which can still read, reads it.
#[tokio::test]
async fn a_held_pop_whose_client_half_closes_is_answered_at_once_and_released() {
    let app = spawn_app_with(|settings| settings.poll_timeout = 60.0).await;
    let newest = app.push("a", "x").await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(
            format!(
                "GET /?name=p&method=pop&time={newest}&callback=cb HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    app.wait_for_held(1).await;
    let (_, body) = half_close_and_read(stream, "answered long before the 60 s hold time").await;
    // Sized, in one piece: the body is the script.
    let answer = call_once(&body, "cb");
    assert_eq!(answer["time"], newest, "{answer}");
    assert_eq!(answer["msgList"], serde_json::json!([]));
    app.wait_for_held(0).await;
}
