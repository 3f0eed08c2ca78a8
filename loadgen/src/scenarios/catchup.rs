//! `catchup`: H messages of history, seeded through the API, then the time a client takes to
//! page through all of them from the cursor before the seeding (the same paging as from
//! `time=0` on a fresh server).

use tokio::time::Instant;

use super::push::read_back;
use super::{check_acknowledged, progress_bar, run_id, Target};
use crate::report::Report;

/// Parameters of a catch-up run.
#[derive(Debug, Clone, Copy)]
pub struct CatchupParams {
    /// Messages of history to seed.
    pub history: u64,
    /// Concurrent pushers used for seeding.
    pub seeders: usize,
}

/// Runs the scenario (JSONP targets only).
pub async fn run(target: Target, params: CatchupParams, quiet: bool) -> Report {
    let progress = progress_bar(quiet);
    let mut report = Report::new(
        "catchup",
        target.protocol(),
        target.url(),
        serde_json::json!({"history": params.history, "seeders": params.seeders}),
    );
    let Target::Jsonp { client, .. } = &target else {
        report.violations(["the catchup scenario speaks the JSONP protocol only".to_owned()]);
        return report;
    };
    let prefix = format!("lg-{}-", run_id());
    let before = match client.newest_time().await {
        Ok(time) => time,
        Err(error) => {
            report.violations([format!("cannot read the newest time: {error:#}")]);
            return report;
        }
    };
    let seeders = params.seeders.max(1);
    let per_seeder = params.history.div_ceil(seeders as u64);
    let seeding_start = Instant::now();
    let tasks: Vec<_> = (0..seeders)
        .map(|seeder| {
            let (client, prefix) = (client.clone(), prefix.clone());
            let n = per_seeder.min(params.history.saturating_sub(seeder as u64 * per_seeder));
            tokio::spawn(async move {
                // A new number for every attempt, as in the push scenario: a push whose answer
                // was lost may have been stored.
                let (mut acked, mut errors, mut seq) = (Vec::new(), 0u64, 0u64);
                while (acked.len() as u64) < n {
                    let sent = client
                        .push("seeder", &format!("{prefix}{seeder}-{seq}"))
                        .await;
                    match sent {
                        Ok(_) => acked.push(seq),
                        Err(error) if error.to_string().contains("refused") => {
                            return (acked, errors, Some(format!("{error:#}")))
                        }
                        Err(_) => errors += 1,
                    }
                    seq += 1;
                }
                (acked, errors, None)
            })
        })
        .collect();
    let mut seeded: Vec<Vec<u64>> = Vec::new();
    for task in tasks {
        match task.await {
            Ok((acked, errors, refusal)) => {
                seeded.push(acked);
                report.transport_errors += errors;
                report.violations(refusal);
            }
            Err(error) => report.violations([format!("a seeder crashed: {error}")]),
        }
        progress.set_message(format!("seeding {} messages", params.history));
    }
    let seeding_secs = seeding_start.elapsed().as_secs_f64();

    progress.set_message("paging through the history");
    let catchup_start = Instant::now();
    let (n_pages, n_messages) = {
        let mut cursor = before;
        let (mut n_pages, mut n_messages) = (0u64, 0u64);
        let newest = client.newest_time().await.unwrap_or(0);
        while cursor < newest {
            match client.pop("catchup", cursor).await {
                Ok(answer) => {
                    n_pages += 1;
                    n_messages += answer.msg_list.len() as u64;
                    cursor = answer.time;
                }
                Err(error) => {
                    report.violations([format!("catch-up pop failed: {error:#}")]);
                    break;
                }
            }
        }
        (n_pages, n_messages)
    };
    let catchup_secs = catchup_start.elapsed().as_secs_f64();

    progress.set_message("checking the history");
    match read_back(client, before, &prefix, seeders).await {
        Ok(stored) => {
            let violations = stored
                .iter()
                .enumerate()
                .flat_map(|(seeder, seqs)| {
                    let acked = seeded.get(seeder).map_or(&[][..], Vec::as_slice);
                    check_acknowledged(&format!("seeder {seeder}"), seqs, acked)
                })
                .collect::<Vec<_>>();
            report.violations(violations);
        }
        Err(error) => report.violations([format!("cannot read the history back: {error:#}")]),
    }
    progress.finish_and_clear();
    report.metric(
        "history_seeded",
        seeded.iter().map(Vec::len).sum::<usize>() as f64,
        "count",
    );
    report.metric(
        "seeding_throughput",
        seeded.iter().map(Vec::len).sum::<usize>() as f64 / seeding_secs.max(f64::EPSILON),
        "msg/s",
    );
    report.metric("catchup_messages", n_messages as f64, "count");
    report.metric("catchup_pages", n_pages as f64, "count");
    report.metric("catchup_time", catchup_secs, "s");
    report.metric(
        "catchup_throughput",
        n_messages as f64 / catchup_secs.max(f64::EPSILON),
        "msg/s",
    );
    report
}
