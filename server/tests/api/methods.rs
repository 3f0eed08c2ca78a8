//! Request methods: only GET and POST run the chat; HEAD, OPTIONS and the rest have no effect
//! (link checkers and link previews send HEAD, CORS preflights send OPTIONS).

use reqwest::Method;

use crate::support::spawn_app;

/// Methods that must neither store nor hold anything, with the status each gets.
const NO_EFFECT: [(&str, u16); 6] = [
    ("HEAD", 200),
    ("OPTIONS", 204),
    ("PUT", 405),
    ("DELETE", 405),
    ("PATCH", 405),
    ("TRACE", 405),
];

#[tokio::test]
async fn a_push_or_a_join_sent_with_any_method_but_get_and_post_stores_nothing() {
    let app = spawn_app().await;
    for (method, status) in NO_EFFECT {
        for query in [
            "/?name=probe&method=push&msg=hello&time=1&callback=cb",
            "/?name=pre&msg=hi",
        ] {
            let answer = app
                .request(Method::from_bytes(method.as_bytes()).unwrap(), query)
                .await;
            assert_eq!(answer.status, status, "{method} {query}");
            assert!(
                answer.body.is_empty() || status == 405,
                "{method} {query}: {}",
                answer.body
            );
            if method != "HEAD" {
                assert_eq!(
                    answer.headers["allow"], "GET, HEAD, POST, OPTIONS",
                    "{method} {query}"
                );
            }
        }
    }
    assert_eq!(app.health().await["messages"], 0, "nothing was stored");
}

#[tokio::test]
async fn a_head_of_a_pop_is_answered_at_once_with_the_headers_of_a_get() {
    let app = spawn_app().await;
    let time = app.push("a", "hello").await;
    let started = std::time::Instant::now();
    let answer = app
        .request(
            Method::HEAD,
            &format!("/?name=b&method=pop&time={time}&callback=cb"),
        )
        .await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "never held"
    );
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.headers["content-type"],
        "application/javascript; charset=utf-8"
    );
    assert_eq!(answer.headers["x-content-type-options"], "nosniff");
    assert_eq!(app.health().await["held_polls"], 0);
    let unsafe_callback = app
        .request(Method::HEAD, "/?method=pop&time=1&callback=alert(1)//")
        .await;
    assert_eq!(unsafe_callback.status, 400, "as a GET would be");
}

#[tokio::test]
async fn post_keeps_its_legacy_meaning() {
    let app = spawn_app().await;
    let answer = app
        .request(Method::POST, "/?name=a&method=exit&time=5")
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        app.health().await["messages"],
        1,
        "the exit beacon is stored"
    );
}

/// Before, `/healthz` answered HEAD and OPTIONS with the chat's plain-text banner (it was a
/// GET-only route), and `/favicon.ico` answered DELETE or PUT with 204.
#[tokio::test]
async fn health_and_favicon_serve_get_and_head_answer_options_and_refuse_other_methods() {
    let app = spawn_app().await;
    for path in ["/healthz", "/favicon.ico"] {
        let get = app.request(Method::GET, path).await;
        let head = app.request(Method::HEAD, path).await;
        assert_eq!(head.status, get.status, "{path}");
        assert_eq!(
            head.headers.get("content-type"),
            get.headers.get("content-type"),
            "{path}"
        );
        assert!(head.body.is_empty(), "{path}");
        let options = app.request(Method::OPTIONS, path).await;
        assert_eq!(options.status, 204, "{path}");
        assert_eq!(options.headers["allow"], "GET, HEAD, OPTIONS", "{path}");
        for method in ["PUT", "DELETE", "POST", "PATCH"] {
            let answer = app
                .request(Method::from_bytes(method.as_bytes()).unwrap(), path)
                .await;
            assert_eq!(answer.status, 405, "{method} {path}");
            assert_eq!(
                answer.headers["allow"], "GET, HEAD, OPTIONS",
                "{method} {path}"
            );
        }
    }
    assert_eq!(app.health().await["messages"], 0);
}
