//! The legacy protocol's rules, in the order the original server applied them.

use crate::support::{call_once, spawn_app, spawn_app_with_clock};

#[tokio::test]
async fn join_without_time_saves_the_default_message_and_answers_with_its_time() {
    let (app, _frozen_clock) = spawn_app_with_clock().await;
    let answer = app
        .get("/?name=%E5%B0%8F%E5%B0%8F%E5%85%B5&callback=wfQuery_1420016009253&__t=1420016009253")
        .await;
    assert_eq!(
        answer.body,
        "/**/wfQuery_1420016009253({\"name\":\"小小兵\",\"callback\":\"wfQuery_1420016009253\",\"__t\":\"1420016009253\",\
         \"msg\":\"加入聊天室\",\"time\":1420070400000,\"msgList\":[]});"
    );
    let saved = app.pop(0).await;
    assert_eq!(
        saved["msgList"],
        serde_json::json!([{"name": "小小兵", "msg": "加入聊天室", "time": 1_420_070_400_000u64}])
    );
}

#[tokio::test]
async fn join_keeps_the_message_the_client_gave() {
    let app = spawn_app().await;
    // wfQuery's chat page sends a push without `time`: by the original's rules it is a join.
    let answer = app
        .call(
            "/?name=a&method=push&msg=hello+there&__t=1&callback=wfQuery_1",
            "wfQuery_1",
        )
        .await;
    assert_eq!(answer["msg"], "hello there");
    assert_eq!(answer["msgList"], serde_json::json!([]));
    assert!(answer["time"].is_u64(), "time is a JSON number: {answer}");
}

#[tokio::test]
async fn echo_keeps_every_parameter_in_order_and_the_first_of_duplicates() {
    let (app, _frozen_clock) = spawn_app_with_clock().await;
    let answer = app
        .get("/?name=a&method=push&msg=x&time=5&callback=cb&_=99&name=b&msg=y&extra=%E4%B8%AD")
        .await;
    assert_eq!(
        answer.body,
        "/**/cb({\"name\":\"a\",\"method\":\"push\",\"msg\":\"x\",\"time\":1420070400000,\"callback\":\"cb\",\"_\":\"99\",\
         \"extra\":\"中\",\"msgList\":[]});"
    );
}

#[tokio::test]
async fn push_and_exit_are_saved_and_pop_returns_them_in_order() {
    let app = spawn_app().await;
    let join = app.call("/?name=a", "callback").await;
    let join_time = join["time"].as_u64().unwrap();
    let push = app
        .call(
            &format!("/?name=a&method=push&msg=hi&time={join_time}"),
            "callback",
        )
        .await;
    assert_eq!(push["msg"], "hi");
    let exit = app
        .call(
            &format!("/?name=a&method=exit&msg=ignored&time={join_time}"),
            "callback",
        )
        .await;
    assert_eq!(exit["msg"], "离开聊天室");
    let popped = app.pop(join_time).await;
    let list = popped["msgList"].as_array().unwrap();
    assert_eq!(crate::support::texts(list), ["hi", "离开聊天室"]);
    assert_eq!(
        popped["time"], exit["time"],
        "time is the last message's time"
    );
}

#[tokio::test]
async fn post_is_a_join_unless_it_says_exit() {
    let app = spawn_app().await;
    let post = app
        .request(reqwest::Method::POST, "/?name=a&method=pop&time=5")
        .await;
    assert_eq!(call_once(&post.body, "callback")["msg"], "加入聊天室");
    // navigator.sendBeacon can only POST; a closing page's exit must still count.
    let beacon = app
        .request(reqwest::Method::POST, "/?name=a&method=exit&time=5")
        .await;
    assert_eq!(call_once(&beacon.body, "callback")["msg"], "离开聊天室");
    assert_eq!(
        crate::support::texts(&app.all_messages().await),
        ["加入聊天室", "离开聊天室"]
    );
}

#[tokio::test]
async fn name_is_trimmed_and_a_missing_name_is_anonymous() {
    let app = spawn_app().await;
    app.call("/?name=++bob++&method=push&msg=1&time=1", "callback")
        .await;
    app.call("/?method=push&msg=2&time=1", "callback").await;
    app.call("/?name=+&method=push&msg=3&time=1", "callback")
        .await;
    let names: Vec<String> = app
        .all_messages()
        .await
        .iter()
        .map(|message| message["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["bob", "(匿名)", "(匿名)"]);
}

#[tokio::test]
async fn pop_with_a_time_that_is_not_a_whole_number_answers_at_once_with_the_newest_time() {
    let app = spawn_app().await;
    let newest = app.push("a", "x").await;
    for bad in ["abc", "1.5", "-3", "1e3", "%20"] {
        let started = std::time::Instant::now();
        let answer = app
            .call(&format!("/?method=pop&time={bad}"), "callback")
            .await;
        assert_eq!(answer["time"], newest, "time={bad}");
        assert_eq!(answer["msgList"], serde_json::json!([]), "time={bad}");
        assert!(
            started.elapsed().as_secs() < 2,
            "time={bad} must not be held"
        );
    }
}

#[tokio::test]
async fn pop_beyond_the_newest_message_answers_at_once_with_the_newest_time() {
    let app = spawn_app().await;
    let newest = app.push("a", "x").await;
    let answer = app
        .call(
            &format!("/?method=pop&time={}", newest + 1_000_000),
            "callback",
        )
        .await;
    assert_eq!(answer["time"], newest);
    assert_eq!(answer["msgList"], serde_json::json!([]));
}

#[tokio::test]
async fn held_pop_times_out_with_no_messages_and_the_same_time() {
    let app = crate::support::spawn_app_with(|settings| settings.poll_timeout = 0.3).await;
    let newest = app.push("a", "x").await;
    let started = std::time::Instant::now();
    let answer = app
        .call(&format!("/?method=pop&time={newest}&callback=cb"), "cb")
        .await;
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(250),
        "the pop was held"
    );
    assert_eq!(answer["time"], newest);
    assert_eq!(answer["msgList"], serde_json::json!([]));
}

#[tokio::test]
async fn jsonp_answers_are_safe_by_default() {
    let app = spawn_app().await;
    let answer = app.get("/?name=%3C%2Fscript%3E&method=push&msg=%3Cimg+src%3Dx+onerror%3Dalert(1)%3E%26%E2%80%A8%E2%80%A9&time=1").await;
    assert_eq!(answer.status, 200);
    assert!(answer.body.starts_with("/**/callback("), "{}", answer.body);
    for unsafe_text in ["<", ">", "&", "\u{2028}", "\u{2029}"] {
        assert!(
            !answer.body.contains(unsafe_text),
            "{unsafe_text:?} must be escaped: {}",
            answer.body
        );
    }
    let headers = &answer.headers;
    assert_eq!(
        headers["content-type"],
        "application/javascript; charset=utf-8"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-accel-buffering"], "no");
    // The escapes mean the same text to the script.
    let called = call_once(&answer.body, "callback");
    assert_eq!(
        called["msg"],
        "<img src=x onerror=alert(1)>&\u{2028}\u{2029}"
    );
    assert_eq!(called["name"], "</script>");
}

#[tokio::test]
async fn a_client_cannot_fake_the_server_fields() {
    let app = spawn_app().await;
    let newest = app.push("a", "x").await;
    let answer = app
        .call(
            "/?method=pop&time=0&error=boom&msgList=1&online=2&onlineCount=3&presenceTag=x&presence=",
            "callback",
        )
        .await;
    assert!(answer.get("error").is_none(), "{answer}");
    assert!(
        answer["online"].is_array() && answer["onlineCount"].is_u64(),
        "the server's list, not the client's: {answer}"
    );
    assert_eq!(
        answer["presenceTag"].as_str().map(str::len),
        Some(16),
        "the server's tag, not the client's: {answer}"
    );
    assert_eq!(answer["time"], newest);
}

#[tokio::test]
async fn requests_that_are_not_chat_requests() {
    let app = spawn_app().await;
    let page = app.get("/").await;
    assert_eq!(page.status, 200);
    assert!(page.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let favicon = app.get("/favicon.ico").await;
    assert_eq!(favicon.status, 204);
    let favicon_with_query = app.get("/favicon.ico?name=a").await;
    assert_eq!(favicon_with_query.status, 204);
    assert_eq!(app.health().await["messages"], 0, "nothing was saved");
    // Any other path is a chat request.
    let answer = app
        .call("/some/where/chat.js?name=a&callback=cb", "cb")
        .await;
    assert_eq!(answer["msg"], "加入聊天室");
}

#[tokio::test]
async fn held_pops_are_answered_when_the_server_shuts_down() {
    let mut app = spawn_app().await;
    let newest = app.push("a", "x").await;
    let client = app.client.clone();
    let url = format!("{}?method=pop&time={newest}", app.base_url);
    let held = tokio::spawn(async move { crate::support::get_text(&client, &url).await });
    app.wait_for_held(1).await;
    let started = std::time::Instant::now();
    app.stop().await;
    let body = held.await.unwrap();
    assert!(
        started.elapsed().as_secs() < 3,
        "shutdown answered the held pop at once"
    );
    let answer = call_once(&body, "callback");
    assert_eq!(answer["time"], newest);
    assert_eq!(answer["msgList"], serde_json::json!([]));
    assert!(
        app.data_dir.join("data.json").exists(),
        "shutdown flushed to the original layout"
    );
}

#[tokio::test]
async fn no_callback_parameter_uses_callback() {
    let app = spawn_app().await;
    let (calls, error) = crate::support::run_jsonp(&app.get("/?name=a").await.body, "callback");
    assert_eq!((calls.len(), error), (1, None));
}

#[tokio::test]
async fn an_empty_callback_or_method_behaves_as_in_the_original() {
    // `res.callback || "callback"` and `!res.method`: empty values count as missing.
    let app = spawn_app().await;
    let joined = app.call("/?name=a&callback=", "callback").await;
    assert_eq!(joined["msg"], "加入聊天室");
    let time = joined["time"].as_u64().unwrap();
    let empty_method = app
        .call(&format!("/?name=a&method=&time={time}"), "callback")
        .await;
    assert_eq!(
        empty_method["msg"], "加入聊天室",
        "an empty method is a join"
    );
}
