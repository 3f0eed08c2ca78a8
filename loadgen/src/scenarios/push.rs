//! `push`: C concurrent pushers for D seconds: acknowledged (durable) pushes per second and
//! their latency. Afterwards the history is read back: every acknowledged push must be there
//! once, each pusher's in its order.

use std::time::Duration;

use tokio::time::Instant;

use super::{check_acknowledged, progress_bar, run_id, Target};
use crate::client::JsonpClient;
use crate::report::Report;
use crate::stats::Latencies;

/// Parameters of a push run.
#[derive(Debug, Clone, Copy)]
pub struct PushParams {
    /// Concurrent pushers.
    pub concurrency: usize,
    /// How long they push.
    pub duration: Duration,
    /// Read the history back and check it (off for a server that stores nothing).
    pub verify: bool,
}

/// Reads every message newer than `from` (paging as a client does) and returns, per pusher
/// index, the sequence numbers of this run's messages in the order stored.
pub async fn read_back(
    client: &JsonpClient,
    from: u64,
    prefix: &str,
    n_pushers: usize,
) -> anyhow::Result<Vec<Vec<u64>>> {
    let newest = client.newest_time().await?;
    let mut per_pusher = vec![Vec::new(); n_pushers];
    let mut cursor = from;
    while cursor < newest {
        let answer = client.pop("reader", cursor).await?;
        for message in &answer.msg_list {
            let Some(rest) = message.msg.strip_prefix(prefix) else {
                continue;
            };
            let Some((pusher, seq)) = rest.split_once('-') else {
                continue;
            };
            if let (Ok(pusher), Ok(seq)) = (pusher.parse::<usize>(), seq.parse::<u64>()) {
                if let Some(seqs) = per_pusher.get_mut(pusher) {
                    seqs.push(seq);
                }
            }
        }
        cursor = answer.time;
    }
    Ok(per_pusher)
}

/// Runs the scenario (JSONP targets only).
pub async fn run(target: Target, params: PushParams, quiet: bool) -> Report {
    let progress = progress_bar(quiet);
    let mut report = Report::new(
        "push",
        target.protocol(),
        target.url(),
        serde_json::json!({"concurrency": params.concurrency, "duration_s": params.duration.as_secs_f64(), "verify": params.verify}),
    );
    let Target::Jsonp { client, .. } = &target else {
        report.violations(["the push scenario speaks the JSONP protocol only".to_owned()]);
        return report;
    };
    let prefix = format!("lg-{}-", run_id());
    let before = if params.verify {
        match client.newest_time().await {
            Ok(time) => time,
            Err(error) => {
                report.violations([format!("cannot read the newest time: {error:#}")]);
                return report;
            }
        }
    } else {
        0
    };
    progress.set_message(format!(
        "{} pushers for {:?}",
        params.concurrency, params.duration
    ));
    let start = Instant::now();
    let deadline = start + params.duration;
    let pushers: Vec<_> = (0..params.concurrency)
        .map(|pusher| {
            let client = client.clone();
            let prefix = prefix.clone();
            tokio::spawn(async move {
                let mut latencies = Latencies::default();
                let (mut acked, mut errors, mut refusals) = (Vec::new(), 0u64, Vec::new());
                // Every attempt gets a new number: a push whose answer was lost may still have
                // been stored, and retrying it under the same number would look duplicated.
                let mut seq = 0u64;
                while Instant::now() < deadline {
                    let sent_at = Instant::now();
                    let sent = client
                        .push("pusher", &format!("{prefix}{pusher}-{seq}"))
                        .await;
                    match sent {
                        Ok(_) => {
                            latencies.record(sent_at.elapsed());
                            acked.push(seq);
                        }
                        Err(error) if error.to_string().contains("refused") => {
                            refusals.push(format!("pusher {pusher}: {error:#}"));
                            break;
                        }
                        Err(_) => errors += 1,
                    }
                    seq += 1;
                }
                (latencies, acked, errors, refusals)
            })
        })
        .collect();
    let mut latencies = Latencies::default();
    let mut acked_per_pusher = Vec::new();
    for pusher in pushers {
        match pusher.await {
            Ok((pusher_latencies, acked, errors, refusals)) => {
                latencies.merge(&pusher_latencies);
                acked_per_pusher.push(acked);
                report.transport_errors += errors;
                report.violations(refusals);
            }
            Err(error) => report.violations([format!("a pusher crashed: {error}")]),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n_acked = acked_per_pusher.iter().map(Vec::len).sum::<usize>() as u64;
    if params.verify {
        progress.set_message("reading the history back");
        match read_back(client, before, &prefix, params.concurrency).await {
            Ok(stored) => {
                let mut violations = Vec::new();
                for (pusher, seqs) in stored.iter().enumerate() {
                    let acked = acked_per_pusher.get(pusher).map_or(&[][..], Vec::as_slice);
                    violations.extend(check_acknowledged(&format!("pusher {pusher}"), seqs, acked));
                }
                report.violations(violations);
            }
            Err(error) => report.violations([format!("cannot read the history back: {error:#}")]),
        }
    }
    progress.finish_and_clear();
    let latency = latencies.percentiles();
    report.metric("pushes_acknowledged", n_acked as f64, "count");
    report.metric(
        "push_throughput",
        n_acked as f64 / elapsed.max(f64::EPSILON),
        "msg/s",
    );
    report.metric("push_latency_p50", latency.p50_ms, "ms");
    report.metric("push_latency_p90", latency.p90_ms, "ms");
    report.metric("push_latency_p99", latency.p99_ms, "ms");
    report.metric("push_latency_max", latency.max_ms, "ms");
    report
}
