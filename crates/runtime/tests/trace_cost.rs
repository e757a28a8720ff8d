//! What tracing a step costs: with `TRACE_DB_SPANS=off` a consumer's step
//! makes no database span, yet its `process` span still says how many
//! statements it made; with them on, that count is the number of database
//! spans under it. With `TRACE_IGNORED_RECORDS=off` a record the consumer
//! passes over makes no span. Its own test binary: both settings are the
//! process's.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Result;
use async_trait::async_trait;
use omnisaga_runtime::{
    consumer::{self, Applier, Consumer, Handler, HandlerError, Incoming},
    db, event,
    event::EventMeta,
    kafka, outbox,
    pb::{envelope::Payload, OrderPlaced, StockReserved},
    relay::Relay,
    store, testing,
    work::OutboxWaker,
};
use opentelemetry::{trace::TracerProvider as _, Value};
use opentelemetry_sdk::{
    error::OTelSdkResult,
    trace::{SdkTracerProvider, SpanData, SpanExporter},
};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::prelude::*;

/// Keeps every span exported.
#[derive(Debug, Clone, Default)]
struct Kept(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Kept {
    fn export(&self, batch: Vec<SpanData>) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        self.0.lock().unwrap().extend(batch);
        async { Ok(()) }
    }
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

/// Acts on placements only, reading the order's stream: with the inbox
/// record and the commit, three statements that have a database span.
struct LoadsPlaced;

#[async_trait]
impl Handler for LoadsPlaced {
    async fn handle(&self, tx: &mut sqlx::PgConnection, event: &Incoming) -> Result<(), HandlerError> {
        store::load(tx, &format!("test-{}", event.envelope.order_id))
            .await
            .map_err(|e| HandlerError::Transient(e.into()))?;
        Ok(())
    }

    fn wants(&self, event_type: &str) -> bool {
        event_type == "OrderPlaced"
    }
}

/// Writes a stock reservation (passed over) and then a placement of
/// `order` through the outbox, as a service would.
async fn publish(pool: &sqlx::PgPool, topic: &str, order: &str) -> Result<()> {
    let (meta, now) = (EventMeta::default(), chrono::Utc::now());
    let reserved = Payload::StockReserved(StockReserved {
        order_id: order.into(),
        ..Default::default()
    });
    let placed = Payload::OrderPlaced(OrderPlaced {
        order_id: order.into(),
        ..Default::default()
    });
    let mut tx = pool.begin().await?;
    for payload in [reserved, placed] {
        let env = event::envelope("test", order, payload, &meta, now);
        outbox::enqueue(&mut tx, topic, &env, &Default::default()).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The exported `process` spans of `order`'s records: (event type, span).
fn processed(kept: &Kept, order: &str) -> Vec<(String, SpanData)> {
    kept.0
        .lock()
        .unwrap()
        .iter()
        .filter(|s| {
            s.name.starts_with("process ") && attribute(s, "order.id").is_some_and(|o| o.as_str() == order)
        })
        .map(|s| {
            (
                attribute(s, "event.type").unwrap().as_str().into_owned(),
                s.clone(),
            )
        })
        .collect()
}

/// Waits for the `process` span of `order`'s placement.
async fn placement_span(kept: &Kept, order: &str) -> Result<SpanData> {
    testing::wait_for(
        "the placement's process span",
        Duration::from_secs(30),
        || async {
            processed(kept, order)
                .into_iter()
                .find(|(t, _)| t == "OrderPlaced")
                .map(|(_, s)| s)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_database_spans_a_step_still_counts_its_statements() -> Result<()> {
    let kept = Kept::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(kept.clone())
        .build();
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
        .init();
    let pool = db::connect(&testing::fresh_database("tracecost").await?, 5).await?;
    db::migrate(&pool, sqlx::migrate!("./tests/migrations")).await?;
    let kafka = testing::fresh_kafka()?;
    kafka::ensure_topics(&kafka).await?;
    let topic = kafka.topics().orders;
    let (waker, token) = (OutboxWaker::default(), CancellationToken::new());
    let relay = Relay {
        pool: pool.clone(),
        producer: kafka::producer(&kafka, "test")?,
        waker: waker.clone(),
        poll: Duration::from_millis(50),
        batch: 100,
        lock_key: 42,
        inbox_retention: Duration::from_secs(3600),
    };
    tokio::spawn(relay.run(token.clone()));
    let consumer = Consumer {
        group: format!("{}test", kafka.topic_prefix),
        topics: vec![topic.clone()],
        kafka: kafka.clone(),
        applier: Arc::new(Applier {
            name: "test".into(),
            pool: pool.clone(),
            handler: Arc::new(LoadsPlaced),
            waker: waker.clone(),
            max_attempts: 3,
        }),
        slot: Default::default(),
        batch_max: 1,
    };
    tokio::spawn(consumer.run(token.clone()));

    // Off: the step's span only, with its count; nothing for the record passed over.
    db::set_spans(false);
    consumer::set_ignored_spans(false);
    publish(&pool, &topic, "order-off").await?;
    let step = placement_span(&kept, "order-off").await?;
    assert_eq!(
        attribute(&step, db::STATEMENT_COUNT)
            .map(Value::as_str)
            .as_deref(),
        Some("3"),
        "INSERT inbox, SELECT events, COMMIT"
    );
    let db_spans = kept
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|s| attribute(s, "db.system.name").is_some())
        .count();
    assert_eq!(db_spans, 0, "a database span was made with TRACE_DB_SPANS off");
    let types: Vec<String> = processed(&kept, "order-off")
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(types, ["OrderPlaced"], "the record passed over made a span");

    // On (the default): the same count, one database span for each statement.
    db::set_spans(true);
    consumer::set_ignored_spans(true);
    publish(&pool, &topic, "order-on").await?;
    let step = placement_span(&kept, "order-on").await?;
    let under: Vec<String> = kept
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|s| {
            s.parent_span_id == step.span_context.span_id() && attribute(s, "db.system.name").is_some()
        })
        .map(|s| s.name.to_string())
        .collect();
    assert_eq!(under, ["INSERT inbox", "SELECT events", "COMMIT"]);
    assert_eq!(
        attribute(&step, db::STATEMENT_COUNT)
            .map(Value::as_str)
            .as_deref(),
        Some("3")
    );
    let mut types: Vec<String> = processed(&kept, "order-on").into_iter().map(|(t, _)| t).collect();
    types.sort();
    assert_eq!(types, ["OrderPlaced", "StockReserved"]);
    token.cancel();
    Ok(())
}
