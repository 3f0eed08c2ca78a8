//! The clocks, injectable so tests can make time stand still, step back or pass on demand.
//!
//! One [`Clock`] gives two readings: the wall clock, for message times (which clients see and
//! the data files keep), and a monotonic reading, for measuring intervals (how long a name has
//! been quiet, how fast an address saves). Tests hand the server a [`ManualClock`] and move it,
//! instead of sleeping and hoping the server saw enough real time pass.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of the current time: the wall clock and a monotonic reading.
///
/// The server never trusts the wall clock to be monotonic: message times are
/// `max(now_ms, last_time + 1)`, so a clock that stands still or steps back still gives
/// strictly increasing times. Intervals are measured with [`Clock::monotonic`] instead, which
/// a step of the wall clock does not move.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;

    /// Time since an arbitrary start, fixed for the clock's lifetime; it never steps back, and
    /// only the differences between two readings mean anything.
    fn monotonic(&self) -> Duration;
}

/// The system's real-time clock (and its monotonic clock, [`Instant`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        // A clock before 1970 is a broken machine; treat it as the epoch rather than panic.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64)
    }

    fn monotonic(&self) -> Duration {
        // One start for the whole process, so that every copy of this zero-sized clock reads
        // the same scale. Set once, never changed.
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed()
    }
}

/// A clock that only moves when told to, for tests.
///
/// [`ManualClock::set`] steps the wall clock only, as an operator or NTP would;
/// [`ManualClock::advance`] is time passing, and moves both readings.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicU64,
    /// The monotonic reading, in milliseconds since the clock was made.
    monotonic_ms: AtomicU64,
}

impl ManualClock {
    /// A clock showing `now_ms` (milliseconds since the Unix epoch), its monotonic reading at
    /// zero.
    pub fn new(now_ms: u64) -> ManualClock {
        ManualClock {
            now_ms: AtomicU64::new(now_ms),
            monotonic_ms: AtomicU64::new(0),
        }
    }

    /// Steps the wall clock, forwards or backwards, to `now_ms` (milliseconds since the Unix
    /// epoch); the monotonic reading does not move.
    pub fn set(&self, now_ms: u64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }

    /// Lets `by` pass (whole milliseconds; a remainder is dropped): both readings move forward.
    pub fn advance(&self, by: Duration) {
        let by_ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.now_ms.fetch_add(by_ms, Ordering::SeqCst);
        self.monotonic_ms.fetch_add(by_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    fn monotonic(&self) -> Duration {
        Duration::from_millis(self.monotonic_ms.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_steps_the_wall_clock_alone_and_advances_both() {
        let clock = ManualClock::new(1_000_000);
        clock.set(400_000);
        assert_eq!(clock.now_ms(), 400_000);
        assert_eq!(
            clock.monotonic(),
            Duration::ZERO,
            "a step is not time passing"
        );
        clock.advance(Duration::from_millis(1_500));
        assert_eq!(clock.now_ms(), 401_500);
        assert_eq!(clock.monotonic(), Duration::from_millis(1_500));
    }

    #[test]
    fn the_system_clock_s_monotonic_reading_does_not_step_back() {
        let first = SystemClock.monotonic();
        let second = SystemClock.monotonic();
        assert!(second >= first, "{second:?} < {first:?}");
    }
}
