//! Failpoints: named places between two steps that must both happen (an
//! answer in hand and its commit, an acknowledgement and its record) where a
//! test build can end the process, so a test can prove what a crash in that
//! window leaves behind.
//!
//! `FAILPOINTS=<name>=abort[;<name>=abort...]` arms them at start
//! ([`arm_from_env`], from [`crate::boot::service::Base::start`]); the process
//! aborts (`std::process::abort`, SIGABRT: no destructor, no graceful stop,
//! nothing flushed, as a crash) the first time it reaches an armed one,
//! after one line on stderr naming it. A name or action this build does not
//! know, or any failpoint in a build without them, is refused at start.
//!
//! They exist only with the `failpoints` feature of this crate, which
//! `make build` and the test builds turn on and release builds never do:
//! without it [`hit`] is an empty inline function and compiles to nothing.
//! With it, an unarmed failpoint costs one atomic load (`OnceLock::get`).

use anyhow::{bail, Result};

/// Payment: the provider approved, the answer's transaction is not committed.
pub const PROVIDER_APPROVED: &str = "payment::after_approve_before_commit";
/// Relay: the broker acknowledged the rows, they are not marked published.
pub const RELAY_ACKED: &str = "relay::after_ack_before_mark";
/// Consumer: the batch's transaction committed, its offsets are not stored.
pub const CONSUMER_COMMITTED: &str = "consumer::after_commit_before_offset";
/// Notification: the channel took the message, its record is not committed.
pub const MESSAGE_SENT: &str = "notification::after_send_before_commit";

/// Every failpoint there is.
pub const ALL: [&str; 4] = [PROVIDER_APPROVED, RELAY_ACKED, CONSUMER_COMMITTED, MESSAGE_SENT];

/// Whether this build carries failpoints (the `failpoints` feature).
pub const COMPILED: bool = cfg!(feature = "failpoints");

#[cfg(feature = "failpoints")]
static ARMED: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();

/// Arms the failpoints `FAILPOINTS` names; an error for a name or action it
/// does not know, or for any in a build without failpoints. The first
/// arming in a process stands.
pub fn arm_from_env() -> Result<()> {
    arm(&std::env::var("FAILPOINTS").unwrap_or_default())
}

/// Arms the failpoints `spec` names ([`parse`]).
fn arm(spec: &str) -> Result<()> {
    let armed = parse(spec)?;
    if armed.is_empty() {
        return Ok(());
    }
    if !COMPILED {
        bail!(
            "FAILPOINTS is set, but this build has no failpoints: build with \
             `--features omnisaga-runtime/failpoints` (`make build` does)"
        );
    }
    eprintln!("failpoints armed: {}", armed.join(", "));
    #[cfg(feature = "failpoints")]
    let _ = ARMED.set(armed);
    Ok(())
}

/// The failpoints `spec` arms: `name=abort` entries separated by `;`
/// (`name=off` arms nothing, as an empty spec).
pub fn parse(spec: &str) -> Result<Vec<&'static str>> {
    let mut armed = Vec::new();
    for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((name, action)) = entry.split_once('=') else {
            bail!("FAILPOINTS entry {entry:?} is not <name>=<action>");
        };
        let Some(known) = ALL.iter().find(|n| **n == name.trim()) else {
            bail!(
                "FAILPOINTS names {:?}, which is none of {}",
                name.trim(),
                ALL.join(", ")
            );
        };
        match action.trim() {
            "abort" => armed.push(*known),
            "off" => {}
            other => bail!("FAILPOINTS action {other:?} of {known} is not abort or off"),
        }
    }
    Ok(armed)
}

/// The failpoint `name`: aborts the process when it is armed.
#[inline(always)]
pub fn hit(name: &'static str) {
    #[cfg(feature = "failpoints")]
    if let Some(armed) = ARMED.get() {
        if armed.contains(&name) {
            fire(name);
        }
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}

#[cfg(feature = "failpoints")]
#[cold]
fn fire(name: &str) -> ! {
    // stderr is unbuffered: the line is out before the abort.
    eprintln!("failpoint {name} hit: aborting the process");
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_arms_the_failpoints_it_names_with_abort() {
        assert_eq!(parse("").unwrap(), Vec::<&str>::new());
        assert_eq!(parse(" ; ").unwrap(), Vec::<&str>::new());
        assert_eq!(
            parse("relay::after_ack_before_mark=abort; payment::after_approve_before_commit = abort")
                .unwrap(),
            vec![RELAY_ACKED, PROVIDER_APPROVED]
        );
        assert_eq!(
            parse("relay::after_ack_before_mark=off").unwrap(),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn an_unknown_name_or_action_is_refused_with_what_there_is() {
        let unknown = parse("relay::typo=abort").unwrap_err().to_string();
        assert!(
            unknown.contains("relay::typo") && unknown.contains(RELAY_ACKED),
            "{unknown}"
        );
        let action = parse("relay::after_ack_before_mark=panic")
            .unwrap_err()
            .to_string();
        assert!(action.contains("\"panic\""), "{action}");
        assert!(parse("relay::after_ack_before_mark").is_err());
    }

    /// Only without the feature: with it, arming one here would abort the
    /// tests that pass it.
    #[cfg(not(feature = "failpoints"))]
    #[test]
    fn a_build_without_failpoints_refuses_to_arm_one() {
        let refused = arm("relay::after_ack_before_mark=abort").unwrap_err().to_string();
        assert!(
            refused.contains("--features omnisaga-runtime/failpoints"),
            "{refused}"
        );
        assert!(arm("").is_ok() && arm("relay::after_ack_before_mark=off").is_ok());
    }

    #[test]
    fn an_unarmed_failpoint_does_nothing() {
        for name in ALL {
            hit(name);
        }
    }

    /// What an unarmed failpoint costs in this build (printed with
    /// `--nocapture`); a loose bound, far above a load and a compare, on
    /// the fastest of 20 rounds, so a busy machine (the suite runs several
    /// binaries at once) slows some rounds and not the verdict.
    #[test]
    fn an_unarmed_failpoint_costs_next_to_nothing() {
        const N: u32 = 500_000;
        let per = (0..20)
            .map(|_| {
                let started = std::time::Instant::now();
                for _ in 0..N {
                    hit(std::hint::black_box(RELAY_ACKED));
                }
                started.elapsed() / N
            })
            .min()
            .expect("20 rounds");
        eprintln!("an unarmed failpoint: {per:?} a hit (failpoints compiled: {COMPILED})");
        assert!(per < std::time::Duration::from_nanos(100), "{per:?}");
    }
}
