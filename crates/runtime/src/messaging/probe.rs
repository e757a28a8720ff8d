//! What the probes report besides the database: whether the broker
//! answers, watched in the background so that `/readyz` never waits for it.
//!
//! The broker is no part of readiness. A service whose broker is down still
//! serves its API (order accepts placements into its outbox, which the
//! relay publishes once the broker is back), so taking every instance out of
//! the load balancer during a broker outage would refuse what the outbox
//! would keep. The broker's state is a detail of `/readyz` and the gauge
//! `omnisaga_broker_reachable`.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::messaging::kafka::KafkaConfig;

/// How old the broker's last check may be before a probe starts another.
const REFRESH: Duration = Duration::from_secs(1);
/// Longest one check waits for the broker's metadata.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

static REACHABLE: std::sync::LazyLock<prometheus::IntGaugeVec> = std::sync::LazyLock::new(|| {
    crate::base::metrics::gauge_vec(
        "omnisaga_broker_reachable",
        "1 when the broker answered this instance's last metadata request (checked when probed), 0 when not",
        &[],
    )
});

/// The broker as last seen: `Ok` when it answered, the error otherwise.
pub type Seen = Result<(), String>;

/// Asks the broker for its metadata now and then, off the probe's path.
#[derive(Clone)]
pub struct BrokerWatch(Arc<Inner>);

struct Inner {
    client: BaseConsumer,
    last: Mutex<Option<(Instant, Seen)>>,
    checking: AtomicBool,
}

impl BrokerWatch {
    /// Watches the broker of `kafka`; the first check starts at once.
    pub fn new(kafka: &KafkaConfig) -> anyhow::Result<Self> {
        let client: BaseConsumer = crate::messaging::kafka::base(kafka).create()?;
        let watch = Self(Arc::new(Inner {
            client,
            last: Mutex::new(None),
            checking: AtomicBool::new(false),
        }));
        watch.refresh();
        Ok(watch)
    }

    /// The broker as last seen (`None` before the first check ended); starts
    /// another check in the background when that one is over a second old.
    pub fn seen(&self) -> Option<Seen> {
        let last = self.0.last.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if last.as_ref().is_none_or(|(at, _)| at.elapsed() >= REFRESH) {
            self.refresh();
        }
        last.map(|(_, seen)| seen)
    }

    /// Starts a check unless one is running (or no runtime is there to run it).
    fn refresh(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.0.checking.swap(true, Ordering::SeqCst) {
            return;
        }
        let inner = self.0.clone();
        runtime.spawn_blocking(move || {
            let seen = inner
                .client
                .fetch_metadata(None, CHECK_TIMEOUT)
                .map(|_| ())
                .map_err(|e| e.to_string());
            REACHABLE
                .with_label_values::<&str>(&[])
                .set(i64::from(seen.is_ok()));
            *inner.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), seen));
            inner.checking.store(false, Ordering::SeqCst);
        });
    }
}

/// The broker's state as `/readyz` words it.
pub fn describe(seen: Option<Seen>) -> String {
    match seen {
        None => "not checked yet".to_owned(),
        Some(Ok(())) => "reachable".to_owned(),
        Some(Err(e)) => format!("unreachable: {e}"),
    }
}
