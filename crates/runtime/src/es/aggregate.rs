//! The aggregate executor: the one way a service changes an order's stream.
//!
//! A service keeps each order as a stream of its own events (plus the facts
//! of other services it needs) and decides over it with a pure [`Decider`].
//! [`Executor::execute`] does everything around the decision in the
//! caller's transaction: load the stream, fold it, decide, wrap the new
//! events in envelopes, append them and enqueue the published ones, the last
//! two in one statement ([`store::append_publishing`]). A caller that needs
//! the state before it can build its command (payment asks its provider
//! first) splits that into [`Executor::load`] and [`Executor::decide`]; a
//! caller that owns its transaction gets the optimistic-concurrency retries
//! with [`Executor::execute_in_own_transaction`].
//!
//! One convention for other services' facts: a fact an aggregate keeps
//! ([`Wire::Fact`], e.g. payment's record of `OrderCancelled`) is stored as
//! the envelope it came in, the command's `cause`, never re-wrapped.

use std::{fmt::Debug, marker::PhantomData};

use chrono::{DateTime, Utc};
use omnisaga_proto::v1::{envelope::Payload, Envelope};
use sqlx::{PgConnection, PgPool};

use crate::{
    catalog::catalog,
    es::event::{self, EventMeta},
    es::store::{self, StoreError, StoredEvent},
};

/// An aggregate's pure `decide` and `evolve`: no I/O, so its tests are
/// given/when/then over events (`testing::decider`, with the `testing` feature).
pub trait Decider {
    type State: Default;
    type Command;
    type Event: Clone + PartialEq + Debug;
    type Error: PartialEq + Debug;
    /// The events `cmd` appends to a stream in `state`, or why it is refused.
    fn decide(state: &Self::State, cmd: Self::Command) -> Result<Vec<Self::Event>, Self::Error>;
    /// `state` with `event` folded in. No rules here: only what happened.
    fn evolve(state: Self::State, event: &Self::Event) -> Self::State;
}

/// How one event of an aggregate is written to its stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Wire {
    /// The aggregate's own event: a new envelope around `payload`, and an
    /// outbox row for the service's topic when `publish`.
    Own { payload: Box<Payload>, publish: bool },
    /// Another service's fact the aggregate keeps: the envelope it came in.
    Fact,
}

/// An aggregate kept as one stream per order: its decider, and how its
/// events map to and from the protobuf payloads (the service's `wire.rs`).
pub trait Aggregate: Decider {
    /// The service whose events these are (each envelope's `producer`).
    const PRODUCER: &'static str;
    /// The stream that holds `order_id`'s aggregate.
    fn stream(order_id: &str) -> String;
    /// The event a stored payload holds; `None` for a payload the aggregate
    /// never stores (the stream is then corrupt).
    fn from_wire(payload: &Payload) -> Option<Self::Event>;
    /// How `event` is written.
    fn to_wire(event: &Self::Event) -> Wire;
    /// The envelope as it goes on the topic, which every consumer and
    /// analyst reads: the stored one by default; an aggregate whose events
    /// hold personal data leaves it out here (the stream keeps it).
    fn public(envelope: &Envelope) -> Envelope {
        envelope.clone()
    }
}

/// True when `A` publishes events of `payload`'s type: it keeps them as its
/// own and writes them to its topic. What the topic catalog is held to
/// (`testing::catalog_drift`).
pub fn publishes<A: Aggregate>(payload: &Payload) -> bool {
    A::from_wire(payload).is_some_and(|e| matches!(A::to_wire(&e), Wire::Own { publish: true, .. }))
}

/// A stream as loaded: its events, their fold and its version.
pub struct Loaded<A: Aggregate> {
    pub state: A::State,
    /// The version the next event is appended after (0 for a new stream).
    pub version: i64,
    pub history: Vec<StoredEvent>,
}

impl<A: Aggregate> Loaded<A> {
    /// Folds `history`, a stream's events in version order (as
    /// [`store::load`] reads them, or a query that read the stream along
    /// with its work, each row through [`store::decode`]).
    pub fn fold(history: Vec<StoredEvent>) -> Result<Self, StoreError> {
        let mut state = A::State::default();
        for stored in &history {
            let event = stored
                .envelope
                .payload
                .as_ref()
                .and_then(A::from_wire)
                .ok_or(StoreError::Corrupt(stored.version))?;
            state = A::evolve(state, &event);
        }
        let version = history.last().map_or(0, |e| e.version);
        Ok(Loaded {
            state,
            version,
            history,
        })
    }

    /// A stream known not to exist yet (its id was just made): deciding on
    /// it costs no look at the store, and appending to it fails with
    /// [`StoreError::Conflict`] should it exist after all.
    pub fn new_stream() -> Self {
        Self {
            state: A::State::default(),
            version: 0,
            history: Vec::new(),
        }
    }
}

/// What a command did.
pub struct Executed<A: Aggregate> {
    /// The state with the new events folded in.
    pub state: A::State,
    /// The events decided, in order.
    pub events: Vec<A::Event>,
    /// The aggregate's own envelopes that went to the outbox, in order, as
    /// they went ([`Aggregate::public`]).
    pub published: Vec<Envelope>,
    /// Every envelope appended (one per event, facts as they came), in order.
    pub appended: Vec<Envelope>,
    /// The stream's version after the append.
    pub version: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecuteError<E: Debug> {
    /// The decider refused the command; nothing was written.
    #[error("refused: {0:?}")]
    Refused(E),
    /// A fact was decided but the command came with no envelope to keep.
    #[error("a fact of another service was decided without the envelope it came in")]
    FactWithoutCause,
    /// Loading or appending failed; [`StoreError::Conflict`] when another
    /// writer moved the stream on (roll back and retry).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Executes commands on aggregate `A`, publishing its events on `topic`.
pub struct Executor<A> {
    topic: String,
    /// When the events it decides occurred, if not at the clock's now.
    at: Option<DateTime<Utc>>,
    aggregate: PhantomData<fn() -> A>,
}

impl<A> Clone for Executor<A> {
    fn clone(&self) -> Self {
        Self {
            topic: self.topic.clone(),
            at: self.at,
            aggregate: PhantomData,
        }
    }
}

impl<A: Aggregate> Executor<A> {
    pub fn new(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            at: None,
            aggregate: PhantomData,
        }
    }

    /// The events it decides occurred `at` (their envelopes'
    /// `occurred_at`) instead of at the clock's now: for a caller that
    /// wrote that moment into a read model in the same transaction, so the
    /// row and a rebuild of it from the events agree (notification's
    /// `sent_at`).
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.at = Some(at);
        self
    }

    /// Loads `order_id`'s stream and folds it.
    pub async fn load(&self, conn: &mut PgConnection, order_id: &str) -> Result<Loaded<A>, StoreError> {
        Loaded::fold(store::load(conn, &A::stream(order_id)).await?)
    }

    /// Loads, decides `cmd` and appends what it decided, in `conn`'s
    /// transaction. `cause` is the envelope that brought the command, kept
    /// for the facts decided; `meta` goes on the new envelopes.
    pub async fn execute(
        &self,
        conn: &mut PgConnection,
        order_id: &str,
        cmd: A::Command,
        cause: Option<&Envelope>,
        meta: &EventMeta,
    ) -> Result<Executed<A>, ExecuteError<A::Error>> {
        let loaded = self.load(conn, order_id).await?;
        self.decide(conn, order_id, loaded, cmd, cause, meta).await
    }

    /// Decides `cmd` on a stream loaded in the same transaction and appends
    /// what it decided, with the outbox rows of the published events.
    pub async fn decide(
        &self,
        conn: &mut PgConnection,
        order_id: &str,
        loaded: Loaded<A>,
        cmd: A::Command,
        cause: Option<&Envelope>,
        meta: &EventMeta,
    ) -> Result<Executed<A>, ExecuteError<A::Error>> {
        let events = A::decide(&loaded.state, cmd).map_err(ExecuteError::Refused)?;
        let now = match self.at {
            Some(at) => at,
            None => crate::base::clock::now(),
        };
        let mut envelopes = Vec::with_capacity(events.len());
        let mut published = Vec::new();
        for event in &events {
            match A::to_wire(event) {
                Wire::Own { payload, publish } => {
                    // The catalog is the contract consumers were built
                    // against: an event on a topic that does not list it
                    // would be dead-lettered by every one of them.
                    debug_assert!(
                        !publish || catalog().publishes(A::PRODUCER, payload.event_type()),
                        "{} publishes {}, which its topic in schemas/topics.json does not carry",
                        A::PRODUCER,
                        payload.event_type()
                    );
                    let envelope = event::envelope(A::PRODUCER, order_id, *payload, meta, now);
                    if publish {
                        published.push(A::public(&envelope));
                    }
                    envelopes.push(envelope);
                }
                Wire::Fact => envelopes.push(cause.ok_or(ExecuteError::FactWithoutCause)?.clone()),
            }
        }
        let publish: std::collections::HashMap<&str, &Envelope> =
            published.iter().map(|e| (e.event_id.as_str(), e)).collect();
        let version = store::append_publishing(
            conn,
            &A::stream(order_id),
            loaded.version,
            &envelopes,
            |e| publish.get(e.event_id.as_str()).map(|public| (*public).clone()),
            &self.topic,
            &meta.trace,
        )
        .await?;
        let state = events.iter().fold(loaded.state, A::evolve);
        Ok(Executed {
            state,
            events,
            published,
            appended: envelopes,
            version,
        })
    }

    /// Loads, decides the command `cmd` makes of the state and appends, in a
    /// transaction of its own, committed; when another writer moved the
    /// stream on in between, rolled back and tried again on the new stream,
    /// up to `attempts` times in all.
    pub async fn execute_in_own_transaction(
        &self,
        pool: &PgPool,
        order_id: &str,
        cmd: impl Fn(&A::State) -> A::Command,
        meta: &EventMeta,
        attempts: u32,
    ) -> Result<Executed<A>, ExecuteError<A::Error>> {
        let mut attempt = 1;
        loop {
            let mut tx = pool.begin().await.map_err(StoreError::from)?;
            let loaded = self.load(&mut tx, order_id).await?;
            let command = cmd(&loaded.state);
            match self.decide(&mut tx, order_id, loaded, command, None, meta).await {
                Ok(done) => {
                    tx.commit().await.map_err(StoreError::from)?;
                    return Ok(done);
                }
                Err(ExecuteError::Store(StoreError::Conflict { .. })) if attempt < attempts => {
                    tx.rollback().await.map_err(StoreError::from)?;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
