//! The process's wall clock, and the rule that keeps it harmless.
//!
//! Leases, claims, due times and deadlines (`provider_calls.leased_until`,
//! `notifications.claimed_until` and `next_attempt_at`, `pick_tasks.due_at`,
//! `order_view.payment_deadline_at`, the rate limiter's times, the outbox's
//! and inbox's ages) are written and compared in SQL, with the database's
//! clock (`now()`, `clock_timestamp()`): one clock for every instance. An
//! instance whose own clock is minutes off therefore neither takes a lease
//! another instance holds (two provider calls for one attempt) nor keeps one
//! that ran out. Waits and timeouts inside a process use the monotonic clock
//! (`tokio::time`, `Instant`), which no wall clock change moves.
//!
//! The wall clock is read only here ([`now`]), and only for what is a record,
//! never compared with a time the database wrote: an event's `occurred_at`,
//! a log line's time, a webhook's signature time, an order's estimated
//! delivery date. `crates/runtime/tests/clock.rs` holds the sources to that.
//!
//! `CLOCK_SKEW_SECS` (tests only; 0 by default) sets this clock off by that
//! many seconds, ahead or behind, to show that a skewed instance changes
//! nothing that matters (`e2e/tests/clock_skew.rs`).

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};

/// Most a test may set the clock off by: a day.
pub const MAX_SKEW_SECS: i64 = 24 * 3600;

static SKEW_SECS: AtomicI64 = AtomicI64::new(0);

/// The time of day as this process sees it: the system's, off by the
/// skew set for tests.
pub fn now() -> DateTime<Utc> {
    Utc::now() + chrono::Duration::seconds(SKEW_SECS.load(Ordering::Relaxed))
}

/// Sets the process's clock `secs` seconds off the system's (negative:
/// behind), for the whole process. Refused beyond [`MAX_SKEW_SECS`].
pub fn set_skew(secs: i64) -> anyhow::Result<()> {
    anyhow::ensure!(
        secs.abs() <= MAX_SKEW_SECS,
        "CLOCK_SKEW_SECS must be between -{MAX_SKEW_SECS} and {MAX_SKEW_SECS}, not {secs}"
    );
    SKEW_SECS.store(secs, Ordering::Relaxed);
    Ok(())
}

/// The skew set, in seconds.
pub fn skew_secs() -> i64 {
    SKEW_SECS.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skew_moves_the_clock_and_a_huge_one_is_refused() {
        let before = Utc::now();
        set_skew(300).unwrap();
        let skewed = now();
        set_skew(0).unwrap();
        let off = (skewed - before).num_seconds();
        assert!((300..302).contains(&off), "{off}");
        assert!(set_skew(MAX_SKEW_SECS + 1).is_err());
        assert!(set_skew(-MAX_SKEW_SECS - 1).is_err());
        assert_eq!(skew_secs(), 0);
    }
}
