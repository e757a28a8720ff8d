//! The runtime's delivery guarantees against the real broker and PostgreSQL:
//! the outbox never skips a row that commits late, and the consumer applies a
//! duplicate once and dead-letters what it cannot decode, then goes on.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Result;
use async_trait::async_trait;
use omnisaga_runtime::{
    config::{KafkaConfig, Topics},
    consumer::{Applier, Consumer, Handler, HandlerError, Incoming},
    db,
    event::{self, EventMeta},
    kafka, outbox,
    pb::{envelope::Payload, OrderPlaced, StockReserved},
    relay::Relay,
    testing,
    work::{self, OutboxWaker},
};
use rdkafka::{
    consumer::Consumer as _,
    message::{Header, Headers, Message, OwnedHeaders},
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

async fn setup() -> Result<(PgPool, KafkaConfig)> {
    let pool = db::connect(&testing::fresh_database("runtime").await?, 5).await?;
    db::migrate(&pool, sqlx::migrate!("./tests/migrations")).await?;
    let kafka = testing::fresh_kafka()?;
    kafka::ensure_topics(&kafka).await?;
    Ok((pool, kafka))
}

fn start_relay(
    pool: &PgPool,
    kafka: &KafkaConfig,
    waker: &OutboxWaker,
    token: &CancellationToken,
) -> Result<()> {
    let relay = Relay {
        pool: pool.clone(),
        producer: kafka::producer(kafka, "test")?,
        waker: waker.clone(),
        poll: Duration::from_millis(50),
        batch: 100,
        lock_key: 42,
        inbox_retention: Duration::from_secs(7 * 24 * 3600),
    };
    tokio::spawn(relay.run(token.clone()));
    Ok(())
}

/// Starts a consumer of `topic` that applies with `handler` (three
/// attempts before a dead letter), and the relay that publishes what it writes.
fn start_consumer_and_relay<H: Handler>(
    pool: &PgPool,
    kafka: &KafkaConfig,
    topic: &str,
    handler: Arc<H>,
    waker: &OutboxWaker,
    token: &CancellationToken,
) -> Result<()> {
    let consumer = Consumer {
        group: format!("{}test", kafka.topic_prefix),
        topics: vec![topic.to_owned()],
        kafka: kafka.clone(),
        applier: Arc::new(Applier {
            name: "test".into(),
            pool: pool.clone(),
            handler,
            waker: waker.clone(),
            max_attempts: 3,
        }),
        slot: Default::default(),
        batch_max: 16,
    };
    tokio::spawn(consumer.run(token.clone()));
    start_relay(pool, kafka, waker, token)
}

/// Reads `topic` from the start until `n` records arrived: (payload, headers).
async fn read(kafka: &KafkaConfig, topic: &str, n: usize) -> Result<Vec<(Vec<u8>, HashMap<String, String>)>> {
    let consumer = kafka::consumer(kafka, &format!("reader-{}", uuid::Uuid::new_v4()))?;
    consumer.subscribe(&[topic])?;
    let mut out = Vec::new();
    while out.len() < n {
        let msg = tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await??;
        let mut headers = HashMap::new();
        if let Some(h) = msg.headers() {
            for header in h.iter() {
                headers.insert(
                    header.key.to_owned(),
                    String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
                );
            }
        }
        out.push((msg.payload().unwrap_or_default().to_vec(), headers));
    }
    Ok(out)
}

async fn unpublished(pool: &PgPool) -> i64 {
    outbox::backlog(pool).await.unwrap()
}

#[tokio::test]
async fn a_row_that_commits_after_a_later_row_is_still_published() -> Result<()> {
    let (pool, kafka) = setup().await?;
    let topic = kafka.topics().orders;
    let none = BTreeMap::new();

    // Transaction A takes the lower id but commits last.
    let mut late = pool.begin().await?;
    outbox::enqueue_raw(&mut late, &topic, "a", b"late", &none).await?;
    let mut early = pool.begin().await?;
    outbox::enqueue_raw(&mut early, &topic, "b", b"early", &none).await?;
    early.commit().await?;

    let (waker, token) = (OutboxWaker::default(), CancellationToken::new());
    start_relay(&pool, &kafka, &waker, &token)?;
    testing::wait_for(
        "the early row to be published",
        Duration::from_secs(20),
        || async {
            let published: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL")
                    .fetch_one(&pool)
                    .await
                    .ok()?;
            (published == 1).then_some(())
        },
    )
    .await?;

    late.commit().await?;
    waker.wake();
    testing::wait_for(
        "the late row to be published",
        Duration::from_secs(20),
        || async { (unpublished(&pool).await == 0).then_some(()) },
    )
    .await?;
    let mut payloads: Vec<Vec<u8>> = read(&kafka, &topic, 2)
        .await?
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    payloads.sort();
    assert_eq!(payloads, vec![b"early".to_vec(), b"late".to_vec()]);
    token.cancel();
    Ok(())
}

/// The ids of the published outbox rows, in order.
async fn published_ids(pool: &PgPool) -> Vec<i64> {
    sqlx::query_scalar("SELECT id FROM outbox WHERE published_at IS NOT NULL ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_failed_row_holds_back_the_later_rows_of_its_key() -> Result<()> {
    let (pool, kafka) = setup().await?;
    let topic = kafka.topics().orders;
    let none = BTreeMap::new();
    // Key "a": a row the producer refuses (larger than message.max.bytes),
    // then one it would take; key "b": one it takes. All in one batch.
    let mut tx = pool.begin().await?;
    outbox::enqueue_raw(&mut tx, &topic, "a", &vec![b'x'; 2_000_000], &none).await?;
    outbox::enqueue_raw(&mut tx, &topic, "a", b"a-second", &none).await?;
    outbox::enqueue_raw(&mut tx, &topic, "b", b"b-first", &none).await?;
    tx.commit().await?;
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM outbox ORDER BY id")
        .fetch_all(&pool)
        .await?;
    let [refused, held, other] = ids[..] else {
        anyhow::bail!("expected three outbox rows, found {ids:?}")
    };

    let (waker, token) = (OutboxWaker::default(), CancellationToken::new());
    start_relay(&pool, &kafka, &waker, &token)?;
    // A pass marks what it delivered all at once: once "b" is published,
    // that pass decided "a"'s second row too.
    testing::wait_for("key b's row to be published", Duration::from_secs(20), || async {
        (!published_ids(&pool).await.is_empty()).then_some(())
    })
    .await?;
    assert_eq!(
        published_ids(&pool).await,
        vec![other],
        "key a's second row went out while its first had failed"
    );

    // Once the refused row is gone (an operator's call), the held one goes.
    sqlx::query("DELETE FROM outbox WHERE id = $1")
        .bind(refused)
        .execute(&pool)
        .await?;
    waker.wake();
    testing::wait_for(
        "key a's second row to be published",
        Duration::from_secs(20),
        || async { (published_ids(&pool).await == vec![held, other]).then_some(()) },
    )
    .await?;
    let mut payloads: Vec<Vec<u8>> = read(&kafka, &topic, 2)
        .await?
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    payloads.sort();
    assert_eq!(payloads, vec![b"a-second".to_vec(), b"b-first".to_vec()]);
    token.cancel();
    Ok(())
}

#[tokio::test]
async fn the_relay_prunes_inbox_rows_older_than_the_retention_and_keeps_the_rest() -> Result<()> {
    let (pool, kafka) = setup().await?;
    // Two events applied eight days ago, one an hour ago (retention: 7 days).
    let ages = [
        ("8 days", uuid::Uuid::now_v7()),
        ("8 days", uuid::Uuid::now_v7()),
        ("1 hour", uuid::Uuid::now_v7()),
    ];
    for (age, id) in ages {
        sqlx::query(
            "INSERT INTO inbox (consumer, event_id, topic, partition, \"offset\", processed_at)
             VALUES ('test', $1, 't', 0, 0, now() - $2::interval)",
        )
        .bind(id)
        .bind(age)
        .execute(&pool)
        .await?;
    }
    let (waker, token) = (OutboxWaker::default(), CancellationToken::new());
    start_relay(&pool, &kafka, &waker, &token)?;
    let left = testing::wait_for(
        "the old inbox rows to be pruned",
        Duration::from_secs(20),
        || async {
            let left: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT event_id FROM inbox")
                .fetch_all(&pool)
                .await
                .ok()?;
            (left.len() < 3).then_some(left)
        },
    )
    .await?;
    assert_eq!(left, vec![ages[2].1], "only the recent row stays");
    token.cancel();
    Ok(())
}

#[tokio::test]
async fn a_transaction_that_writes_outbox_rows_is_noted_so_its_commit_wakes_the_relay() -> Result<()> {
    let (pool, kafka) = setup().await?;
    let topic = kafka.topics().orders;
    let (committed, written) = work::noting(async {
        let mut tx = pool.begin().await?;
        outbox::enqueue_raw(&mut tx, &topic, "a", b"row", &BTreeMap::new()).await?;
        tx.commit().await
    })
    .await;
    committed?;
    assert_eq!(written, work::Written::OUTBOX);
    Ok(())
}

/// Records the event ids it was given.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

#[async_trait]
impl Handler for Recorder {
    async fn handle(&self, _tx: &mut sqlx::PgConnection, event: &Incoming) -> Result<(), HandlerError> {
        self.0.lock().unwrap().push(event.envelope.event_id.clone());
        Ok(())
    }
}

/// A placement of order `id`, as a producer would publish it.
fn placed(id: &str) -> omnisaga_proto::v1::Envelope {
    let payload = Payload::OrderPlaced(OrderPlaced {
        order_id: id.into(),
        ..Default::default()
    });
    event::envelope("test", id, payload, &EventMeta::default(), chrono::Utc::now())
}

#[tokio::test]
async fn a_duplicate_is_applied_once_and_an_undecodable_record_is_dead_lettered() -> Result<()> {
    let (pool, kafka) = setup().await?;
    let topics = kafka.topics();
    let producer = kafka::producer(&kafka, "test-producer")?;
    let first = placed("order-1");
    let second = placed("order-2");
    let records: Vec<(&str, Vec<u8>)> = vec![
        ("order-1", prost::Message::encode_to_vec(&first)),
        ("order-1", prost::Message::encode_to_vec(&first)),
        ("order-9", b"\xff\xffnot protobuf".to_vec()),
        ("order-2", prost::Message::encode_to_vec(&second)),
    ];
    for (key, payload) in &records {
        let headers = OwnedHeaders::new().insert(Header {
            key: "traceparent",
            value: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        });
        producer
            .send(&topics.orders, key, payload, Some(headers))?
            .await?;
    }

    let recorder = Arc::new(Recorder::default());
    let (waker, token) = (OutboxWaker::default(), CancellationToken::new());
    start_consumer_and_relay(&pool, &kafka, &topics.orders, recorder.clone(), &waker, &token)?;

    let dead = read(&kafka, &Topics::dead_letter(&topics.orders), 1).await?;
    testing::wait_for("both events to be handled", Duration::from_secs(20), || async {
        (recorder.0.lock().unwrap().len() >= 2).then_some(())
    })
    .await?;
    // The two orders' keys may sit on different partitions, whose records
    // come in either order; each event must be applied exactly once.
    let mut seen = recorder.0.lock().unwrap().clone();
    seen.sort();
    let mut expected = vec![first.event_id.clone(), second.event_id.clone()];
    expected.sort();
    assert_eq!(seen, expected, "the duplicate was applied twice");

    let (payload, headers) = &dead[0];
    assert_eq!(payload.as_slice(), b"\xff\xffnot protobuf");
    assert!(headers["dlq.error"].contains("undecodable"), "{headers:?}");
    assert_eq!(headers["dlq.source.topic"], topics.orders);
    assert!(headers.contains_key("dlq.source.partition") && headers.contains_key("dlq.source.offset"));
    assert_eq!(
        headers["traceparent"],
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    );
    token.cancel();
    Ok(())
}

#[tokio::test]
async fn an_event_of_a_type_or_version_this_build_does_not_know_is_skipped_and_its_order_goes_on(
) -> Result<()> {
    let (pool, kafka) = setup().await?;
    let topics = kafka.topics();
    let producer = kafka::producer(&kafka, "test-producer")?;
    // A newer producer's event: a type in a payload field this build's
    // Envelope does not have (999, bytes), and its name.
    let mut newer = placed("order-5");
    newer.payload = None;
    newer.event_type = "OrderGiftWrapped".into();
    newer.event_id = uuid::Uuid::now_v7().to_string();
    let mut newer_bytes = prost::Message::encode_to_vec(&newer);
    newer_bytes.extend_from_slice(&[0xBA, 0x3E, 2, 0x0A, 0x00]);
    // A newer version of a known type (3 of OrderPlaced, in field 998).
    let mut newer_version = placed("order-5");
    newer_version.payload = None;
    newer_version.schema_version = 3;
    newer_version.event_id = uuid::Uuid::now_v7().to_string();
    let mut newer_version_bytes = prost::Message::encode_to_vec(&newer_version);
    newer_version_bytes.extend_from_slice(&[0xB2, 0x3E, 2, 0x0A, 0x00]);
    // A known type without its payload is broken, not newer.
    let mut broken = placed("order-6");
    broken.payload = None;
    let then = placed("order-5");
    let records: Vec<(&str, Vec<u8>)> = vec![
        ("order-5", newer_bytes),
        ("order-5", newer_version_bytes),
        ("order-6", prost::Message::encode_to_vec(&broken)),
        ("order-5", prost::Message::encode_to_vec(&then)),
    ];
    for (key, payload) in &records {
        producer
            .send(&topics.orders, key, payload, Some(OwnedHeaders::new()))?
            .await?;
    }

    let recorder = Arc::new(Recorder::default());
    let (waker, token) = (OutboxWaker::default(), CancellationToken::new());
    start_consumer_and_relay(&pool, &kafka, &topics.orders, recorder.clone(), &waker, &token)?;

    testing::wait_for(
        "the later event of the order to be handled",
        Duration::from_secs(20),
        || async { (!recorder.0.lock().unwrap().is_empty()).then_some(()) },
    )
    .await?;
    assert_eq!(*recorder.0.lock().unwrap(), std::slice::from_ref(&then.event_id));
    let dead = read(&kafka, &Topics::dead_letter(&topics.orders), 1).await?;
    assert!(
        dead[0].1["dlq.error"].contains("OrderPlaced event without its payload"),
        "{:?}",
        dead[0].1
    );
    let letters: Vec<String> = sqlx::query_scalar("SELECT message_key FROM dead_letters")
        .fetch_all(&pool)
        .await?;
    assert_eq!(letters, ["order-6"], "only the broken record is a dead letter");
    // The skipped event is in the inbox like any applied one, and counted.
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox WHERE event_id = ANY($1::uuid[])")
        .bind([&newer.event_id, &newer_version.event_id])
        .fetch_one(&pool)
        .await?;
    assert_eq!(inbox, 2);
    for skipped_type in ["OrderGiftWrapped", "OrderPlaced"] {
        let skipped = omnisaga_runtime::metrics::get()
            .unknown_events
            .with_label_values(&["test", topics.orders.as_str(), skipped_type])
            .get();
        assert_eq!(skipped, 1, "{skipped_type}");
    }
    token.cancel();
    Ok(())
}

/// Records what it is given, and wants only `OrderPlaced`.
#[derive(Default)]
struct OnlyPlaced(Recorder);

#[async_trait]
impl Handler for OnlyPlaced {
    async fn handle(&self, tx: &mut sqlx::PgConnection, event: &Incoming) -> Result<(), HandlerError> {
        self.0.handle(tx, event).await
    }

    fn wants(&self, event_type: &str) -> bool {
        event_type == "OrderPlaced"
    }
}

#[tokio::test]
async fn an_event_the_handler_never_acts_on_costs_no_transaction() -> Result<()> {
    let (pool, kafka) = setup().await?;
    let topic = kafka.topics().orders;
    let meta = EventMeta::default();
    let now = chrono::Utc::now();
    let reserved = event::envelope(
        "test",
        "order-1",
        Payload::StockReserved(StockReserved {
            order_id: "order-1".into(),
            ..Default::default()
        }),
        &meta,
        now,
    );
    let placed = event::envelope(
        "test",
        "order-1",
        Payload::OrderPlaced(OrderPlaced {
            order_id: "order-1".into(),
            ..Default::default()
        }),
        &meta,
        now,
    );
    // Written through the outbox, as every service writes them: the relay
    // sets the event_type header the consumer filters on.
    let mut tx = pool.begin().await?;
    for env in [&reserved, &placed] {
        outbox::enqueue(&mut tx, &topic, env, &Default::default()).await?;
    }
    tx.commit().await?;

    let handler = Arc::new(OnlyPlaced::default());
    let (waker, token) = (OutboxWaker::default(), CancellationToken::new());
    start_consumer_and_relay(&pool, &kafka, &topic, handler.clone(), &waker, &token)?;

    // The handler sees the event before its transaction commits: wait for
    // the commit (its inbox row), not for the handler.
    let inbox: Vec<String> = testing::wait_for(
        "the placed event to be handled and committed",
        Duration::from_secs(20),
        || async {
            let rows: Vec<String> =
                sqlx::query_scalar("SELECT event_id::text FROM inbox WHERE consumer = 'test'")
                    .fetch_all(&pool)
                    .await
                    .ok()?;
            (!rows.is_empty()).then_some(rows)
        },
    )
    .await?;
    assert_eq!(*handler.0 .0.lock().unwrap(), vec![placed.event_id.clone()]);
    assert_eq!(
        inbox,
        vec![placed.event_id.clone()],
        "the passed-over event left an inbox row"
    );
    token.cancel();
    Ok(())
}

/// Rejects the events of order "poison" until told to accept them; records
/// what it applies in the consumer's transaction.
#[derive(Default)]
struct Picky {
    accept_poison: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Handler for Picky {
    async fn handle(&self, tx: &mut sqlx::PgConnection, event: &Incoming) -> Result<(), HandlerError> {
        let env = &event.envelope;
        if env.order_id == "poison" && !self.accept_poison.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(HandlerError::Rejected(anyhow::anyhow!("invalid content")));
        }
        sqlx::query("INSERT INTO test_applied (label) VALUES ($1)")
            .bind(format!("{}:{}", env.order_id, env.correlation_id))
            .execute(tx)
            .await?;
        Ok(())
    }
}

/// What the handler applied and committed, in commit order.
async fn applied(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT label FROM test_applied ORDER BY seq")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn later_events_of_a_dead_lettered_order_wait_behind_it_until_replayed() -> Result<()> {
    use omnisaga_runtime::dead_letter::Replay;

    let (pool, kafka) = setup().await?;
    let topic = kafka.topics().orders;
    let producer = kafka::producer(&kafka, "test-producer")?;
    let send = |order: &'static str, step: &'static str| {
        let payload = Payload::OrderPlaced(OrderPlaced {
            order_id: order.into(),
            ..Default::default()
        });
        let meta = EventMeta {
            correlation_id: step.into(),
            ..Default::default()
        };
        let env = event::envelope("test", order, payload, &meta, chrono::Utc::now());
        let (producer, topic) = (producer.clone(), topic.clone());
        async move {
            let bytes = prost::Message::encode_to_vec(&env);
            producer.send(&topic, order, &bytes, None)?.await
        }
    };
    send("poison", "1").await?;
    send("poison", "2").await?;
    send("healthy", "1").await?;

    let picky = Arc::new(Picky::default());
    let applier = Arc::new(Applier {
        name: "test".into(),
        pool: pool.clone(),
        handler: picky.clone(),
        waker: OutboxWaker::default(),
        max_attempts: 2,
    });
    let token = CancellationToken::new();
    let consumer = Consumer {
        group: format!("{}test", kafka.topic_prefix),
        topics: vec![topic.clone()],
        kafka: kafka.clone(),
        applier: applier.clone(),
        slot: Default::default(),
        batch_max: 16,
    };
    tokio::spawn(consumer.run(token.clone()));

    let dead_letters = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM dead_letters WHERE message_key = 'poison'")
            .fetch_one(&pool)
            .await
            .ok()
    };
    testing::wait_for(
        "both poison events to be parked",
        Duration::from_secs(30),
        || async { (dead_letters().await == Some(2) && !applied(&pool).await.is_empty()).then_some(()) },
    )
    .await?;
    assert_eq!(
        applied(&pool).await,
        vec!["healthy:1"],
        "the healthy order went on"
    );

    // Still broken: the replay stops at the first and keeps both, in order.
    let report = applier.replay("poison").await?;
    assert_eq!((report.replayed, report.remaining), (0, 2));
    assert!(report.error.unwrap().contains("invalid content"));

    picky
        .accept_poison
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let report = applier.replay("poison").await?;
    assert_eq!((report.replayed, report.remaining, report.error), (2, 0, None));

    send("poison", "3").await?;
    testing::wait_for(
        "the next poison event to be applied directly",
        Duration::from_secs(30),
        || async { (applied(&pool).await.len() == 4).then_some(()) },
    )
    .await?;
    assert_eq!(
        applied(&pool).await,
        vec!["healthy:1", "poison:1", "poison:2", "poison:3"]
    );
    token.cancel();
    Ok(())
}

/// [`Picky`] applying a fetched batch at once, in one statement; keeps the
/// most records it was handed at once.
#[derive(Default)]
struct PickyAtOnce {
    picky: Picky,
    most: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl Handler for PickyAtOnce {
    async fn handle(&self, tx: &mut sqlx::PgConnection, event: &Incoming) -> Result<(), HandlerError> {
        self.picky.handle(tx, event).await
    }

    async fn handle_batch(
        &self,
        tx: &mut sqlx::PgConnection,
        events: &[&Incoming],
    ) -> Result<(), HandlerError> {
        self.most
            .fetch_max(events.len(), std::sync::atomic::Ordering::SeqCst);
        if events.iter().any(|e| e.envelope.order_id == "poison") {
            return Err(HandlerError::Rejected(anyhow::anyhow!("invalid content")));
        }
        let labels: Vec<String> = events
            .iter()
            .map(|e| format!("{}:{}", e.envelope.order_id, e.envelope.correlation_id))
            .collect();
        sqlx::query("INSERT INTO test_applied (label) SELECT l FROM unnest($1::text[]) WITH ORDINALITY t (l, n) ORDER BY n")
            .bind(&labels)
            .execute(tx)
            .await?;
        Ok(())
    }

    fn batches(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn records_fetched_together_commit_together_and_a_failing_one_changes_no_outcome() -> Result<()> {
    fetched_together(Arc::new(Picky::default())).await
}

#[tokio::test]
async fn a_handler_that_batches_gets_records_fetched_together_at_once_with_the_same_outcome() -> Result<()> {
    let handler = Arc::new(PickyAtOnce::default());
    fetched_together(handler.clone()).await?;
    let most = handler.most.load(std::sync::atomic::Ordering::SeqCst);
    assert!(most > 1, "handed at most {most} record(s) at once");
    Ok(())
}

/// 40 orders' events fetched together by a consumer of `handler`: each
/// applied once, in its order, the poison order's dead-lettered, and fewer
/// transactions than records.
async fn fetched_together<H: Handler>(handler: Arc<H>) -> Result<()> {
    let (pool, kafka) = setup().await?;
    let topic = kafka.topics().orders;
    let producer = kafka::producer(&kafka, "test-producer")?;
    // 40 orders with two events each, one of them duplicated, and one poison
    // order in the middle, all produced before the consumer starts so they
    // arrive together.
    let mut sent = Vec::new();
    for i in 0..40 {
        for step in ["1", "2"] {
            let order = if i == 20 {
                "poison".to_owned()
            } else {
                format!("order-{i}")
            };
            let payload = Payload::OrderPlaced(OrderPlaced {
                order_id: order.clone(),
                ..Default::default()
            });
            let meta = EventMeta {
                correlation_id: step.into(),
                ..Default::default()
            };
            let env = event::envelope("test", &order, payload, &meta, chrono::Utc::now());
            let bytes = prost::Message::encode_to_vec(&env);
            // Order 7's first event is delivered twice, back to back: one batch sees it twice.
            let copies = if i == 7 && step == "1" { 2 } else { 1 };
            for _ in 0..copies {
                producer.send(&topic, &order, &bytes, None)?.await?;
            }
            if order != "poison" {
                sent.push(format!("{order}:{step}"));
            }
        }
    }
    let token = CancellationToken::new();
    let consumer = Consumer {
        group: format!("{}test", kafka.topic_prefix),
        topics: vec![topic.clone()],
        kafka: kafka.clone(),
        applier: Arc::new(Applier {
            name: "test".into(),
            pool: pool.clone(),
            handler,
            waker: OutboxWaker::default(),
            max_attempts: 2,
        }),
        slot: Default::default(),
        batch_max: 16,
    };
    tokio::spawn(consumer.run(token.clone()));
    testing::wait_for(
        "every healthy event to be applied",
        Duration::from_secs(60),
        || async { (applied(&pool).await.len() >= sent.len()).then_some(()) },
    )
    .await?;
    let seen = applied(&pool).await;
    let mut sorted = seen.clone();
    sorted.sort();
    sent.sort();
    assert_eq!(sorted, sent, "every healthy event exactly once");
    for i in (0..40).filter(|i| *i != 20) {
        let first = seen.iter().position(|s| *s == format!("order-{i}:1"));
        let second = seen.iter().position(|s| *s == format!("order-{i}:2"));
        assert!(first < second, "order-{i} applied out of order: {seen:?}");
    }
    let parked: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters WHERE message_key = 'poison'")
        .fetch_one(&pool)
        .await?;
    assert_eq!(parked, 2, "the poison order's events are dead-lettered, in order");
    // Records of one transaction share its start time: fewer distinct times than records means batches.
    let transactions: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT processed_at) FROM inbox WHERE consumer = 'test'")
            .fetch_one(&pool)
            .await?;
    assert!(
        transactions < sent.len() as i64 / 2,
        "{} records took {transactions} transactions: not batched",
        sent.len()
    );
    token.cancel();
    Ok(())
}
