//! `trunk serve`, the page's development loop, as a developer runs it from the repository
//! root: a debug build of the page served on a free loopback port, talking to a chat server
//! named with `?server=` (see `frontend/src/services/server_url.rs`). Dropping it kills trunk
//! and the builds it started.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context};
use tempfile::TempDir;

use crate::paths::workspace_root;
use crate::wait::{wait_until, Check};

/// Environment variable naming the `trunk` binary; else `trunk` on `PATH`, else
/// `~/.cargo/bin/trunk` (where `scripts/setup.sh` installs it).
pub const TRUNK_BIN_VAR: &str = "CHAT_E2E_TRUNK";

/// How long the first debug build may take (a cold one compiles every dependency of the page).
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// A running `trunk serve --offline` on `127.0.0.1:<free port>`, writing its build into a
/// temporary folder (never into `frontend/dist`, which holds the release page other tests
/// serve). Its own process group, so that dropping it also ends cargo and wasm-bindgen.
pub struct TrunkServe {
    child: Child,
    port: u16,
    /// What trunk printed (standard output and error), for failure messages.
    log: Arc<Mutex<Vec<String>>>,
    /// The build output; removed after trunk is gone.
    _dist: TempDir,
}

impl TrunkServe {
    /// Starts `trunk serve` from the repository root and waits until it serves the built page
    /// (its `index.html` names the page's script), at most [`BUILD_TIMEOUT`].
    ///
    /// # Errors
    /// trunk is missing (the message says how to get it), exits, or the build does not finish
    /// in time (trunk's log tail is in the error).
    pub async fn start(http: &reqwest::Client) -> anyhow::Result<TrunkServe> {
        let trunk = trunk_binary()?;
        // trunk serve has no port 0: take a free port from the kernel, release it, use it.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .context("cannot find a free port for trunk serve")?
            .port();
        let dist = tempfile::Builder::new()
            .prefix("chat-e2e-trunk-dist-")
            .tempdir()
            .context("cannot create trunk's output folder")?;
        // trunk runs cargo and wasm-bindgen from PATH; both live in ~/.cargo/bin.
        let mut path = std::env::var_os("PATH").unwrap_or_default();
        if let Some(home) = std::env::var_os("HOME") {
            let cargo_bin = PathBuf::from(home).join(".cargo").join("bin");
            let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
            dirs.push(cargo_bin);
            path = std::env::join_paths(dirs).context("cannot build PATH for trunk")?;
        }
        let mut command = Command::new(&trunk);
        command
            .args(["serve", "--offline", "--address", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .arg("--dist")
            .arg(dist.path())
            .current_dir(workspace_root())
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", trunk.display()))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|out| Box::new(out) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|err| Box::new(err) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lock(&log).push(line);
                }
            });
        }
        let mut serve = TrunkServe {
            child,
            port,
            log,
            _dist: dist,
        };
        let url = serve.url();
        let what = format!("trunk serve answers {url} with the built page");
        // Done with `Some(status)` when trunk exited: no use waiting out the timeout then.
        let outcome = wait_until(BUILD_TIMEOUT, &what, || {
            let exited = serve.child.try_wait();
            let url = url.clone();
            async move {
                if let Some(status) = exited? {
                    return Ok(Check::Done(Some(status)));
                }
                let page = http.get(&url).send().await?;
                let status = page.status();
                let body = page.text().await?;
                Ok(if status.is_success() && body.contains("chat-frontend") {
                    Check::Done(None)
                } else {
                    Check::NotYet(format!("{status}, {} bytes", body.len()))
                })
            }
        })
        .await;
        let failure = match outcome {
            Ok(None) => return Ok(serve),
            Ok(Some(status)) => anyhow!("trunk serve exited with {status}"),
            Err(error) => error,
        };
        let tail = serve.log_tail(30);
        Err(failure.context(format!("trunk's log tail:\n{tail}")))
    }

    /// `http://127.0.0.1:PORT/`, the page trunk serves.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The last `n_lines` lines trunk printed.
    pub fn log_tail(&self, n_lines: usize) -> String {
        let log = lock(&self.log);
        log[log.len().saturating_sub(n_lines)..].join("\n")
    }
}

impl Drop for TrunkServe {
    fn drop(&mut self) {
        // The whole group: trunk and the cargo or wasm-bindgen it may be running.
        crate::env::kill_process_group(&mut self.child);
    }
}

/// The `trunk` binary: [`TRUNK_BIN_VAR`], else `trunk` on `PATH`, else `~/.cargo/bin/trunk`.
fn trunk_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(TRUNK_BIN_VAR) {
        let path = PathBuf::from(path);
        anyhow::ensure!(
            path.is_file(),
            "{TRUNK_BIN_VAR}={} is not a file",
            path.display()
        );
        return Ok(path);
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("trunk"));
    let in_cargo_home = std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cargo").join("bin").join("trunk"));
    on_path
        .chain(in_cargo_home)
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            anyhow!(
                "trunk is missing: run scripts/setup.sh (it installs trunk 0.21), or set \
                 {TRUNK_BIN_VAR}"
            )
        })
}

/// Locks `mutex`, also when a panicking thread poisoned it (the log stays usable).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
