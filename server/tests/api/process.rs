//! The built binary as an operator runs it: `kill -9` in the middle of concurrent pushes,
//! SIGTERM, a data folder it must refuse.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{call_once, texts, wait_for_held_at, WAIT_DEADLINE};

/// A running `chat-server` process and the address it printed; killed when dropped, so a
/// failing test leaves no server behind.
pub(crate) struct ServerProcess {
    pub(crate) child: Child,
    pub(crate) base_url: String,
    /// What it printed on standard error, for failure messages.
    pub(crate) log: Arc<Mutex<Vec<String>>>,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    /// The lines it printed so far.
    pub(crate) fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Sends it SIGTERM, as an operator or systemd stops it.
    pub(crate) fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Sends it SIGTERM and waits until it has exited; returns its exit status and itself (for
    /// its log).
    pub(crate) async fn stop_and_wait(mut self) -> (std::process::ExitStatus, ServerProcess) {
        self.sigterm();
        tokio::task::spawn_blocking(move || {
            let exit = self.child.wait().unwrap();
            (exit, self)
        })
        .await
        .unwrap()
    }
}

/// The flags every test process runs with: rate limits out of the way, a 10 s hold.
const TEST_FLAGS: [&str; 8] = [
    "--bind",
    "127.0.0.1:0",
    "--push-burst",
    "1000000",
    "--push-rate",
    "1000000",
    "--poll-timeout",
    "10",
];

/// Starts the built binary on `data_dir` (port 0) and waits for it to end: for starts that must
/// be refused.
pub(crate) fn start_to_its_end(data_dir: &Path) -> std::process::Output {
    crate::support::run_binary(&[
        "--bind".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--data-dir".as_ref(),
        data_dir.as_os_str(),
    ])
}

fn start_binary(data_dir: &Path) -> ServerProcess {
    launch_binary(data_dir, &[], None)
}

/// Starts the built binary on `data_dir` with the test flags plus `extra`, and with
/// `inherited` passed as a socket-activated listener (fd 3, `LISTEN_FDS=1`, as systemd does)
/// when given; waits until it prints the address it serves.
pub(crate) fn launch_binary(
    data_dir: &Path,
    extra: &[&str],
    inherited: Option<&std::net::TcpListener>,
) -> ServerProcess {
    launch(
        Command::new(env!("CARGO_BIN_EXE_chat-server")),
        data_dir,
        extra,
        inherited,
    )
}

/// Starts the built binary as the user and group `uid` (through util-linux's `setpriv`, which
/// then executes it: the child is the server), as [`launch_binary`] does.
pub(crate) fn launch_binary_as(uid: u32, data_dir: &Path, extra: &[&str]) -> ServerProcess {
    let mut command = Command::new("setpriv");
    command
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
        .arg(env!("CARGO_BIN_EXE_chat-server"));
    launch(command, data_dir, extra, None)
}

/// Runs `command` (the binary, or a wrapper that executes it with the arguments that follow)
/// with the test flags plus `extra`; see [`launch_binary`].
fn launch(
    mut command: Command,
    data_dir: &Path,
    extra: &[&str],
    inherited: Option<&std::net::TcpListener>,
) -> ServerProcess {
    command
        .args(TEST_FLAGS)
        .args(extra)
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(listener) = inherited {
        use command_fds::{CommandFdExt, FdMapping};
        use std::os::fd::AsFd;
        command
            .fd_mappings(vec![FdMapping {
                parent_fd: listener.as_fd().try_clone_to_owned().unwrap(),
                child_fd: 3,
            }])
            .unwrap()
            .env("LISTEN_FDS", "1");
    }
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let (sender, receiver) = std::sync::mpsc::channel();
    let lines = log.clone();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // Logged before the address is reported: a test that reads the log next sees it.
            lines.lock().unwrap().push(line.clone());
            if !sent {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split('/').next().unwrap().to_owned();
                    let _ = sender.send(addr);
                    sent = true;
                }
            }
        }
    });
    let addr = receiver
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| {
            panic!(
                "the server prints its address at startup; it printed:\n{}",
                log.lock().unwrap().join("\n")
            )
        });
    ServerProcess {
        child,
        base_url: format!("http://{addr}/"),
        log,
    }
}

pub(crate) async fn all_texts(client: &reqwest::Client, base_url: &str) -> Vec<String> {
    texts(&crate::support::all_messages_at(client, base_url).await)
}

#[tokio::test]
async fn kill_9_during_concurrent_pushes_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_binary(dir.path());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let n_acknowledged = Arc::new(AtomicUsize::new(0));
    let pushers: Vec<_> = (0..8)
        .map(|worker| {
            let (client, base, stop) = (client.clone(), server.base_url.clone(), stop.clone());
            let n_acknowledged = n_acknowledged.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let text = format!("w{worker}-{n}");
                    let sent = client
                        .get(format!("{base}?name=w&method=push&msg={text}&time=1"))
                        .send()
                        .await;
                    let Ok(response) = sent else { break };
                    let Ok(body) = response.text().await else {
                        break;
                    };
                    if body.contains("\"msgList\":[]") && !body.contains("\"error\"") {
                        acknowledged.push(text);
                        n_acknowledged.fetch_add(1, Ordering::SeqCst);
                    }
                }
                acknowledged
            })
        })
        .collect();
    // Kill once the pushers are well under way (each still has a save in flight), rather than
    // after a fixed time that a loaded machine may spend starting up.
    let deadline = std::time::Instant::now() + WAIT_DEADLINE;
    while n_acknowledged.load(Ordering::SeqCst) < 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the pushers never got going: {} saves acknowledged",
            n_acknowledged.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    let mut acknowledged = Vec::new();
    for pusher in pushers {
        acknowledged.extend(pusher.await.unwrap());
    }
    assert!(
        acknowledged.len() >= 200,
        "the pushers got going: {}",
        acknowledged.len()
    );

    let mut restarted = start_binary(dir.path());
    let stored = all_texts(&client, &restarted.base_url).await;
    let stored_set: HashSet<&String> = stored.iter().collect();
    assert_eq!(stored_set.len(), stored.len(), "no message stored twice");
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|text| !stored_set.contains(text))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged messages lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    restarted.child.kill().unwrap();
    restarted.child.wait().unwrap();
}

#[tokio::test]
async fn sigterm_answers_held_pops_flushes_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_binary(dir.path());
    let client = reqwest::Client::new();
    let body = crate::support::get_text(
        &client,
        &format!("{}?name=a&method=push&msg=keep+me&time=1", server.base_url),
    )
    .await;
    let time = call_once(&body, "callback")["time"].as_u64().unwrap();
    let held = {
        let url = format!("{}?method=pop&time={time}", server.base_url);
        let client = client.clone();
        tokio::spawn(async move { crate::support::get_text(&client, &url).await })
    };
    // SIGTERM once the pop is held, so that it is the stop that answers it.
    wait_for_held_at(&client, &server.base_url, 1).await;
    server.sigterm();
    let answered = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        call_once(&answered, "callback")["msgList"],
        serde_json::json!([])
    );
    let exit = tokio::task::spawn_blocking(move || server.child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(0));
    let data = std::fs::read_to_string(dir.path().join("data.json")).unwrap();
    assert!(data.contains("keep me"), "{data}");
}

#[tokio::test]
async fn the_binary_refuses_a_data_folder_it_cannot_parse() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data.json"), "[{\"name\": \"a\",").unwrap();
    let output = start_to_its_end(dir.path());
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("data.json") && stderr.contains("line 1"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("data.json")).unwrap(),
        "[{\"name\": \"a\","
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_low_open_file_limit_pops_beyond_the_cap_get_503_and_the_server_stays_responsive() {
    // Regression: with `ulimit -n 64` and 100 held pops, accept failed with EMFILE in a loop and
    // pushes and /healthz timed out; the cap is now derived from the limit.
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("prlimit")
        .arg("--nofile=160:160")
        .arg(env!("CARGO_BIN_EXE_chat-server"))
        .args(TEST_FLAGS)
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let startup = loop {
        let line = receiver.recv_timeout(Duration::from_secs(30)).unwrap();
        if line.contains("listening on http://") {
            break line;
        }
    };
    let addr = startup
        .split("listening on http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_owned();
    let mut server = ServerProcess {
        child,
        base_url: format!("http://{addr}/"),
        log: Arc::default(),
    };
    // 160 - 32 for files - 10 draining = 118 connections; 118 - 16 for other requests = 102
    // held pops.
    assert!(startup.contains("max_polls=102"), "{startup}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let health: serde_json::Value = serde_json::from_str(
        &crate::support::get_text(&client, &format!("{}healthz", server.base_url)).await,
    )
    .unwrap();
    let newest = health["newest_time"].as_u64().unwrap();
    let held: Vec<_> = (0..102)
        .map(|n| {
            let url = format!("{}?name=p{n}&method=pop&time={newest}", server.base_url);
            let client = client.clone();
            tokio::spawn(async move { client.get(url).send().await })
        })
        .collect();
    wait_for_held_at(&client, &server.base_url, 102).await;
    let refused = client
        .get(format!(
            "{}?name=late&method=pop&time={newest}",
            server.base_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let started = std::time::Instant::now();
    let pushed = crate::support::get_text(
        &client,
        &format!(
            "{}?name=a&method=push&msg=still+here&time=1",
            server.base_url
        ),
    )
    .await;
    assert!(
        call_once(&pushed, "callback").get("error").is_none(),
        "{pushed}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "saves stay quick"
    );
    for pop in held {
        let answer = pop.await.unwrap().unwrap();
        assert_eq!(
            answer.status(),
            200,
            "the held pops are answered by the push"
        );
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}
