//! Answers framed over raw sockets: every answer, a held pop's included, is sized
//! (`Content-Length`) or closes the connection, on HTTP/1.0 (which has no chunked encoding) and
//! 1.1 alike; and a proxy nobody said to trust is pointed out.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{jsonp_object, spawn_app, spawn_app_with};

/// An answer read off a raw socket: its head (lowercased header names) and its body, read to
/// the connection's end or to `Content-Length` bytes, whichever comes first.
struct RawAnswer {
    head: String,
    body: Vec<u8>,
}

impl RawAnswer {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim().eq_ignore_ascii_case(name)).then(|| value.trim().to_owned())
        })
    }
}

/// Sends `request` on a new connection and reads one answer.
async fn exchange(addr: std::net::SocketAddr, request: String) -> RawAnswer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(15), stream.read(&mut buffer))
            .await
            .expect("an answer within the hold time")
            .unwrap_or(0);
        received.extend_from_slice(&buffer[..read]);
        if let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).into_owned();
            let body = received[end + 4..].to_vec();
            let answer = RawAnswer { head, body };
            let complete = answer
                .header("content-length")
                .and_then(|length| length.parse::<usize>().ok())
                .is_some_and(|length| answer.body.len() >= length);
            if complete || read == 0 {
                return answer;
            }
        } else if read == 0 {
            panic!("the connection closed before a whole head: {received:?}");
        }
    }
}

/// Checks that a 1.0 answer is sized exactly, never chunked.
fn assert_sized(what: &str, answer: &RawAnswer) {
    assert!(
        answer.head.starts_with("HTTP/1."),
        "{what}: {}",
        answer.head
    );
    assert_eq!(
        answer.header("transfer-encoding"),
        None,
        "{what}: {}",
        answer.head
    );
    let length: usize = answer
        .header("content-length")
        .unwrap_or_else(|| panic!("{what}: no Content-Length: {}", answer.head))
        .parse()
        .unwrap();
    assert_eq!(
        answer.body.len(),
        length,
        "{what}: the body is exactly Content-Length bytes"
    );
}

/// A held pop is answered in one piece, head and sized body, on HTTP/1.0 (with and without
/// keep-alive: it has no chunked encoding) and on HTTP/1.1 alike.
#[tokio::test]
async fn a_held_pop_is_answered_sized_not_chunked_on_http_1_0_and_1_1() {
    let app = spawn_app().await;
    let cases = [
        ("HTTP/1.0", ""),
        ("HTTP/1.0", "Connection: keep-alive\r\n"),
        ("HTTP/1.1", "Host: chat\r\n"),
    ];
    for (version, headers) in cases {
        let newest = app.push("a", "before").await;
        let request = format!(
            "GET /?name=old&method=pop&time={newest}&callback=cb {version}\r\n{headers}\r\n"
        );
        let held = tokio::spawn(exchange(app.addr, request));
        app.wait_for_held(1).await;
        let text = format!("wakes the {version} pop");
        app.push("a", &text).await;
        let answer = held.await.unwrap();
        assert_sized(&format!("held pop, {version} {headers:?}"), &answer);
        let object = jsonp_object(&String::from_utf8(answer.body).unwrap()).unwrap();
        assert_eq!(object["msgList"][0]["msg"], text);
        app.wait_for_held(0).await;
    }
}

#[tokio::test]
async fn every_other_answer_to_http_1_0_is_sized_too() {
    let app = spawn_app().await;
    let newest = app.push("a", "hello").await;
    let cases = [
        (
            "a pop answered at once",
            "/?method=pop&time=0&callback=cb".to_owned(),
        ),
        (
            "a save",
            "/?name=a&method=push&msg=hi&time=1&callback=cb".to_owned(),
        ),
        (
            "a refusal",
            "/?name=a&method=push&msg=&time=1&callback=cb".to_owned(),
        ),
        (
            "an unsafe callback",
            "/?method=pop&time=1&callback=alert(1)".to_owned(),
        ),
        (
            "a pop ahead of the newest",
            format!("/?method=pop&time={}&callback=cb", newest + 10),
        ),
        ("/healthz", "/healthz".to_owned()),
        ("no query", "/".to_owned()),
    ];
    for keep_alive in ["", "Connection: keep-alive\r\n"] {
        for (what, path) in &cases {
            let answer =
                exchange(app.addr, format!("GET {path} HTTP/1.0\r\n{keep_alive}\r\n")).await;
            assert_sized(what, &answer);
        }
    }
}

#[tokio::test]
async fn a_proxy_nobody_said_to_trust_is_warned_about_in_healthz() {
    let app = spawn_app().await;
    assert!(app.health().await.get("warnings").is_none());
    let answer = app
        .client
        .get(format!("{}?name=a&method=pop&time=x", app.base_url))
        .header("X-Forwarded-For", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let health = app.health().await;
    let warning = health["warnings"][0].as_str().unwrap_or_default();
    assert!(
        warning.contains("127.0.0.1") && warning.contains("--trusted-proxy"),
        "{health}"
    );

    let trusted =
        spawn_app_with(|settings| settings.trusted_proxies = vec!["127.0.0.1".parse().unwrap()])
            .await;
    trusted
        .client
        .get(format!("{}?name=a&method=pop&time=x", trusted.base_url))
        .header("X-Forwarded-For", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert!(trusted.health().await.get("warnings").is_none());
}
