//! A consumer step reads the stream its handler decides on in the statement
//! that records the event in the inbox (`Handler::stream`): the handler's
//! load then costs no round trip, and still sees every event committed
//! before, its own batch's included.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Result;
use async_trait::async_trait;
use omnisaga_runtime::{
    consumer::{Applier, Consumer, Handler, HandlerError, Incoming},
    db,
    event::{self, EventMeta},
    kafka, outbox,
    pb::{envelope::Payload, OrderPlaced},
    relay::Relay,
    store, testing,
    testing::Statements,
    work::OutboxWaker,
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Loads the order's stream, notes how many events it held, and appends
/// the incoming event to it.
#[derive(Default)]
struct Appender(Mutex<Vec<(String, usize)>>);

fn stream_of(order_id: &str) -> String {
    format!("test-{order_id}")
}

#[async_trait]
impl Handler for Appender {
    fn stream(&self, event: &Incoming) -> Option<String> {
        Some(stream_of(&event.envelope.order_id))
    }

    async fn handle(&self, tx: &mut sqlx::PgConnection, event: &Incoming) -> Result<(), HandlerError> {
        let stream = stream_of(&event.envelope.order_id);
        let history = store::load(tx, &stream).await?;
        let version = history.last().map_or(0, |e| e.version);
        store::append(tx, &stream, version, std::slice::from_ref(&event.envelope)).await?;
        self.0
            .lock()
            .unwrap()
            .push((event.envelope.order_id.clone(), history.len()));
        Ok(())
    }
}

fn placed(order_id: &str) -> omnisaga_proto::v1::Envelope {
    let payload = Payload::OrderPlaced(OrderPlaced {
        order_id: order_id.into(),
        ..Default::default()
    });
    event::envelope(
        "test",
        order_id,
        payload,
        &EventMeta::default(),
        chrono::Utc::now(),
    )
}

async fn publish(pool: &PgPool, topic: &str, envelopes: &[omnisaga_proto::v1::Envelope]) -> Result<()> {
    let mut tx = pool.begin().await?;
    for env in envelopes {
        outbox::enqueue(&mut tx, topic, env, &Default::default()).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn wait_inbox(pool: &PgPool, n: i64) -> Result<()> {
    testing::wait_for("the events to be applied", Duration::from_secs(30), || async {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox WHERE consumer = 'test'")
            .fetch_one(pool)
            .await
            .ok()?;
        (count >= n).then_some(())
    })
    .await
}

#[tokio::test]
async fn the_handlers_stream_comes_with_the_inbox_statement_and_holds_every_earlier_event() -> Result<()> {
    let pool = db::connect(&testing::fresh_database("runtime").await?, 5).await?;
    db::migrate(&pool, sqlx::migrate!("./tests/migrations")).await?;
    let kafka = testing::fresh_kafka()?;
    kafka::ensure_topics(&kafka).await?;
    let topic = kafka.topics().orders;

    // Three events of one order and one of another, published together:
    // fetched together or not, each sees the ones before it.
    let (a, b) = ("order-a", "order-b");
    publish(&pool, &topic, &[placed(a), placed(a), placed(b), placed(a)]).await?;

    let handler = Arc::new(Appender::default());
    let (waker, token) = (OutboxWaker::default(), CancellationToken::new());
    let consumer = Consumer {
        group: format!("{}test", kafka.topic_prefix),
        topics: vec![topic.clone()],
        kafka: kafka.clone(),
        applier: Arc::new(Applier {
            name: "test".into(),
            pool: pool.clone(),
            handler: handler.clone(),
            waker: waker.clone(),
            max_attempts: 3,
        }),
        slot: Default::default(),
        batch_max: 16,
    };
    tokio::spawn(consumer.run(token.clone()));
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
    wait_inbox(&pool, 4).await?;
    let seen = |order: &str| -> Vec<usize> {
        let seen = handler.0.lock().unwrap();
        seen.iter().filter(|(o, _)| o == order).map(|(_, n)| *n).collect()
    };
    assert_eq!(
        seen(a),
        vec![0, 1, 2],
        "each event of order a saw the ones before it"
    );
    assert_eq!(seen(b), vec![0]);

    // One more of order a, alone: its handler gets the three stored events
    // and asks the database for none of them.
    let before = Statements::now(&pool).await?;
    publish(&pool, &topic, &[placed(a)]).await?;
    wait_inbox(&pool, 5).await?;
    let ran = Statements::now(&pool).await?.since(&before);
    assert_eq!(seen(a), vec![0, 1, 2, 3]);
    let loads: i64 = ran
        .0
        .iter()
        .filter(|(q, _)| q.starts_with("SELECT version, envelope FROM events"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        loads, 0,
        "the stream was loaded apart from the inbox statement: {:#?}",
        ran.0
    );
    token.cancel();
    Ok(())
}
