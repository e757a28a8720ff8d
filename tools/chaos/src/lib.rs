//! The fault suite, in the manner of Jepsen's checkers: run load, inject
//! faults one after another (each healed before the next), stop the load,
//! wait until the stack is quiet, then read every database and the broker
//! and check the saga's invariants ([`check`]). `make chaos` and `make soak`
//! run it through `omnisaga-chaos`; `e2e/tests/chaos.rs` is the short form
//! `make test` runs.

pub mod broker;
pub mod check;
pub mod cluster;
pub mod commits;
pub mod dead_letters;
pub mod faults;
pub mod load;
pub mod observe;
pub mod pgfault;
pub mod schedule;

use std::{
    path::Path,
    time::{Duration, SystemTime},
};

use anyhow::Result;
use rand::SeedableRng as _;
use serde::Serialize;
use tokio::time::Instant;

pub use self::{
    check::{TopicRead, Verdict},
    faults::{Fault, Injected},
    load::{Load, LoadOptions, Outcome, Placement},
    schedule::{parse_seed, seed_from_env},
};
use omnisaga_stack::{client::Client, Stack, StackOptions};

/// How a run goes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub load: LoadOptions,
    /// Injected in order, each healed before the next.
    pub faults: Vec<Fault>,
    /// Go round the faults again until this long has passed (a soak);
    /// `None`: once through.
    pub repeat_for: Option<Duration>,
    /// Load without faults before the first fault (the orders I9 judges
    /// the traces of are placed mostly then).
    pub lead_in: Duration,
    /// Load without faults after each fault.
    pub gap: Duration,
    /// Longest the stack may take to go quiet once the load stopped.
    pub settle: Duration,
    /// Every random choice of the fault schedule (which service a random
    /// kill takes, how long until the next, which instance) comes from it:
    /// `CHAOS_SEED` replays a run's schedule ([`seed_from_env`]).
    pub seed: u64,
}

impl RunOptions {
    /// The short form `make test` runs: 6 orders/s, 10 s before the first
    /// fault, 3 s after each, once through, 2 minutes to go quiet, the seed
    /// of `CHAOS_SEED` or a new one.
    pub fn short(faults: Vec<Fault>) -> Result<Self> {
        Ok(Self {
            load: LoadOptions {
                rate: 6.0,
                ..LoadOptions::default()
            },
            faults,
            repeat_for: None,
            lead_in: Duration::from_secs(10),
            gap: Duration::from_secs(3),
            settle: Duration::from_secs(120),
            seed: seed_from_env()?,
        })
    }
}

/// What a run did and found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The fault schedule's seed: `CHAOS_SEED` replays it.
    pub seed: u64,
    pub placed: usize,
    pub accepted: usize,
    /// Refused for certain (a 4xx with nothing indeterminate before it).
    pub refused: usize,
    /// Indeterminate (no answer, a timeout, a 5xx): maybe applied.
    pub unanswered: usize,
    /// Of those, how many made an order after all (their key holds one).
    pub unanswered_applied: usize,
    pub cancels_asked: usize,
    pub faults: Vec<Injected>,
    /// Seconds from the end of the load until the stack was quiet; `None`
    /// when it was not within the settle time.
    pub quiet_after: Option<f64>,
    /// How many polls of the inbox watcher saw a commit: the resolution
    /// I6 judged commit order at (1: it saw everything at once, and could
    /// tell nothing).
    pub commit_polls: usize,
    /// What reading every topic back found (I10).
    pub topics: TopicRead,
    pub invariants: Vec<Verdict>,
    pub passed: bool,
    /// Run length in seconds.
    pub seconds: f64,
}

/// The provider simulator's latency in the suite's stack: a real
/// provider's order of magnitude, 4 callers still make 40 calls a second,
/// five times the default load.
pub const PROVIDER_LATENCY_MS: u32 = 100;

/// The stack a fault run needs: its own broker (the run kills it), a payment
/// deadline short enough that declined orders are cancelled within the
/// run, brisk warehouse steps, a trace viewer that keeps a soak's traces
/// (each order leaves several: its saga, the pick, the messages), chat
/// messages sent to the stack's webhook sink (`Stack::webhook`, what
/// reached the channel per message id and per order) and a provider that
/// answers a share of the approvals it recorded "unavailable", each answer
/// after about 100 ms as a real provider's: a call then spends most of its
/// time between asking and recording the answer, so a random kill of
/// payment lands in that window too (the failpoint test makes it at will).
pub fn stack_options() -> StackOptions {
    StackOptions {
        broker: omnisaga_stack::Broker::OwnBehindProxy,
        webhook_sink: true,
        ..StackOptions::for_test()
    }
    .warehouse_ms(50, 20, 50)
    .set_env("order", "ORDER_PAYMENT_DEADLINE_MS", "10000")
    // Some approvals charged and answered "unavailable": I3 holds the
    // ledger to the streams through them.
    .set_env("payment", "PAYMENT_AMBIGUOUS_RATE", "0.05")
    .set_env(
        "payment",
        "PAYMENT_PROVIDER_LATENCY_MS",
        &PROVIDER_LATENCY_MS.to_string(),
    )
    .set_env("trace-viewer", "TRACES_MAX", "30000")
}

/// [`stack_options`] as `faults` need them, with `brokers` Kafka nodes:
/// database proxies for the PostgreSQL faults, two instances of a service
/// whose relay leader is partitioned (somebody must take over), and for a
/// cluster (`brokers` > 1) its own nodes without the network proxy (the
/// broker network faults need one node).
pub fn stack_options_for(faults: &[Fault], brokers: usize) -> StackOptions {
    let mut options = stack_options();
    if brokers > 1 {
        options.broker = omnisaga_stack::Broker::Own;
        options.brokers = brokers;
    }
    for fault in faults {
        match fault {
            Fault::PartitionRelayLeader(service, _) | Fault::PartitionRelayLock(service, _) => {
                options.database_proxies = true;
                if options.instances_of(service) < 2 {
                    options = options.instances(service, 2);
                }
            }
            Fault::SlowDatabase(..) => options.database_proxies = true,
            _ => {}
        }
    }
    options
}

/// Runs load and `options.faults` against `stack` and checks the invariants.
pub async fn run(stack: &mut Stack, options: &RunOptions) -> Result<Report> {
    eprintln!(
        "[chaos] seed {} (CHAOS_SEED={} replays this fault schedule)",
        options.seed, options.seed
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
    let client = Client::new(stack);
    let before = observe::stock(stack).await?;
    let commits = commits::Commits::start(stack);
    let started = Instant::now();
    let epoch = SystemTime::now();
    let load = Load::start(client.clone(), options.load.clone());
    tokio::time::sleep(options.lead_in).await;
    let mut injected = Vec::new();
    'rounds: loop {
        for fault in &options.faults {
            eprintln!(
                "[chaos] {:>6.1} s  {} (placed so far: {})",
                started.elapsed().as_secs_f64(),
                fault.name(),
                load.placed()
            );
            injected.push(faults::inject(stack, &client, &load, fault, started, &mut rng).await);
            tokio::time::sleep(options.gap).await;
            if options.repeat_for.is_some_and(|d| started.elapsed() >= d) {
                break 'rounds;
            }
        }
        if options.repeat_for.is_none_or(|d| started.elapsed() >= d) || options.faults.is_empty() {
            break;
        }
    }
    let history = load.stop().await;
    let stopped = Instant::now();
    eprintln!(
        "[chaos] {:>6.1} s  load stopped after {} placements; waiting for quiet",
        started.elapsed().as_secs_f64(),
        history.len()
    );
    let mut quiet_after = None;
    while stopped.elapsed() < options.settle {
        if check::quiet(stack, &history).await.unwrap_or(false) {
            quiet_after = Some(stopped.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let applied = commits.stop().await?;
    let commit_polls = applied
        .iter()
        .map(|a| a.seen)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let (invariants, topics, seen) = check::all(stack, &history, &before, applied, &injected, epoch).await?;
    let count = |f: fn(&Outcome) -> bool| history.iter().filter(|p| f(&p.outcome)).count();
    let passed = quiet_after.is_some()
        && invariants.iter().all(|v| v.holds)
        && injected.iter().all(|f| f.error.is_none());
    let unanswered_applied = history
        .iter()
        .filter(|p| matches!(p.outcome, Outcome::Unknown { .. }))
        .filter(|p| seen.keys.contains_key(&(p.customer.clone(), p.key.clone())))
        .count();
    Ok(Report {
        seed: options.seed,
        placed: history.len(),
        accepted: count(|o| matches!(o, Outcome::Accepted { .. })),
        refused: count(|o| matches!(o, Outcome::Refused { .. })),
        unanswered: count(|o| matches!(o, Outcome::Unknown { .. })),
        unanswered_applied,
        cancels_asked: history.iter().filter(|p| p.cancel.is_some()).count(),
        faults: injected,
        quiet_after,
        commit_polls,
        topics,
        invariants,
        passed,
        seconds: started.elapsed().as_secs_f64(),
    })
}

impl Report {
    /// The report as people read it.
    /// A test's verdict on the run: writes the report to
    /// `target/test-artefacts/<artefact>`, prints its summary, and fails
    /// unless enough orders were accepted to judge and everything held.
    pub fn conclude(&self, artefact: &str) -> Result<()> {
        self.write(
            &omnisaga_stack::repo_root()?
                .join("target/test-artefacts")
                .join(artefact),
        )?;
        eprintln!("{}", self.summary());
        anyhow::ensure!(self.accepted > 100, "too few orders to judge: {}", self.accepted);
        anyhow::ensure!(self.passed, "{}", self.summary());
        Ok(())
    }

    pub fn summary(&self) -> String {
        let mut out = format!(
            "seed {} (CHAOS_SEED={} replays the fault schedule)\n\
             orders: {} placed, {} accepted, {} refused, {} indeterminate (maybe applied; {} did make an order); {} cancellations asked\n",
            self.seed,
            self.seed,
            self.placed,
            self.accepted,
            self.refused,
            self.unanswered,
            self.unanswered_applied,
            self.cancels_asked
        );
        out.push_str("faults:\n");
        for f in &self.faults {
            out.push_str(&format!(
                "  {:>6.1} s .. {:>6.1} s  {}{}\n",
                f.began,
                f.healed,
                f.fault,
                f.note.as_ref().map(|n| format!("  ({n})")).unwrap_or_default()
                    + &f.error
                        .as_ref()
                        .map(|e| format!("  (ERROR: {e})"))
                        .unwrap_or_default()
            ));
        }
        match self.quiet_after {
            Some(s) => out.push_str(&format!("quiet {s:.1} s after the load stopped\n")),
            None => out.push_str("NOT quiet within the settle time\n"),
        }
        out.push_str(&format!(
            "inbox watcher: commits seen over {} polls\n",
            self.commit_polls
        ));
        let t = &self.topics;
        out.push_str(&format!(
            "topics read back: {} records, {} events, {} lost, {} phantom, {} duplicates ({:.2}%), {} poison, {} dead letters, {} keys out of order\n",
            t.records,
            t.events,
            t.lost,
            t.phantom,
            t.duplicates,
            t.duplicate_rate * 100.0,
            t.poison,
            t.dead_letters,
            t.reordered_keys
        ));
        for v in &self.invariants {
            out.push_str(&format!(
                "  {} {:<4} {} ({} checked)\n",
                if v.holds { "ok  " } else { "FAIL" },
                v.id,
                v.rule,
                v.checked
            ));
            for c in &v.counterexamples {
                out.push_str(&format!("         - {c}\n"));
            }
        }
        out.push_str(if self.passed { "PASSED\n" } else { "FAILED\n" });
        out
    }

    /// Writes the report as JSON to `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }
}
