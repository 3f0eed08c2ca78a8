//! What a test of several instances needs beside them: a `redis-server` they share and nginx
//! in front of them (`deploy/nginx.conf`), each on a free loopback port, stopped when dropped.
//! Both come from Debian's packages (`scripts/setup.sh` installs them).

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, Context};
use tempfile::TempDir;

use crate::paths::workspace_root;
use crate::wait::{wait_until, Check};

/// How long a service may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(15);

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")
        .context("cannot find a free port")?
        .local_addr()?
        .port())
}

async fn wait_for_port(port: u16, what: &str) -> anyhow::Result<()> {
    wait_until(
        START_TIMEOUT,
        &format!("{what} listens on {port}"),
        || async move {
            Ok(
                match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                    Ok(_) => Check::Done(()),
                    Err(error) => Check::NotYet(error.to_string()),
                },
            )
        },
    )
    .await
}

/// A child process stopped when dropped, with the folder it writes in.
struct Service {
    child: Child,
    _dir: TempDir,
}

impl Drop for Service {
    fn drop(&mut self) {
        // SIGTERM: nginx's master stops its workers too (SIGKILL would leave them running),
        // and redis-server exits at once without persistence.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// A `redis-server` without persistence on a free port.
pub struct Redis {
    service: Service,
    port: u16,
}

impl Redis {
    /// Starts it and waits until it listens.
    ///
    /// # Errors
    /// `redis-server` is missing or does not start.
    pub async fn start() -> anyhow::Result<Redis> {
        let dir = tempfile::tempdir().context("cannot create Redis's folder")?;
        let port = free_port()?;
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--port")
            .arg(port.to_string())
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start redis-server (scripts/setup.sh installs it)")?;
        let redis = Redis {
            service: Service { child, _dir: dir },
            port,
        };
        wait_for_port(port, "redis-server").await?;
        Ok(redis)
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.service.child.id()
    }
}

/// nginx with `deploy/nginx.conf` in front of some instances, on a free port.
pub struct Nginx {
    _service: Service,
    port: u16,
}

impl Nginx {
    /// Renders the template for `upstreams` and starts nginx.
    ///
    /// # Errors
    /// nginx is missing or does not start.
    pub async fn start(upstreams: &[SocketAddr]) -> anyhow::Result<Nginx> {
        let dir = tempfile::tempdir().context("cannot create nginx's folder")?;
        std::fs::create_dir_all(dir.path().join("tmp"))?;
        let port = free_port()?;
        let template = std::fs::read_to_string(workspace_root().join("deploy/nginx.conf"))
            .context("cannot read deploy/nginx.conf")?;
        let servers: Vec<String> = upstreams
            .iter()
            .map(|addr| format!("        server {addr} max_fails=0;"))
            .collect();
        let conf = template
            .replace("@@LISTEN@@", &format!("127.0.0.1:{port}"))
            .replace("@@UPSTREAM_SERVERS@@", &servers.join("\n"));
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|path| std::path::Path::new(path).exists())
            .ok_or_else(|| anyhow!("nginx is not installed (scripts/setup.sh installs it)"))?;
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start nginx")?;
        let nginx = Nginx {
            _service: Service { child, _dir: dir },
            port,
        };
        wait_for_port(port, "nginx").await?;
        Ok(nginx)
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}
