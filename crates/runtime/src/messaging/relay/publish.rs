//! One pass of the relay: the oldest unpublished rows read, sent key by
//! key, each acknowledged before it counts as delivered.

use std::collections::{BTreeMap, HashMap};

use anyhow::Result;
use futures::future::join_all;
use rdkafka::message::{Header, OwnedHeaders};
use sqlx::{PgConnection, Row};

use super::Relay;
use crate::es::event::TraceContext;

/// What one pass's sends came to.
#[derive(Default)]
pub(super) struct Published {
    /// The ids of the rows delivered.
    pub(super) delivered: Vec<i64>,
    /// The keys all of whose rows were delivered.
    pub(super) delivered_keys: Vec<String>,
    /// The keys whose send failed (their later rows were held back).
    pub(super) failed_keys: Vec<String>,
    pub(super) first_error: Option<String>,
}

pub(super) struct Row_ {
    id: i64,
    topic: String,
    key: String,
    payload: Vec<u8>,
    headers: BTreeMap<String, String>,
    /// How old the row was when it was read, by the database's clock (which
    /// stamped `created_at`), and when that was, by the monotonic clock: an
    /// instance whose wall clock is off measures the right latency.
    age_at_read: f64,
    read: std::time::Instant,
}

impl Relay {
    /// Marks the rows `delivered` published and reads up to one batch of
    /// the rows not yet published, oldest first, but for the keys `held`
    /// back, in one statement on `conn` (the leader's lock connection). The
    /// read sees the table as it was before the marks, so it leaves the
    /// marked rows out by id.
    pub(super) async fn unpublished(
        &self,
        conn: &mut PgConnection,
        held: &[String],
        delivered: &[i64],
    ) -> Result<Vec<Row_>> {
        let rows = sqlx::query(
            "WITH marked AS (UPDATE outbox SET published_at = now() WHERE id = ANY($3))
             SELECT id, topic, message_key, payload, headers,
                    EXTRACT(EPOCH FROM clock_timestamp() - created_at)::float8 FROM outbox
             WHERE published_at IS NULL AND message_key <> ALL($2) AND id <> ALL($3)
             ORDER BY id LIMIT $1",
        )
        .bind(self.batch)
        .bind(held)
        .bind(delivered)
        .fetch_all(conn)
        .await?;
        let read = std::time::Instant::now();
        Ok(rows
            .into_iter()
            .map(|r| Row_ {
                id: r.get(0),
                topic: r.get(1),
                key: r.get(2),
                payload: r.get(3),
                headers: r.get::<sqlx::types::Json<BTreeMap<String, String>>, _>(4).0,
                age_at_read: r.get(5),
                read,
            })
            .collect())
    }

    /// Publishes `rows`; returns what was delivered and what failed.
    /// Keys go out side by side, but each key's rows one at a
    /// time in id order, and a key's first failure holds back its later rows
    /// until the next pass: records of one key in flight together can be
    /// reordered when one fails and the producer retries it after the next
    /// (librdkafka bumps the idempotent producer's epoch on a delivery
    /// timeout), and a later row must never reach the topic before an
    /// earlier one of the same order.
    pub(super) async fn publish(&self, rows: Vec<Row_>) -> Published {
        let mut by_key: Vec<Vec<Row_>> = Vec::new();
        let mut slot: HashMap<String, usize> = HashMap::new();
        for row in rows {
            match slot.get(&row.key) {
                Some(&i) => by_key[i].push(row),
                None => {
                    slot.insert(row.key.clone(), by_key.len());
                    by_key.push(vec![row]);
                }
            }
        }
        let chains = by_key.into_iter().map(|rows| async move {
            let key = rows.first().map(|r| r.key.clone()).unwrap_or_default();
            let mut delivered = Vec::with_capacity(rows.len());
            for row in rows {
                match self.send(row).await {
                    Ok(id) => delivered.push(id),
                    Err(e) => return (key, delivered, Some(e)),
                }
            }
            (key, delivered, None)
        });
        let mut published = Published::default();
        for (key, ids, error) in join_all(chains).await {
            published.delivered.extend(ids);
            match error {
                Some(e) => {
                    published.failed_keys.push(key);
                    published.first_error.get_or_insert(e);
                }
                None => published.delivered_keys.push(key),
            }
        }
        published
    }

    /// Sends one row and waits for the broker's acknowledgement; its id once
    /// delivered.
    async fn send(&self, row: Row_) -> Result<i64, String> {
        // One producer span per record, child of the transaction that wrote
        // it; the consumer continues from this span.
        let span = tracing::info_span!(
            "publish",
            otel.name = %format!("send {}", row.topic),
            otel.kind = "producer",
            messaging.system = "kafka",
            messaging.operation.type = "send",
            messaging.operation.name = "send",
            messaging.destination.name = %row.topic,
            messaging.kafka.message.key = %row.key,
            event.type = row.headers.get("event_type").map(String::as_str).unwrap_or(""),
            order.id = %row.key,
            messaging.destination.partition.id = tracing::field::Empty,
            messaging.kafka.offset = tracing::field::Empty,
        );
        let stored = TraceContext {
            traceparent: row.headers.get("traceparent").cloned(),
            tracestate: row.headers.get("tracestate").cloned(),
        };
        stored.attach(&span);
        let carried = span.in_scope(TraceContext::current);
        let mut headers = OwnedHeaders::new_with_capacity(row.headers.len());
        for (k, v) in &row.headers {
            let v = match k.as_str() {
                "traceparent" => carried.traceparent.as_deref().unwrap_or(v),
                _ => v,
            };
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let delivery = self
            .producer
            .send(&row.topic, &row.key, &row.payload, Some(headers))
            .map_err(|e| e.to_string())?;
        let (partition, offset) = delivery.await.map_err(|e| e.to_string())?;
        span.record("messaging.destination.partition.id", partition.to_string());
        span.record("messaging.kafka.offset", offset);
        let m = crate::base::metrics::get();
        m.outbox_published.with_label_values(&[row.topic.as_str()]).inc();
        let waited = row.age_at_read + row.read.elapsed().as_secs_f64();
        m.outbox_latency
            .with_label_values(&[row.topic.as_str()])
            .observe(waited.max(0.0));
        Ok(row.id)
    }
}
