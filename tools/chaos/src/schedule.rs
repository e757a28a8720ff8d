//! The fault schedule's randomness: every random choice a run makes
//! (which service a random kill takes, how long until the next, which
//! instance of a service) comes from one generator seeded by the run's
//! seed, printed at the start and in the report; `CHAOS_SEED=N` (or
//! `omnisaga-chaos --seed N`) replays the same schedule. What the stack
//! does meanwhile (timing, the broker's rebalances) is not replayed.

use std::time::Duration;

use anyhow::{Context, Result};
use rand::{rngs::StdRng, Rng as _};

use omnisaga_stack::SERVICES;

/// The seed `CHAOS_SEED` names, else a new one; an error when it is set to
/// anything but a number.
pub fn seed_from_env() -> Result<u64> {
    parse_seed(std::env::var("CHAOS_SEED").ok().as_deref())
}

/// `CHAOS_SEED`'s value as a seed; a new one when unset or empty.
pub fn parse_seed(value: Option<&str>) -> Result<u64> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => v
            .parse()
            .with_context(|| format!("the seed {v:?} (CHAOS_SEED, --seed) is no unsigned 64-bit number")),
        None => Ok(rand::random()),
    }
}

/// The next random kill: which service, and how long until the one after.
pub fn random_kill(rng: &mut StdRng) -> (&'static str, Duration) {
    let (service, _) = SERVICES[rng.random_range(0..SERVICES.len())];
    (service, Duration::from_millis(rng.random_range(5_000..=20_000)))
}

/// Which of the `running` instances a kill takes.
pub fn pick_instance(rng: &mut StdRng, running: &[usize]) -> usize {
    running[rng.random_range(0..running.len())]
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;

    use super::*;

    /// The random choices a seed makes: ten random kills, each with the
    /// instance it takes of three.
    fn schedule(seed: u64) -> Vec<(&'static str, Duration, usize)> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..10)
            .map(|_| {
                let (service, wait) = random_kill(&mut rng);
                (service, wait, pick_instance(&mut rng, &[1, 2, 3]))
            })
            .collect()
    }

    #[test]
    fn a_seed_replays_the_fault_schedule() {
        assert_eq!(schedule(42), schedule(42));
        assert_ne!(schedule(42), schedule(43));
        assert_eq!(parse_seed(Some(" 42 ")).unwrap(), 42);
        let err = parse_seed(Some("forty-two")).unwrap_err();
        assert!(format!("{err:#}")
            .contains("the seed \"forty-two\" (CHAOS_SEED, --seed) is no unsigned 64-bit number"));
        // Unset or empty: a new seed, different from run to run.
        assert_ne!(parse_seed(None).unwrap(), parse_seed(Some("")).unwrap());
    }
}
