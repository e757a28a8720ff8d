//! The machine's own limits, measured in the same run as the saga: what the
//! broker and PostgreSQL can do alone, so the saga's numbers can be read
//! against them.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{Consumer, StreamConsumer},
    producer::{FutureProducer, FutureRecord},
    ClientConfig, Message, Offset, TopicPartitionList,
};
use serde::Serialize;
use sqlx::{postgres::PgPoolOptions, Connection, PgConnection};

use super::{histogram, record, Latency};
use omnisaga_stack::KafkaAccess;

#[derive(Debug, Clone, Default, Serialize)]
pub struct BrokerLimits {
    /// Produce (acks=all) until the record is read back, one in flight.
    pub round_trip: Latency,
    /// Records of `record_bytes` per second, idempotent producer, acks=all.
    pub max_produce_per_s: f64,
    pub record_bytes: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PgLimit {
    pub clients: usize,
    pub commits_per_s: f64,
    pub latency: Latency,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Limits {
    pub broker: BrokerLimits,
    /// One saga step: inbox row, event row and outbox row in one transaction.
    pub postgres: Vec<PgLimit>,
}

impl Limits {
    /// The commit rate and latency at `clients`, if measured.
    pub fn pg(&self, clients: usize) -> Option<&PgLimit> {
        self.postgres.iter().find(|p| p.clients == clients)
    }
}

pub struct LimitOptions {
    pub round_trips: usize,
    pub produce_records: usize,
    pub pg_seconds: f64,
}

fn client_config(kafka: &KafkaAccess) -> ClientConfig {
    kafka.admin_client()
}

/// The same producer settings the services' relays use.
fn producer(kafka: &KafkaAccess) -> Result<FutureProducer> {
    Ok(client_config(kafka)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("message.timeout.ms", "30000")
        .create()?)
}

async fn create_topic(kafka: &KafkaAccess, topic: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(kafka).create()?;
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await?;
    for r in results {
        if let Err((t, e)) = r {
            if e != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                bail!("Failed to create topic {t}: {e}");
            }
        }
    }
    Ok(())
}

pub async fn broker(kafka: &KafkaAccess, options: &LimitOptions) -> Result<BrokerLimits> {
    let topic = format!("bench.limits.{}", uuid::Uuid::new_v4().simple());
    create_topic(kafka, &topic).await?;
    let producer = producer(kafka)?;
    let consumer: StreamConsumer = client_config(kafka)
        .set("group.id", format!("bench-{}", uuid::Uuid::new_v4().simple()))
        .set("group.protocol", "classic")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "1")
        .set("fetch.min.bytes", "1")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let payload = vec![7u8; 300];

    // Round trip, one record in flight; the first few warm the connections up.
    let mut rtt = histogram();
    let mut stream = consumer.stream();
    for i in 0..options.round_trips + 10 {
        let key = i.to_string();
        let start = Instant::now();
        producer
            .send(
                FutureRecord::to(&topic).key(&key).payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .context("Failed to produce a round-trip record")?;
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .context("a produced record was not read back within 10 s")?
                .context("consumer stream ended")??;
            if m.key() == Some(key.as_bytes()) {
                break;
            }
        }
        if i >= 10 {
            record(&mut rtt, start.elapsed());
        }
    }
    drop(stream);

    // Produce rate: every record in flight at once, waiting for all delivery reports.
    let start = Instant::now();
    let mut sends = futures::stream::FuturesUnordered::new();
    for i in 0..options.produce_records {
        let key = i.to_string();
        let p = producer.clone();
        let topic = topic.clone();
        let payload = payload.clone();
        sends.push(async move {
            p.send(
                FutureRecord::to(&topic).key(&key).payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
        });
    }
    while let Some(r) = sends.next().await {
        r.context("Failed to produce while measuring the produce rate")?;
    }
    let rate = options.produce_records as f64 / start.elapsed().as_secs_f64();
    Ok(BrokerLimits {
        round_trip: Latency::of(&rtt),
        max_produce_per_s: rate,
        record_bytes: payload.len(),
    })
}

/// The runtime's own tables, so the transaction is the services' own shape.
const RUNTIME_SCHEMA: &str = include_str!("../../../crates/runtime/migrations/0001_event_store.sql");

/// Commit rate of a saga-step transaction (inbox + event + outbox insert) at
/// each client count, each for `seconds`, in a scratch database.
pub async fn postgres(pg_server: &str, clients: &[usize], seconds: f64) -> Result<Vec<PgLimit>> {
    let db = "bench_limits";
    let mut admin = PgConnection::connect(&format!("{pg_server}/postgres")).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut admin)
        .await?;
    let pool = PgPoolOptions::new()
        .max_connections(clients.iter().copied().max().unwrap_or(1) as u32)
        .connect(&format!("{pg_server}/{db}"))
        .await?;
    sqlx::raw_sql(RUNTIME_SCHEMA).execute(&pool).await?;
    let mut out = Vec::new();
    for &n in clients {
        out.push(pg_run(&pool, n, seconds).await?);
    }
    pool.close().await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    Ok(out)
}

async fn pg_run(pool: &sqlx::PgPool, clients: usize, seconds: f64) -> Result<PgLimit> {
    let envelope = Arc::new(vec![3u8; 300]);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let pool = pool.clone();
        let envelope = envelope.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            let mut n = 0u64;
            while Instant::now() < end {
                let t = Instant::now();
                saga_step(&pool, &envelope).await?;
                record(&mut h, t.elapsed());
                n += 1;
            }
            anyhow::Ok((n, h))
        }));
    }
    let mut total = 0;
    let mut h = histogram();
    for t in tasks {
        let (n, part) = t.await??;
        total += n;
        h.add(part)?;
    }
    Ok(PgLimit {
        clients,
        commits_per_s: total as f64 / start.elapsed().as_secs_f64(),
        latency: Latency::of(&h),
    })
}

async fn saga_step(pool: &sqlx::PgPool, envelope: &[u8]) -> Result<()> {
    let order = uuid::Uuid::now_v7();
    let event = uuid::Uuid::now_v7();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO inbox (consumer, event_id, topic, partition, \"offset\") VALUES ('bench', $1, 'bench', 0, 0)",
    )
    .bind(event)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO events (stream_id, version, event_id, event_type, order_id, occurred_at, envelope)
         VALUES ($1, 1, $2, 'BenchStep', $1, now(), $3)",
    )
    .bind(order.to_string())
    .bind(uuid::Uuid::now_v7())
    .bind(envelope)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO outbox (topic, message_key, payload, headers)
         VALUES ('bench', $1, $2, '{\"event_type\": \"BenchStep\"}'::jsonb)",
    )
    .bind(order.to_string())
    .bind(envelope)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
