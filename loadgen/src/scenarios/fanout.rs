//! `fanout`: N held pops and one publisher at R messages/s for D seconds. For each message, the
//! delay from the publisher's acknowledgement to its arrival at each poller (`fanout_latency`,
//! zero when a poller is woken before the publisher reads its own answer, which our server does
//! by design), and from the moment the publisher sent it (`send_to_arrival`: the whole path,
//! the server's fsync included). Every poller must receive every message exactly once, in order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::{check_sequence, progress_bar, run_id, Target};
use crate::client::{NchanPoll, BEYOND_NEWEST};
use crate::report::Report;
use crate::stats::Latencies;

/// Parameters of a fanout run.
#[derive(Debug, Clone, Copy)]
pub struct FanoutParams {
    /// Held pops (concurrent subscribers).
    pub pollers: usize,
    /// Messages per second the publisher sends.
    pub rate: f64,
    /// How long the publisher runs.
    pub duration: Duration,
    /// How long to wait for stragglers after the last message.
    pub grace: Duration,
}

/// What one poller saw: sequence numbers with their arrival instants.
#[derive(Debug, Default)]
struct Received {
    arrivals: Vec<(u64, Instant)>,
    errors: u64,
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
    let Target::Jsonp { client, .. } = target else {
        unreachable!("jsonp poller on a jsonp target")
    };
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
            Err(_) => {
                received.errors += 1;
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
            Err(_) => {
                received.errors += 1;
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

    // Every poller starts from the newest time, asked once here: a first pop of each poller,
    // answered at once, would be followed at once by its held pop, and hyper's pool then often
    // opens a second connection before the first is back in the pool (about one more
    // connection per poller, closed by the server's keep-alive timeout during the run). nchan's
    // pollers start with a held poll as well.
    let start_cursor = match &target {
        Target::Jsonp { publisher, .. } => loop {
            match publisher.pop("publisher", BEYOND_NEWEST).await {
                Ok(answer) => break answer.time,
                Err(error) => {
                    progress.set_message(format!("asking for the newest time: {error:#}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        },
        Target::Nchan { .. } => 0,
    };
    progress.set_message(format!("starting {} pollers", params.pollers));
    let pollers: Vec<_> = (0..params.pollers)
        .map(|index| {
            let (target, prefix, ready, stop_at) = (
                target.clone(),
                prefix.clone(),
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
        .collect();
    while ready.load(Ordering::SeqCst) < params.pollers as u64 {
        progress.set_message(format!(
            "pollers with a cursor: {}/{}",
            ready.load(Ordering::SeqCst),
            params.pollers
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !target
        .wait_for_held(params.pollers as u64, Duration::from_secs(60), &progress)
        .await
    {
        report.violations([format!(
            "the server never held all {} polls",
            params.pollers
        )]);
    }

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
    for (index, poller) in pollers.into_iter().enumerate() {
        let received = match poller.await {
            Ok(received) => received,
            Err(error) => {
                sequence_violations.push(format!("poller {index} crashed: {error}"));
                continue;
            }
        };
        report.transport_errors += received.errors;
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
    report
}
