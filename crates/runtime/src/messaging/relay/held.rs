//! Keys the relay holds back after a failed send, so that one unavailable
//! partition does not starve the others.
//!
//! Each pass reads the oldest unpublished rows. Without this, rows of keys
//! whose partition is unavailable would stay the oldest, fill every pass
//! (a batch of 500) and keep every other key's rows from being read at
//! all. A key whose send failed is left out of the passes for a while
//! (1 s, doubling while it keeps failing, at most a minute) and its rows
//! wait in id order; a key that is delivered again is forgotten.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

const FIRST: Duration = Duration::from_secs(1);
const LONGEST: Duration = Duration::from_secs(60);

/// A key held back: until when, and how long the next hold lasts.
#[derive(Debug, Clone, Copy)]
struct Hold {
    until: Instant,
    next: Duration,
}

/// The keys held back from the relay's passes.
#[derive(Debug, Default)]
pub(super) struct HeldKeys(HashMap<String, Hold>);

impl HeldKeys {
    /// The keys a pass at `now` leaves out.
    pub(super) fn held(&self, now: Instant) -> Vec<String> {
        self.0
            .iter()
            .filter(|(_, hold)| hold.until > now)
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Records a pass's outcome: `failed` keys are held back (longer each
    /// time in a row), `delivered` ones forgotten, and holds long over
    /// dropped.
    pub(super) fn record<'a>(
        &mut self,
        now: Instant,
        failed: impl IntoIterator<Item = &'a str>,
        delivered: impl IntoIterator<Item = &'a str>,
    ) {
        for key in delivered {
            self.0.remove(key);
        }
        for key in failed {
            let hold = self.0.entry(key.to_owned()).or_insert(Hold {
                until: now,
                next: FIRST,
            });
            hold.until = now + hold.next;
            hold.next = (hold.next * 2).min(LONGEST);
        }
        self.0
            .retain(|_, hold| now.saturating_duration_since(hold.until) < LONGEST);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_key_is_held_back_longer_each_time_until_it_is_delivered() {
        let mut keys = HeldKeys::default();
        let t0 = Instant::now();
        keys.record(t0, ["a"], []);
        assert_eq!(keys.held(t0), ["a"]);
        assert!(keys.held(t0 + FIRST).is_empty(), "held for a second");
        keys.record(t0 + FIRST, ["a"], []);
        assert_eq!(keys.held(t0 + FIRST + FIRST), ["a"], "then for two");
        assert!(keys.held(t0 + FIRST * 3).is_empty());
        keys.record(t0 + FIRST * 3, [], ["a"]);
        keys.record(t0 + FIRST * 3, ["a"], []);
        assert!(keys.held(t0 + FIRST * 4).is_empty(), "a delivery starts it over");
    }

    #[test]
    fn holds_long_over_are_forgotten() {
        let mut keys = HeldKeys::default();
        let t0 = Instant::now();
        keys.record(t0, ["a"], []);
        keys.record(t0 + LONGEST * 2, ["b"], []);
        assert_eq!(keys.0.len(), 1);
    }
}
