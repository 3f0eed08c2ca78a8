//! Test helpers: start the real server on port 0 with a temporary data folder, talk to it over
//! real sockets, and run its JSONP answers in a real JavaScript engine (Node's `vm` module).

#![allow(dead_code, clippy::unwrap_used)]

pub mod redis;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chat_server::clock::{Clock, ManualClock, SystemClock};
use chat_server::{Application, Settings, ShutdownHandle};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The operators' listener, when the settings asked for one.
    pub metrics_addr: Option<SocketAddr>,
    pub base_url: String,
    pub data_dir: PathBuf,
    /// Keeps the temporary data folder alive (None when the test brought its own folder).
    pub temp_dir: Option<tempfile::TempDir>,
    pub shutdown: ShutdownHandle,
    pub task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub client: reqwest::Client,
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

/// Settings for tests: short hold time, generous rate limits, the given data folder.
pub fn test_settings(data_dir: &Path) -> Settings {
    let mut settings = Settings::for_tests("127.0.0.1:0".parse().unwrap(), data_dir.to_owned());
    settings.poll_timeout = 5.0;
    settings.push_burst = 100_000.try_into().unwrap();
    settings.push_rate = 100_000.try_into().unwrap();
    settings.workers = Some(2);
    settings
}

/// Starts a server with default test settings and a fresh data folder.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a server with a fresh data folder and settings changed by `adjust`.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let temp_dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(temp_dir.path());
    adjust(&mut settings);
    let mut app = spawn_app_on(settings, Arc::new(SystemClock)).await.unwrap();
    app.temp_dir = Some(temp_dir);
    app
}

/// Starts a server with exactly these settings and this clock.
pub async fn spawn_app_on(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<TestApp> {
    let data_dir = settings.data_dir.clone();
    let app = Application::build(settings, clock).await?;
    let addr = app.local_addr();
    let metrics_addr = app.metrics_addr();
    let shutdown = app.shutdown_handle();
    let task = tokio::spawn(app.run_until_stopped());
    Ok(TestApp {
        addr,
        metrics_addr,
        base_url: format!("http://{addr}/"),
        data_dir,
        temp_dir: None,
        shutdown,
        task: Some(task),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
    })
}

/// Starts a server with a fresh data folder and a frozen [`manual_clock`] the test can move.
pub async fn spawn_app_with_clock() -> (TestApp, Arc<ManualClock>) {
    spawn_app_with_clock_and(|_| {}).await
}

/// Starts a server with a fresh data folder, settings changed by `adjust`, and a frozen
/// [`manual_clock`] the test can move (message times, presence and save rate limits follow it).
pub async fn spawn_app_with_clock_and(
    adjust: impl FnOnce(&mut Settings),
) -> (TestApp, Arc<ManualClock>) {
    let clock = manual_clock();
    let temp_dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(temp_dir.path());
    adjust(&mut settings);
    let mut app = spawn_app_on(settings, clock.clone()).await.unwrap();
    app.temp_dir = Some(temp_dir);
    (app, clock)
}

/// GETs `url` and returns the body.
pub async fn get_text(client: &reqwest::Client, url: &str) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// A frozen clock at 2015-01-01 (the legacy fixtures' era), shared with the test.
pub fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(1_420_070_400_000))
}

impl TestApp {
    /// GET `base_url` + `path_and_query` (sent as written).
    pub async fn get(&self, path_and_query: &str) -> Answer {
        self.request(reqwest::Method::GET, path_and_query).await
    }

    pub async fn request(&self, method: reqwest::Method, path_and_query: &str) -> Answer {
        let url = format!("http://{}{}", self.addr, path_and_query);
        let response = self.client.request(method, &url).send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap();
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Sends a GET and runs the answer as a script, expecting exactly one call of `callback`.
    pub async fn call(&self, path_and_query: &str, callback: &str) -> Value {
        let answer = self.get(path_and_query).await;
        assert_eq!(answer.status, 200, "{path_and_query}: {}", answer.body);
        call_once(&answer.body, callback)
    }

    /// Saves a message with `method=push` and returns its time.
    pub async fn push(&self, name: &str, msg: &str) -> u64 {
        let query = format!(
            "/?name={}&method=push&msg={}&time=1",
            encode(name),
            encode(msg)
        );
        let answer = self.call(&query, "callback").await;
        assert!(answer.get("error").is_none(), "push refused: {answer}");
        answer["time"].as_u64().unwrap()
    }

    /// Saves many messages quickly (without running each answer in a JavaScript engine, as
    /// [`TestApp::push`] does), one after another; returns their times.
    pub async fn push_many(&self, name: &str, texts: impl IntoIterator<Item = String>) -> Vec<u64> {
        let mut saved = Vec::new();
        for text in texts {
            let url = format!(
                "{}?name={}&method=push&msg={}&time=1&callback=cb",
                self.base_url,
                encode(name),
                encode(&text)
            );
            let answer = jsonp_object(&get_text(&self.client, &url).await).unwrap();
            assert!(answer.get("error").is_none(), "push refused: {answer}");
            saved.push(answer["time"].as_u64().unwrap());
        }
        saved
    }

    /// Pops from `time`, returning the answer object.
    pub async fn pop(&self, time: u64) -> Value {
        self.call(&format!("/?name=reader&method=pop&time={time}"), "callback")
            .await
    }

    /// Pages through all history from `time=0`, as a looping client would, until it has
    /// reached the newest message (the next pop would be held).
    pub async fn all_messages(&self) -> Vec<Value> {
        all_messages_at(&self.client, &self.base_url).await
    }

    /// The `/healthz` object.
    pub async fn health(&self) -> Value {
        serde_json::from_str(&self.get("/healthz").await.body).unwrap()
    }

    /// Waits until `/healthz` reports `held` held pops.
    pub async fn wait_for_held(&self, held: u64) {
        wait_for_held_at(&self.client, &self.base_url, held).await;
    }

    /// Waits until `/healthz` reports `value` for the figure `key` (e.g. `newest_time`).
    pub async fn wait_for_figure(&self, key: &str, value: u64) {
        wait_for_figure_at(&self.client, &self.base_url, key, value).await;
    }

    /// Stops the server the way SIGTERM does and waits for it to finish.
    pub async fn stop(&mut self) {
        self.shutdown
            .shutdown(chat_server::startup::Handover::None)
            .await;
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

/// How long a wait on a server's observable state may take before the test fails: far longer
/// than any wait should, on a loaded machine.
pub const WAIT_DEADLINE: Duration = Duration::from_secs(30);

/// Waits until the `/healthz` of the server at `base_url` (ending in `/`) reports `held` held
/// pops, polling every 20 ms; panics with the last answer after [`WAIT_DEADLINE`].
pub async fn wait_for_held_at(client: &reqwest::Client, base_url: &str, held: u64) {
    wait_for_figure_at(client, base_url, "held_polls", held).await;
}

/// Waits until the `/healthz` of the server at `base_url` (ending in `/`) reports `value` for
/// the figure `key`, polling every 20 ms; panics with the last answer after [`WAIT_DEADLINE`].
pub async fn wait_for_figure_at(client: &reqwest::Client, base_url: &str, key: &str, value: u64) {
    let deadline = std::time::Instant::now() + WAIT_DEADLINE;
    loop {
        let health: Value =
            serde_json::from_str(&get_text(client, &format!("{base_url}healthz")).await).unwrap();
        if health[key] == value {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never saw {key} = {value}; last health {health}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Pages through all history of the server at `base_url` (ending in `/`) from `time=0`, as a
/// looping client would, until it has reached the newest message (the next pop would be held).
pub async fn all_messages_at(client: &reqwest::Client, base_url: &str) -> Vec<Value> {
    let get =
        |url: String| async move { client.get(url).send().await.unwrap().text().await.unwrap() };
    let health: Value = serde_json::from_str(&get(format!("{base_url}healthz")).await).unwrap();
    let newest = health["newest_time"].as_u64().unwrap();
    let mut all = Vec::new();
    let mut time = 0;
    while time < newest {
        let answer = call_once(
            &get(format!("{base_url}?name=reader&method=pop&time={time}")).await,
            "callback",
        );
        let list = answer["msgList"].as_array().unwrap().clone();
        assert!(
            !list.is_empty(),
            "a pop behind the newest message answers with messages: {answer}"
        );
        time = answer["time"].as_u64().unwrap();
        all.extend(list);
    }
    all
}

/// Reads a JSONP answer `/**/cb({...});` without a JavaScript engine, for tests that read
/// hundreds of them (the answer format itself is checked in a real engine by the protocol
/// tests, through [`call_once`]).
pub fn jsonp_object(body: &str) -> Result<Value, String> {
    body.strip_prefix("/**/cb(")
        .and_then(|rest| rest.strip_suffix(");"))
        .and_then(|json| serde_json::from_str(json).ok())
        .ok_or_else(|| format!("not a JSONP answer of cb: {body:?}"))
}

/// Runs the built binary with `args` to its end.
pub fn run_binary(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(args)
        .output()
        .unwrap()
}

/// Percent-encodes a query value as `encodeURIComponent` does, with spaces as `+` (jQuery).
pub use chat_shared::encode_component as encode;

/// Runs `body` in a fresh JavaScript context with `callback` defined; returns the arguments of
/// every call and the error thrown, if any.
pub fn run_jsonp(body: &str, callback: &str) -> (Vec<Value>, Option<String>) {
    let harness = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/jsonp_harness.js");
    let mut child = Command::new("node")
        .arg(harness)
        .arg(callback)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node must be installed to run JSONP answers (the test script installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let calls = report["calls"].as_array().unwrap().clone();
    let error = report["error"].as_str().map(str::to_owned);
    (calls, error)
}

/// Runs `body` and asserts that it calls `callback` exactly once without throwing.
pub fn call_once(body: &str, callback: &str) -> Value {
    let (calls, error) = run_jsonp(body, callback);
    assert_eq!(error, None, "the answer threw: {body}");
    assert_eq!(
        calls.len(),
        1,
        "expected exactly one call of {callback}: {body}"
    );
    calls.into_iter().next().unwrap()
}

/// Sends raw bytes on a new connection and reads until the server closes it or 5 s pass.
pub async fn raw_request(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            // A reset after the answer (the server closing with unread input) ends the read.
            Ok(Err(_)) => break,
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// The messages' `msg` texts, in order.
pub fn texts(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|message| message["msg"].as_str().unwrap().to_owned())
        .collect()
}

/// The messages' times, in order.
pub fn times(messages: &[Value]) -> Vec<u64> {
    messages
        .iter()
        .map(|message| message["time"].as_u64().unwrap())
        .collect()
}

/// Copies a legacy fixture from the repository's own fixtures folder.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/legacy-node-data")
        .join(name)
}
