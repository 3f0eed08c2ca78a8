//! Waiting for something a page will eventually show, without sleeping a fixed time: a
//! condition is checked every [`POLL_INTERVAL`] until it holds or the timeout passes, and the
//! failure says what was awaited and what the last check saw.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use anyhow::bail;

/// How often [`wait_until`] checks its condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(75);

/// The outcome of one check of a [`wait_until`] condition.
#[derive(Debug)]
pub enum Check<T> {
    /// The condition holds; `wait_until` returns this value.
    Done(T),
    /// Not yet; the text says what was seen, for the failure message.
    NotYet(String),
}

impl Check<()> {
    /// `Done(())` when `holds`, else `NotYet` with `seen` (what the check saw instead).
    pub fn when(holds: bool, seen: impl Display) -> Check<()> {
        if holds {
            Check::Done(())
        } else {
            Check::NotYet(seen.to_string())
        }
    }
}

/// Checks `check` every [`POLL_INTERVAL`] until it returns [`Check::Done`], and returns its
/// value.
///
/// An error from a check (an element not there yet, a request refused while a server restarts)
/// counts as "not yet"; only the timeout ends the wait.
///
/// # Errors
/// The condition did not hold within `timeout`: the error names `what` was awaited and what
/// the last check saw (or the last check's error).
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Check<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut n_checks = 0u32;
    loop {
        n_checks += 1;
        let last = match check().await {
            Ok(Check::Done(value)) => return Ok(value),
            Ok(Check::NotYet(seen)) => format!("last check saw: {seen}"),
            Err(error) => format!("last check failed: {error:#}"),
        };
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} ({n_checks} checks) waiting until {what}; {last}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_value_once_the_condition_holds() {
        let mut n = 0;
        let value = wait_until(Duration::from_secs(5), "the third check", || {
            n += 1;
            let n = n;
            async move {
                Ok(if n >= 3 {
                    Check::Done(n)
                } else {
                    Check::NotYet(format!("n = {n}"))
                })
            }
        })
        .await
        .expect("the condition holds at the third check");
        assert_eq!(value, 3);
    }

    #[tokio::test]
    async fn a_timeout_names_what_was_awaited_and_what_was_seen() {
        let error = wait_until(Duration::from_millis(200), "pigs fly", || async {
            Ok(Check::when(false, "pigs on the ground"))
        })
        .await
        .expect_err("pigs never fly");
        let text = format!("{error:#}");
        assert!(text.contains("waiting until pigs fly"), "{text}");
        assert!(
            text.contains("last check saw: pigs on the ground"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_failing_check_is_retried_and_reported() {
        let error = wait_until(Duration::from_millis(200), "the server answers", || async {
            Err::<Check<()>, _>(anyhow::anyhow!("connection refused"))
        })
        .await
        .expect_err("the check always fails");
        assert!(
            format!("{error:#}").contains("last check failed: connection refused"),
            "{error:#}"
        );
    }
}
