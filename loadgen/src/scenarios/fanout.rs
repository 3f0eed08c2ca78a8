//! `fanout`: N held pops and one publisher at R messages/s for D seconds. For each message, the
//! delay from the publisher's acknowledgement to its arrival at each poller (`fanout_latency`,
//! zero when a poller is woken before the publisher reads its own answer, which our server does
//! by design), and from the moment the publisher sent it (`send_to_arrival`: the whole path,
//! the server's fsync included). Every poller must receive every message exactly once, in order.
//!
//! One process holds at most as many connections as its open-file limit allows (20 000 on the
//! benchmark machine, a hard limit), so a larger run spreads its pollers over child processes
//! (`--processes`): each child runs `loadgen fanout-pollers`, a share of the pollers from its
//! own loopback source address, and writes what they received as one JSON line when told to
//! stop (its standard input closes); arrival times cross processes as Unix time in ns.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use tokio::time::Instant;

use super::idle::{total_cpu_seconds, total_rss};
use super::{check_sequence, progress_bar, run_id, Target};
use crate::client::{failure_kind, FailureKind, NchanPoll};
use crate::report::Report;
use crate::stats::Latencies;

/// Parameters of a fanout run.
#[derive(Debug, Clone)]
pub struct FanoutParams {
    /// Held pops (concurrent subscribers).
    pub pollers: usize,
    /// Messages per second the publisher sends.
    pub rate: f64,
    /// How long the publisher runs.
    pub duration: Duration,
    /// How long to wait for stragglers after the last message.
    pub grace: Duration,
    /// Where the pollers run: in this process, or in child processes.
    pub processes: Processes,
    /// The server's processes whose resident memory is measured before the pollers start and
    /// once all are held (`server_rss_per_held_poll`, bytes), and whose CPU time is measured
    /// from then until every poller is done (`server_user_cpu_per_delivery` and
    /// `server_system_cpu_per_delivery`, µs); empty: not measured.
    pub server_pids: Vec<u32>,
}

/// Where a fanout run's pollers run.
#[derive(Debug, Clone)]
pub enum Processes {
    /// All in this process.
    One,
    /// Spread evenly over `count` child processes of this program, started with `args` (the
    /// global options: URLs, protocol, channel, timeout) before `fanout-pollers`; child `i`
    /// connects from 127.0.0.`i + 2`.
    Children {
        /// How many child processes.
        count: usize,
        /// The global options each child is given.
        args: Vec<String>,
    },
}

/// What one poller saw: sequence numbers with their arrival instants.
#[derive(Debug, Default)]
struct Received {
    arrivals: Vec<(u64, Instant)>,
    /// Failed polls (retried), by what they failed with.
    errors: BTreeMap<FailureKind, u64>,
}

impl Received {
    fn failed(&mut self, error: &anyhow::Error) {
        *self.errors.entry(failure_kind(error)).or_default() += 1;
    }
}

/// What a child process's poller saw, as it writes it: arrivals as `(seq, Unix time in ns)`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ChildPoller {
    /// `(sequence number, arrival as Unix time in ns)`, in arrival order.
    pub arrivals: Vec<(u64, u128)>,
    /// Failed polls, by what they failed with.
    pub errors: BTreeMap<FailureKind, u64>,
}

/// Parameters of a child process's share of the pollers (`loadgen fanout-pollers`).
#[derive(Debug, Clone)]
pub struct ChildParams {
    /// Index of the child's first poller (names `p<index>`, URL `index % n`).
    pub first_index: usize,
    /// How many pollers.
    pub pollers: usize,
    /// The message prefix of the run.
    pub prefix: String,
    /// How many messages the run publishes.
    pub total: u64,
    /// The newest time when the run began (JSONP), ms.
    pub start_cursor: u64,
    /// How long to wait for stragglers once told to stop.
    pub grace: Duration,
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos())
}

/// Whether the run's grace period after the last message is over.
fn stopped(stop_at: &Mutex<Option<Instant>>) -> bool {
    stop_at
        .lock()
        .map(|stop| stop.is_some_and(|at| Instant::now() >= at))
        .unwrap_or(true)
}

fn parse_seq(prefix: &str, text: &str) -> Option<u64> {
    text.strip_prefix(prefix)?.parse().ok()
}

async fn jsonp_poller(
    target: Target,
    index: usize,
    prefix: String,
    total: u64,
    mut cursor: u64,
    ready: Arc<AtomicU64>,
    stop_at: Arc<Mutex<Option<Instant>>>,
) -> Received {
    let Target::Jsonp { poll_clients, .. } = target else {
        unreachable!("jsonp poller on a jsonp target")
    };
    let client = &poll_clients[index % poll_clients.len()];
    let name = format!("p{index}");
    let mut received = Received::default();
    ready.fetch_add(1, Ordering::SeqCst);
    while (received.arrivals.len() as u64) < total {
        if stopped(&stop_at) {
            break;
        }
        match client.pop(&name, cursor).await {
            Ok(answer) => {
                let now = Instant::now();
                for message in &answer.msg_list {
                    if let Some(seq) = parse_seq(&prefix, &message.msg) {
                        received.arrivals.push((seq, now));
                    }
                }
                cursor = answer.time;
            }
            Err(error) => {
                received.failed(&error);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    received
}

async fn nchan_poller(
    target: Target,
    prefix: String,
    total: u64,
    ready: Arc<AtomicU64>,
    stop_at: Arc<Mutex<Option<Instant>>>,
) -> Received {
    let Target::Nchan { client, .. } = target else {
        unreachable!("nchan poller on an nchan target")
    };
    let mut received = Received::default();
    let mut cursor = None;
    ready.fetch_add(1, Ordering::SeqCst);
    while (received.arrivals.len() as u64) < total {
        if stopped(&stop_at) {
            break;
        }
        match client.poll(cursor.as_ref()).await {
            Ok(NchanPoll::Message(body, next)) => {
                if let Some(seq) = parse_seq(&prefix, &body) {
                    received.arrivals.push((seq, Instant::now()));
                }
                cursor = Some(next);
            }
            Ok(NchanPoll::Nothing) => {}
            Err(error) => {
                received.failed(&error);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    received
}

/// Runs the scenario against `target`.
pub async fn run(target: Target, params: FanoutParams, quiet: bool) -> Report {
    let progress = progress_bar(quiet);
    let mut report = Report::new(
        "fanout",
        target.protocol(),
        target.url(),
        serde_json::json!({"pollers": params.pollers, "rate_per_s": params.rate, "duration_s": params.duration.as_secs_f64()}),
    );
    let total = ((params.rate * params.duration.as_secs_f64()).round() as u64).max(1);
    let prefix = format!("lg-{}-", run_id());
    let ready = Arc::new(AtomicU64::new(0));
    let stop_at: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));

    let start_cursor = target.start_cursor(&progress).await;
    let rss_before = total_rss(&params.server_pids);
    progress.set_message(format!("starting {} pollers", params.pollers));
    let pollers = match &params.processes {
        Processes::One => {
            let pollers = spawn_pollers(
                &target,
                0..params.pollers,
                &prefix,
                total,
                start_cursor,
                &ready,
                &stop_at,
            );
            while ready.load(Ordering::SeqCst) < params.pollers as u64 {
                progress.set_message(format!(
                    "pollers with a cursor: {}/{}",
                    ready.load(Ordering::SeqCst),
                    params.pollers
                ));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Pollers::Tasks(pollers)
        }
        Processes::Children { count, args } => {
            let share = params.pollers.div_ceil((*count).max(1));
            let mut children = Vec::new();
            for child in 0..(*count).max(1) {
                let first_index = child * share;
                let pollers = share.min(params.pollers.saturating_sub(first_index));
                if pollers == 0 {
                    break;
                }
                let child_params = ChildParams {
                    first_index,
                    pollers,
                    prefix: prefix.clone(),
                    total,
                    start_cursor,
                    grace: params.grace,
                };
                match spawn_child(args, child, &child_params) {
                    Ok(spawned) => children.push(spawned),
                    Err(error) => {
                        report.violations([format!("child process {child}: {error:#}")]);
                        return report;
                    }
                }
            }
            Pollers::Children(children)
        }
    };
    if !target
        .wait_for_held(
            params.pollers as u64,
            Target::hold_timeout(params.pollers),
            &progress,
        )
        .await
    {
        report.violations([format!(
            "the server never held all {} polls",
            params.pollers
        )]);
    }
    let rss_held = total_rss(&params.server_pids);
    let cpu_held = total_cpu_seconds(&params.server_pids);

    // The publisher: message `seq` is sent at start + seq / rate.
    let mut acks: Vec<Option<Instant>> = vec![None; total as usize];
    let mut sends: Vec<Option<Instant>> = vec![None; total as usize];
    let mut publish_latencies = Latencies::default();
    let start = Instant::now();
    for seq in 0..total {
        let due = start + Duration::from_secs_f64(seq as f64 / params.rate);
        tokio::time::sleep_until(due).await;
        let body = format!("{prefix}{seq}");
        let sent_at = Instant::now();
        sends[seq as usize] = Some(sent_at);
        let published = match &target {
            Target::Jsonp { publisher, .. } => publisher.push("publisher", &body).await.map(|_| ()),
            Target::Nchan { client, .. } => client.publish(&body).await,
        };
        match published {
            Ok(()) => {
                let acked_at = Instant::now();
                publish_latencies.record(acked_at - sent_at);
                acks[seq as usize] = Some(acked_at);
            }
            Err(error) => {
                report.violations([format!("publish of message {seq} failed: {error:#}")])
            }
        }
        progress.set_message(format!("published {}/{total}", seq + 1));
    }
    let publish_secs = start.elapsed().as_secs_f64();
    if let Ok(mut stop) = stop_at.lock() {
        *stop = Some(Instant::now() + params.grace);
    }
    progress.set_message("waiting for every poller to receive every message");

    let mut latencies = Latencies::default();
    let mut latencies_from_send = Latencies::default();
    let mut n_delivered = 0u64;
    let mut sequence_violations = Vec::new();
    for (index, received) in pollers.collect().await.into_iter().enumerate() {
        let received = match received {
            Ok(received) => received,
            Err(error) => {
                sequence_violations.push(format!("poller {index}: {error:#}"));
                continue;
            }
        };
        for (kind, n) in received.errors {
            report.transport_errors += n;
            *report.transport_error_kinds.entry(kind).or_default() += n;
        }
        n_delivered += received.arrivals.len() as u64;
        let seqs: Vec<u64> = received.arrivals.iter().map(|(seq, _)| *seq).collect();
        sequence_violations.extend(check_sequence(&format!("poller {index}"), &seqs, total));
        for (seq, arrived_at) in received.arrivals {
            if let Some(Some(acked_at)) = acks.get(seq as usize) {
                // A poller may be woken a moment before the publisher reads its own answer.
                latencies.record(arrived_at.saturating_duration_since(*acked_at));
            }
            if let Some(Some(sent_at)) = sends.get(seq as usize) {
                latencies_from_send.record(arrived_at.saturating_duration_since(*sent_at));
            }
        }
    }
    report.violations(sequence_violations);
    progress.finish_and_clear();
    // Every poller is done: each closed its connection after its last message.
    let cpu_done = total_cpu_seconds(&params.server_pids);

    let latency = latencies.percentiles();
    let publish = publish_latencies.percentiles();
    let from_send = latencies_from_send.percentiles();
    report.metric("messages_published", total as f64, "count");
    report.metric(
        "publish_rate",
        total as f64 / publish_secs.max(f64::EPSILON),
        "msg/s",
    );
    report.metric("deliveries", n_delivered as f64, "count");
    report.metric(
        "deliveries_expected",
        (total * params.pollers as u64) as f64,
        "count",
    );
    report.metric("fanout_latency_p50", latency.p50_ms, "ms");
    report.metric("fanout_latency_p90", latency.p90_ms, "ms");
    report.metric("fanout_latency_p99", latency.p99_ms, "ms");
    report.metric("fanout_latency_max", latency.max_ms, "ms");
    report.metric("send_to_arrival_p50", from_send.p50_ms, "ms");
    report.metric("send_to_arrival_p99", from_send.p99_ms, "ms");
    report.metric("send_to_arrival_max", from_send.max_ms, "ms");
    report.metric("publish_ack_latency_p50", publish.p50_ms, "ms");
    report.metric("publish_ack_latency_p99", publish.p99_ms, "ms");
    if let (Some(before), Some(held)) = (rss_before, rss_held) {
        report.metric(
            "server_rss_per_held_poll",
            held.saturating_sub(before) as f64 / params.pollers.max(1) as f64,
            "bytes",
        );
    }
    if let (Some((user_held, system_held)), Some((user_stop, system_stop))) = (cpu_held, cpu_done) {
        // Each delivery is one answer and the next poll (and, once per poller, the closing of
        // its connection after its last message).
        let per_delivery = |seconds: f64| seconds * 1e6 / n_delivered.max(1) as f64;
        report.metric(
            "server_user_cpu_per_delivery",
            per_delivery(user_stop - user_held),
            "µs",
        );
        report.metric(
            "server_system_cpu_per_delivery",
            per_delivery(system_stop - system_held),
            "µs",
        );
    }
    report
}

/// Starts the pollers `indices` as tasks of this process.
fn spawn_pollers(
    target: &Target,
    indices: std::ops::Range<usize>,
    prefix: &str,
    total: u64,
    start_cursor: u64,
    ready: &Arc<AtomicU64>,
    stop_at: &Arc<Mutex<Option<Instant>>>,
) -> Vec<tokio::task::JoinHandle<Received>> {
    indices
        .map(|index| {
            let (target, prefix, ready, stop_at) = (
                target.clone(),
                prefix.to_owned(),
                ready.clone(),
                stop_at.clone(),
            );
            tokio::spawn(async move {
                match &target {
                    Target::Jsonp { .. } => {
                        jsonp_poller(target, index, prefix, total, start_cursor, ready, stop_at)
                            .await
                    }
                    Target::Nchan { .. } => {
                        nchan_poller(target, prefix, total, ready, stop_at).await
                    }
                }
            })
        })
        .collect()
}

/// The run's pollers, wherever they run.
enum Pollers {
    Tasks(Vec<tokio::task::JoinHandle<Received>>),
    Children(Vec<tokio::process::Child>),
}

impl Pollers {
    /// Waits for every poller (a child process is told to stop by closing its standard
    /// input) and returns what each received, in poller order.
    async fn collect(self) -> Vec<anyhow::Result<Received>> {
        match self {
            Pollers::Tasks(tasks) => {
                let mut all = Vec::with_capacity(tasks.len());
                for task in tasks {
                    all.push(task.await.context("the poller crashed"));
                }
                all
            }
            Pollers::Children(children) => {
                // Unix time in ns and this process's clock, read together.
                let (now, now_nanos) = (Instant::now(), unix_nanos());
                let at = |nanos: u128| -> Instant {
                    if nanos >= now_nanos {
                        now + Duration::from_nanos((nanos - now_nanos) as u64)
                    } else {
                        now.checked_sub(Duration::from_nanos((now_nanos - nanos) as u64))
                            .unwrap_or(now)
                    }
                };
                let mut all = Vec::new();
                for (number, mut child) in children.into_iter().enumerate() {
                    drop(child.stdin.take());
                    let mut out = String::new();
                    let read = match child.stdout.take() {
                        Some(mut stdout) => stdout.read_to_string(&mut out).await.map(|_| ()),
                        None => Ok(()),
                    };
                    let _ = child.wait().await;
                    let parsed = read.context("reading a child's report").and_then(|()| {
                        serde_json::from_str::<Vec<ChildPoller>>(out.trim())
                            .with_context(|| format!("child {number} wrote no report"))
                    });
                    match parsed {
                        Ok(pollers) => all.extend(pollers.into_iter().map(|poller| {
                            Ok(Received {
                                arrivals: poller
                                    .arrivals
                                    .into_iter()
                                    .map(|(seq, nanos)| (seq, at(nanos)))
                                    .collect(),
                                errors: poller.errors,
                            })
                        })),
                        Err(error) => all.push(Err(error)),
                    }
                }
                all
            }
        }
    }
}

/// Starts child process `number` with its share of the pollers.
fn spawn_child(
    args: &[String],
    number: usize,
    params: &ChildParams,
) -> anyhow::Result<tokio::process::Child> {
    let exe = std::env::current_exe().context("finding this program")?;
    let source = std::net::Ipv4Addr::new(127, 0, 0, (number + 2).min(254) as u8);
    tokio::process::Command::new(exe)
        .args(args)
        .arg("--source-address")
        .arg(source.to_string())
        .arg("fanout-pollers")
        .arg("--first-index")
        .arg(params.first_index.to_string())
        .arg("--pollers")
        .arg(params.pollers.to_string())
        .arg("--prefix")
        .arg(&params.prefix)
        .arg("--total")
        .arg(params.total.to_string())
        .arg("--start-cursor")
        .arg(params.start_cursor.to_string())
        .arg("--grace")
        .arg(params.grace.as_secs_f64().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting a child process")
}

/// A child process's share of the pollers (`loadgen fanout-pollers`): runs them until every
/// message arrived or, once its standard input closes, the grace time passed; then writes what
/// each received as one JSON line (`[{"arrivals":[[seq, unix_ns], …], "errors":{"connect":n, …}}, …]`).
///
/// # Errors
/// Standard output could not be written.
pub async fn run_child(target: Target, params: ChildParams) -> anyhow::Result<()> {
    let ready = Arc::new(AtomicU64::new(0));
    let stop_at: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let tasks = spawn_pollers(
        &target,
        params.first_index..params.first_index + params.pollers,
        &params.prefix,
        params.total,
        params.start_cursor,
        &ready,
        &stop_at,
    );
    {
        let stop_at = stop_at.clone();
        let grace = params.grace;
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(_)) = lines.next_line().await {}
            if let Ok(mut stop) = stop_at.lock() {
                *stop = Some(Instant::now() + grace);
            }
        });
    }
    // Arrival instants of this process, as Unix time.
    let (now, now_nanos) = (Instant::now(), unix_nanos());
    let mut pollers = Vec::with_capacity(tasks.len());
    for task in tasks {
        let received = task.await.unwrap_or_default();
        pollers.push(ChildPoller {
            arrivals: received
                .arrivals
                .into_iter()
                .map(|(seq, at)| {
                    let nanos = if at >= now {
                        now_nanos + at.duration_since(now).as_nanos()
                    } else {
                        now_nanos.saturating_sub(now.duration_since(at).as_nanos())
                    };
                    (seq, nanos)
                })
                .collect(),
            errors: received.errors,
        });
    }
    let json = serde_json::to_string(&pollers).context("writing the report")?;
    println!("{json}");
    Ok(())
}
