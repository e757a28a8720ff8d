//! Sequenced dead letters (after Axon's sequenced dead-letter queue). A
//! record a consumer could not handle is kept in the service's database and
//! copied to `<topic>.dlq` with `dlq.error`, `dlq.source.topic`,
//! `dlq.source.partition` and `dlq.source.offset` headers; its key (the order
//! id) is parked, so the order's later records are kept behind it rather than
//! applied out of order. Replaying a key applies its dead letters in order
//! through the same handler and unparks it once none is left. The admin API
//! (`/v1/admin/dead-letters`, [`crate::edge::dead_letters`]) lists, shows
//! and replays them; the `omnisaga` CLI calls it.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Row};

use crate::{
    es::event::event_id,
    es::outbox,
    messaging::consumer::{decode, Applier, Handler, Raw},
    messaging::kafka::Topics,
};

/// Keeps `raw` as a dead letter, parks its key and copies it to the topic's
/// dead-letter topic through the outbox, in the caller's transaction.
pub async fn park(
    tx: &mut PgConnection,
    consumer: &str,
    raw: &Raw,
    event_type: Option<&str>,
    reason: &str,
) -> Result<(), sqlx::Error> {
    let mut headers = raw.headers.clone();
    headers.insert("dlq.error".into(), reason.to_owned());
    headers.insert("dlq.source.topic".into(), raw.topic.clone());
    headers.insert("dlq.source.partition".into(), raw.partition.to_string());
    headers.insert("dlq.source.offset".into(), raw.offset.to_string());
    headers.insert("dlq.consumer".into(), consumer.to_owned());
    let kept = sqlx::query(
        "INSERT INTO dead_letters (consumer, message_key, topic, partition, \"offset\", event_type, payload, headers, error)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (consumer, topic, partition, \"offset\") DO NOTHING",
    )
    .bind(consumer)
    .bind(&raw.key)
    .bind(&raw.topic)
    .bind(raw.partition)
    .bind(raw.offset)
    .bind(event_type)
    .bind(&raw.payload)
    .bind(sqlx::types::Json(&headers))
    .bind(reason)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if kept == 0 {
        return Ok(()); // parked before (the topic is being re-read)
    }
    sqlx::query("INSERT INTO parked (consumer, message_key) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(consumer)
        .bind(&raw.key)
        .execute(&mut *tx)
        .await?;
    outbox::enqueue_raw(
        tx,
        &Topics::dead_letter(&raw.topic),
        &raw.key,
        &raw.payload,
        &headers,
    )
    .await
}

/// How a replay of one key went.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ReplayReport {
    pub key: String,
    /// Dead letters of the key handled this time.
    pub replayed: u32,
    /// Dead letters of the key still parked.
    pub remaining: i64,
    /// Why the replay stopped, when a letter failed again.
    pub error: Option<String>,
}

/// A consumer whose dead letters can be replayed.
#[async_trait]
pub trait Replay: Send + Sync + 'static {
    fn name(&self) -> &str;
    async fn replay(&self, key: &str) -> Result<ReplayReport, sqlx::Error>;
}

#[async_trait]
impl<H: Handler> Replay for Applier<H> {
    fn name(&self) -> &str {
        &self.name
    }

    async fn replay(&self, key: &str) -> Result<ReplayReport, sqlx::Error> {
        let mut replayed = 0;
        loop {
            let mut tx = self.pool.begin().await?;
            let parked =
                sqlx::query("SELECT 1 FROM parked WHERE consumer = $1 AND message_key = $2 FOR UPDATE")
                    .bind(&self.name)
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await?;
            let next = sqlx::query(
                "SELECT id, topic, partition, \"offset\", payload, headers FROM dead_letters
                 WHERE consumer = $1 AND message_key = $2 ORDER BY id LIMIT 1",
            )
            .bind(&self.name)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = next else {
                if parked.is_some() {
                    sqlx::query("DELETE FROM parked WHERE consumer = $1 AND message_key = $2")
                        .bind(&self.name)
                        .bind(key)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                tracing::info!(key, replayed, "dead letters replayed, key unparked");
                return Ok(ReplayReport {
                    key: key.to_owned(),
                    replayed,
                    remaining: 0,
                    error: None,
                });
            };
            let id: i64 = row.get(0);
            let raw = Raw {
                topic: row.get(1),
                partition: row.get(2),
                offset: row.get(3),
                key: key.to_owned(),
                payload: row.get(4),
                headers: row.get::<sqlx::types::Json<BTreeMap<String, String>>, _>(5).0,
            };
            let applied = match decode(&raw.payload) {
                Err(reason) => Err(reason),
                Ok(env) => match event_id(&env) {
                    None => Err("event id is not a UUID".to_owned()),
                    Some(event) => self
                        .apply_in(&mut tx, event, &raw.incoming(env))
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                },
            };
            if let Err(error) = applied {
                tx.rollback().await?;
                let remaining = self.record_failure(id, key, &error).await?;
                return Ok(ReplayReport {
                    key: key.to_owned(),
                    replayed,
                    remaining,
                    error: Some(error),
                });
            }
            sqlx::query("DELETE FROM dead_letters WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            self.waker.wake();
            replayed += 1;
        }
    }
}

impl<H: Handler> Applier<H> {
    async fn record_failure(&self, id: i64, key: &str, error: &str) -> Result<i64, sqlx::Error> {
        sqlx::query(
            "UPDATE dead_letters SET attempts = attempts + 1, error = $2, updated_at = now() WHERE id = $1",
        )
        .bind(id)
        .bind(error)
        .execute(&self.pool)
        .await?;
        sqlx::query_scalar("SELECT count(*) FROM dead_letters WHERE consumer = $1 AND message_key = $2")
            .bind(&self.name)
            .bind(key)
            .fetch_one(&self.pool)
            .await
    }
}
