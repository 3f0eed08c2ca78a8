//! `loadgen`: load scenarios against a JSONP chat server or nginx + nchan. Prints a progress
//! line while it runs and a results table (or `--json`) at the end; exits 1 when any message
//! was lost, duplicated or out of order, 2 on bad usage.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use loadgen::client::{http_client, JsonpClient, NchanClient};
use loadgen::scenarios::{catchup, fanout, flood, idle, push, Target};

/// Load generator for the JSONP long-polling chat protocol.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version)]
struct Cli {
    /// Base URL of the server, e.g. `http://127.0.0.1:8973/` (nchan: the nginx base URL).
    #[arg(long, global = true, default_value = "http://127.0.0.1:8973/")]
    url: String,
    /// Base URL the `fanout` publisher pushes to (another instance of the same room, to
    /// measure wake-ups across instances); default: --url.
    #[arg(long, global = true)]
    publish_url: Option<String>,
    /// Base URL of a server whose `/healthz` counts held polls (repeat it for every instance
    /// behind a load balancer: the counts are summed); default: --url.
    #[arg(long = "health-url", global = true)]
    health_urls: Vec<String>,
    /// Base URL `fanout`'s pollers spread over, round robin (repeat it for every instance of
    /// the room); default: --url.
    #[arg(long = "poll-url", global = true)]
    poll_urls: Vec<String>,
    /// Loopback address this process's connections leave from (e.g. 127.0.0.2): one address
    /// has about 28 000 ports for one server address.
    #[arg(long, global = true)]
    source_address: Option<std::net::IpAddr>,
    /// Which protocol the server speaks.
    #[arg(long, global = true, value_enum, default_value_t = Protocol::Jsonp)]
    protocol: Protocol,
    /// nchan channel id.
    #[arg(long, global = true, default_value = "loadgen")]
    channel: String,
    /// Print the report as JSON on standard output (no progress line).
    #[arg(long, global = true)]
    json: bool,
    /// Per-request timeout in seconds (must exceed the server's hold time).
    #[arg(long, global = true, default_value_t = 60.0)]
    request_timeout: f64,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Protocol {
    /// The chat's JSONP protocol (docs/protocol.md).
    Jsonp,
    /// nginx + nchan: POST to /pub?id=, long-poll GET /sub?id=.
    Nchan,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// N held pops and a publisher at R messages/s for D seconds: delivery latency.
    Fanout {
        /// Held pops.
        #[arg(long, default_value_t = 1000)]
        pollers: usize,
        /// Messages per second.
        #[arg(long, default_value_t = 1.0)]
        rate: f64,
        /// Seconds of publishing.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Seconds to wait for stragglers after the last message.
        #[arg(long, default_value_t = 30.0)]
        grace: f64,
        /// Child processes the pollers are spread over (1: all in this one). One process holds
        /// no more connections than its open-file limit.
        #[arg(long, default_value_t = 1)]
        processes: usize,
        /// The server's process id, for its memory per held poll and its CPU time per delivery
        /// (repeat for several).
        #[arg(long = "server-pid")]
        server_pids: Vec<u32>,
    },
    /// A child process's share of a `fanout` run's pollers (started by `fanout --processes`).
    #[command(hide = true)]
    FanoutPollers {
        /// Index of the first poller.
        #[arg(long)]
        first_index: usize,
        /// Pollers.
        #[arg(long)]
        pollers: usize,
        /// The run's message prefix.
        #[arg(long)]
        prefix: String,
        /// Messages the run publishes.
        #[arg(long)]
        total: u64,
        /// The newest time when the run began, ms.
        #[arg(long)]
        start_cursor: u64,
        /// Seconds to wait for stragglers once standard input closes.
        #[arg(long)]
        grace: f64,
    },
    /// C concurrent pushers for D seconds: acknowledged pushes per second.
    Push {
        /// Concurrent pushers.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Seconds of pushing.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Do not read the history back (for a server that stores nothing).
        #[arg(long)]
        no_verify: bool,
    },
    /// H messages of history, then the time to page through them.
    Catchup {
        /// Messages of history.
        #[arg(long, default_value_t = 100_000)]
        history: u64,
        /// Concurrent pushers for seeding.
        #[arg(long, default_value_t = 64)]
        seeders: usize,
    },
    /// N held pops for D seconds; with --server-pid, server memory per held pop.
    Idle {
        /// Held pops.
        #[arg(long, default_value_t = 1000)]
        pollers: usize,
        /// Seconds to hold them.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// The server's process id (repeat for several processes, e.g. nginx workers).
        #[arg(long = "server-pid")]
        server_pids: Vec<u32>,
    },
    /// F clients sending 60 KB queries of 15 000 distinct keys beside P pushers and a held
    /// pop for D seconds: the pushes' latency and the pop's wake-up (issue 7 A4).
    Flood {
        /// Concurrent flooders (0: normal traffic alone, the baseline).
        #[arg(long, default_value_t = 4)]
        flooders: usize,
        /// Distinct keys per flood query.
        #[arg(long, default_value_t = 15_000)]
        keys: usize,
        /// Concurrent pushers (the normal traffic).
        #[arg(long, default_value_t = 4)]
        pushers: usize,
        /// Pushes per second of each pusher (0: as fast as answered).
        #[arg(long, default_value_t = 20.0)]
        push_rate: f64,
        /// Seconds of flooding and pushing.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
    },
}

/// The global options a `fanout` child process is started with (all but `--json`, which the
/// parent alone reads, and the source address, which each child gets its own of).
fn child_args(cli: &Cli) -> Vec<String> {
    let mut args = vec![
        "--url".to_owned(),
        cli.url.clone(),
        "--protocol".to_owned(),
        match cli.protocol {
            Protocol::Jsonp => "jsonp",
            Protocol::Nchan => "nchan",
        }
        .to_owned(),
        "--channel".to_owned(),
        cli.channel.clone(),
        "--request-timeout".to_owned(),
        cli.request_timeout.to_string(),
    ];
    for url in &cli.poll_urls {
        args.push("--poll-url".to_owned());
        args.push(url.clone());
    }
    args
}

fn seconds(value: f64) -> Duration {
    Duration::from_secs_f64(value.max(0.0))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let wanted = match &cli.scenario {
        Scenario::Fanout {
            pollers, processes, ..
        } => (*pollers / (*processes).max(1)) as u64 + 1024,
        Scenario::FanoutPollers { pollers, .. } | Scenario::Idle { pollers, .. } => {
            *pollers as u64 + 1024
        }
        Scenario::Push { concurrency, .. } => *concurrency as u64 + 1024,
        Scenario::Catchup { seeders, .. } => *seeders as u64 + 1024,
        Scenario::Flood {
            flooders, pushers, ..
        } => (*flooders + *pushers) as u64 + 1024,
    };
    let limit = loadgen::raise_open_file_limit(wanted);
    if limit < wanted {
        eprintln!("loadgen: warning: open-file limit {limit} is below the {wanted} this run needs");
    }
    let http = match http_client(seconds(cli.request_timeout), cli.source_address) {
        Ok(http) => http,
        Err(error) => {
            eprintln!("loadgen: {error:#}");
            return ExitCode::from(2);
        }
    };
    let target = match cli.protocol {
        Protocol::Jsonp => Target::Jsonp {
            client: JsonpClient::new(http.clone(), &cli.url),
            poll_clients: if cli.poll_urls.is_empty() {
                vec![JsonpClient::new(http.clone(), &cli.url)]
            } else {
                cli.poll_urls
                    .iter()
                    .map(|url| JsonpClient::new(http.clone(), url))
                    .collect()
            },
            publisher: JsonpClient::new(
                http.clone(),
                cli.publish_url.as_deref().unwrap_or(&cli.url),
            ),
            base_url: cli.url.clone(),
            health_urls: if cli.health_urls.is_empty() {
                vec![cli.url.clone()]
            } else {
                cli.health_urls.clone()
            },
            http,
        },
        Protocol::Nchan => Target::Nchan {
            client: NchanClient::new(http.clone(), &cli.url, &cli.channel),
            base_url: cli.url.clone(),
            http,
        },
    };
    let quiet = cli.json;
    let children_args = child_args(&cli);
    let report = match cli.scenario {
        Scenario::Fanout {
            pollers,
            rate,
            duration,
            grace,
            processes,
            server_pids,
        } => {
            let processes = if processes > 1 {
                fanout::Processes::Children {
                    count: processes,
                    args: children_args,
                }
            } else {
                fanout::Processes::One
            };
            fanout::run(
                target,
                fanout::FanoutParams {
                    pollers,
                    rate,
                    duration: seconds(duration),
                    grace: seconds(grace),
                    processes,
                    server_pids,
                },
                quiet,
            )
            .await
        }
        Scenario::FanoutPollers {
            first_index,
            pollers,
            prefix,
            total,
            start_cursor,
            grace,
        } => {
            let params = fanout::ChildParams {
                first_index,
                pollers,
                prefix,
                total,
                start_cursor,
                grace: seconds(grace),
            };
            return match fanout::run_child(target, params).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("loadgen: {error:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Scenario::Push {
            concurrency,
            duration,
            no_verify,
        } => {
            push::run(
                target,
                push::PushParams {
                    concurrency,
                    duration: seconds(duration),
                    verify: !no_verify,
                },
                quiet,
            )
            .await
        }
        Scenario::Catchup { history, seeders } => {
            catchup::run(target, catchup::CatchupParams { history, seeders }, quiet).await
        }
        Scenario::Idle {
            pollers,
            duration,
            server_pids,
        } => {
            idle::run(
                target,
                idle::IdleParams {
                    pollers,
                    duration: seconds(duration),
                    server_pids,
                },
                quiet,
            )
            .await
        }
        Scenario::Flood {
            flooders,
            keys,
            pushers,
            push_rate,
            duration,
        } => {
            flood::run(
                target,
                flood::FloodParams {
                    flooders,
                    keys,
                    pushers,
                    push_rate: push_rate.max(0.0),
                    duration: seconds(duration),
                },
                quiet,
            )
            .await
        }
    };
    if cli.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(error) => eprintln!("loadgen: {error}"),
        }
    } else {
        print!("{}", report.table());
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
