//! The Kafka consumer loop. For each record: decode the envelope, then in one
//! transaction record its event id in the inbox (a duplicate stops here) and
//! apply the handler; commit; only then store the offset. Records are handled
//! in the order received, so one order's events (one key, one partition) keep
//! their order. Records already fetched when one arrives (up to
//! `batch_max`) are applied in one transaction, one commit for all; if any
//! of them fails, the batch is rolled back and its records are handled one
//! by one as below, so a batch changes the cost and never the outcome.
//! Transient failures are retried with backoff and jitter without
//! moving on. A record that cannot be decoded, or that the handler rejects
//! `max_attempts` times, is dead-lettered (see [`dead_letter`]): kept
//! in the service's database, copied to `<topic>.dlq` with the error in its
//! headers, and its key parked, so the order's later records queue behind it
//! until it is replayed. The loop goes on with other orders.
//!
//! Here is the contract: what a handler implements, how its errors are
//! taken, and the two entry points, [`Consumer`] and [`Applier`]. The
//! mechanics are in private submodules: `run` polls and stores offsets,
//! `batch` applies a fetched batch in one transaction (at once, when the
//! handler [`Handler::batches`]), `apply` applies one record with its inbox row, `retry` retries and dead-letters, `observe`
//! holds a record's span and counts. Two are public: [`dead_letter`] (parking
//! and replaying a key) and [`inbox`] (how long the inbox remembers).

mod apply;
mod batch;
pub mod dead_letter;
pub mod inbox;
mod observe;
pub use observe::set_ignored_spans;
mod retry;
mod run;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use async_trait::async_trait;
use omnisaga_proto::v1::{envelope::Payload, Envelope};
use prost::Message as _;
use sqlx::{PgConnection, PgPool};

use crate::{
    es::event::{event_id, TraceContext},
    es::store::StoreError,
    messaging::kafka::KafkaConfig,
    work::OutboxWaker,
};

/// One decoded record handed to a [`Handler`].
#[derive(Debug, Clone)]
pub struct Incoming {
    pub envelope: Envelope,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub trace: TraceContext,
}

impl Incoming {
    /// The order the event is about, as a UUID: what every handler keys its
    /// rows by. An id that is not one is a rejection (the record is
    /// dead-lettered once its attempts are spent), the same for every
    /// service.
    pub fn order_id(&self) -> Result<uuid::Uuid, HandlerError> {
        let id = &self.envelope.order_id;
        uuid::Uuid::parse_str(id)
            .map_err(|_| HandlerError::Rejected(anyhow::anyhow!("order id {id:?} is not a UUID")))
    }
}

/// Why a [`Handler`] did not apply an event: the error taxonomy at the Kafka
/// boundary, which decides what becomes of the record. A conflict or trouble
/// in the infrastructure is `Transient`: the record is retried, and the loop
/// does not move past it until it passes. An event that cannot be applied is
/// `Rejected`: after `max_attempts` rejections it is dead-lettered and its key
/// parked. The `From` conversions below sort the runtime's own errors.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Infrastructure trouble or a concurrency conflict: retried until it passes.
    #[error("transient: {0:#}")]
    Transient(anyhow::Error),
    /// The event cannot be applied: retried a bounded number of times, then dead-lettered.
    #[error("rejected: {0:#}")]
    Rejected(anyhow::Error),
}

impl From<sqlx::Error> for HandlerError {
    /// Data exceptions and constraint violations (SQLSTATE classes 22 and
    /// 23) fail the same way on every try, so they are rejections: retried a
    /// bounded number of times, then dead-lettered instead of blocking the
    /// consumer forever. Everything else (connections, deadlocks, a database
    /// restarting) is transient.
    fn from(e: sqlx::Error) -> Self {
        let permanent = e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|code| code.starts_with("22") || code.starts_with("23"));
        if permanent {
            Self::Rejected(e.into())
        } else {
            Self::Transient(e.into())
        }
    }
}

impl From<StoreError> for HandlerError {
    /// A stored event that cannot be decoded fails on every try: rejected. A
    /// version conflict passes once the stream is loaded again: transient. A
    /// database error is sorted as above.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Corrupt(_) => Self::Rejected(e.into()),
            StoreError::Database(db) => db.into(),
            conflict @ StoreError::Conflict { .. } => Self::Transient(conflict.into()),
        }
    }
}

/// Applies one event in the consumer's transaction.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Called at most once per event id and consumer (the inbox filters
    /// duplicates); everything it writes commits with the inbox record.
    async fn handle(&self, tx: &mut PgConnection, event: &Incoming) -> Result<(), HandlerError>;

    /// Applies `events`, the new records of one fetched batch in the order
    /// they arrived (so one order's in its order), in the batch's
    /// transaction: called instead of `handle` for a batch when
    /// [`Handler::batches`] says so. A failure rolls the whole batch back,
    /// and its records are then handled one by one with `handle`. The
    /// default handles each in turn.
    async fn handle_batch(&self, tx: &mut PgConnection, events: &[&Incoming]) -> Result<(), HandlerError> {
        for event in events {
            self.handle(tx, event).await?;
        }
        Ok(())
    }

    /// Whether [`Handler::handle_batch`] is the handler's own, applying a
    /// batch in fewer statements than one by one: a batch's records are then
    /// handed over at once, under one span linked to each record's. Otherwise
    /// (the default) each record is handled in its own span.
    fn batches(&self) -> bool {
        false
    }

    /// The stream `handle` loads for `event`, if it loads one: read in the
    /// statement that records the event in the inbox, so the load costs no
    /// round trip of its own (`es::store::preload`). The default: none.
    fn stream(&self, event: &Incoming) -> Option<String> {
        let _ = event;
        None
    }

    /// Whether the handler acts on events of `event_type` (the record's
    /// `event_type` header). A record it does not act on is passed over
    /// before any transaction: no inbox row, no commit, counted as
    /// `ignored`. `handle` must do nothing with such an event. The default
    /// takes every type.
    fn wants(&self, event_type: &str) -> bool {
        let _ = event_type;
        true
    }
}

/// The event types a handler acts on, taken from its `reacts_to` (the
/// function the catalog test asks, `testing::catalog_drift`) once, for its
/// [`Handler::wants`]: a record of another type is passed over before any
/// transaction. A type this build does not know goes the whole way, so the
/// tolerant reader counts it ([`Applier::handle`]).
#[derive(Debug, Clone)]
pub struct Wanted(BTreeSet<&'static str>);

impl Wanted {
    /// The types of the payloads `reacts_to` takes.
    pub fn reacted_to(reacts_to: impl Fn(&Payload) -> bool) -> Self {
        Self(
            omnisaga_proto::every_payload()
                .iter()
                .filter(|p| reacts_to(p))
                .map(Payload::event_type)
                .collect(),
        )
    }

    /// Whether a record of `event_type` (its header) is handled.
    pub fn wants(&self, event_type: &str) -> bool {
        self.0.contains(event_type) || omnisaga_proto::newest_schema_version(event_type).is_none()
    }
}

/// A record as received, owned: what is kept when it is dead-lettered.
#[derive(Debug, Clone)]
pub struct Raw {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

impl Raw {
    /// The trace context its producer put in the headers.
    pub fn trace(&self) -> TraceContext {
        TraceContext {
            traceparent: self.headers.get("traceparent").cloned(),
            tracestate: self.headers.get("tracestate").cloned(),
        }
    }

    /// The record as a handler sees it, once `envelope` is decoded from it.
    pub fn incoming(&self, envelope: Envelope) -> Incoming {
        Incoming {
            envelope,
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
            trace: self.trace(),
        }
    }
}

/// What a consumer shares with its dead-letter tools: how to apply a record
/// (`apply`, or `apply_in` inside a caller's transaction).
pub struct Applier<H> {
    /// Inbox and dead-letter name of this consumer (the service name).
    pub name: String,
    pub pool: PgPool,
    pub handler: Arc<H>,
    /// Woken after a commit, for what the commit wrote.
    pub waker: OutboxWaker,
    /// Rejections of one record before it is dead-lettered.
    pub max_attempts: u32,
}

/// How applying one record ended.
pub enum Applied {
    /// Handled and committed with its inbox row.
    Done,
    /// The inbox had its event id: nothing was applied again.
    Duplicate,
    /// Its key is parked: the record was queued behind the earlier dead letter.
    Parked,
}

/// A consumer group member that feeds `topics` to its applier.
pub struct Consumer<H> {
    pub group: String,
    pub topics: Vec<String>,
    pub kafka: KafkaConfig,
    pub applier: Arc<Applier<H>>,
    /// Where the running consumer is published for the progress endpoint.
    pub slot: crate::messaging::progress::Slot,
    /// Most records applied in one transaction.
    pub batch_max: usize,
}

/// Decodes an envelope and checks what every handler relies on. An
/// envelope whose payload this build does not know (a newer producer's
/// event type, or a newer version of a known one) decodes without a
/// payload: the applier skips it ([`Applier::handle`]). An older version is
/// handed on as it came, so a fact is stored as it came
/// ([`crate::es::upcast`] runs where it is read).
pub fn decode(bytes: &[u8]) -> Result<Envelope, String> {
    let env = Envelope::decode(bytes).map_err(|e| format!("undecodable envelope: {e}"))?;
    if env.payload.is_none() {
        if env.event_type.is_empty() {
            return Err("envelope has neither a payload nor an event type".into());
        }
        // A type and version this build knows arrives with its payload:
        // without it, the record is broken, not newer.
        if !is_newer(&env) {
            return Err(format!(
                "a {} event without its payload (schema version {})",
                env.event_type, env.schema_version
            ));
        }
    }
    if event_id(&env).is_none() {
        return Err(format!("event id {:?} is not a UUID", env.event_id));
    }
    if env.order_id.is_empty() {
        return Err("envelope has no order id".into());
    }
    Ok(env)
}

/// True when `env` is of a type this build does not know, or of a newer
/// version of one it knows than it reads: a newer producer's event.
pub fn is_newer(env: &Envelope) -> bool {
    match omnisaga_proto::newest_schema_version(&env.event_type) {
        None => true,
        Some(newest) => env.schema_version > newest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn about(order_id: &str) -> Incoming {
        let payload = Payload::OrderPlaced(Default::default());
        Incoming {
            envelope: crate::es::event::envelope(
                "order",
                order_id,
                payload,
                &Default::default(),
                chrono::Utc::now(),
            ),
            topic: "omnisaga.orders.v1".into(),
            partition: 0,
            offset: 0,
            trace: TraceContext::default(),
        }
    }

    #[test]
    fn a_handler_wants_the_types_it_reacts_to_and_the_ones_this_build_does_not_know() {
        let wanted = Wanted::reacted_to(|p| matches!(p, Payload::OrderPlaced(_)));
        assert!(wanted.wants("OrderPlaced"));
        assert!(!wanted.wants("PaymentFailed"));
        assert!(
            wanted.wants("OrderTeleported"),
            "a newer producer's type is counted, not ignored"
        );
    }

    #[test]
    fn the_order_id_is_offered_parsed_and_one_that_is_no_uuid_is_a_rejection() {
        let id = uuid::Uuid::new_v4();
        assert_eq!(about(&id.to_string()).order_id().unwrap(), id);
        match about("o-1").order_id() {
            Err(HandlerError::Rejected(e)) => assert_eq!(e.to_string(), r#"order id "o-1" is not a UUID"#),
            other => panic!("expected a rejection, got {other:?}"),
        }
    }
}
