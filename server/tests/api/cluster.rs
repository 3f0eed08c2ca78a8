//! Several instances of the built binary on one Redis, behind nginx with `deploy/nginx.conf`:
//! one of them is killed (`kill -9`) under load.

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::process::{launch_binary, ServerProcess};
use crate::support::jsonp_object;
use crate::support::redis::{unique_prefix, RedisServer};

/// nginx started on a free loopback port with `deploy/nginx.conf`, stopped when dropped.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers too (SIGKILL would leave them running).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Nginx {
    /// Renders `deploy/nginx.conf` for `upstreams` and starts nginx in front of them.
    fn start(upstreams: &[String]) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        let port = free_port();
        let template = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx.conf"),
        )
        .unwrap();
        let servers: Vec<String> = upstreams
            .iter()
            .map(|addr| format!("        server {addr} max_fails=0;"))
            .collect();
        let conf = template
            .replace("@@LISTEN@@", &format!("127.0.0.1:{port}"))
            .replace("@@UPSTREAM_SERVERS@@", &servers.join("\n"));
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let nginx = ["/usr/sbin/nginx", "nginx"]
            .into_iter()
            .find(|path| Path::new(path).exists())
            .unwrap_or("nginx");
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx must be installed (scripts/setup.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Nginx {
            child,
            port,
            _dir: dir,
        }
    }

    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

/// A client like the web page: polls from its cursor, and after a failed request (a refused,
/// cut or 502 answer) polls again from the same cursor after a short pause. Ends once it has
/// seen `final_time`.
async fn retrying_poller(
    base_url: String,
    n: usize,
    final_time: tokio::sync::watch::Receiver<Option<u64>>,
) -> Vec<(u64, String)> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut cursor = 0u64;
    let mut seen = Vec::new();
    loop {
        if final_time.borrow().is_some_and(|last| cursor >= last) {
            return seen;
        }
        let url = format!("{base_url}?name=p{n}&method=pop&time={cursor}&callback=cb");
        let fetched = async { client.get(&url).send().await?.text().await }.await;
        let answer = match fetched
            .map_err(|error| error.to_string())
            .and_then(|body| jsonp_object(&body))
        {
            Ok(answer) if answer.get("error").is_none() => answer,
            _ => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        for message in answer["msgList"].as_array().into_iter().flatten() {
            seen.push((
                message["time"].as_u64().unwrap(),
                message["msg"].as_str().unwrap().to_owned(),
            ));
        }
        cursor = answer["time"].as_u64().unwrap();
    }
}

async fn newest_time(base_url: &str) -> u64 {
    let health: Value = serde_json::from_str(
        &reqwest::get(format!("{base_url}healthz"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    health["newest_time"].as_u64().unwrap()
}

async fn n_messages(base_url: &str) -> u64 {
    let text = match reqwest::get(format!("{base_url}healthz")).await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => return 0,
    };
    serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|health| health["messages"].as_u64())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_of_three_instances_under_load_loses_no_acknowledged_message_and_its_clients_carry_on(
) {
    let redis = RedisServer::start(true);
    let prefix = unique_prefix("kill9");
    let url = redis.url();
    let mut instances: Vec<(tempfile::TempDir, ServerProcess)> = Vec::new();
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let (url, prefix) = (url.clone(), prefix.clone());
        let server = tokio::task::spawn_blocking(move || {
            let args = [
                "--backend",
                url.as_str(),
                "--redis-prefix",
                prefix.as_str(),
                "--trusted-proxy",
                "127.0.0.1",
            ];
            launch_binary(&path, &args, None)
        })
        .await
        .unwrap();
        instances.push((dir, server));
    }
    let upstreams: Vec<String> = instances
        .iter()
        .map(|(_, server)| {
            server
                .base_url
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned()
        })
        .collect();
    let nginx = Nginx::start(&upstreams);
    let base_url = nginx.base_url();

    let (final_time, final_time_rx) = tokio::sync::watch::channel(None);
    let pollers: Vec<_> = (0..20)
        .map(|n| tokio::spawn(retrying_poller(base_url.clone(), n, final_time_rx.clone())))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let pushers: Vec<_> = (0..4)
        .map(|worker| {
            let (base_url, stop) = (base_url.clone(), stop.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut acknowledged = Vec::new();
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let text = format!("w{worker}-{n}");
                    let sent = async {
                        client
                            .get(format!(
                                "{base_url}?name=w&method=push&msg={text}&time=1&callback=cb"
                            ))
                            .send()
                            .await?
                            .text()
                            .await
                    }
                    .await;
                    match sent
                        .map_err(|error| error.to_string())
                        .and_then(|body| jsonp_object(&body))
                    {
                        Ok(answer) if answer.get("error").is_none() => acknowledged.push(text),
                        // Refused or cut: not acknowledged, and not sent again.
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
                acknowledged
            })
        })
        .collect();

    let survivor = instances[0].1.base_url.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    while n_messages(&survivor).await < 300 {
        assert!(Instant::now() < deadline, "the load never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let victim = &mut instances[1].1;
    victim.child.kill().unwrap(); // SIGKILL
    victim.child.wait().unwrap();
    let killed_at = n_messages(&survivor).await;
    while n_messages(&survivor).await < killed_at + 300 {
        assert!(
            Instant::now() < deadline,
            "saves did not go on after the kill"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut acknowledged = Vec::new();
    for pusher in pushers {
        acknowledged.extend(pusher.await.unwrap());
    }
    let newest = newest_time(&survivor).await;
    final_time.send_replace(Some(newest));

    // Everything stored, in order, from a survivor.
    let client = reqwest::Client::new();
    let stored: Vec<Value> = crate::support::all_messages_at(&client, &survivor).await;
    let stored: Vec<(u64, String)> = stored
        .iter()
        .map(|message| {
            (
                message["time"].as_u64().unwrap(),
                message["msg"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let stored_texts: HashSet<&String> = stored.iter().map(|(_, text)| text).collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|text| !stored_texts.contains(text))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged messages lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(acknowledged.len() >= 500, "{}", acknowledged.len());

    for poller in pollers {
        let seen = tokio::time::timeout(Duration::from_secs(60), poller)
            .await
            .expect("every poller catches up")
            .unwrap();
        assert!(
            seen == stored,
            "a poller saw {} messages, the room holds {}: no gap and no duplicate",
            seen.len(),
            stored.len()
        );
    }
    drop(nginx);
}
