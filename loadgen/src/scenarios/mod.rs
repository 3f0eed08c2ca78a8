//! The load scenarios. Each returns a [`Report`](crate::report::Report); a run fails when a
//! message is lost, duplicated or delivered out of order.

pub mod catchup;
pub mod fanout;
pub mod flood;
pub mod idle;
pub mod push;

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::client::{JsonpClient, NchanClient};

/// The server under test.
#[derive(Debug, Clone)]
pub enum Target {
    /// A server of the chat's JSONP protocol (ours, or another speaking it).
    Jsonp {
        /// The client.
        client: JsonpClient,
        /// The clients `fanout`'s pollers use, poller `i` the `i % n`th: `client`, or one per
        /// instance of the same room (`--poll-url`).
        poll_clients: Vec<JsonpClient>,
        /// The client the `fanout` publisher pushes through: `client`, or another instance of
        /// the same room (`--publish-url`), to measure a wake-up across instances.
        publisher: JsonpClient,
        /// The base URL.
        base_url: String,
        /// The servers whose `/healthz` counts the held polls (their sum): the base URL, or
        /// every instance behind a load balancer.
        health_urls: Vec<String>,
        /// The HTTP client, for `/healthz`.
        http: reqwest::Client,
    },
    /// nginx with the nchan module.
    Nchan {
        /// The client.
        client: NchanClient,
        /// The base URL, for the `nchan_stub_status` location at `/nchan_status`.
        base_url: String,
        /// The HTTP client, for the status location.
        http: reqwest::Client,
    },
}

impl Target {
    /// `jsonp` or `nchan`.
    pub fn protocol(&self) -> &'static str {
        match self {
            Target::Jsonp { .. } => "jsonp",
            Target::Nchan { .. } => "nchan",
        }
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        match self {
            Target::Jsonp { base_url, .. } | Target::Nchan { base_url, .. } => base_url,
        }
    }

    /// How many long polls the server says it holds: `held_polls` of our `/healthz`, or
    /// `subscribers` of nchan's status page. `None` when the server does not say.
    pub async fn n_held(&self) -> Option<u64> {
        match self {
            Target::Jsonp {
                health_urls, http, ..
            } => {
                let mut held = 0;
                for base_url in health_urls {
                    let url = format!("{}/healthz", base_url.trim_end_matches('/'));
                    let text = http.get(url).send().await.ok()?.text().await.ok()?;
                    held += serde_json::from_str::<serde_json::Value>(&text).ok()?["held_polls"]
                        .as_u64()?;
                }
                Some(held)
            }
            Target::Nchan { base_url, http, .. } => {
                let url = format!("{}/nchan_status", base_url.trim_end_matches('/'));
                let text = http.get(url).send().await.ok()?.text().await.ok()?;
                text.lines()
                    .find_map(|line| line.strip_prefix("subscribers:"))
                    .and_then(|n| n.trim().parse().ok())
            }
        }
    }

    /// The cursor every poller of a run starts from: the newest time, asked once (JSONP; nchan's
    /// pollers need none: 0), retried every 100 ms until the server answers. A first pop of
    /// each poller, answered at once and followed at once by its held pop, made hyper's pool
    /// open a second connection before the first was back in it, about one more connection per
    /// poller; starting held, each poller has one, as nchan's pollers do.
    pub async fn start_cursor(&self, progress: &ProgressBar) -> u64 {
        let Target::Jsonp { publisher, .. } = self else {
            return 0;
        };
        loop {
            match publisher.pop("loadgen", crate::client::BEYOND_NEWEST).await {
                Ok(answer) => return answer.time,
                Err(error) => {
                    progress.set_message(format!("asking for the newest time: {error:#}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// How long `n` pollers may take to be all held: 60 s, or 2 ms per poller when that is
    /// longer (100 s for 50 000: on two cores shared with the servers, the 50 000 connections
    /// of a run were not always all held within 60 s).
    pub fn hold_timeout(n: usize) -> Duration {
        Duration::from_secs(60).max(Duration::from_millis(2 * n as u64))
    }

    /// Waits (up to `timeout`) until the server holds at least `n` polls; when the server
    /// cannot say, waits a fixed two seconds.
    pub async fn wait_for_held(&self, n: u64, timeout: Duration, progress: &ProgressBar) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.n_held().await {
                Some(held) if held >= n => return true,
                Some(held) => progress.set_message(format!("waiting for held polls: {held}/{n}")),
                None => {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    return true;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A spinner with a message on standard error (hidden when `quiet`).
pub fn progress_bar(quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let progress = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}") {
        progress.set_style(style);
    }
    progress.enable_steady_tick(Duration::from_millis(200));
    progress
}

/// A run identifier that tells this run's messages from any other's.
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!("{:x}{:x}", std::process::id(), nanos)
}

/// Checks that one receiver saw sequence numbers `0, 1, 2, ...` in order; returns the
/// violations (duplicates, gaps, reordering) and the highest contiguous count.
pub fn check_sequence(who: &str, seqs: &[u64], expected_total: u64) -> Vec<String> {
    let mut violations = Vec::new();
    let mut next = 0u64;
    for &seq in seqs {
        if seq == next {
            next += 1;
        } else if seq < next {
            violations.push(format!(
                "{who}: message {seq} duplicated or out of order (after {})",
                next - 1
            ));
        } else {
            violations.push(format!(
                "{who}: messages {next}..{seq} missing before {seq}"
            ));
            next = seq + 1;
        }
    }
    if next < expected_total {
        violations.push(format!(
            "{who}: received {next} of {expected_total} messages"
        ));
    }
    violations
}

/// Checks one sender's stored messages against what it was told was saved: sequence numbers
/// strictly increasing (no duplicate, no reordering) and every acknowledged one present. A
/// message whose answer was lost (a transport error) may be stored or not: it is not counted
/// either way, and its number is never reused.
pub fn check_acknowledged(who: &str, stored: &[u64], acknowledged: &[u64]) -> Vec<String> {
    let mut violations = Vec::new();
    for pair in stored.windows(2) {
        if pair[1] <= pair[0] {
            violations.push(format!(
                "{who}: message {} duplicated or out of order (after {})",
                pair[1], pair[0]
            ));
        }
    }
    let missing: Vec<u64> = acknowledged
        .iter()
        .copied()
        .filter(|seq| stored.binary_search(seq).is_err())
        .collect();
    if !missing.is_empty() {
        violations.push(format!(
            "{who}: {} acknowledged messages lost, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        ));
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_for_every_poll_held_grows_past_a_minute_with_the_pollers() {
        assert_eq!(Target::hold_timeout(10_000), Duration::from_secs(60));
        assert_eq!(Target::hold_timeout(50_000), Duration::from_secs(100));
    }

    #[test]
    fn acknowledged_checks_allow_unacknowledged_gaps_but_not_loss_or_duplicates() {
        assert!(
            check_acknowledged("a", &[0, 1, 3], &[0, 1, 3]).is_empty(),
            "2 was never acknowledged"
        );
        assert!(
            check_acknowledged("a", &[0, 1, 2, 3], &[0, 1, 3]).is_empty(),
            "an unacknowledged push stored"
        );
        assert_eq!(
            check_acknowledged("a", &[0, 3], &[0, 1, 3]).len(),
            1,
            "1 was acknowledged and lost"
        );
        assert_eq!(
            check_acknowledged("a", &[0, 1, 1], &[0, 1]).len(),
            1,
            "a duplicate"
        );
    }

    #[test]
    fn sequence_checks_find_loss_duplicates_and_reordering() {
        assert!(check_sequence("a", &[0, 1, 2], 3).is_empty());
        assert_eq!(check_sequence("a", &[0, 1], 3).len(), 1, "lost at the end");
        assert_eq!(check_sequence("a", &[0, 2], 3).len(), 1, "a gap");
        assert_eq!(
            check_sequence("a", &[0, 1, 1, 2], 3).len(),
            1,
            "a duplicate"
        );
        assert_eq!(check_sequence("a", &[1, 0, 2], 3).len(), 2, "reordered");
    }
}
