//! Request heads over the HTTP layer's limits: refused with a status the client can read, and
//! never written to the operator's log one line each.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::process::launch_binary;
use crate::support::spawn_app;

/// Sends a request head of `head_bytes` (one long header) in 4 KiB pieces, as a client on a
/// slower link does, carrying on after the server has answered, then reads the answer. Returns
/// what it read, or how the connection failed: a reset (the server closing with bytes unread)
/// fails a write or the read. On a link slower than loopback that reset also discards the
/// answer still in the server's send queue, so the client never sees the status.
async fn send_large_head(addr: std::net::SocketAddr, head_bytes: usize) -> Result<String, String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = b"GET /?name=a&method=pop&time=1 HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    head.resize(head_bytes, b'a');
    head.extend_from_slice(b"\r\n\r\n");
    for (n, piece) in head.chunks(4096).enumerate() {
        stream
            .write_all(piece)
            .await
            .map_err(|error| format!("write of piece {n} failed: {error}"))?;
        // Paces the pieces, so that the server answers while the client is still sending.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    stream
        .shutdown()
        .await
        .map_err(|error| format!("shutdown failed: {error}"))?;
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut received))
        .await
        .map_err(|_| "no end within 10 s".to_owned())?
        .map_err(|error| format!("read failed after {} bytes: {error}", received.len()))?;
    Ok(String::from_utf8_lossy(&received).into_owned())
}

/// Before, the server closed with the rest of the head unread, and the reset that the kernel
/// sends then destroyed the 431 before the client read it.
#[tokio::test]
async fn a_200_kb_request_head_gets_a_431_the_client_can_read_while_it_is_still_sending() {
    let app = spawn_app().await;
    for _ in 0..5 {
        let answer = send_large_head(app.addr, 200 * 1024).await.unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 431"),
            "read {} bytes: {answer:?}",
            answer.len()
        );
    }
    // The server is as responsive as before.
    app.push("a", "still here").await;
}

#[tokio::test]
async fn more_than_96_header_fields_get_431_and_96_are_served() {
    let app = spawn_app().await;
    let request = |fields: usize| {
        let mut head =
            "GET /?name=a&method=pop HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_owned();
        // Host and Connection count as two.
        for n in 0..fields - 2 {
            head.push_str(&format!("X-F{n}: 1\r\n"));
        }
        head.push_str("\r\n");
        head
    };
    let served = crate::support::raw_request(app.addr, request(96).as_bytes()).await;
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    let refused = crate::support::raw_request(app.addr, request(97).as_bytes()).await;
    assert!(refused.starts_with("HTTP/1.1 431"), "{refused}");
}

/// Before, every one of these was an ERROR line of the HTTP layer.
#[tokio::test]
async fn requests_the_http_layer_refuses_are_summed_up_in_the_log_not_logged_at_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = launch_binary(dir.path(), &[], None);
    let addr: std::net::SocketAddr = server
        .base_url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    for _ in 0..3 {
        send_large_head(addr, 200 * 1024).await.unwrap();
    }
    for _ in 0..2 {
        crate::support::raw_request(addr, b"GET /\x01 HTTP/1.1\r\n\r\n").await;
    }
    let (exit, server) = server.stop_and_wait().await;
    assert_eq!(exit.code(), Some(0));
    // The summary is the last thing the process writes before it exits.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server.log_text().contains("count=2") && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = server.log_text();
    assert!(!log.contains("ERROR"), "{log}");
    let summaries: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("client_faults"))
        .collect();
    assert_eq!(summaries.len(), 2, "{log}");
    assert!(
        summaries
            .iter()
            .any(|line| line.contains("message head is too large") && line.contains("count=3")),
        "{log}"
    );
    assert!(
        summaries.iter().any(|line| line.contains("count=2")),
        "{log}"
    );
}
