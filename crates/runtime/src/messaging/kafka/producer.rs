//! The idempotent producer the outbox relay publishes with, recreated after
//! a fatal error.
//!
//! An idempotent producer that meets a fatal error (the broker broke its
//! sequence, fenced its id) refuses every record from then on: without a
//! new one the relay would fail every pass forever while the process looks
//! alive. So a pass that fails asks [`Producer::recover`], which replaces
//! a producer in that state with a new one (counted in
//! `omnisaga_producer_recreated_total`); `/healthz` says what happened, and
//! answers 503 while a producer stays broken (its replacement could not be
//! created), so the orchestrator restarts the instance.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
    time::Duration,
};

use anyhow::{Context, Result};
use rdkafka::{
    client::{Client, ClientContext},
    error::{KafkaError, KafkaResult},
    message::{DeliveryResult, Message as _, OwnedHeaders},
    producer::{BaseProducer, BaseRecord, Producer as _, ProducerContext},
    ClientConfig,
};
use tokio::sync::oneshot;

use super::KafkaConfig;

/// The idempotent producer the outbox relay publishes with.
pub fn producer(kafka: &KafkaConfig, client_id: &str) -> Result<Producer> {
    let mut config = super::base(kafka);
    config
        .set("client.id", client_id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("message.timeout.ms", "30000");
    Producer::start(config)
}

/// Where a record landed: `(partition, offset)`.
pub type Delivered = KafkaResult<(i32, i64)>;

/// Hands each delivery report to the future of its `send`.
pub struct Deliveries;

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<oneshot::Sender<Delivered>>;

    fn delivery(&self, result: &DeliveryResult<'_>, waiting: Self::DeliveryOpaque) {
        let delivered = match result {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => Err(e.clone()),
        };
        // The sender of a record whose future was dropped no longer asks.
        let _ = waiting.send(delivered);
    }
}

static RECREATED: std::sync::LazyLock<prometheus::IntCounterVec> = std::sync::LazyLock::new(|| {
    crate::base::metrics::counter_vec(
        "omnisaga_producer_recreated_total",
        "Kafka producers replaced after a fatal error (an idempotent producer refuses every record after one)",
        &[],
    )
});

/// A producer whose delivery reports are served by a thread of its own.
/// Cheap to clone; the clones share the producer, and its replacement
/// after a fatal error. The thread stops within a second of the last
/// clone's drop (or of its producer's replacement).
///
/// rdkafka's `FutureProducer` polls every 100 ms and then, because it rounds
/// the rest of each deadline down to whole milliseconds, polls with a zero
/// timeout until the deadline passes: a spin of up to a millisecond in every
/// 100, 0.9% of a core per idle service. This thread polls for a second at a
/// time; a report still wakes it at once.
#[derive(Clone)]
pub struct Producer {
    shared: Arc<Shared>,
    _last: Arc<LastHandle>,
}

struct Shared {
    config: ClientConfig,
    current: RwLock<Arc<Running>>,
    /// What the producer went through, for `/healthz`.
    health: Mutex<ProducerHealth>,
    recreated: AtomicU64,
}

/// One librdkafka producer and its polling thread's stop flag.
struct Running {
    producer: BaseProducer<Deliveries>,
    stop: AtomicBool,
}

/// Stops the polling thread when the last handle goes.
struct LastHandle(Arc<Shared>);

impl Drop for LastHandle {
    fn drop(&mut self) {
        self.0.running().stop.store(true, Ordering::Relaxed);
    }
}

/// What `/healthz` says of the producer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerHealth {
    /// The fatal error of a producer not replaced yet (its replacement
    /// failed): the relay cannot publish.
    pub broken: Option<String>,
    /// Producers replaced after a fatal error, and the last such error.
    pub recreated: u64,
    pub last_fatal: Option<String>,
}

impl Producer {
    fn start(config: ClientConfig) -> Result<Self> {
        let running = Self::create(&config)?;
        let shared = Arc::new(Shared {
            config,
            current: RwLock::new(running),
            health: Mutex::new(ProducerHealth::default()),
            recreated: AtomicU64::new(0),
        });
        Ok(Self {
            _last: Arc::new(LastHandle(shared.clone())),
            shared,
        })
    }

    /// A new librdkafka producer with its polling thread.
    fn create(config: &ClientConfig) -> Result<Arc<Running>> {
        let producer: BaseProducer<Deliveries> = config
            .create_with_context(Deliveries)
            .context("Failed to create the Kafka producer")?;
        let running = Arc::new(Running {
            producer,
            stop: AtomicBool::new(false),
        });
        let polled = running.clone();
        std::thread::Builder::new()
            .name("kafka delivery".into())
            .spawn(move || {
                while !polled.stop.load(Ordering::Relaxed) {
                    polled.producer.poll(Duration::from_secs(1));
                }
            })
            .context("Failed to start the producer's polling thread")?;
        Ok(running)
    }

    /// Queues one record; the future completes with its delivery report.
    /// Fails at once when the record cannot be queued (the local queue is
    /// full, the record is too large, the producer had a fatal error).
    pub fn send(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: Option<OwnedHeaders>,
    ) -> Result<impl Future<Output = Delivered> + Send + 'static, KafkaError> {
        let (report, delivered) = oneshot::channel();
        let mut record = BaseRecord::with_opaque_to(topic, Box::new(report))
            .key(key)
            .payload(payload);
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        self.shared.running().producer.send(record).map_err(|(e, _)| e)?;
        Ok(async move { delivered.await.unwrap_or(Err(KafkaError::Canceled)) })
    }

    /// Blocking: waits until every queued record is delivered or `timeout` passed.
    pub fn flush(&self, timeout: Duration) -> KafkaResult<()> {
        self.shared.running().producer.flush(timeout)
    }

    /// After a failed pass: when the producer had a fatal error, replaces
    /// it (what it held is lost with it; the outbox still has every row not
    /// marked published) and says so. True when it replaced one.
    pub fn recover(&self) -> bool {
        let old = self.shared.running();
        let Some((code, reason)) = old.producer.client().fatal_error() else {
            return false;
        };
        let fatal = format!("{code:?}: {reason}");
        let mut health = self.shared.health.lock().unwrap_or_else(|e| e.into_inner());
        match Self::create(&self.shared.config) {
            Ok(new) => {
                *self.shared.current.write().unwrap_or_else(|e| e.into_inner()) = new;
                old.stop.store(true, Ordering::Relaxed);
                let n = self.shared.recreated.fetch_add(1, Ordering::Relaxed) + 1;
                RECREATED.with_label_values::<&str>(&[]).inc();
                tracing::error!(error = %fatal, recreated = n, "the Kafka producer had a fatal error: replaced it");
                health.broken = None;
                health.recreated = n;
                health.last_fatal = Some(fatal);
                true
            }
            Err(e) => {
                tracing::error!(error = %fatal, cause = %format!("{e:#}"), "the Kafka producer had a fatal error and could not be replaced");
                health.broken = Some(fatal);
                false
            }
        }
    }

    /// What the producer went through (for `/healthz`).
    pub fn health(&self) -> ProducerHealth {
        self.shared
            .health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Runs `f` on the current librdkafka client (tests raise a fatal
    /// error through it).
    pub fn with_client<R>(&self, f: impl FnOnce(&Client<Deliveries>) -> R) -> R {
        f(self.shared.running().producer.client())
    }
}

impl Shared {
    fn running(&self) -> Arc<Running> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
