//! `idle`: N held pops, held for D seconds once all are held; with the server's process ids,
//! its resident memory (`VmRSS` of `/proc/<pid>/status`) before and while they are held, as
//! bytes per held pop.

use std::time::Duration;

use tokio::time::Instant;

use super::{progress_bar, Target};
use crate::report::Report;

/// Wait between "all held" and the measurement: longer than the servers' keep-alive timeout.
const SETTLE: Duration = Duration::from_secs(6);

/// Parameters of an idle run.
#[derive(Debug, Clone)]
pub struct IdleParams {
    /// Held pops.
    pub pollers: usize,
    /// How long to hold them.
    pub duration: Duration,
    /// The server's processes whose memory is summed (nginx: its workers).
    pub server_pids: Vec<u32>,
}

/// Resident memory of a process in bytes, from `/proc/<pid>/status`.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU time a process has used so far, all its threads: (user, system), in seconds, from the
/// `utime` and `stime` fields of `/proc/<pid>/stat` (in clock ticks, usually 1/100 s).
pub fn cpu_seconds(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (user, system) = stat_cpu_ticks(&stat)?;
    let per_second = rustix::param::clock_ticks_per_second() as f64;
    Some((user as f64 / per_second, system as f64 / per_second))
}

/// `utime` and `stime` (clock ticks) from a `/proc/<pid>/stat` line.
fn stat_cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    // The fields after the command name, which is in parentheses and may hold spaces and
    // parentheses itself.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let user = fields.nth(11)?.parse().ok()?;
    let system = fields.next()?.parse().ok()?;
    Some((user, system))
}

/// CPU time of `pids` together, (user, system) seconds; `None` when one cannot be read or none
/// is given.
pub fn total_cpu_seconds(pids: &[u32]) -> Option<(f64, f64)> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().try_fold((0.0, 0.0), |(user, system), &pid| {
        let (u, s) = cpu_seconds(pid)?;
        Some((user + u, system + s))
    })
}

/// Resident memory of `pids` together, bytes; `None` when one cannot be read or none is given.
pub fn total_rss(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&pid| rss_bytes(pid)).sum()
}

/// Runs the scenario.
pub async fn run(target: Target, params: IdleParams, quiet: bool) -> Report {
    let progress = progress_bar(quiet);
    let mut report = Report::new(
        "idle",
        target.protocol(),
        target.url(),
        serde_json::json!({"pollers": params.pollers, "duration_s": params.duration.as_secs_f64(), "server_pids": params.server_pids}),
    );
    let rss_before = total_rss(&params.server_pids);
    // Each poller's first poll is held: one connection per poller.
    let start_cursor = target.start_cursor(&progress).await;
    // Pollers run until told to stop: the hold starts counting once every poll is held.
    let deadline = Instant::now() + params.duration + Target::hold_timeout(params.pollers) + SETTLE;
    let pollers: Vec<_> = (0..params.pollers)
        .map(|index| {
            let target = target.clone();
            tokio::spawn(async move {
                let mut errors = 0u64;
                match target {
                    Target::Jsonp { client, .. } => {
                        let name = format!("i{index}");
                        let mut cursor = start_cursor;
                        while Instant::now() < deadline {
                            match tokio::time::timeout_at(deadline, client.pop(&name, cursor)).await
                            {
                                Ok(Ok(answer)) => cursor = answer.time,
                                Ok(Err(_)) => {
                                    errors += 1;
                                    tokio::time::sleep(Duration::from_millis(100)).await;
                                }
                                Err(_) => break,
                            }
                        }
                    }
                    Target::Nchan { client, .. } => {
                        let mut cursor = None;
                        while Instant::now() < deadline {
                            match tokio::time::timeout_at(deadline, client.poll(cursor.as_ref()))
                                .await
                            {
                                Ok(Ok(crate::client::NchanPoll::Message(_, next))) => {
                                    cursor = Some(next)
                                }
                                Ok(Ok(crate::client::NchanPoll::Nothing)) => {}
                                Ok(Err(_)) => {
                                    errors += 1;
                                    tokio::time::sleep(Duration::from_millis(100)).await;
                                }
                                Err(_) => break,
                            }
                        }
                    }
                }
                errors
            })
        })
        .collect();
    let all_held = target
        .wait_for_held(
            params.pollers as u64,
            Target::hold_timeout(params.pollers),
            &progress,
        )
        .await;
    if !all_held {
        report.violations([format!(
            "the server never held all {} polls",
            params.pollers
        )]);
    }
    // Measure after the servers' keep-alive timeout (5 s for both): a spare connection (one a
    // retried poll left idle) is closed by then, so what is left is one connection per held
    // poll, as with real clients.
    progress.set_message(format!(
        "holding {} polls; letting spare connections close",
        params.pollers
    ));
    tokio::time::sleep(SETTLE).await;
    let held = target.n_held().await;
    let rss_held = total_rss(&params.server_pids);
    progress.set_message(format!("holding {} polls", params.pollers));
    tokio::time::sleep(params.duration).await;
    for poller in pollers {
        poller.abort();
        if let Ok(errors) = poller.await {
            report.transport_errors += errors;
        }
    }
    progress.finish_and_clear();
    report.metric("pollers", params.pollers as f64, "count");
    if let Some(held) = held {
        report.metric("held_reported_by_server", held as f64, "count");
    }
    if let (Some(before), Some(during)) = (rss_before, rss_held) {
        report.metric("server_rss_before", before as f64, "bytes");
        report.metric("server_rss_held", during as f64, "bytes");
        let per_poll = during.saturating_sub(before) as f64 / params.pollers.max(1) as f64;
        report.metric("server_rss_per_held_poll", per_poll, "bytes");
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_read_after_a_command_name_with_spaces_and_parentheses() {
        let stat =
            "4242 (chat server (x)) S 1 4242 4242 0 -1 4194560 9031 0 0 0 345 120 0 0 20 0 3 0";
        assert_eq!(stat_cpu_ticks(stat), Some((345, 120)));
        assert_eq!(stat_cpu_ticks("4242 (cut) S 1"), None);
    }

    #[test]
    fn this_process_s_user_time_grows_while_it_computes() {
        let pid = std::process::id();
        let (user_before, _) = cpu_seconds(pid).expect("readable");
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        let mut sum = 0u64;
        loop {
            for i in 0..1_000_000u64 {
                sum = std::hint::black_box(sum.wrapping_add(i * i));
            }
            let (user, _) = cpu_seconds(pid).expect("readable");
            if user > user_before {
                break;
            }
            assert!(std::time::Instant::now() < give_up, "user time never grew");
        }
        assert_eq!(total_cpu_seconds(&[]), None);
        assert!(total_cpu_seconds(&[pid, pid]).expect("readable").0 > user_before);
    }
}
