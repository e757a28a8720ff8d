//! Applying one record: its inbox row, the parked check and its handler, in
//! one transaction, with the outbox woken for what the commit wrote.

use sqlx::PgConnection;
use tracing::Instrument;

use super::dead_letter;
use super::{Applied, Applier, Handler, HandlerError, Incoming, Raw};
use crate::es::event::event_id;

impl<H: Handler> Applier<H> {
    /// Applies `incoming` (decoded from `raw`) unless its key is parked.
    pub async fn apply(&self, raw: &Raw, incoming: &Incoming) -> Result<Applied, HandlerError> {
        let noted = crate::es::store::preloading(self.apply_noted(raw, incoming));
        let (applied, written) = crate::work::noting(noted).await;
        if matches!(applied, Ok(Applied::Done | Applied::Parked)) {
            self.waker.wake_for(written);
        }
        applied
    }

    async fn apply_noted(&self, raw: &Raw, incoming: &Incoming) -> Result<Applied, HandlerError> {
        let id = event_id(&incoming.envelope)
            .ok_or_else(|| HandlerError::Rejected(anyhow::anyhow!("event id is not a UUID")))?;
        let mut tx = self.pool.begin().await?;
        let (parked, fresh) = self.record(&mut tx, &[&raw.key], &[(id, incoming)]).await?;
        if parked {
            let reason = "parked behind an earlier dead letter of the same key";
            dead_letter::park(
                &mut tx,
                &self.name,
                raw,
                Some(&incoming.envelope.event_type),
                reason,
            )
            .await?;
            tx.commit().await?;
            return Ok(Applied::Parked);
        }
        if fresh.is_empty() {
            tracing::debug!("duplicate event skipped");
            tx.commit().await?;
            return Ok(Applied::Duplicate);
        }
        self.handle(&mut tx, incoming).await?;
        tx.commit().instrument(crate::base::db::span("COMMIT")).await?;
        Ok(Applied::Done)
    }

    /// The handler, for an event of a type this build knows. One it does not
    /// know (a newer producer's type or version of a type, met during a
    /// rolling upgrade that started the producer first) is skipped and counted
    /// (`omnisaga_consumer_unknown_events_total`), never dead-lettered: its
    /// order is not held up, the other events of the order go on. docs/api.md
    /// says the upgrade order that keeps a consumer from missing one.
    pub(super) async fn handle(
        &self,
        tx: &mut PgConnection,
        incoming: &Incoming,
    ) -> Result<(), HandlerError> {
        if incoming.envelope.payload.is_some() {
            return self.handler.handle(tx, incoming).await;
        }
        let event_type: String = incoming.envelope.event_type.chars().take(64).collect();
        crate::base::metrics::get()
            .unknown_events
            .with_label_values(&[self.name.as_str(), incoming.topic.as_str(), event_type.as_str()])
            .inc();
        tracing::warn!(
            event_type = %event_type,
            "an event of a type this build does not know was skipped (tolerant reader): upgrade the consumers of a topic before its producer"
        );
        Ok(())
    }

    /// The handler's [`Handler::handle_batch`] for the events of types this
    /// build knows; the others are skipped and counted as in `handle`.
    pub(super) async fn handle_batch(
        &self,
        tx: &mut PgConnection,
        incomings: &[&Incoming],
    ) -> Result<(), HandlerError> {
        let mut known = Vec::with_capacity(incomings.len());
        for incoming in incomings {
            if incoming.envelope.payload.is_some() {
                known.push(*incoming);
            } else {
                self.handle(tx, incoming).await?;
            }
        }
        if known.is_empty() {
            return Ok(());
        }
        self.handler.handle_batch(tx, &known).await
    }

    /// Inbox record and handler, in `tx`; false when the event was a duplicate.
    pub async fn apply_in(
        &self,
        tx: &mut PgConnection,
        id: uuid::Uuid,
        incoming: &Incoming,
    ) -> Result<bool, HandlerError> {
        let fresh = sqlx::query(
            "INSERT INTO inbox (consumer, event_id, topic, partition, \"offset\")
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&self.name)
        .bind(id)
        .bind(&incoming.topic)
        .bind(incoming.partition)
        .bind(incoming.offset)
        .execute(&mut *tx)
        .instrument(crate::base::db::span("INSERT inbox"))
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            tracing::debug!("duplicate event skipped");
            return Ok(false);
        }
        self.handle(tx, incoming).await?;
        Ok(true)
    }

    /// Records the event ids of `batch` in the inbox unless one of `keys` is
    /// parked, in one statement: whether a key is parked (nothing recorded
    /// then), and the ids that were not in the inbox yet. A parked row it
    /// finds stays share-locked until `tx` ends, so a replay cannot unpark
    /// the key in between. The same statement reads the streams the handler
    /// loads for the batch's records ([`Handler::stream`]) and hands them to
    /// its loads (`es::store::preload`).
    pub(super) async fn record(
        &self,
        tx: &mut PgConnection,
        keys: &[&str],
        batch: &[(uuid::Uuid, &Incoming)],
    ) -> Result<(bool, std::collections::HashSet<uuid::Uuid>), HandlerError> {
        let ids: Vec<uuid::Uuid> = batch.iter().map(|(id, _)| *id).collect();
        let topics: Vec<&str> = batch.iter().map(|(_, i)| i.topic.as_str()).collect();
        let partitions: Vec<i32> = batch.iter().map(|(_, i)| i.partition).collect();
        let offsets: Vec<i64> = batch.iter().map(|(_, i)| i.offset).collect();
        let mut streams: Vec<String> = batch.iter().filter_map(|(_, i)| self.handler.stream(i)).collect();
        streams.sort_unstable();
        streams.dedup();
        let query = if streams.is_empty() {
            RECORD
        } else {
            RECORD_AND_READ
        };
        let (parked, fresh, stream_ids, versions, envelopes): Recorded = sqlx::query_as(query)
            .bind(&self.name)
            .bind(&ids)
            .bind(&topics)
            .bind(&partitions)
            .bind(&offsets)
            .bind(keys)
            .bind(&streams)
            .fetch_one(&mut *tx)
            .instrument(crate::base::db::span("INSERT inbox"))
            .await?;
        if !streams.is_empty() && !parked {
            crate::es::store::preload(read_ahead(streams, stream_ids, versions, envelopes)?);
        }
        Ok((parked, fresh.into_iter().collect()))
    }
}

type Recorded = (bool, Vec<uuid::Uuid>, Vec<String>, Vec<i64>, Vec<Vec<u8>>);

/// The part both inbox statements share: the parked check (`parked_key`)
/// and the inbox rows written (`recorded`).
macro_rules! parked_and_recorded {
    () => {
        "WITH parked_key AS (
             SELECT 1 FROM parked WHERE consumer = $1 AND message_key = ANY($6) LIMIT 1 FOR SHARE
         ), recorded AS (
             INSERT INTO inbox (consumer, event_id, topic, partition, \"offset\")
             SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::int[], $5::bigint[])
             WHERE NOT EXISTS (SELECT 1 FROM parked_key)
             ON CONFLICT DO NOTHING RETURNING event_id
         )"
    };
}

/// The inbox statement: the parked check and the new ids.
const RECORD: &str = concat!(
    parked_and_recorded!(),
    "
     SELECT EXISTS (SELECT 1 FROM parked_key), array(SELECT event_id FROM recorded),
            $7::text[], '{}'::bigint[], '{}'::bytea[]"
);

/// [`RECORD`], and the events of the streams `$7`, in stream and version
/// order.
const RECORD_AND_READ: &str = concat!(
    parked_and_recorded!(),
    ", stored AS (
         SELECT stream_id, version, envelope FROM events
         WHERE stream_id = ANY($7) AND NOT EXISTS (SELECT 1 FROM parked_key)
     )
     SELECT EXISTS (SELECT 1 FROM parked_key), array(SELECT event_id FROM recorded),
            array(SELECT stream_id FROM stored ORDER BY stream_id, version),
            array(SELECT version FROM stored ORDER BY stream_id, version),
            array(SELECT envelope FROM stored ORDER BY stream_id, version)"
);

/// Each of `streams` with its events as [`RECORD_AND_READ`] returned them
/// (a stream with none is new, and read as such).
fn read_ahead(
    streams: Vec<String>,
    stream_ids: Vec<String>,
    versions: Vec<i64>,
    envelopes: Vec<Vec<u8>>,
) -> Result<Vec<(String, Vec<crate::es::store::StoredEvent>)>, HandlerError> {
    let mut read: Vec<(String, Vec<crate::es::store::StoredEvent>)> =
        streams.into_iter().map(|s| (s, Vec::new())).collect();
    for ((stream_id, version), bytes) in stream_ids.iter().zip(versions).zip(&envelopes) {
        let stored = crate::es::store::decode(version, bytes)?;
        if let Some((_, events)) = read.iter_mut().find(|(s, _)| s == stream_id) {
            events.push(stored);
        }
    }
    Ok(read)
}
