//! Prometheus metrics, served at `GET /metrics` by every service
//! (`crate::edge::scrape`). Counters
//! and histograms are updated where things happen; gauges that describe
//! state (outbox backlog, parked keys, consumer lag, and a service's own,
//! such as the pick backlog) are read when scraped. Every series carries a
//! `service` label.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, OnceLock},
};

use prometheus::{
    exponential_buckets, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};
use sqlx::PgPool;

pub use prometheus::{HistogramVec as Histograms, IntCounterVec as Counters, IntGaugeVec as Gauges};

/// Every metric the runtime knows. Services add theirs through [`Metrics::registry`].
pub struct Metrics {
    pub registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub consumer_handled: IntCounterVec,
    pub consumer_duration: HistogramVec,
    pub consumer_lag: IntGaugeVec,
    pub consumer_rebalances: IntCounterVec,
    pub outbox_backlog: IntGauge,
    pub outbox_published: IntCounterVec,
    pub outbox_latency: HistogramVec,
    pub inbox_pruned: IntCounter,
    pub dead_letters: IntCounterVec,
    pub dead_letters_parked: IntGauge,
    pub unknown_events: IntCounterVec,
    /// The latency histograms' exemplars (`base::exemplars`).
    pub exemplars: super::exemplars::Exemplars,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

fn latency_buckets() -> Vec<f64> {
    // 1 ms to about 16 s.
    exponential_buckets(0.001, 2.0, 15).unwrap_or_default()
}

impl Metrics {
    fn new(service: &str) -> Result<Self, prometheus::Error> {
        let labels = [("service".to_owned(), service.to_owned())].into_iter().collect();
        let registry = Registry::new_custom(None, Some(labels))?;
        let counter = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let histogram =
            |name: &str, help: &str, labels: &[&str]| -> Result<HistogramVec, prometheus::Error> {
                let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(latency_buckets()), labels)?;
                registry.register(Box::new(h.clone()))?;
                Ok(h)
            };
        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let consumer_lag = IntGaugeVec::new(
            Opts::new("omnisaga_consumer_lag", "Records not yet handled, per partition"),
            &["consumer", "topic", "partition"],
        )?;
        registry.register(Box::new(consumer_lag.clone()))?;
        register_process(&registry)?;
        Ok(Self {
            http_requests: counter(
                "http_server_requests_total",
                "HTTP requests by route and status",
                &["route", "method", "status"],
            )?,
            http_duration: histogram(
                "http_server_request_duration_seconds",
                "HTTP request latency",
                &["route", "method", "status"],
            )?,
            consumer_handled: counter(
                "omnisaga_consumer_handled_total",
                "Records handled, by outcome (ok, duplicate, retried, dead_lettered, parked)",
                &["consumer", "topic", "outcome"],
            )?,
            consumer_duration: histogram(
                "omnisaga_consumer_handle_duration_seconds",
                "Time to handle one record, retries included",
                &["consumer", "topic", "partition"],
            )?,
            consumer_lag,
            consumer_rebalances: counter(
                "omnisaga_consumer_rebalanced_partitions_total",
                "Partitions assigned to or revoked from this instance's consumers",
                &["change"],
            )?,
            outbox_backlog: gauge("omnisaga_outbox_backlog", "Outbox rows not yet published")?,
            outbox_published: counter(
                "omnisaga_outbox_published_total",
                "Outbox rows published",
                &["topic"],
            )?,
            outbox_latency: histogram(
                "omnisaga_outbox_publish_latency_seconds",
                "From the commit of an outbox row to its delivery report",
                &["topic"],
            )?,
            inbox_pruned: {
                let c = IntCounter::new(
                    "omnisaga_inbox_pruned_total",
                    "Inbox rows deleted once older than the inbox retention",
                )?;
                registry.register(Box::new(c.clone()))?;
                c
            },
            dead_letters: counter(
                "omnisaga_dead_letters_total",
                "Records dead-lettered (kept, copied to the .dlq topic)",
                &["consumer", "topic"],
            )?,
            dead_letters_parked: gauge(
                "omnisaga_dead_letters_parked",
                "Keys (orders) parked behind a dead letter",
            )?,
            unknown_events: counter(
                "omnisaga_consumer_unknown_events_total",
                "Events of a type this build does not know (a newer producer's), skipped",
                &["consumer", "topic", "event_type"],
            )?,
            exemplars: super::exemplars::Exemplars::new(latency_buckets()),
            registry,
        })
    }
}

/// The process's own series: `process_cpu_seconds_total` (its rate is
/// the CPU load), `process_resident_memory_bytes`, `process_open_fds`,
/// `process_max_fds`, `process_start_time_seconds` and the like (Linux),
/// and `omnisaga_build_info` (1, labelled with the version and whether it
/// is a debug build), so dashboards tell versions apart during a rolling
/// upgrade.
fn register_process(registry: &Registry) -> Result<(), prometheus::Error> {
    registry.register(Box::new(crate::base::process::ProcessCollector::new()?))?;
    let build_info = IntGaugeVec::new(
        Opts::new("omnisaga_build_info", "1, labelled with the build that runs"),
        &["version", "profile"],
    )?;
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    build_info
        .with_label_values(&[env!("CARGO_PKG_VERSION"), profile])
        .set(1);
    registry.register(Box::new(build_info))
}

/// Creates the metrics with the `service` label. Call once at start; before
/// (in tests) [`get`] gives metrics labelled `service="test"`.
pub fn init(service: &str) {
    if let Ok(m) = Metrics::new(service) {
        let _ = METRICS.set(m);
    }
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    METRICS.get_or_init(|| Metrics::new("test").expect("metric names are valid"))
}

/// A service's own counter, registered on first use.
pub fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    let _ = get().registry.register(Box::new(c.clone()));
    c
}

/// A service's own gauge, registered on first use.
pub fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    let _ = get().registry.register(Box::new(g.clone()));
    g
}

/// A service's own latency histogram (1 ms to about 16 s), registered on first use.
pub fn histogram_vec(name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(latency_buckets()), labels)
        .expect("valid metric");
    let _ = get().registry.register(Box::new(h.clone()));
    h
}

/// Reads state into gauges at scrape time.
pub type Refresh = Arc<dyn Fn(PgPool) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;
