//! `httpref`: the HTTP stack alone, as a reference point for the benchmarks.
//!
//! By default a minimal actix-web server that answers every request at once with a fixed JSONP
//! body, storing nothing and holding nothing. What our server does beyond this is the price of
//! the protocol, the storage and the long polls.
//!
//! With `--long-poll`, the least an actix-web server can do to speak the chat's long polling to
//! the load generator: pushes go into a list in memory (not durable, no limits, no presence, no
//! rooms), and a pop newer than the list's newest message waits on a `tokio::sync::watch` until
//! a push (or 25 s). Its fan-out, beside ours and nginx + nchan's, shows what actix-web and
//! tokio cost per delivery before any of our code runs (BENCHMARKS.md, change 14).
//!
//! Usage: `httpref [ADDR] [--long-poll]` (default `127.0.0.1:8975`); prints
//! `listening on http://ADDR/`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::{web, App, HttpResponse, HttpServer};
use chat_shared::{CallbackName, Message, DEFAULT_CALLBACK, DEFAULT_PAGE_SIZE};
use tokio::sync::watch;

/// The fixed answer: what a push answer looks like, without the echo.
const BODY: &str = r#"/**/loadgen({"time":1,"msgList":[]});"#;

/// How long a pop is held, as our server's default.
const HOLD: Duration = Duration::from_secs(chat_shared::DEFAULT_POLL_TIMEOUT_SECS);

async fn answer() -> HttpResponse {
    jsonp(BODY.to_owned())
}

fn jsonp(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Content-Type", "application/javascript; charset=utf-8"))
        .insert_header(("Cache-Control", "no-store"))
        .body(body)
}

/// The messages of `--long-poll`, in memory, oldest first, and the newest one's time (ms).
struct Board {
    messages: Mutex<Vec<Message>>,
    newest: watch::Sender<u64>,
}

impl Board {
    /// The messages after `cursor` (at most one page) and the newest time.
    fn after(&self, cursor: u64) -> (Vec<Message>, u64) {
        let messages = self.messages.lock().unwrap_or_else(|p| p.into_inner());
        let from = messages.partition_point(|message| message.time <= cursor);
        let page = messages[from..]
            .iter()
            .take(DEFAULT_PAGE_SIZE)
            .cloned()
            .collect();
        (page, messages.last().map_or(0, |message| message.time))
    }

    /// Saves a message at a time after every earlier one; returns the time.
    fn push(&self, name: &str, msg: &str) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        let mut messages = self.messages.lock().unwrap_or_else(|p| p.into_inner());
        let time = now.max(messages.last().map_or(0, |message| message.time + 1));
        messages.push(Message::new(name.to_owned(), msg.to_owned(), time));
        drop(messages);
        self.newest.send_replace(time);
        time
    }
}

/// `/**/callback({"time":..,"msgList":[..]});`
fn page(callback: &str, time: u64, messages: &[Message]) -> HttpResponse {
    let object = serde_json::json!({ "time": time, "msgList": messages });
    jsonp(format!("/**/{callback}({object});"))
}

async fn long_poll(
    query: web::Query<HashMap<String, String>>,
    board: web::Data<Board>,
) -> HttpResponse {
    let callback = query
        .get("callback")
        .and_then(|name| CallbackName::parse(name).ok())
        .map_or(DEFAULT_CALLBACK.to_owned(), |name| name.as_str().to_owned());
    let text = |key: &str| query.get(key).map_or("", String::as_str);
    if text("method") == "push" {
        let time = board.push(text("name"), text("msg"));
        return page(&callback, time, &[]);
    }
    let cursor: u64 = text("time").parse().unwrap_or(0);
    let mut changes = board.newest.subscribe();
    let deadline = tokio::time::sleep(HOLD);
    tokio::pin!(deadline);
    loop {
        let (messages, newest) = board.after(cursor);
        if !messages.is_empty() {
            let time = messages.last().map_or(cursor, |message| message.time);
            return page(&callback, time, &messages);
        }
        if cursor > newest {
            return page(&callback, newest, &[]);
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return page(&callback, cursor, &[]) },
            () = &mut deadline => return page(&callback, cursor, &[]),
        }
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1).collect::<Vec<_>>();
    let long_polls = args.iter().any(|arg| arg == "--long-poll");
    args.retain(|arg| arg != "--long-poll");
    let addr = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:8975".to_owned());
    let board = web::Data::new(Board {
        messages: Mutex::new(Vec::new()),
        newest: watch::channel(0).0,
    });
    let server = HttpServer::new(move || {
        if long_polls {
            App::new()
                .app_data(board.clone())
                .default_service(web::to(long_poll))
        } else {
            App::new().default_service(web::to(answer))
        }
    })
    .bind(&addr)?;
    for bound in server.addrs() {
        println!("listening on http://{bound}/");
    }
    server.run().await
}
