//! Restarts and upgrades that open pages never notice. A legacy-style loop client (it polls
//! again the moment it gets an answer and stops for good at the first connection error, as
//! wfQuery and jQuery 1.x pages do) and a pusher run through five takeovers (`--takeover`) and
//! five socket-activated restarts (the test holds the listening socket, as systemd does).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;

use crate::process::{launch_binary, ServerProcess};
use crate::support::{jsonp_object, run_binary};

/// How many switches each test makes.
const SWITCHES: usize = 5;

/// Messages the loop client must see between two switches (waited for, not slept for).
const MESSAGES_PER_ROUND: usize = 10;

/// The pusher's pace: one push per this many milliseconds.
const PUSH_EVERY: Duration = Duration::from_millis(20);

/// The longest a pop may take: with a push every 20 ms, only a switch can hold one longer.
const MAX_POP_TIME: Duration = Duration::from_secs(1);

/// What the loop client saw.
#[derive(Debug, Default)]
struct LoopReport {
    texts: Vec<String>,
    n_pops: usize,
    longest_pop: Duration,
}

/// Polls like a legacy page until it has seen `final_time`; any connection error or error
/// answer ends it with an error.
async fn loop_client(
    base_url: String,
    n_seen: watch::Sender<usize>,
    mut final_time: watch::Receiver<Option<u64>>,
) -> Result<LoopReport, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|error| error.to_string())?;
    let mut report = LoopReport::default();
    let mut cursor = 0u64;
    loop {
        let url = format!("{base_url}?name=looper&method=pop&time={cursor}&callback=cb");
        let started = Instant::now();
        let fetched = async { client.get(&url).send().await?.text().await };
        // Done once the last acknowledged message is seen; a pop held after it is dropped.
        let done = final_time.wait_for(|last| last.is_some_and(|last| cursor >= last));
        let fetched = tokio::select! {
            fetched = fetched => fetched,
            _ = done => return Ok(report),
        };
        let body = fetched.map_err(|error| {
            format!(
                "connection error after {} pops (the legacy page would stop here): {error:?}",
                report.n_pops
            )
        })?;
        report.longest_pop = report.longest_pop.max(started.elapsed());
        report.n_pops += 1;
        let answer = jsonp_object(&body)?;
        if let Some(error) = answer.get("error") {
            return Err(format!("a pop was refused: {error}"));
        }
        for message in answer["msgList"].as_array().into_iter().flatten() {
            report
                .texts
                .push(message["msg"].as_str().unwrap_or_default().to_owned());
        }
        n_seen.send_replace(report.texts.len());
        cursor = answer["time"]
            .as_u64()
            .ok_or_else(|| format!("no time in {answer}"))?;
    }
}

/// What the pusher got acknowledged: texts and the newest time.
#[derive(Debug, Default)]
struct PushReport {
    acknowledged: Vec<String>,
    last_time: u64,
    longest_push: Duration,
}

/// Pushes `m0`, `m1`, … every [`PUSH_EVERY`] until `stop`; any connection error or refusal
/// ends it with an error (a redirect is followed, as a `<script>` element does).
async fn pusher(base_url: String, stop: Arc<AtomicBool>) -> Result<PushReport, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|error| error.to_string())?;
    let mut report = PushReport::default();
    let mut pace = tokio::time::interval(PUSH_EVERY);
    for n in 0.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        pace.tick().await;
        let text = format!("m{n}");
        let url = format!("{base_url}?name=pusher&method=push&msg={text}&time=1&callback=cb");
        let started = Instant::now();
        let fetched = async { client.get(&url).send().await?.text().await };
        let body = fetched
            .await
            .map_err(|error| format!("connection error on push {n}: {error:?}"))?;
        report.longest_push = report.longest_push.max(started.elapsed());
        let answer = jsonp_object(&body)?;
        if let Some(error) = answer.get("error") {
            return Err(format!("push {n} was refused: {error}"));
        }
        report.last_time = answer["time"]
            .as_u64()
            .ok_or_else(|| format!("no time in {answer}"))?;
        report.acknowledged.push(text);
    }
    Ok(report)
}

/// The loop client and the pusher, running.
struct Traffic {
    n_seen: watch::Receiver<usize>,
    stop: Arc<AtomicBool>,
    final_time: watch::Sender<Option<u64>>,
    looper: tokio::task::JoinHandle<Result<LoopReport, String>>,
    pusher: tokio::task::JoinHandle<Result<PushReport, String>>,
}

impl Traffic {
    fn start(base_url: &str) -> Traffic {
        let (n_seen_tx, n_seen) = watch::channel(0);
        let stop = Arc::new(AtomicBool::new(false));
        let (final_time, final_time_rx) = watch::channel(None);
        let looper = tokio::spawn(loop_client(base_url.to_owned(), n_seen_tx, final_time_rx));
        let pusher = tokio::spawn(pusher(base_url.to_owned(), stop.clone()));
        Traffic {
            n_seen,
            stop,
            final_time,
            looper,
            pusher,
        }
    }

    /// Waits until the loop client has seen `n` messages (the traffic is flowing).
    async fn wait_for_seen(&self, n: usize, server: &ServerProcess) {
        let mut n_seen = self.n_seen.clone();
        let seen = tokio::time::timeout(
            Duration::from_secs(30),
            n_seen.wait_for(|&n_seen| n_seen >= n),
        )
        .await;
        match seen {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => panic!(
                "the loop client stopped early; server log:\n{}",
                server.log_text()
            ),
            Err(_) => panic!(
                "the loop client saw {} of {n} messages; server log:\n{}",
                *self.n_seen.borrow(),
                server.log_text()
            ),
        }
    }

    /// Stops pushing, lets the loop client catch up with the last acknowledged message, and
    /// checks that it saw every acknowledged message once, in order, with no pop held longer
    /// than [`MAX_POP_TIME`].
    async fn finish(self, server: &ServerProcess) {
        self.stop.store(true, Ordering::SeqCst);
        let pushed = self.pusher.await.unwrap();
        let pushed = pushed.unwrap_or_else(|error| {
            panic!("the pusher failed: {error}; log:\n{}", server.log_text())
        });
        self.final_time.send_replace(Some(pushed.last_time));
        let seen = tokio::time::timeout(Duration::from_secs(30), self.looper)
            .await
            .expect("the loop client catches up")
            .unwrap()
            .unwrap_or_else(|error| {
                panic!(
                    "the loop client failed: {error}; log:\n{}",
                    server.log_text()
                )
            });
        eprintln!(
            "{} pushes acknowledged (longest {:?}); {} pops, longest {:?}",
            pushed.acknowledged.len(),
            pushed.longest_push,
            seen.n_pops,
            seen.longest_pop
        );
        assert_eq!(
            seen.texts, pushed.acknowledged,
            "the loop client sees every acknowledged message once, in order"
        );
        assert!(
            seen.longest_pop < MAX_POP_TIME,
            "a pop took {:?} across a switch",
            seen.longest_pop
        );
    }
}

/// Waits for `server` to exit; it must exit 0.
async fn wait_for_exit(mut server: ServerProcess) {
    let (server, status) = tokio::task::spawn_blocking(move || {
        let status = server.child.wait().unwrap();
        (server, status)
    })
    .await
    .unwrap();
    assert!(
        status.success(),
        "the old process exited with {status}; its log:\n{}",
        server.log_text()
    );
}

async fn launch(
    dir: &Path,
    extra: &'static [&'static str],
    inherited: Option<Arc<TcpListener>>,
) -> ServerProcess {
    let dir: PathBuf = dir.to_owned();
    tokio::task::spawn_blocking(move || launch_binary(&dir, extra, inherited.as_deref()))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_takeovers_refuse_no_connection_and_lose_no_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = launch(dir.path(), &[], None).await;
    let base_url = server.base_url.clone();
    let traffic = Traffic::start(&base_url);
    for round in 1..=SWITCHES {
        traffic
            .wait_for_seen(round * MESSAGES_PER_ROUND, &server)
            .await;
        let successor = launch(dir.path(), &["--takeover"], None).await;
        assert_eq!(
            successor.base_url, base_url,
            "the same address after a takeover"
        );
        assert!(
            successor.log_text().contains("taken over socket"),
            "{}",
            successor.log_text()
        );
        wait_for_exit(std::mem::replace(&mut server, successor)).await;
    }
    traffic
        .wait_for_seen((SWITCHES + 1) * MESSAGES_PER_ROUND, &server)
        .await;
    traffic.finish(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_socket_activated_restarts_refuse_no_connection_and_lose_no_message() {
    let dir = tempfile::tempdir().unwrap();
    // Held by the test for the whole run, as systemd holds a `.socket` unit's socket.
    let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let addr = listener.local_addr().unwrap();
    let mut server = launch(dir.path(), &[], Some(listener.clone())).await;
    assert_eq!(server.base_url, format!("http://{addr}/"));
    assert!(
        server.log_text().contains("inherited socket"),
        "{}",
        server.log_text()
    );
    let traffic = Traffic::start(&server.base_url);
    for round in 1..=SWITCHES {
        traffic
            .wait_for_seen(round * MESSAGES_PER_ROUND, &server)
            .await;
        let status = Command::new("kill")
            .args(["-TERM", &server.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        // Started once the old one has exited, as `systemctl restart` does.
        wait_for_exit(server).await;
        server = launch(dir.path(), &[], Some(listener.clone())).await;
        assert_eq!(server.base_url, format!("http://{addr}/"));
    }
    traffic
        .wait_for_seen((SWITCHES + 1) * MESSAGES_PER_ROUND, &server)
        .await;
    traffic.finish(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_start_without_takeover_is_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = launch(dir.path(), &[], None).await;
    let output = crate::process::start_to_its_end(dir.path());
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("in use by another chat-server"), "{stderr}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_with_nobody_running_says_so_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_binary(&[
        "--takeover".as_ref(),
        "--data-dir".as_ref(),
        dir.path().as_os_str(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no running chat-server answers"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_version_limits_backend_and_listener_source() {
    let dir = tempfile::tempdir().unwrap();
    let server = launch(dir.path(), &["--log-format", "json"], None).await;
    let log = server.log_text();
    let startup: Value = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| {
            line["fields"]["message"]
                .as_str()
                .is_some_and(|message| message.contains("listening on"))
        })
        .unwrap_or_else(|| panic!("no JSON startup line in:\n{log}"));
    let fields = &startup["fields"];
    assert_eq!(fields["version"], env!("CARGO_PKG_VERSION"), "{startup}");
    assert_eq!(fields["listener"], "bound", "{startup}");
    assert_eq!(fields["backend"], "local folder", "{startup}");
    assert_eq!(fields["max_polls_flag"], 50_000, "{startup}");
    let effective = fields["max_polls"].as_u64().unwrap();
    let open_files = fields["open_files_limit"].as_u64().unwrap();
    assert!(
        effective <= 50_000 && effective < open_files,
        "the effective cap fits the open-file limit: {startup}"
    );
    assert_eq!(fields["push_rate"], 1_000_000, "{startup}");
    assert_eq!(startup["level"], "INFO", "{startup}");
}
