//! Serving the web page beside the chat, and the online list it shows.

use std::time::Duration;

use crate::support::{call_once, spawn_app_with, spawn_app_with_clock_and};

#[tokio::test]
async fn the_page_is_served_to_browsers_and_chat_requests_are_unchanged() {
    let page_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        page_dir.path().join("index.html"),
        "<!doctype html><title>chat page</title>",
    )
    .unwrap();
    std::fs::write(page_dir.path().join("app.js"), "console.log(1)").unwrap();
    let dir = page_dir.path().to_owned();
    let page_dir_path = dir.clone();
    let app = spawn_app_with(move |settings| settings.static_dir = Some(dir)).await;

    let index = app.get("/").await;
    assert_eq!(index.status, 200);
    assert!(index.body.contains("chat page"));
    assert!(index.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let asset = app.get("/app.js").await;
    assert_eq!((asset.status, asset.body.as_str()), (200, "console.log(1)"));
    // Served compressed when asked, with cache lifetimes fitted to trunk's hashed names.
    let hashed = "chat-frontend-0123456789abcdef_bg.wasm";
    std::fs::write(page_dir_path.join(hashed), vec![0u8; 64 * 1024]).unwrap();
    let head_of = |answer: &str| answer.split("\r\n\r\n").next().unwrap_or("").to_lowercase();
    let wasm = crate::support::raw_request(
        app.addr,
        format!("GET /{hashed} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await;
    let wasm = head_of(&wasm);
    assert!(wasm.starts_with("http/1.1 200"), "{wasm}");
    assert!(wasm.contains("content-encoding: gzip"), "{wasm}");
    assert!(
        wasm.contains("cache-control: public, max-age=31536000, immutable"),
        "{wasm}"
    );
    let index = crate::support::raw_request(
        app.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br\r\nConnection: close\r\n\r\n",
    )
    .await;
    let index = head_of(&index);
    assert!(index.contains("content-encoding: br"), "{index}");
    assert!(index.contains("cache-control: no-cache"), "{index}");
    assert!(
        index.contains(
            "content-security-policy: default-src 'self'; script-src 'self' 'wasm-unsafe-eval'"
        ),
        "{index}"
    );
    assert!(
        !wasm.contains("content-security-policy"),
        "only the page has a policy: {wasm}"
    );
    // A chat request is never compressed or cached (a held pop's answer must leave at once).
    let chat = crate::support::raw_request(
        app.addr,
        b"GET /?method=pop&time=x&callback=cb HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    )
    .await;
    let chat = head_of(&chat);
    assert!(!chat.contains("content-encoding"), "{chat}");

    // Before, every path without a query answered 200 with the server's plain-text note.
    for missing in ["/robots.txt", "/foo", "/nonexistent.css", "/a/b.js"] {
        let answer = app.get(missing).await;
        assert_eq!(answer.status, 404, "{missing}: {}", answer.body);
        let head = app.request(reqwest::Method::HEAD, missing).await;
        assert_eq!(head.status, 404, "HEAD {missing}");
    }

    // The page's own `?server=URL`, opened in a browser, is the page, not a join.
    let navigation = app
        .client
        .get(format!(
            "{}?server=http%3A%2F%2F127.0.0.1%3A8973%2F",
            app.base_url
        ))
        .header("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert!(navigation.text().await.unwrap().contains("chat page"));
    assert_eq!(app.health().await["messages"], 0);

    // A <script> request (Accept: */*) with chat parameters is chat, on any path.
    let joined = app.call("/?name=a&callback=cb", "cb").await;
    assert_eq!(joined["msg"], "加入聊天室");
    let joined_on_asset_path = app.call("/app.js?name=b&callback=cb", "cb").await;
    assert_eq!(joined_on_asset_path["msg"], "加入聊天室");
    // Even a navigation with chat parameters is chat, as it was in the original.
    let typed = app
        .client
        .get(format!("{}?name=c", app.base_url))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(
        call_once(&typed.text().await.unwrap(), "callback")["name"],
        "c"
    );
}

#[tokio::test]
async fn the_online_list_follows_saves_pops_and_exits() {
    let app = spawn_app_with(|settings| settings.poll_timeout = 0.5).await;
    app.call("/?name=alice", "callback").await;
    let joined = app.call("/?name=bob&presence=", "callback").await;
    assert_eq!(joined["online"], serde_json::json!(["alice", "bob"]));
    assert_eq!(joined["onlineCount"], 2);
    let time = joined["time"].as_u64().unwrap();

    // A reader that only polls is online too; the anonymous placeholder is never listed.
    let popped = app
        .call(
            &format!("/?name=carol&method=pop&time={time}&presence="),
            "callback",
        )
        .await;
    assert_eq!(
        popped["online"],
        serde_json::json!(["alice", "bob", "carol"])
    );
    let anonymous = app
        .call(&format!("/?method=pop&time={time}&presence="), "callback")
        .await;
    assert_eq!(anonymous["onlineCount"], 3);

    let left = app
        .call(
            &format!("/?name=bob&method=exit&time={time}&presence="),
            "callback",
        )
        .await;
    assert_eq!(left["online"], serde_json::json!(["alice", "carol"]));

    // Errors carry no list.
    let refused = app
        .call("/?name=a&method=push&msg=&time=1&presence=", "callback")
        .await;
    assert!(refused.get("online").is_none());
}

#[tokio::test]
async fn names_not_seen_for_the_hold_time_plus_grace_leave_the_list() {
    // Presence runs on the server's clock: the test lets the linger time pass instead of
    // sleeping through it.
    let (app, clock) = spawn_app_with_clock_and(|settings| {
        settings.poll_timeout = 0.2;
        settings.presence_grace = 0.2;
    })
    .await;
    let joined = app.call("/?name=dora&presence=", "callback").await;
    assert_eq!(joined["online"], serde_json::json!(["dora"]));
    clock.advance(Duration::from_millis(399));
    let soon = app.call("/?name=eve&presence=", "callback").await;
    assert_eq!(
        soon["online"],
        serde_json::json!(["dora", "eve"]),
        "dora is online until 0.4 s have passed"
    );
    clock.advance(Duration::from_millis(1));
    let later = app.call("/?name=fred&presence=", "callback").await;
    assert_eq!(
        later["online"],
        serde_json::json!(["eve", "fred"]),
        "dora left after 0.4 s"
    );
    clock.advance(Duration::from_secs(3600));
    let much_later = app.call("/?name=gail&presence=", "callback").await;
    assert_eq!(much_later["online"], serde_json::json!(["gail"]));
}
