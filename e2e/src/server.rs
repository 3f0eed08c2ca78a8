//! The `chat-server` binary as an operator runs it: started on `127.0.0.1:0` with a temporary
//! data folder, stopped with SIGKILL or SIGTERM, restarted on the same address, and talked to
//! over plain HTTP for what the tests do behind the pages' backs (pushes, reading history).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context};
use serde_json::Value;
use tempfile::TempDir;

use crate::paths::{profile_dir, target_dir, web_page_dir, workspace_root};

/// How long a server may take to print its address, and to exit after a signal.
const START_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Environment variable naming a prebuilt `chat-server` binary; when unset the tests build it
/// with `cargo build -p chat-server` (a no-op when it is up to date).
pub const SERVER_BIN_VAR: &str = "CHAT_E2E_SERVER_BIN";

/// The flags the test server runs with.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// `--poll-timeout`, seconds: short, so that reconnects and presence expiry are quick.
    pub poll_timeout_secs: f64,
    /// `--presence-grace`, seconds.
    pub presence_grace_secs: f64,
    /// Serve the built web page (`frontend/dist`) with `--static-dir`.
    pub serve_page: bool,
    /// More flags, e.g. `--backend redis://…`.
    pub extra_args: Vec<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            poll_timeout_secs: 3.0,
            presence_grace_secs: 1.0,
            serve_page: true,
            extra_args: Vec::new(),
        }
    }
}

/// How to stop the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGKILL: no goodbye; acknowledged messages are on disk all the same.
    Kill,
    /// SIGTERM: held pops are answered, the log is compacted, exit status 0.
    Terminate,
}

/// Lines the server processes printed to standard error, kept for failure messages.
type Log = Arc<Mutex<Vec<String>>>;

/// A running (or stopped, between a stop and a restart) `chat-server` process on a fixed
/// address with its own temporary data folder. Dropping it kills the process.
pub struct ChatServer {
    binary: PathBuf,
    options: ServerOptions,
    addr: SocketAddr,
    /// The process while it runs; `None` between [`ChatServer::stop`] and
    /// [`ChatServer::restart`]. Locked only briefly, never across an `.await`.
    child: Mutex<Option<Child>>,
    log: Log,
    /// Declared last: removed after the process is gone.
    data_dir: TempDir,
}

impl ChatServer {
    /// Builds the binary when needed, then starts it on `127.0.0.1:0` with a fresh data folder.
    ///
    /// # Errors
    /// The binary cannot be built, the page is to be served but is not built, or the server
    /// does not print its address (its log is in the error).
    pub async fn start(options: ServerOptions) -> anyhow::Result<ChatServer> {
        let binary = tokio::task::spawn_blocking(server_binary)
            .await
            .context("building chat-server panicked")??;
        let data_dir = tempfile::Builder::new()
            .prefix("chat-e2e-data-")
            .tempdir()
            .context("cannot create a temporary data folder")?;
        let log = Log::default();
        let (child, addr) = launch(
            &binary,
            "127.0.0.1:0",
            data_dir.path(),
            &options,
            &log,
            "server",
            &[],
        )
        .await?;
        Ok(ChatServer {
            binary,
            options,
            addr,
            child: Mutex::new(Some(child)),
            log,
            data_dir,
        })
    }

    /// The address it listens on, the same across restarts.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/`: the chat endpoint and the web page.
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The data folder (kept across restarts).
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// Stops the process with `signal` and waits until it has exited. A SIGTERM must end in
    /// exit status 0.
    ///
    /// # Errors
    /// It is not running, does not exit in time, or exits badly after SIGTERM.
    pub async fn stop(&self, signal: StopSignal) -> anyhow::Result<()> {
        let child = lock(&self.child)
            .take()
            .ok_or_else(|| anyhow!("the server is not running"))?;
        let status = stop_process(child, signal).await?;
        if signal == StopSignal::Terminate {
            ensure!(
                status.success(),
                "after SIGTERM the server exited with {status}; its log:\n{}",
                self.log_tail(40)
            );
        }
        Ok(())
    }

    /// Starts the process again on the same address and data folder.
    ///
    /// # Errors
    /// It is running, or the new process does not print the same address.
    pub async fn restart(&self) -> anyhow::Result<()> {
        ensure!(lock(&self.child).is_none(), "the server is still running");
        let bind = self.addr.to_string();
        let (child, addr) = launch(
            &self.binary,
            &bind,
            self.data_dir.path(),
            &self.options,
            &self.log,
            "restarted server",
            &[],
        )
        .await?;
        *lock(&self.child) = Some(child);
        ensure!(
            addr == self.addr,
            "the restarted server listens on {addr}, not on {}",
            self.addr
        );
        Ok(())
    }

    /// Replaces the running process by a new one started with `--takeover` on the same data
    /// folder: the new one receives the listening socket, the old one answers its held pops,
    /// flushes and exits 0. No connection is refused meanwhile.
    ///
    /// # Errors
    /// The server is not running, the new process does not serve the same address, or the old
    /// one does not exit 0.
    pub async fn take_over(&self) -> anyhow::Result<()> {
        let old = lock(&self.child)
            .take()
            .ok_or_else(|| anyhow!("the server is not running"))?;
        let bind = self.addr.to_string();
        let launched = launch(
            &self.binary,
            &bind,
            self.data_dir.path(),
            &self.options,
            &self.log,
            "successor",
            &["--takeover"],
        )
        .await;
        let (child, addr) = match launched {
            Ok(launched) => launched,
            Err(error) => {
                *lock(&self.child) = Some(old);
                return Err(error);
            }
        };
        *lock(&self.child) = Some(child);
        ensure!(
            addr == self.addr,
            "the successor listens on {addr}, not on {}",
            self.addr
        );
        let mut old = old;
        let waited = tokio::time::timeout(
            START_STOP_TIMEOUT,
            tokio::task::spawn_blocking(move || old.wait()),
        )
        .await
        .context("the old process did not exit after the takeover")?
        .context("waiting for the old process panicked")?
        .context("cannot wait for the old process")?;
        ensure!(
            waited.success(),
            "the old process exited with {waited} after the takeover; the log:\n{}",
            self.log_tail(40)
        );
        Ok(())
    }

    /// While this server is stopped, starts a second process on the same data folder (on
    /// another port, so pages cannot reach it), pushes `messages` (`(name, text)`) through it,
    /// and stops it with SIGTERM: messages saved while the pages could not connect. Returns
    /// their times.
    ///
    /// # Errors
    /// This server is running, or the side process fails.
    pub async fn push_while_away(
        &self,
        http: &reqwest::Client,
        messages: &[(&str, &str)],
    ) -> anyhow::Result<Vec<u64>> {
        ensure!(
            lock(&self.child).is_none(),
            "push_while_away needs the server stopped"
        );
        let options = ServerOptions {
            serve_page: false,
            ..self.options.clone()
        };
        let (child, addr) = launch(
            &self.binary,
            "127.0.0.1:0",
            self.data_dir.path(),
            &options,
            &self.log,
            "side server",
            &[],
        )
        .await?;
        let base_url = format!("http://{addr}/");
        let mut times = Vec::new();
        let mut failure = None;
        for (name, text) in messages {
            match push(http, &base_url, name, text).await {
                Ok(time) => times.push(time),
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        let status = stop_process(child, StopSignal::Terminate).await?;
        if let Some(error) = failure {
            return Err(error.context("pushing through the side server"));
        }
        ensure!(
            status.success(),
            "the side server exited with {status} after SIGTERM"
        );
        Ok(times)
    }

    /// The last `n_lines` lines the server processes printed.
    pub fn log_tail(&self, n_lines: usize) -> String {
        let log = lock(&self.log);
        let start = log.len().saturating_sub(n_lines);
        log[start..].join("\n")
    }
}

impl Drop for ChatServer {
    fn drop(&mut self) {
        if let Some(mut child) = lock(&self.child).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Locks `mutex`, also when a panicking test poisoned it (the data stays usable).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts one server process bound to `bind` and waits for the address it prints.
async fn launch(
    binary: &Path,
    bind: &str,
    data_dir: &Path,
    options: &ServerOptions,
    log: &Log,
    label: &str,
    extra_args: &[&str],
) -> anyhow::Result<(Child, SocketAddr)> {
    let mut command = Command::new(binary);
    command
        .args(extra_args)
        .args(&options.extra_args)
        .arg("--bind")
        .arg(bind)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--poll-timeout")
        .arg(options.poll_timeout_secs.to_string())
        .arg("--presence-grace")
        .arg(options.presence_grace_secs.to_string())
        .args([
            "--push-burst",
            "1000",
            "--push-rate",
            "1000",
            "--workers",
            "2",
        ])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if options.serve_page {
        let dist = web_page_dir();
        ensure!(
            dist.join("index.html").is_file(),
            "the web page is not built: {} is missing; run `trunk build --release --offline` in {} \
             (scripts/test.sh does it before the browser tests)",
            dist.join("index.html").display(),
            workspace_root().display()
        );
        command.arg("--static-dir").arg(dist);
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| anyhow!("the server's standard error was not captured"))?;
    let (addr_sender, addr_receiver) = tokio::sync::oneshot::channel();
    let thread_log = Arc::clone(log);
    let prefix = format!("[{label}] ");
    std::thread::spawn(move || {
        let mut addr_sender = Some(addr_sender);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line
                .split("listening on http://")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .and_then(|addr| addr.parse::<SocketAddr>().ok())
            {
                if let Some(sender) = addr_sender.take() {
                    let _ = sender.send(addr);
                }
            }
            lock(&thread_log).push(format!("{prefix}{line}"));
        }
    });
    let printed = tokio::time::timeout(START_STOP_TIMEOUT, addr_receiver).await;
    match printed {
        Ok(Ok(addr)) => Ok((child, addr)),
        outcome => {
            let _ = child.kill();
            let status = child.wait();
            let tail = {
                let log = lock(log);
                log[log.len().saturating_sub(30)..].join("\n")
            };
            let why = if outcome.is_err() {
                format!("did not print its address within {START_STOP_TIMEOUT:?}")
            } else {
                format!("exited ({status:?}) without printing its address")
            };
            bail!("{label} on {bind} {why}; its log:\n{tail}")
        }
    }
}

/// Sends `signal` to `child` and waits (off the async threads) until it has exited.
async fn stop_process(mut child: Child, signal: StopSignal) -> anyhow::Result<ExitStatus> {
    match signal {
        StopSignal::Kill => child.kill().context("cannot SIGKILL the server")?,
        StopSignal::Terminate => {
            let status = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status()
                .context("cannot run kill -TERM")?;
            ensure!(
                status.success(),
                "kill -TERM {} failed: {status}",
                child.id()
            );
        }
    }
    let pid = child.id();
    let waited = tokio::time::timeout(
        START_STOP_TIMEOUT,
        tokio::task::spawn_blocking(move || child.wait()),
    )
    .await;
    match waited {
        Ok(joined) => Ok(joined
            .context("waiting for the server panicked")?
            .context("cannot wait for the server")?),
        Err(_) => bail!(
            "the server (pid {pid}) did not exit within {START_STOP_TIMEOUT:?} after {signal:?}"
        ),
    }
}

/// Saves a message the way a bare `<script src>` would
/// (`?name=..&method=push&msg=..&time=1`) and returns its time.
///
/// # Errors
/// The request fails, or the answer is not the expected JSONP or carries an error.
pub(crate) async fn push(
    http: &reqwest::Client,
    base_url: &str,
    name: &str,
    text: &str,
) -> anyhow::Result<u64> {
    push_in_room(http, base_url, None, name, text).await
}

/// Saves `text` as `name` in `room` (`None`: the legacy room) with a bare script-tag push;
/// returns its time.
pub(crate) async fn push_in_room(
    http: &reqwest::Client,
    base_url: &str,
    room: Option<&str>,
    name: &str,
    text: &str,
) -> anyhow::Result<u64> {
    let mut url = reqwest::Url::parse(base_url).context("bad server URL")?;
    url.query_pairs_mut()
        .append_pair("name", name)
        .append_pair("method", "push")
        .append_pair("msg", text)
        .append_pair("time", "1");
    if let Some(room) = room {
        url.query_pairs_mut().append_pair("room", room);
    }
    let answer = jsonp_call(http, url).await?;
    ensure!(answer.get("error").is_none(), "push refused: {answer}");
    answer["time"]
        .as_u64()
        .ok_or_else(|| anyhow!("push answer without a numeric time: {answer}"))
}

/// GETs `url` (a chat request without `callback`) and returns the object passed to
/// `callback(...)`.
pub(crate) async fn jsonp_call(http: &reqwest::Client, url: reqwest::Url) -> anyhow::Result<Value> {
    let response = http
        .get(url.clone())
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .with_context(|| format!("reading the answer to {url}"))?;
    ensure!(status.is_success(), "GET {url}: {status}: {body}");
    let json = body
        .strip_prefix("/**/callback(")
        .and_then(|rest| rest.strip_suffix(");"))
        .ok_or_else(|| anyhow!("GET {url}: not a callback(...) JSONP answer: {body}"))?;
    serde_json::from_str(json).with_context(|| format!("GET {url}: bad JSON in {body}"))
}

/// The `chat-server` binary: [`SERVER_BIN_VAR`] when set, else built next to the tests (once
/// per test process).
fn server_binary() -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    if let Some(path) = std::env::var_os(SERVER_BIN_VAR) {
        let path = PathBuf::from(path);
        ensure!(
            path.is_file(),
            "{SERVER_BIN_VAR}={} is not a file",
            path.display()
        );
        return Ok(path);
    }
    BUILT
        .get_or_init(|| build_server().map_err(|error| format!("{error:#}")))
        .clone()
        .map_err(|error| anyhow!(error))
}

/// Runs `cargo build -p chat-server --bin chat-server` for the profile the tests were built
/// with, into the same target folder, and returns the binary's path.
fn build_server() -> anyhow::Result<PathBuf> {
    let profile_dir = profile_dir().unwrap_or_else(|| target_dir().join("debug"));
    let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(name) => name.to_owned(),
    };
    // Cargo sets CARGO for the programs it runs; fall back to the one on PATH.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "chat-server",
            "--bin",
            "chat-server",
        ])
        .args(["--profile", &profile])
        .env("CARGO_TARGET_DIR", target_dir())
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .output()
        .context("cannot run cargo to build chat-server")?;
    ensure!(
        output.status.success(),
        "`cargo build -p chat-server` failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let binary = profile_dir.join("chat-server");
    ensure!(
        binary.is_file(),
        "cargo built chat-server but {} is missing",
        binary.display()
    );
    Ok(binary)
}
