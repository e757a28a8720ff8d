//! The load generator: places orders over HTTP at a fixed arrival rate (open
//! loop: each request has its intended start time and latency is measured
//! from it, so a slow system cannot slow the generator down and hide its own
//! queueing) and follows every saga on the broker until the warehouse says
//! "Order ready for shipment".
//!
//! A [`run`] goes in steps, each in a module of its own: the set-up takes
//! the stack's usage counters and memory; the open-loop sender
//! (`sender`) places the orders and then waits for them to drain; the
//! [`Follower`] collects the sagas' ends off the broker while a sampler and
//! a progress line watch (`watch`); the per-run report (`summary`) makes
//! the [`RunResult`].

mod follower;
mod sender;
mod summary;
mod watch;

use std::{collections::BTreeMap, time::Duration};

use anyhow::Result;
use serde::Serialize;
use tokio::time::Instant;

pub use self::follower::Follower;
use self::{
    sender::{Schedule, Sender},
    summary::Usage,
    watch::{Samples, Watch},
};
use super::{probe, Latency};

/// What one run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunResult {
    pub label: String,
    pub offered_per_s: f64,
    pub seconds: f64,
    pub orders: u64,
    pub accepted: u64,
    pub completed: u64,
    pub cancelled: u64,
    pub errors: u64,
    pub error_samples: Vec<String>,
    /// Sagas finished per second in the second half of the window (steady state).
    pub completed_per_s: f64,
    /// From the intended start of the POST to its 201.
    pub http_201: Latency,
    /// From the intended start of the POST to OrderReadyForShipment handed to the warehouse's producer (its record timestamp).
    pub saga: Latency,
    pub cpu_seconds: BTreeMap<String, f64>,
    pub cpu_seconds_per_order: f64,
    /// PostgreSQL commits in the services' databases per finished order.
    pub transactions_per_order: f64,
    /// PostgreSQL statements (BEGIN and COMMIT included) per finished
    /// order, when the server keeps `pg_stat_statements`.
    pub statements_per_order: Option<f64>,
    /// The same per service's database, with its most frequent statements.
    pub by_database: BTreeMap<String, DatabaseCost>,
    pub outbox_backlog_max: f64,
    pub consumer_lag_max: f64,
    /// Per service: (largest outbox backlog, largest consumer lag) seen.
    pub backlog_by_service: BTreeMap<String, (f64, f64)>,
    pub rss_mib: BTreeMap<String, Rss>,
}

/// What finished orders cost one service's database.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DatabaseCost {
    pub transactions_per_order: f64,
    pub statements_per_order: f64,
    /// Statement text (on one line) and its calls per order, most first.
    pub top_statements: Vec<(String, f64)>,
}

impl RunResult {
    /// Every order answered 201 and finished its saga, none cancelled, no errors.
    pub fn clean(&self) -> bool {
        self.errors == 0 && self.cancelled == 0 && self.completed == self.orders
    }
}

/// A process's resident memory during a run, in MiB.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Rss {
    pub start: f64,
    pub end: f64,
    pub max: f64,
}

/// What the generator needs of the running stack.
pub struct Target {
    /// Sends an operator's token; orders go with their customer's instead.
    pub http: reqwest::Client,
    pub order_url: String,
    /// The bench's customers' tokens: order `i` is placed by customer `i % len`.
    pub customer_tokens: std::sync::Arc<Vec<String>>,
    pub service_urls: Vec<String>,
    pub service_names: Vec<String>,
    /// Processes whose CPU and memory are measured (services, broker, trace viewer).
    pub processes: Vec<(String, u32)>,
    pub pg_server: String,
    pub db_prefix: String,
}

/// One run: its label, arrival rate and length.
pub struct RunOptions {
    pub label: String,
    pub rate: f64,
    pub duration: Duration,
    /// How long to wait after the last request for the sagas to finish.
    pub drain: Duration,
}

/// Places `rate` orders per second for `duration` and follows them to the end.
pub async fn run(target: &Target, follower: &Follower, options: &RunOptions) -> Result<RunResult> {
    let total = (options.rate * options.duration.as_secs_f64()).round().max(1.0) as u64;
    let interval = Duration::from_secs_f64(1.0 / options.rate);
    follower.sagas.begin_run();
    let sender = Sender::new(target, &follower.sagas);
    let before = Usage::take(target).await?;
    let samples = Samples::new(&target.processes);
    let schedule = Schedule {
        start: Instant::now() + Duration::from_millis(20),
        interval,
        total,
    };
    let watch = Watch::start(
        target,
        &samples,
        &sender.answers,
        &follower.sagas,
        options,
        schedule.start,
    );

    sender.open_loop(schedule).await;
    sender.drain(options.drain).await;

    let cost = Usage::take(target).await?.since(&before);
    watch.stop().await;
    let sagas = follower.sagas.take();
    Ok(summary::result(
        options,
        schedule,
        sagas,
        &sender.answers,
        &samples,
        cost,
    ))
}

/// Waits until no service has an outbox backlog or consumer lag, so one run
/// does not inherit the previous one's queue.
pub async fn wait_idle(target: &Target, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let sums = probe::scrape(
            &target.http,
            &target.service_urls,
            &["omnisaga_outbox_backlog", "omnisaga_consumer_lag"],
        )
        .await;
        if sums.iter().all(|s| *s == 0.0) {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "the stack did not become idle within {timeout:?} (outbox backlog {}, consumer lag {})",
                sums[0],
                sums[1]
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
