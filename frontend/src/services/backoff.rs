//! How long to wait before the next attempt after a failed request: exponential backoff with
//! "full jitter" (a uniformly random delay between zero and an exponentially growing ceiling).
//!
//! Jitter matters here because a server restart drops every client at the same moment; without
//! it they would all come back in lockstep and hit the server together on every retry. The
//! function is pure (the caller passes the random number) so it can be tested on the host.

use std::time::Duration;

/// The ceiling of the first retry's delay.
pub const BASE_DELAY: Duration = Duration::from_millis(500);

/// The largest ceiling: however long the outage, a client retries at least this often.
pub const MAX_DELAY: Duration = Duration::from_secs(30);

/// The delay before retry number `attempt` (1 for the first retry after a failure).
///
/// The ceiling is `BASE_DELAY * 2^(attempt - 1)`, capped at [`MAX_DELAY`]; the delay is
/// `random * ceiling`. `random` is meant to come from `Math.random()`, in `[0, 1)`; values outside
/// that range (or NaN) are clamped so the result always lies in `[0, MAX_DELAY]`. An `attempt` of
/// 0 is treated as 1.
pub fn backoff_delay(attempt: u32, random: f64) -> Duration {
    let ceiling = ceiling(attempt);
    let random = if random.is_nan() {
        0.0
    } else {
        random.clamp(0.0, 1.0)
    };
    ceiling.mul_f64(random)
}

/// The upper bound of [`backoff_delay`] for `attempt`.
fn ceiling(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1);
    // Beyond 2^6 * 500 ms the cap applies anyway; clamping the exponent avoids overflow for the
    // attempt counts a long outage produces.
    let factor = 1u32 << doublings.min(16);
    BASE_DELAY.saturating_mul(factor).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_stays_between_zero_and_the_ceiling() {
        for attempt in 0..40 {
            for random in [0.0, 0.25, 0.5, 0.999_999] {
                let delay = backoff_delay(attempt, random);
                assert!(
                    delay <= ceiling(attempt),
                    "attempt {attempt}, random {random}: {delay:?} is above the ceiling"
                );
                assert!(
                    delay <= MAX_DELAY,
                    "attempt {attempt}: {delay:?} is above the cap"
                );
            }
            assert_eq!(
                backoff_delay(attempt, 0.0),
                Duration::ZERO,
                "full jitter starts at zero"
            );
        }
    }

    #[test]
    fn the_ceiling_doubles_from_the_base_then_stops_at_the_cap() {
        assert_eq!(ceiling(1), BASE_DELAY);
        assert_eq!(ceiling(2), BASE_DELAY * 2);
        assert_eq!(ceiling(3), BASE_DELAY * 4);
        assert_eq!(
            ceiling(7),
            Duration::from_secs(30),
            "500 ms * 64 = 32 s, capped"
        );
        assert_eq!(ceiling(1000), MAX_DELAY);
        assert_eq!(ceiling(u32::MAX), MAX_DELAY, "no overflow on huge counts");
    }

    #[test]
    fn attempt_zero_behaves_like_the_first_retry() {
        assert_eq!(backoff_delay(0, 0.5), backoff_delay(1, 0.5));
    }

    #[test]
    fn jitter_scales_the_ceiling_linearly() {
        assert_eq!(backoff_delay(1, 0.5), Duration::from_millis(250));
        assert_eq!(backoff_delay(3, 0.5), Duration::from_millis(1000));
        assert_eq!(backoff_delay(20, 0.5), Duration::from_secs(15));
    }

    #[test]
    fn out_of_range_random_numbers_are_clamped() {
        assert_eq!(backoff_delay(2, -1.0), Duration::ZERO);
        assert_eq!(backoff_delay(2, f64::NAN), Duration::ZERO);
        assert_eq!(backoff_delay(2, 7.0), ceiling(2));
        assert_eq!(backoff_delay(50, f64::INFINITY), MAX_DELAY);
    }
}
