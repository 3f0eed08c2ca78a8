//! Run-time configuration: command-line flags, each also read from a `CHAT_...` environment
//! variable.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use chat_shared::{
    DEFAULT_MAX_MSG_LEN, DEFAULT_MAX_NAME_LEN, DEFAULT_PAGE_SIZE, DEFAULT_POLL_TIMEOUT_SECS,
    DEFAULT_PORT,
};
use clap::Parser;

/// Where `trunk build` puts the web page (see `Trunk.toml`).
pub const DEFAULT_STATIC_DIR: &str = "frontend/dist";

/// The server's settings. Defaults reproduce the original server where it had one.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "chat-server",
    version,
    about = "JSONP long-polling chat server, compatible with the original Node.js chat room"
)]
pub struct Settings {
    /// Address to listen on (the original used port 8973).
    #[arg(long, env = "CHAT_BIND", default_value_t = SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)))]
    pub bind: SocketAddr,

    /// Data folder: the original server's working folder layout (`data.json`, `data/*.json`)
    /// plus our write-ahead log.
    #[arg(long, env = "CHAT_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// How long a pop is held when there is nothing new, in seconds (fractions allowed).
    #[arg(long, env = "CHAT_POLL_TIMEOUT", value_name = "SECONDS", default_value_t = DEFAULT_POLL_TIMEOUT_SECS as f64, value_parser = parse_seconds)]
    pub poll_timeout: f64,

    /// Most messages in one pop answer; a client catches up page by page.
    #[arg(long, env = "CHAT_PAGE_SIZE", default_value_t = DEFAULT_PAGE_SIZE, value_parser = parse_positive)]
    pub page_size: usize,

    /// Longest message accepted, in characters.
    #[arg(long, env = "CHAT_MAX_MSG_LEN", default_value_t = DEFAULT_MAX_MSG_LEN)]
    pub max_msg_len: usize,

    /// Longest nickname accepted, in characters.
    #[arg(long, env = "CHAT_MAX_NAME_LEN", default_value_t = DEFAULT_MAX_NAME_LEN)]
    pub max_name_len: usize,

    /// Saves (join, push, exit) one client address may make at once before the rate applies.
    #[arg(long, env = "CHAT_PUSH_BURST", default_value = "30")]
    pub push_burst: NonZeroU32,

    /// Saves per second one client address may make after its burst.
    #[arg(long, env = "CHAT_PUSH_RATE", default_value = "10")]
    pub push_rate: NonZeroU32,

    /// Most pops held at once for one client address.
    #[arg(long, env = "CHAT_MAX_POLLS_PER_IP", default_value_t = 1000)]
    pub max_polls_per_ip: usize,

    /// Most pops held at once in all; past it, pops get 503 with `Retry-After`.
    #[arg(long, env = "CHAT_MAX_POLLS", default_value_t = 50_000)]
    pub max_polls: usize,

    /// A reverse proxy whose `X-Forwarded-For` is believed (repeat the flag, or separate with
    /// commas in the environment variable).
    #[arg(
        long = "trusted-proxy",
        env = "CHAT_TRUSTED_PROXY",
        value_name = "ADDR",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<IpAddr>,

    /// How many of the newest messages are kept in memory; older history is read from disk.
    #[arg(long, env = "CHAT_MEMORY_MESSAGES", default_value_t = 10_000)]
    pub memory_messages: usize,

    /// Most named rooms open at once (`room=…`); a request for another one gets
    /// `too_many_rooms`. The legacy room (no `room`) does not count.
    #[arg(long, env = "CHAT_MAX_ROOMS", default_value_t = 1000)]
    pub max_rooms: usize,

    /// Seconds after which a named room with no waiting pop that no request named is closed
    /// (its storage compacted and released; it opens again on its next request).
    #[arg(long, env = "CHAT_ROOM_IDLE_SECS", default_value_t = 600.0)]
    pub room_idle_secs: f64,

    /// Write-ahead-log records after which the log is compacted into the JSON files.
    #[arg(long, env = "CHAT_COMPACT_AFTER", default_value_t = 1000, value_parser = parse_positive)]
    pub compact_after: usize,

    /// Folder of the web page (`trunk build` output) served to browsers; default
    /// `frontend/dist` when it exists. Chat requests are unaffected.
    #[arg(long, env = "CHAT_STATIC_DIR", value_name = "DIR")]
    pub static_dir: Option<PathBuf>,

    /// Seconds a name stays in the online list after it was last seen, beyond the hold time.
    #[arg(long, env = "CHAT_PRESENCE_GRACE", value_name = "SECONDS", default_value_t = 10.0, value_parser = parse_seconds)]
    pub presence_grace: f64,

    /// HTTP worker threads (default: one per CPU core).
    #[arg(long, env = "CHAT_WORKERS")]
    pub workers: Option<usize>,

    /// Take over from the `chat-server` running on the same data folder: receive its listening
    /// sockets over the hand-over socket in the data folder (no connection is refused), let it
    /// answer its held pops and flush, then load the folder and serve. `--bind` is then unused.
    #[arg(long, env = "CHAT_TAKEOVER")]
    pub takeover: bool,

    /// Address of the operators' listener serving `/metrics` (Prometheus text format) and
    /// `/status` (a page of the key figures). Off by default, so that it is never public by
    /// accident; bind it to a private address.
    #[arg(long, env = "CHAT_METRICS_BIND", value_name = "ADDR")]
    pub metrics_bind: Option<SocketAddr>,

    /// Log format on standard error: `text` for people, `json` (one object a line) for log
    /// shippers.
    #[arg(long, env = "CHAT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Where messages and presence live: the local data folder (the default), or a Redis 7
    /// server shared by several instances, `redis://HOST:PORT/DB`. With Redis, the data folder
    /// only holds this instance's lock and hand-over socket.
    #[arg(long, env = "CHAT_BACKEND", value_name = "URL", value_parser = parse_backend)]
    pub backend: Option<String>,

    /// Prefix of the Redis keys (several rooms or deployments can share one Redis).
    #[arg(long, env = "CHAT_REDIS_PREFIX", default_value = crate::backend::redis::DEFAULT_PREFIX)]
    pub redis_prefix: String,

    /// Keep the newest N messages in the Redis stream, trimming in batches (up to a tenth of N
    /// more, 100 to 10 000, between trims); default: all. A pop from before the oldest kept
    /// gets what is left, with `error.code = history_trimmed`.
    #[arg(long, env = "CHAT_REDIS_MAX_LEN", value_name = "N", value_parser = parse_positive)]
    pub redis_max_len: Option<usize>,

    /// A tool to run instead of the server.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Tools run instead of the server: moving a room between backends, checking and repairing a
/// data folder.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Loads a data folder (the original server's, in any of its shapes, or ours) into an empty
    /// Redis stream, keeping every message's time.
    Import {
        /// The folder to read (not in use by a running server).
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// The Redis server, `redis://HOST:PORT/DB`.
        #[arg(long, value_name = "URL", value_parser = parse_backend)]
        to: String,
    },
    /// Writes the Redis stream back in the original server's layout (`data.json`,
    /// `data/<save-time>-<n>.json`) into a new or empty folder.
    Export {
        /// The Redis server, `redis://HOST:PORT/DB`.
        #[arg(long, value_name = "URL", value_parser = parse_backend)]
        from: String,
        /// The folder to write.
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
    },
    /// Lists every problem of a data folder that would stop the server from starting (a file
    /// that is not JSON, a record without `name`, `msg` and `time` of the right types, a time
    /// that goes back within a file, a damaged write-ahead log), with the file and position of
    /// each, and notices of what loading copes with. Exits 1 when there is a problem. Only
    /// reads, without the folder's lock: it can run beside a server using the folder.
    Check {
        /// The data folder.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Writes a repaired copy of a data folder into a new or empty folder (never in place):
    /// records that cannot be right are left out, the rest sorted by time, copies across chunk
    /// files kept once; then says what it changed. Refuses a folder a server is using.
    Repair {
        /// The data folder to read (never written to).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The new folder to write (must not exist, or be empty).
        #[arg(long, value_name = "NEW_DIR")]
        to: PathBuf,
    },
}

fn parse_backend(text: &str) -> Result<String, String> {
    if text.starts_with("redis://") {
        Ok(text.to_owned())
    } else {
        Err(format!("{text:?} is not a redis://HOST:PORT/DB address"))
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line (tracing-subscriber's JSON layer).
    Json,
}

fn parse_positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{text:?} is not a whole number above 0")),
    }
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds > 0.0 && seconds <= 3600.0 => Ok(seconds),
        _ => Err(format!(
            "{text:?} is not a number of seconds between 0 and 3600"
        )),
    }
}

impl Settings {
    /// The defaults, as if no flag and no variable were given (the `CHAT_*` environment is not
    /// read), but bound to `bind` and storing in `data_dir`: the starting point of tests.
    pub fn for_tests(bind: SocketAddr, data_dir: PathBuf) -> Settings {
        use clap::FromArgMatches;
        let matches = Settings::command_without_environment().get_matches_from(["chat-server"]);
        let mut settings = Settings::from_arg_matches(&matches)
            .unwrap_or_else(|error| unreachable!("the defaults parse: {error}"));
        settings.bind = bind;
        settings.data_dir = data_dir;
        settings.static_dir = None;
        settings
    }

    /// The command line of [`Settings::for_tests`]: every flag without its `CHAT_*` variable,
    /// so that a developer's environment does not change test results.
    fn command_without_environment() -> clap::Command {
        use clap::CommandFactory;
        Settings::command().mut_args(|arg| arg.env(None::<&str>))
    }

    /// The folder of the web page to serve: [`Settings::static_dir`], else `frontend/dist`
    /// when it exists, else none.
    pub fn effective_static_dir(&self) -> Option<PathBuf> {
        match &self.static_dir {
            Some(dir) => Some(dir.clone()),
            None => Some(PathBuf::from(DEFAULT_STATIC_DIR))
                .filter(|dir| dir.join("index.html").is_file()),
        }
    }

    /// How long a name stays online after it was last seen: hold time plus grace.
    pub fn presence_linger(&self) -> Duration {
        self.poll_timeout() + Duration::from_secs_f64(self.presence_grace)
    }

    /// [`Settings::poll_timeout`] as a duration.
    pub fn poll_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.poll_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_settings_ignore_the_environment() {
        // Regression: a developer's `CHAT_*` variables changed the test results. Checked on
        // the command itself: setting a variable here would race with the other tests.
        use clap::CommandFactory;
        let with_environment = Settings::command()
            .get_arguments()
            .filter(|arg| arg.get_env().is_some())
            .count();
        assert!(
            with_environment > 10,
            "the real command reads CHAT_* variables"
        );
        let read = Settings::command_without_environment()
            .get_arguments()
            .filter_map(|arg| arg.get_env().map(|env| env.to_string_lossy().into_owned()))
            .collect::<Vec<_>>();
        assert_eq!(read, Vec::<String>::new());
        let settings = Settings::for_tests(
            "127.0.0.1:0".parse().expect("address"),
            PathBuf::from("data"),
        );
        assert_eq!(settings.page_size, DEFAULT_PAGE_SIZE);
    }
}
