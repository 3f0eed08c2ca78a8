//! Who is online: a name counts while it saves messages or holds pops, and leaves on exit or
//! when it has not been seen for the hold time plus a grace period.
//!
//! The protocol has no client identity, so presence is keyed by nickname (the original page
//! sent its name with every poll): its saved form, [`chat_shared::Nickname`] (blank-looking ends
//! trimmed, Unicode NFC), so `alice` and `\u{200B}alice`, or the NFC and NFD spellings of
//! `José`, are one name here. Answers carry a snapshot of at most
//! [`chat_shared::MAX_ONLINE_NAMES`] names; the snapshot is rebuilt when someone arrives or
//! leaves and at most once a second otherwise, so that a fan-out to thousands of held pops does
//! not rebuild it thousands of times.
//!
//! Each snapshot has a *presence tag*, a digest of what it says: a client that sends back the
//! tag it last got (`presence=<tag>`) gets the list again only when it changed, and a client
//! that sends no `presence` (every legacy page) never gets it (see protocol.md, "Who is
//! online"). Being a digest of the content, a tag means the same on every instance.

use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_shared::{ANONYMOUS_NAME, MAX_ONLINE_NAMES};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::backend::PresenceStore;
use crate::clock::Clock;

/// How often an unchanged snapshot is rebuilt to notice names that timed out.
const SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(1);

/// Who was online when the snapshot was taken.
#[derive(Debug, Clone)]
pub struct OnlineSnapshot {
    /// At most [`MAX_ONLINE_NAMES`] names, sorted.
    pub names: Vec<String>,
    /// How many names are online in all.
    pub count: usize,
    /// `names` as a JSON array, rendered once per snapshot (a fan-out writes it into thousands
    /// of answers).
    names_json: Box<RawValue>,
    /// The presence tag: 16 hex digits of the SHA-256 of `names_json` and `count`.
    tag: String,
}

impl OnlineSnapshot {
    /// A snapshot of `names` (at most [`MAX_ONLINE_NAMES`], sorted) out of `count` online.
    pub fn from_names(names: Vec<String>, count: usize) -> OnlineSnapshot {
        // A list of strings always serializes to valid JSON.
        let names_json = serde_json::to_string(&names)
            .ok()
            .and_then(|json| RawValue::from_string(json).ok())
            .unwrap_or_else(empty_list);
        let digest = Sha256::new()
            .chain_update(names_json.get().as_bytes())
            .chain_update(count.to_be_bytes())
            .finalize();
        let tag = digest[..8]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        OnlineSnapshot {
            names,
            count,
            names_json,
            tag,
        }
    }

    /// The answer's `online` list (already rendered) and `onlineCount`.
    pub fn answer_fields(&self) -> (&RawValue, usize) {
        (&self.names_json, self.count)
    }

    /// The presence tag (`presenceTag`): 16 hex digits, equal for equal lists and counts on
    /// every instance, different (but for a 2^-64 chance) when they differ.
    pub fn tag(&self) -> &str {
        &self.tag
    }
}

fn empty_list() -> Box<RawValue> {
    RawValue::from_string("[]".to_owned()).unwrap_or_else(|_| unreachable!("[] is JSON"))
}

impl Default for OnlineSnapshot {
    fn default() -> OnlineSnapshot {
        OnlineSnapshot::from_names(Vec::new(), 0)
    }
}

#[derive(Debug, Default)]
struct Seen {
    /// When the name was last seen (a save, a pop asked or answered), on the clock's monotonic
    /// reading ([`Clock::monotonic`]).
    last_seen: Option<Duration>,
    /// Pops held right now under this name.
    n_held: usize,
    /// The name said `exit`; the pops it still holds (the closing page's own) do not keep it
    /// online. Its next save or pop brings it back.
    left: bool,
}

impl Seen {
    /// `now` on the clock's monotonic reading.
    fn is_online(&self, now: Duration, linger: Duration) -> bool {
        !self.left
            && (self.n_held > 0
                || self
                    .last_seen
                    .is_some_and(|at| now.saturating_sub(at) < linger))
    }
}

#[derive(Debug)]
struct PresenceState {
    names: HashMap<String, Seen>,
    snapshot: Arc<OnlineSnapshot>,
    /// When the snapshot was built, on the clock's monotonic reading.
    built_at: Duration,
    dirty: bool,
}

/// The online list. Cheap to share behind an `Arc`.
pub struct Presence {
    state: Mutex<PresenceState>,
    /// How long after it was last seen a name without a held pop stays online.
    linger: Duration,
    /// Measures `linger` and the snapshot's age, with its monotonic reading (a step of the
    /// wall clock neither expires names nor keeps them).
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Presence")
            .field("state", &self.state)
            .field("linger", &self.linger)
            .finish_non_exhaustive()
    }
}

/// Whether a name takes part in presence: the anonymous placeholder does not (many people
/// share it), nor does an empty name.
fn counts(name: &str) -> bool {
    !name.is_empty() && name != ANONYMOUS_NAME
}

impl Presence {
    /// A name stays online for `linger` (the hold time plus a grace period) after it was
    /// last seen, as measured by `clock`'s monotonic reading ([`Clock::monotonic`]).
    pub fn new(linger: Duration, clock: Arc<dyn Clock>) -> Presence {
        Presence {
            state: Mutex::new(PresenceState {
                names: HashMap::new(),
                snapshot: Arc::default(),
                built_at: clock.monotonic(),
                dirty: false,
            }),
            linger,
            clock,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PresenceState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `name` did something (a save or a pop).
    pub fn seen(&self, name: &str) {
        if counts(name) {
            self.see(&mut self.lock(), name);
        }
    }

    /// Marks `name` seen now in `state` (marking the list changed when it was not online) and
    /// returns its entry. Allocates the name only when it is new.
    fn see<'s>(&self, state: &'s mut PresenceState, name: &str) -> &'s mut Seen {
        let now = self.clock.monotonic();
        let is_new = match state.names.get_mut(name) {
            Some(seen) => !seen.is_online(now, self.linger),
            None => {
                state.names.insert(name.to_owned(), Seen::default());
                true
            }
        };
        state.dirty |= is_new;
        let seen = state
            .names
            .get_mut(name)
            .expect("present: found or inserted above");
        seen.last_seen = Some(now);
        seen.left = false;
        seen
    }

    /// `name` holds a pop until [`Presence::release`]; false when the name does not take part.
    pub fn hold(&self, name: &str) -> bool {
        if !counts(name) {
            return false;
        }
        self.see(&mut self.lock(), name).n_held += 1;
        true
    }

    /// A pop held under `name` ended: it counts as seen now (unless it said `exit`).
    pub fn release(&self, name: &str) {
        let mut state = self.lock();
        if let Some(seen) = state.names.get_mut(name) {
            seen.n_held = seen.n_held.saturating_sub(1);
            if !seen.left {
                seen.last_seen = Some(self.clock.monotonic());
            }
        }
    }

    /// `name` left the room (`method=exit`). A pop it still holds (another tab) brings it back
    /// when that pop ends.
    pub fn left(&self, name: &str) {
        let mut state = self.lock();
        if let Some(seen) = state.names.get_mut(name) {
            seen.last_seen = None;
            seen.left = true;
            if seen.n_held == 0 {
                state.names.remove(name);
            }
            state.dirty = true;
        }
    }

    /// Every name online now, in no order (uncapped; for sharing presence between instances).
    pub fn online_names(&self) -> Vec<String> {
        let state = self.lock();
        let now = self.clock.monotonic();
        state
            .names
            .iter()
            .filter(|(_, seen)| seen.is_online(now, self.linger))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The current online list (rebuilt when stale).
    pub fn snapshot(&self) -> Arc<OnlineSnapshot> {
        let mut state = self.lock();
        let now = self.clock.monotonic();
        if state.dirty || now.saturating_sub(state.built_at) >= SNAPSHOT_MAX_AGE {
            let linger = self.linger;
            state
                .names
                .retain(|_, seen| seen.n_held > 0 || seen.is_online(now, linger));
            // The first MAX_ONLINE_NAMES names in order, found with a bounded max-heap so a
            // room of tens of thousands costs one pass and no copies of the rest.
            let mut first: BinaryHeap<&str> = BinaryHeap::with_capacity(MAX_ONLINE_NAMES + 1);
            let mut count = 0;
            for (name, seen) in &state.names {
                if !seen.is_online(now, linger) {
                    continue;
                }
                count += 1;
                if first.len() < MAX_ONLINE_NAMES {
                    first.push(name);
                } else if first.peek().is_some_and(|&largest| name.as_str() < largest) {
                    first.pop();
                    first.push(name);
                }
            }
            let names: Vec<String> = first
                .into_sorted_vec()
                .into_iter()
                .map(str::to_owned)
                .collect();
            state.snapshot = Arc::new(OnlineSnapshot::from_names(names, count));
            state.built_at = now;
            state.dirty = false;
        }
        state.snapshot.clone()
    }
}

/// The in-memory presence of one instance (the local folder's backend).
impl PresenceStore for Presence {
    fn seen(&self, name: &str) {
        Presence::seen(self, name);
    }

    fn left(&self, name: &str) {
        Presence::left(self, name);
    }

    fn hold(&self, name: &str) -> bool {
        Presence::hold(self, name)
    }

    fn release(&self, name: &str) {
        Presence::release(self, name);
    }

    fn snapshot(&self) -> Arc<OnlineSnapshot> {
        Presence::snapshot(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    /// Presence lingering for `linger`, on a clock the test moves.
    fn presence_on_manual_clock(linger: Duration) -> (Presence, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(1_420_070_400_000));
        (Presence::new(linger, clock.clone()), clock)
    }

    #[test]
    fn presence_tags_follow_the_content_not_the_snapshot() {
        let tag = |names: &[&str], count| {
            let names = names.iter().map(|name| (*name).to_owned()).collect();
            OnlineSnapshot::from_names(names, count).tag().to_owned()
        };
        assert_eq!(tag(&["ann", "bob"], 2), tag(&["ann", "bob"], 2));
        assert_eq!(tag(&["ann"], 1).len(), 16);
        assert_ne!(tag(&["ann", "bob"], 2), tag(&["ann"], 1));
        // The same first names, more online beyond them.
        assert_ne!(tag(&["ann"], 1), tag(&["ann"], 2));
        assert_ne!(tag(&[], 0), tag(&["ann"], 1));
    }

    #[test]
    fn names_come_and_go() {
        let (presence, _clock) = presence_on_manual_clock(Duration::from_secs(60));
        presence.seen("bob");
        presence.seen("alice");
        presence.seen(ANONYMOUS_NAME);
        assert_eq!(presence.snapshot().names, ["alice", "bob"]);
        presence.left("bob");
        assert_eq!(presence.snapshot().names, ["alice"]);
        assert_eq!(presence.snapshot().count, 1);
    }

    #[test]
    fn a_held_pop_keeps_a_name_online_past_the_linger_time() {
        let linger = Duration::from_secs(10);
        let (presence, clock) = presence_on_manual_clock(linger);
        assert!(presence.hold("carol"));
        presence.seen("dave");
        clock.advance(linger - Duration::from_millis(1));
        assert_eq!(
            presence.online_names().len(),
            2,
            "both are online until the linger time has passed"
        );
        clock.advance(Duration::from_millis(1));
        presence.seen("erin");
        assert_eq!(
            presence.snapshot().names,
            ["carol", "erin"],
            "dave timed out, carol's held pop keeps her"
        );
        presence.release("carol");
        clock.advance(linger - Duration::from_millis(1));
        let mut online = presence.online_names();
        online.sort();
        assert_eq!(
            online,
            ["carol", "erin"],
            "carol lingers from the end of her pop"
        );
        clock.advance(Duration::from_millis(1));
        presence.seen("frank");
        assert_eq!(
            presence.snapshot().names,
            ["frank"],
            "carol and erin timed out"
        );
    }

    #[test]
    fn a_step_of_the_wall_clock_neither_expires_names_nor_keeps_them() {
        let linger = Duration::from_secs(10);
        let (presence, clock) = presence_on_manual_clock(linger);
        presence.seen("gina");
        clock.set(clock.now_ms() + 3_600_000);
        assert_eq!(presence.online_names(), ["gina"], "a step forward");
        clock.set(clock.now_ms() - 7_200_000);
        clock.advance(linger);
        assert!(presence.online_names().is_empty(), "a step back");
    }

    #[test]
    fn an_unchanged_snapshot_is_rebuilt_once_it_is_a_second_old() {
        let linger = Duration::from_millis(500);
        let (presence, clock) = presence_on_manual_clock(linger);
        presence.seen("hugo");
        assert_eq!(presence.snapshot().names, ["hugo"]);
        clock.advance(linger);
        assert_eq!(
            presence.snapshot().names,
            ["hugo"],
            "nobody came or left: the snapshot is kept"
        );
        clock.advance(SNAPSHOT_MAX_AGE - linger);
        assert!(
            presence.snapshot().names.is_empty(),
            "rebuilt: hugo timed out"
        );
    }

    #[test]
    fn the_closing_page_s_own_held_pop_does_not_bring_it_back_after_exit() {
        let (presence, _clock) = presence_on_manual_clock(Duration::from_secs(60));
        assert!(presence.hold("frank"));
        presence.left("frank");
        assert!(presence.snapshot().names.is_empty());
        presence.release("frank");
        assert!(presence.snapshot().names.is_empty());
        presence.seen("frank");
        assert_eq!(
            presence.snapshot().names,
            ["frank"],
            "a new pop or save brings it back"
        );
    }

    #[test]
    fn the_list_is_capped_but_the_count_is_not() {
        let (presence, _clock) = presence_on_manual_clock(Duration::from_secs(60));
        for n in 0..(MAX_ONLINE_NAMES + 5) {
            presence.seen(&format!("user{n:03}"));
        }
        let snapshot = presence.snapshot();
        assert_eq!(snapshot.names.len(), MAX_ONLINE_NAMES);
        assert_eq!(snapshot.count, MAX_ONLINE_NAMES + 5);
    }
}
