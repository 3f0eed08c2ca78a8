//! Abuse limits: saves per client address (a token bucket from `governor`), held pops per
//! address and overall, and finding the client address behind a trusted reverse proxy.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock as _;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::clock::Clock;

/// The server's [`Clock`], as `governor` reads time: its monotonic reading, so that a test's
/// [`crate::clock::ManualClock`] refills allowances when the test lets time pass, and a step of
/// the wall clock refills nothing.
#[derive(Clone)]
struct MonotonicClock(Arc<dyn Clock>);

impl std::fmt::Debug for MonotonicClock {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_tuple("MonotonicClock")
            .field(&self.0.monotonic())
            .finish()
    }
}

impl governor::clock::Clock for MonotonicClock {
    /// Time since the clock's start (`governor` implements its `Reference` for `Duration`).
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.0.monotonic()
    }
}

/// One token bucket per client address, on the server's clock.
type KeyedLimiter =
    RateLimiter<IpAddr, DashMapStateStore<IpAddr>, MonotonicClock, NoOpMiddleware<Duration>>;

/// Saves (join, push, exit) per client address: a burst, then a steady rate.
#[derive(Debug)]
pub struct SaveRateLimiter {
    limiter: KeyedLimiter,
}

impl SaveRateLimiter {
    /// `burst` saves at once, then `per_second` saves a second, per address, measured on
    /// `clock`'s monotonic reading ([`Clock::monotonic`]).
    pub fn new(
        burst: NonZeroU32,
        per_second: NonZeroU32,
        clock: Arc<dyn Clock>,
    ) -> SaveRateLimiter {
        let quota = Quota::per_second(per_second).allow_burst(burst);
        SaveRateLimiter {
            limiter: RateLimiter::dashmap_with_clock(quota, MonotonicClock(clock)),
        }
    }

    /// Takes one save from `ip`'s allowance, or says how long until the next one is allowed.
    ///
    /// # Errors
    /// The wait before `ip` may save again.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.limiter
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }

    /// Forgets addresses whose allowance is full again, so the table does not grow forever.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// Why a pop may not be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldRefused {
    /// This address already holds its share of pops.
    PerAddress,
    /// The server holds as many pops as it is allowed overall.
    Overall,
}

/// Counts held pops per address and overall.
#[derive(Debug)]
pub struct HeldPolls {
    overall: Arc<Semaphore>,
    max_overall: usize,
    per_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max_per_address: usize,
}

/// A held pop's place; giving it back (dropping it) frees the place, whether the pop was
/// answered or its client went away.
#[derive(Debug)]
pub struct HeldPollPermit {
    _overall: OwnedSemaphorePermit,
    ip: IpAddr,
    per_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for HeldPollPermit {
    fn drop(&mut self) {
        let mut counts = self
            .per_address
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

impl HeldPolls {
    /// At most `max_per_address` held pops from one address and `max_overall` in all.
    pub fn new(max_per_address: usize, max_overall: usize) -> HeldPolls {
        HeldPolls {
            overall: Arc::new(Semaphore::new(max_overall)),
            max_overall,
            per_address: Arc::new(Mutex::new(HashMap::new())),
            max_per_address,
        }
    }

    /// Takes a place for a pop from `ip`.
    ///
    /// # Errors
    /// [`HoldRefused`] when either limit is reached.
    pub fn try_hold(&self, ip: IpAddr) -> Result<HeldPollPermit, HoldRefused> {
        let overall = self
            .overall
            .clone()
            .try_acquire_owned()
            .map_err(|_| HoldRefused::Overall)?;
        let mut counts = self
            .per_address
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if *count >= self.max_per_address {
            if *count == 0 {
                counts.remove(&ip);
            }
            return Err(HoldRefused::PerAddress);
        }
        *count += 1;
        Ok(HeldPollPermit {
            _overall: overall,
            ip,
            per_address: self.per_address.clone(),
        })
    }

    /// How many pops are held right now.
    pub fn n_held(&self) -> usize {
        self.max_overall - self.overall.available_permits()
    }
}

/// The address a request comes from: the peer, or, when the peer is one of `trusted_proxies`,
/// the nearest address in `X-Forwarded-For` that is not a trusted proxy (walking the header
/// from the right, since each proxy appends the address it saw).
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted_proxies: &[IpAddr]) -> IpAddr {
    // On a dual-stack listener an IPv4 peer appears as `::ffff:a.b.c.d`: compare canonically.
    let peer = peer.to_canonical();
    let is_trusted = |ip: IpAddr| {
        trusted_proxies
            .iter()
            .any(|proxy| proxy.to_canonical() == ip)
    };
    if !is_trusted(peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for hop in header.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip.to_canonical();
                if !is_trusted(client) {
                    break;
                }
            }
            // A malformed entry: trust nothing beyond it.
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("valid address")
    }

    #[test]
    fn forwarded_for_is_only_believed_from_a_trusted_proxy() {
        let proxy = ip("127.0.0.1");
        assert_eq!(
            client_ip(ip("10.0.0.9"), Some("1.2.3.4"), &[proxy]),
            ip("10.0.0.9")
        );
        assert_eq!(client_ip(proxy, Some("1.2.3.4"), &[proxy]), ip("1.2.3.4"));
        assert_eq!(client_ip(proxy, None, &[proxy]), proxy);
        // The client can prepend anything; only the entry the proxy appended counts.
        assert_eq!(
            client_ip(proxy, Some("6.6.6.6, 1.2.3.4"), &[proxy]),
            ip("1.2.3.4")
        );
        // Chained trusted proxies are skipped.
        let inner = ip("10.0.0.2");
        assert_eq!(
            client_ip(proxy, Some("1.2.3.4, 10.0.0.2"), &[proxy, inner]),
            ip("1.2.3.4")
        );
        assert_eq!(client_ip(proxy, Some("garbage"), &[proxy]), proxy);
        // A dual-stack listener sees IPv4 peers as IPv4-mapped IPv6 addresses.
        let mapped = ip("::ffff:127.0.0.1");
        assert_eq!(client_ip(mapped, Some("1.2.3.4"), &[proxy]), ip("1.2.3.4"));
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.9"), None, &[proxy]),
            ip("10.0.0.9")
        );
    }

    #[test]
    fn held_polls_are_limited_per_address_and_overall_and_freed_on_drop() {
        let held = HeldPolls::new(2, 3);
        let a = ip("1.1.1.1");
        let b = ip("2.2.2.2");
        let first = held.try_hold(a).expect("first");
        let _second = held.try_hold(a).expect("second");
        assert_eq!(held.try_hold(a).err(), Some(HoldRefused::PerAddress));
        let _third = held.try_hold(b).expect("other address");
        assert_eq!(held.try_hold(b).err(), Some(HoldRefused::Overall));
        assert_eq!(held.n_held(), 3);
        drop(first);
        assert_eq!(held.n_held(), 2);
        assert!(held.try_hold(a).is_ok());
    }

    #[test]
    fn saves_get_a_burst_then_are_refused_until_the_rate_refills_the_allowance() {
        let clock = Arc::new(ManualClock::new(0));
        let limiter = SaveRateLimiter::new(
            NonZeroU32::new(3).expect("non-zero"),
            NonZeroU32::new(1).expect("non-zero"),
            clock.clone(),
        );
        let a = ip("1.1.1.1");
        for n in 0..3 {
            assert!(limiter.check(a).is_ok(), "save {n} of the burst");
        }
        let wait = limiter.check(a).expect_err("over the burst");
        assert_eq!(wait, Duration::from_secs(1), "one save a second");
        assert!(
            limiter.check(ip("2.2.2.2")).is_ok(),
            "other addresses are not affected"
        );
        clock.advance(Duration::from_millis(999));
        assert_eq!(
            limiter.check(a),
            Err(Duration::from_millis(1)),
            "not refilled a millisecond early"
        );
        clock.set(u64::MAX / 2);
        assert!(
            limiter.check(a).is_err(),
            "a step of the wall clock refills nothing"
        );
        clock.advance(Duration::from_millis(1));
        assert!(limiter.check(a).is_ok(), "refilled after a second");
        assert!(limiter.check(a).is_err(), "by one save only");
    }
}
