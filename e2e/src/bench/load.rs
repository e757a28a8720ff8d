//! The load generator: places orders over HTTP at a fixed arrival rate (open
//! loop: each request has its intended start time and latency is measured
//! from it, so a slow system cannot slow the generator down and hide its own
//! queueing) and follows every saga on the broker until the warehouse says
//! "Order ready for shipment".

use std::{
    collections::{BTreeMap, HashMap},
    io::IsTerminal,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use anyhow::Result;
use futures::StreamExt;
use hdrhistogram::Histogram;
use rdkafka::{
    consumer::{Consumer, StreamConsumer},
    message::Headers,
    ClientConfig, Message, Offset, TopicPartitionList,
};
use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;

use super::{histogram, probe, record, Latency};

/// The SKUs orders rotate through (the seed catalog stocks each generously).
const SKUS: [&str; 4] = ["SKU-MUG", "SKU-TSHIRT-M", "SKU-HOODIE-L", "SKU-BOTTLE"];
const ORDERS_TOPIC: &str = "omnisaga.orders.v1";
const WAREHOUSE_TOPIC: &str = "omnisaga.warehouse.v1";

/// A request not answered within this long counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// More requests than this in flight means the system stopped answering.
const MAX_IN_FLIGHT: u64 = 20_000;

#[derive(Default)]
struct Tracker {
    /// Intended start of every order answered 201 and not yet finished.
    pending: HashMap<String, Instant>,
    /// Sagas seen finishing before their 201 was read: (when, shipped or cancelled).
    early: HashMap<String, (Instant, bool)>,
    saga: Option<Histogram<u64>>,
    completions: Vec<Instant>,
    cancelled: u64,
}

impl Tracker {
    fn finish(&mut self, intended: Instant, at: Instant, ready: bool) {
        if ready {
            if let Some(h) = self.saga.as_mut() {
                record(h, at.saturating_duration_since(intended));
            }
            self.completions.push(at);
        } else {
            self.cancelled += 1;
        }
    }
}

/// Follows the order and warehouse topics from their end: every saga that
/// ends (ready for shipment, or cancelled) is reported to the current run.
///
/// A saga ends when the record that ends it was produced: its Kafka
/// timestamp (set when the service's relay hands it to the producer, before
/// the broker acknowledges it), not
/// when the follower happens to fetch it. So the follower can fetch lazily
/// (a long fetch wait, records gathered at the broker) and add next to no
/// load to the broker it measures.
pub struct Follower {
    tracker: Arc<Mutex<Tracker>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Follower {
    pub async fn start(brokers: &str) -> Result<Self> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("broker.address.family", "v4")
            .set(
                "group.id",
                format!("bench-follower-{}", uuid::Uuid::new_v4().simple()),
            )
            .set("group.protocol", "classic")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", FOLLOWER_FETCH_WAIT_MS)
            .set("fetch.min.bytes", "65536")
            .create()?;
        // Every partition the topics have (the services create them with
        // `KAFKA_TOPIC_PARTITIONS`), from the end.
        let mut tpl = TopicPartitionList::new();
        for topic in [ORDERS_TOPIC, WAREHOUSE_TOPIC] {
            let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
            let partitions = metadata
                .topics()
                .first()
                .map(|t| t.partitions().len())
                .unwrap_or(0);
            anyhow::ensure!(partitions > 0, "topic {topic} has no partitions yet");
            for p in 0..partitions as i32 {
                tpl.add_partition_offset(topic, p, Offset::End)?;
            }
        }
        consumer.assign(&tpl)?;
        let tracker = Arc::new(Mutex::new(Tracker::default()));
        let shared = tracker.clone();
        let clock = Clock::now();
        let task = tokio::spawn(async move {
            let mut stream = consumer.stream();
            while let Some(m) = stream.next().await {
                let Ok(m) = m else { continue };
                let at = m
                    .timestamp()
                    .to_millis()
                    .map_or_else(Instant::now, |ms| clock.instant(ms));
                let event_type = m
                    .headers()
                    .and_then(|h| h.iter().find(|h| h.key == "event_type"))
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned());
                let ready = match event_type.as_deref() {
                    Some("OrderReadyForShipment") => true,
                    Some("OrderCancelled") => false,
                    _ => continue,
                };
                let Some(key) = m.key().map(|k| String::from_utf8_lossy(k).into_owned()) else {
                    continue;
                };
                let mut t = shared.lock().unwrap_or_else(|e| e.into_inner());
                match t.pending.remove(&key) {
                    Some(intended) => t.finish(intended, at, ready),
                    None => {
                        t.early.insert(key, (at, ready));
                    }
                }
            }
        });
        Ok(Self { tracker, _task: task })
    }
}

/// How long the follower's fetches wait at the broker (it reads record
/// timestamps, so this bounds only how soon a run sees its last saga end).
const FOLLOWER_FETCH_WAIT_MS: &str = "250";

/// Maps wall-clock milliseconds (Kafka timestamps) onto the monotonic clock
/// the generator measures intended starts with.
#[derive(Clone, Copy)]
struct Clock {
    instant: Instant,
    unix_ms: i64,
}

impl Clock {
    fn now() -> Self {
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Self {
            instant: Instant::now(),
            unix_ms,
        }
    }

    fn instant(&self, unix_ms: i64) -> Instant {
        let offset = unix_ms - self.unix_ms;
        let magnitude = Duration::from_millis(offset.unsigned_abs());
        if offset >= 0 {
            self.instant + magnitude
        } else {
            self.instant.checked_sub(magnitude).unwrap_or(self.instant)
        }
    }
}

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
    pub outbox_backlog_max: f64,
    pub consumer_lag_max: f64,
    /// Per service: (largest outbox backlog, largest consumer lag) seen.
    pub backlog_by_service: BTreeMap<String, (f64, f64)>,
    pub rss_mib: BTreeMap<String, Rss>,
}

impl RunResult {
    /// Every order answered 201 and finished its saga, none cancelled, no errors.
    pub fn clean(&self) -> bool {
        self.errors == 0 && self.cancelled == 0 && self.completed == self.orders
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Rss {
    pub start: f64,
    pub end: f64,
    pub max: f64,
}

/// What the generator needs of the running stack.
pub struct Target {
    pub http: reqwest::Client,
    pub order_url: String,
    pub service_urls: Vec<String>,
    pub service_names: Vec<String>,
    /// Processes whose CPU and memory are measured (services, broker, trace viewer).
    pub processes: Vec<(String, u32)>,
    pub pg_server: String,
    pub db_prefix: String,
}

pub struct RunOptions {
    pub label: String,
    pub rate: f64,
    pub duration: Duration,
    /// How long to wait after the last request for the sagas to finish.
    pub drain: Duration,
}

/// Commits so far in the stack's databases, and the statements they ran
/// (BEGIN and COMMIT included) when the server keeps `pg_stat_statements`
/// (`infra/postgres/omnisaga.conf` preloads it).
async fn database_counters(target: &Target) -> Result<(i64, Option<i64>)> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(&format!("{}/postgres", target.pg_server)).await?;
    let pattern = format!("{}\\_%", target.db_prefix);
    let commits: Option<i64> =
        sqlx::query_scalar("SELECT sum(xact_commit)::bigint FROM pg_stat_database WHERE datname LIKE $1")
            .bind(&pattern)
            .fetch_one(&mut c)
            .await?;
    let statements = match sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(&mut c)
        .await
    {
        Ok(_) => sqlx::query_scalar::<_, Option<i64>>(
            "SELECT sum(s.calls)::bigint FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
             WHERE d.datname LIKE $1",
        )
        .bind(&pattern)
        .fetch_one(&mut c)
        .await
        .ok()
        .flatten(),
        Err(_) => None,
    };
    c.close().await?;
    Ok((commits.unwrap_or(0), statements))
}

fn order_body(i: u64) -> serde_json::Value {
    json!({
        "channel": "mobile",
        "items": [{"sku": SKUS[(i % 4) as usize], "quantity": 1}],
        "shipping_address": {"name": "Bench Customer", "line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "payment_method": "tok_visa",
        "customer_id": format!("bench-{}", i % 1000),
    })
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    accepted: AtomicU64,
    errors: AtomicU64,
    in_flight: AtomicU64,
}

/// Places `rate` orders per second for `duration` and follows them to the end.
pub async fn run(target: &Target, follower: &Follower, options: &RunOptions) -> Result<RunResult> {
    let total = (options.rate * options.duration.as_secs_f64()).round().max(1.0) as u64;
    let interval = Duration::from_secs_f64(1.0 / options.rate);
    {
        let mut t = follower.tracker.lock().unwrap_or_else(|e| e.into_inner());
        *t = Tracker {
            saga: Some(histogram()),
            ..Tracker::default()
        };
    }
    let counters = Arc::new(Counters::default());
    let http_hist = Arc::new(Mutex::new(histogram()));
    let error_samples = Arc::new(Mutex::new(Vec::<String>::new()));
    let (tx_before, statements_before) = database_counters(target).await?;
    let cpu_before = probe::CpuSnapshot::take(&target.processes);
    let rss: Arc<Mutex<BTreeMap<String, Rss>>> = Arc::new(Mutex::new(
        target
            .processes
            .iter()
            .filter_map(|(n, pid)| {
                let mib = probe::rss_bytes(*pid)? as f64 / 1048576.0;
                Some((
                    n.clone(),
                    Rss {
                        start: mib,
                        end: mib,
                        max: mib,
                    },
                ))
            })
            .collect(),
    ));
    let maxima = Arc::new(Mutex::new((0.0f64, 0.0f64)));
    let by_service: Arc<Mutex<BTreeMap<String, (f64, f64)>>> = Arc::default();
    let start = Instant::now() + Duration::from_millis(20);
    let done = Arc::new(tokio::sync::Notify::new());
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));

    // Sampler: backlogs from /metrics and RSS from /proc, once a second.
    let sampler = {
        let http = target.http.clone();
        let urls = target.service_urls.clone();
        let processes = target.processes.clone();
        let rss = rss.clone();
        let maxima = maxima.clone();
        let by_service = by_service.clone();
        let names = target.service_names.clone();
        let finished = finished.clone();
        tokio::spawn(async move {
            while !finished.load(Ordering::Relaxed) {
                let each = probe::scrape_each(
                    &http,
                    &urls,
                    &["omnisaga_outbox_backlog", "omnisaga_consumer_lag"],
                )
                .await;
                {
                    let mut per = by_service.lock().unwrap_or_else(|e| e.into_inner());
                    for (name, v) in names.iter().zip(&each) {
                        let entry = per.entry(name.clone()).or_default();
                        entry.0 = entry.0.max(v[0]);
                        entry.1 = entry.1.max(v[1]);
                    }
                    let mut m = maxima.lock().unwrap_or_else(|e| e.into_inner());
                    m.0 = m.0.max(each.iter().map(|v| v[0]).sum());
                    m.1 = m.1.max(each.iter().map(|v| v[1]).sum());
                }
                {
                    let mut r = rss.lock().unwrap_or_else(|e| e.into_inner());
                    for (name, pid) in &processes {
                        if let (Some(bytes), Some(entry)) = (probe::rss_bytes(*pid), r.get_mut(name)) {
                            let mib = bytes as f64 / 1048576.0;
                            entry.end = mib;
                            entry.max = entry.max.max(mib);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };

    // Progress, on one line on a terminal, every 5 s in a log.
    let progress = {
        let counters = counters.clone();
        let tracker = follower.tracker.clone();
        let finished = finished.clone();
        let label = options.label.clone();
        let duration = options.duration;
        tokio::spawn(async move {
            let tty = std::io::stderr().is_terminal();
            let tick = if tty {
                Duration::from_millis(250)
            } else {
                Duration::from_secs(5)
            };
            while !finished.load(Ordering::Relaxed) {
                tokio::time::sleep(tick).await;
                let elapsed = start.elapsed().min(duration);
                let share = elapsed.as_secs_f64() / duration.as_secs_f64();
                let width = 24;
                let filled = (share * width as f64).round() as usize;
                let (done, cancelled) = {
                    let t = tracker.lock().unwrap_or_else(|e| e.into_inner());
                    (t.completions.len() as u64, t.cancelled)
                };
                let line = format!(
                    "  {label:<14} [{}{}] {:>5.1}/{:.0} s  sent {}  201 {}  ready {}  cancelled {}  errors {}  in flight {}",
                    "#".repeat(filled),
                    "-".repeat(width - filled),
                    elapsed.as_secs_f64(),
                    duration.as_secs_f64(),
                    counters.sent.load(Ordering::Relaxed),
                    counters.accepted.load(Ordering::Relaxed),
                    done,
                    cancelled,
                    counters.errors.load(Ordering::Relaxed),
                    counters.in_flight.load(Ordering::Relaxed),
                );
                if tty {
                    eprint!("\r{line}\x1b[K");
                } else {
                    eprintln!("{line}");
                }
            }
            if tty {
                eprint!("\r\x1b[K");
            }
        })
    };

    // The open loop: request i is due at start + i * interval, whatever happened before.
    let mut i = 0u64;
    while i < total {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
        let now = Instant::now();
        while i < total {
            let intended = start + interval.mul_f64(i as f64);
            if intended > now {
                break;
            }
            counters.sent.fetch_add(1, Ordering::Relaxed);
            if counters.in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                i += 1;
                continue;
            }
            counters.in_flight.fetch_add(1, Ordering::Relaxed);
            let http = target.http.clone();
            let url = format!("{}/v1/orders", target.order_url);
            let counters = counters.clone();
            let http_hist = http_hist.clone();
            let errors = error_samples.clone();
            let tracker = follower.tracker.clone();
            let done = done.clone();
            let body = order_body(i);
            tokio::spawn(async move {
                let result = http
                    .post(url)
                    .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
                    .json(&body)
                    .timeout(REQUEST_TIMEOUT)
                    .send()
                    .await;
                let answered = Instant::now();
                let outcome = match result {
                    Ok(resp) if resp.status().as_u16() == 201 => {
                        match resp.json::<serde_json::Value>().await {
                            Ok(v) => v["order_id"]
                                .as_str()
                                .map(str::to_owned)
                                .ok_or_else(|| format!("201 without order_id: {v}")),
                            Err(e) => Err(format!("unreadable 201: {e}")),
                        }
                    }
                    Ok(resp) => {
                        let status = resp.status();
                        Err(format!("{status}: {}", resp.text().await.unwrap_or_default()))
                    }
                    Err(e) => Err(format!("request failed: {e}")),
                };
                match outcome {
                    Ok(id) => {
                        record(
                            &mut http_hist.lock().unwrap_or_else(|e| e.into_inner()),
                            answered.saturating_duration_since(intended),
                        );
                        counters.accepted.fetch_add(1, Ordering::Relaxed);
                        let mut t = tracker.lock().unwrap_or_else(|e| e.into_inner());
                        match t.early.remove(&id) {
                            Some((at, ready)) => t.finish(intended, at, ready),
                            None => {
                                t.pending.insert(id, intended);
                            }
                        }
                    }
                    Err(e) => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        let mut samples = errors.lock().unwrap_or_else(|e| e.into_inner());
                        if samples.len() < 5 {
                            samples.push(e);
                        }
                    }
                }
                counters.in_flight.fetch_sub(1, Ordering::Relaxed);
                done.notify_one();
            });
            i += 1;
        }
    }
    let window_end = start + options.duration;

    // Drain: wait until every request is answered and every accepted saga ended.
    let drain_deadline = Instant::now() + options.drain;
    loop {
        let outstanding = {
            let t = follower.tracker.lock().unwrap_or_else(|e| e.into_inner());
            counters.in_flight.load(Ordering::Relaxed) + t.pending.len() as u64
        };
        if outstanding == 0 || Instant::now() >= drain_deadline {
            break;
        }
        // Woken by answers; sagas end on the follower's side, so look again soon.
        let _ = tokio::time::timeout(Duration::from_millis(20), done.notified()).await;
    }
    let (tx_after, statements_after) = database_counters(target).await?;
    let cpu = probe::CpuSnapshot::take(&target.processes).since(&cpu_before);
    finished.store(true, Ordering::Relaxed);
    let _ = progress.await;
    sampler.abort();

    let t = std::mem::take(&mut *follower.tracker.lock().unwrap_or_else(|e| e.into_inner()));
    let completed = t.completions.len() as u64;
    let half = start + options.duration / 2;
    let steady = t
        .completions
        .iter()
        .filter(|&&c| c >= half && c < window_end)
        .count() as f64
        / (options.duration.as_secs_f64() / 2.0);
    let errors = counters.errors.load(Ordering::Relaxed) + t.pending.len() as u64;
    let mut samples = error_samples.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if !t.pending.is_empty() {
        samples.push(format!(
            "{} sagas did not reach OrderReadyForShipment within {:?} after the last order",
            t.pending.len(),
            options.drain
        ));
    }
    let cpu_total: f64 = cpu.values().sum();
    let (outbox_max, lag_max) = *maxima.lock().unwrap_or_else(|e| e.into_inner());
    let http_201 = Latency::of(&http_hist.lock().unwrap_or_else(|e| e.into_inner()));
    let rss_mib = rss.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let backlog_by_service = by_service.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(RunResult {
        label: options.label.clone(),
        offered_per_s: options.rate,
        seconds: options.duration.as_secs_f64(),
        orders: total,
        accepted: counters.accepted.load(Ordering::Relaxed),
        completed,
        cancelled: t.cancelled,
        errors,
        error_samples: samples,
        completed_per_s: steady,
        http_201,
        saga: t.saga.as_ref().map(Latency::of).unwrap_or_default(),
        cpu_seconds_per_order: if completed > 0 {
            cpu_total / completed as f64
        } else {
            0.0
        },
        cpu_seconds: cpu,
        transactions_per_order: if completed > 0 {
            (tx_after - tx_before) as f64 / completed as f64
        } else {
            0.0
        },
        statements_per_order: match (statements_before, statements_after) {
            (Some(before), Some(after)) if completed > 0 => Some((after - before) as f64 / completed as f64),
            _ => None,
        },
        outbox_backlog_max: outbox_max,
        consumer_lag_max: lag_max,
        backlog_by_service,
        rss_mib,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_timestamps_map_onto_the_monotonic_clock() {
        let clock = Clock::now();
        assert_eq!(clock.instant(clock.unix_ms), clock.instant);
        assert_eq!(
            clock.instant(clock.unix_ms + 1_500) - clock.instant,
            Duration::from_millis(1_500)
        );
        assert_eq!(
            clock.instant - clock.instant(clock.unix_ms - 250),
            Duration::from_millis(250)
        );
    }
}
