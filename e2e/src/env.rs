//! One scenario's world: a chat server, a chromedriver, the browsers opened on them, and the
//! HTTP client the test uses behind the pages' backs. Dropping it kills chromedriver with every
//! browser it started, and the server.

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, ensure, Context};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::browser::{Browser, BrowserOptions};
use crate::paths::screenshot_dir;
use crate::server::{jsonp_call, push, push_in_room, ChatServer, ServerOptions};
use crate::wait::{wait_until, Check};

/// Chromium, unless `CHAT_E2E_CHROMIUM` names another binary.
const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
/// chromedriver, unless `CHAT_E2E_CHROMEDRIVER` names another binary.
const DEFAULT_CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long chromedriver may take to answer its status request.
const DRIVER_START_TIMEOUT: Duration = Duration::from_secs(30);

/// A message as the server stored it (`{name, msg, time}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The sender's nickname.
    pub name: String,
    /// The text (`加入聊天室` / `离开聊天室` for joins and exits).
    pub msg: String,
    /// Milliseconds since the Unix epoch; unique per message.
    pub time: u64,
}

/// A chromedriver process on a free local port, in its own process group so that dropping it
/// also ends every Chromium it started (also when a test panicked before closing them).
pub struct ChromeDriver {
    child: Child,
    port: u16,
    chromium: PathBuf,
    /// chromedriver's log (`--log-path`), kept for failure messages.
    log_dir: TempDir,
}

impl ChromeDriver {
    /// Starts chromedriver and waits until it reports ready.
    ///
    /// # Errors
    /// Chromium or chromedriver is missing (the message says how to install them), or
    /// chromedriver does not become ready.
    pub async fn start(http: &reqwest::Client) -> anyhow::Result<ChromeDriver> {
        let chromium = binary_from_env("CHAT_E2E_CHROMIUM", DEFAULT_CHROMIUM)?;
        let driver = binary_from_env("CHAT_E2E_CHROMEDRIVER", DEFAULT_CHROMEDRIVER)?;
        // chromedriver has no --port=0: take a free port from the kernel, release it, use it.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .context("cannot find a free port for chromedriver")?
            .port();
        let log_dir = tempfile::Builder::new()
            .prefix("chat-e2e-chromedriver-")
            .tempdir()
            .context("cannot create a folder for chromedriver's log")?;
        let mut command = Command::new(&driver);
        command
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                log_dir.path().join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", driver.display()))?;
        let driver = ChromeDriver {
            child,
            port,
            chromium,
            log_dir,
        };
        let status_url = format!("{}/status", driver.url());
        wait_until(DRIVER_START_TIMEOUT, "chromedriver is ready", || async {
            let status: Value =
                serde_json::from_str(&http.get(&status_url).send().await?.text().await?)?;
            Ok(Check::when(
                status["value"]["ready"] == json!(true),
                &status,
            ))
        })
        .await?;
        Ok(driver)
    }

    /// `http://127.0.0.1:PORT`, the WebDriver endpoint.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The Chromium binary sessions run.
    pub fn chromium(&self) -> &Path {
        &self.chromium
    }

    /// The last `n_lines` lines of chromedriver's log.
    pub fn log_tail(&self, n_lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_dir.path().join("chromedriver.log"))
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n_lines)..].join("\n")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The whole group: chromedriver and the browsers it started.
        kill_process_group(&mut self.child);
    }
}

/// Kills `child` and every process of its group (a child spawned as a group leader, so that
/// the group is ours only), and reaps it.
pub(crate) fn kill_process_group(child: &mut std::process::Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// Removes `<scenario>-failure-*.png` left by an earlier run, so that the folder only shows
/// this run's failures.
fn remove_failure_screenshots(scenario: &str) -> anyhow::Result<()> {
    let dir = screenshot_dir()?;
    let prefix = format!("{scenario}-failure-");
    let entries =
        std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let path = entry.path();
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(())
}

/// A binary named by the environment variable `var`, else `default`; it must exist.
fn binary_from_env(var: &str, default: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    ensure!(
        path.is_file(),
        "{} is missing: install Debian's `chromium` and `chromium-driver` packages \
         (scripts/setup.sh test does), or set {var}",
        path.display()
    );
    Ok(path)
}

/// One scenario: its name (for screenshots), the server, chromedriver and an HTTP client.
///
/// Field order is drop order: chromedriver (and its browsers) first, then the server.
pub struct Env {
    /// The scenario's name: screenshots are `target/e2e-screenshots/<name>[-suffix].png`.
    pub name: String,
    /// The browsers' WebDriver.
    pub driver: ChromeDriver,
    /// The chat server under test.
    pub server: ChatServer,
    /// Plain HTTP client for pushes and history reads.
    pub http: reqwest::Client,
}

impl Env {
    /// Starts a server with `options` and a chromedriver.
    ///
    /// # Errors
    /// Something the browser tests need is missing (the page, Chromium, chromedriver), or a
    /// process fails to start.
    pub async fn start(name: &str, options: ServerOptions) -> anyhow::Result<Env> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("cannot build the HTTP client")?;
        remove_failure_screenshots(name)?;
        let driver = ChromeDriver::start(&http).await?;
        let server = ChatServer::start(options).await?;
        Ok(Env {
            name: name.to_owned(),
            driver,
            server,
            http,
        })
    }

    /// Opens a new browser session (its own Chromium profile). `label` names it in screenshots
    /// and failure messages.
    ///
    /// # Errors
    /// chromedriver refuses the session.
    pub async fn browser(&self, label: &str) -> anyhow::Result<Browser> {
        self.browser_with(label, BrowserOptions::default()).await
    }

    /// Opens a new browser session shaped by `options` (window size, colour scheme).
    ///
    /// # Errors
    /// chromedriver refuses the session.
    pub async fn browser_with(
        &self,
        label: &str,
        options: BrowserOptions,
    ) -> anyhow::Result<Browser> {
        Browser::open(&self.driver, label, options)
            .await
            .with_context(|| format!("chromedriver log:\n{}", self.driver.log_tail(20)))
    }

    /// Runs the scenario's `body`. Whatever its outcome, the `browsers` are closed; when it
    /// failed, each one's screenshot is saved as `<name>-failure-<label>.png` and the server's
    /// log tail is added to the error.
    ///
    /// # Errors
    /// The body's error, or closing a browser failed after the body succeeded.
    pub async fn run(
        &self,
        browsers: &[&Browser],
        body: impl Future<Output = anyhow::Result<()>>,
    ) -> anyhow::Result<()> {
        let result = body.await;
        let result = match result {
            Ok(()) => Ok(()),
            Err(error) => {
                let mut shots = Vec::new();
                for browser in browsers {
                    let suffix = format!("failure-{}", browser.label());
                    match self.screenshot(browser, Some(&suffix)).await {
                        Ok(path) => shots.push(path.display().to_string()),
                        Err(shot_error) => shots.push(format!("(no screenshot: {shot_error:#})")),
                    }
                }
                Err(error.context(format!(
                    "scenario {} failed; screenshots: {}; server log tail:\n{}",
                    self.name,
                    shots.join(", "),
                    self.server.log_tail(30)
                )))
            }
        };
        let mut close_error = None;
        for browser in browsers {
            if let Err(error) = browser.close().await {
                close_error.get_or_insert(error);
            }
        }
        match (result, close_error) {
            (Err(error), _) => Err(error),
            (Ok(()), Some(error)) => Err(error),
            (Ok(()), None) => Ok(()),
        }
    }

    /// Saves `browser`'s screenshot as `target/e2e-screenshots/<name>[-suffix].png` and returns
    /// the path.
    ///
    /// # Errors
    /// The screenshot cannot be taken or written.
    pub async fn screenshot(
        &self,
        browser: &Browser,
        suffix: Option<&str>,
    ) -> anyhow::Result<PathBuf> {
        let file_name = match suffix {
            Some(suffix) => format!("{}-{suffix}.png", self.name),
            None => format!("{}.png", self.name),
        };
        browser.save_screenshot(&file_name).await
    }

    /// Saves a message as `name` over plain HTTP (a bare script-tag push); returns its time.
    ///
    /// # Errors
    /// The server refuses it or cannot be reached.
    pub async fn push(&self, name: &str, text: &str) -> anyhow::Result<u64> {
        push(&self.http, &self.server.base_url(), name, text)
            .await
            .with_context(|| format!("pushing {text:?} as {name:?}"))
    }

    /// Saves `text` as `name` in the named `room` over plain HTTP; returns its time.
    ///
    /// # Errors
    /// The server refuses it or cannot be reached.
    pub async fn push_in_room(&self, room: &str, name: &str, text: &str) -> anyhow::Result<u64> {
        push_in_room(&self.http, &self.server.base_url(), Some(room), name, text)
            .await
            .with_context(|| format!("pushing {text:?} as {name:?} in #{room}"))
    }

    /// The server's `/healthz` object.
    ///
    /// # Errors
    /// The server cannot be reached or answers unexpectedly.
    pub async fn health(&self) -> anyhow::Result<Value> {
        let text = self
            .http
            .get(format!("{}healthz", self.server.base_url()))
            .send()
            .await
            .context("GET /healthz")?
            .text()
            .await
            .context("reading /healthz")?;
        serde_json::from_str(&text).with_context(|| format!("/healthz is not JSON: {text}"))
    }

    /// How many pops the server holds right now (`/healthz`).
    ///
    /// # Errors
    /// The server cannot be reached or answers unexpectedly.
    pub async fn held_polls(&self) -> anyhow::Result<u64> {
        let health = self.health().await?;
        health["held_polls"]
            .as_u64()
            .ok_or_else(|| anyhow!("/healthz without held_polls: {health}"))
    }

    /// Every stored message, oldest first, read page by page with anonymous pops (which do not
    /// count as presence) up to the newest time `/healthz` reports.
    ///
    /// # Errors
    /// The server cannot be reached or answers unexpectedly.
    pub async fn history(&self) -> anyhow::Result<Vec<StoredMessage>> {
        let base_url = self.server.base_url();
        let health = self.health().await?;
        let newest = health["newest_time"].as_u64().unwrap_or(0);
        let mut all = Vec::new();
        let mut cursor = 0u64;
        while cursor < newest {
            let mut url = reqwest::Url::parse(&base_url).context("bad server URL")?;
            url.query_pairs_mut()
                .append_pair("method", "pop")
                .append_pair("time", &cursor.to_string());
            let answer = jsonp_call(&self.http, url).await?;
            let list = answer["msgList"]
                .as_array()
                .ok_or_else(|| anyhow!("pop answer without msgList: {answer}"))?;
            ensure!(
                !list.is_empty(),
                "a pop from {cursor}, behind the newest time {newest}, answered no message: {answer}"
            );
            for message in list {
                all.push(StoredMessage {
                    name: message["name"].as_str().unwrap_or_default().to_owned(),
                    msg: message["msg"].as_str().unwrap_or_default().to_owned(),
                    time: message["time"]
                        .as_u64()
                        .ok_or_else(|| anyhow!("message without a numeric time: {message}"))?,
                });
            }
            cursor = answer["time"]
                .as_u64()
                .ok_or_else(|| anyhow!("pop answer without a numeric time: {answer}"))?;
        }
        Ok(all)
    }
}
