//! The dead-letter workbench's skip and bulk redrive against the real
//! broker and PostgreSQL, through the admin routes a service serves
//! (`/v1/admin/dead-letters`): a skipped record's order goes on and a copy
//! of its event that comes again is dropped; a redrive replays every key
//! whose first dead letter matches, each in its order, holds what waits
//! behind a first one it leaves out, and a dry run or bad filters change
//! nothing.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::{Context, Result};
use async_trait::async_trait;
use axum::{body::Body, http::Request, Router};
use omnisaga_runtime::{
    config::KafkaConfig,
    consumer::{Applier, Consumer, Handler, HandlerError, Incoming},
    db, dead_letter, dead_letters,
    event::{self, EventMeta},
    kafka,
    pb::{envelope::Payload, OrderPlaced, StockReserved},
    testing,
    work::OutboxWaker,
};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

const WAIT: Duration = Duration::from_secs(30);

/// Rejects every event whose correlation id starts with "bad" while
/// `broken`; records what it applies, in the consumer's transaction.
struct Fickle {
    broken: AtomicBool,
}

#[async_trait]
impl Handler for Fickle {
    async fn handle(&self, tx: &mut sqlx::PgConnection, event: &Incoming) -> Result<(), HandlerError> {
        let env = &event.envelope;
        if env.correlation_id.starts_with("bad") && self.broken.load(Ordering::SeqCst) {
            return Err(HandlerError::Rejected(anyhow::anyhow!("invalid content")));
        }
        sqlx::query("INSERT INTO test_applied (label) VALUES ($1)")
            .bind(format!("{}:{}", env.order_id, env.correlation_id))
            .execute(tx)
            .await?;
        Ok(())
    }
}

/// A database, a broker, a consumer of the orders topic applying with
/// [`Fickle`] (two rejections make a dead letter) and the admin routes.
struct Bench {
    pool: PgPool,
    kafka: KafkaConfig,
    producer: kafka::Producer,
    fickle: Arc<Fickle>,
    admin: Router,
    token: CancellationToken,
}

impl Bench {
    async fn start() -> Result<Self> {
        let pool = db::connect(&testing::fresh_database("runtime").await?, 5).await?;
        db::migrate(&pool, sqlx::migrate!("./tests/migrations")).await?;
        let kafka = testing::fresh_kafka()?;
        kafka::ensure_topics(&kafka).await?;
        let fickle = Arc::new(Fickle {
            broken: AtomicBool::new(true),
        });
        let applier = Arc::new(Applier {
            name: "test".into(),
            pool: pool.clone(),
            handler: fickle.clone(),
            waker: OutboxWaker::default(),
            max_attempts: 2,
        });
        let token = CancellationToken::new();
        let consumer = Consumer {
            group: format!("{}test", kafka.topic_prefix),
            topics: vec![kafka.topics().orders],
            kafka: kafka.clone(),
            applier: applier.clone(),
            slot: Default::default(),
            batch_max: 16,
        };
        tokio::spawn(consumer.run(token.clone()));
        let replayers: Vec<Arc<dyn dead_letter::Replay>> = vec![applier];
        Ok(Self {
            admin: dead_letters::routes(pool.clone(), replayers),
            producer: kafka::producer(&kafka, "test-producer")?,
            pool,
            kafka,
            fickle,
            token,
        })
    }

    /// The bytes of an event of `order` (a placement, or a reservation
    /// when `reserved`) whose correlation id is `step`.
    fn event(order: &str, step: &str, reserved: bool) -> Vec<u8> {
        let payload = if reserved {
            Payload::StockReserved(StockReserved {
                order_id: order.into(),
                ..Default::default()
            })
        } else {
            Payload::OrderPlaced(OrderPlaced {
                order_id: order.into(),
                ..Default::default()
            })
        };
        let meta = EventMeta {
            correlation_id: step.into(),
            ..Default::default()
        };
        let env = event::envelope("test", order, payload, &meta, chrono::Utc::now());
        prost::Message::encode_to_vec(&env)
    }

    /// Sends `bytes` under `key` on the orders topic.
    async fn send(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let topic = self.kafka.topics().orders;
        self.producer
            .send(&topic, key, bytes, None)?
            .await
            .map_err(|e| anyhow::anyhow!("not delivered: {e:?}"))?;
        Ok(())
    }

    /// POSTs `body` to `path` of the admin routes: status and JSON answer.
    async fn post(&self, path: &str, body: Value) -> Result<(u16, Value)> {
        let req = Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))?;
        let resp = self.admin.clone().oneshot(req).await?;
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    /// What the handler applied and committed, in commit order.
    async fn applied(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT label FROM test_applied ORDER BY seq")
            .fetch_all(&self.pool)
            .await
            .unwrap_or_default()
    }

    /// The ids of `key`'s dead letters, oldest first.
    async fn letters(&self, key: &str) -> Vec<i64> {
        sqlx::query_scalar("SELECT id FROM dead_letters WHERE message_key = $1 ORDER BY id")
            .bind(key)
            .fetch_all(&self.pool)
            .await
            .unwrap_or_default()
    }

    async fn parked(&self, key: &str) -> bool {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM parked WHERE message_key = $1)")
            .bind(key)
            .fetch_one(&self.pool)
            .await
            .unwrap_or(false)
    }

    /// Waits until `key` has `n` dead letters.
    async fn wait_letters(&self, key: &str, n: usize) -> Result<()> {
        testing::wait_for(&format!("{n} dead letters of {key}"), WAIT, || async {
            (self.letters(key).await.len() == n).then_some(())
        })
        .await
    }
}

#[tokio::test]
async fn a_skipped_dead_letter_lets_its_order_go_on_and_a_copy_of_its_event_that_comes_again_is_dropped(
) -> Result<()> {
    let bench = Bench::start().await?;
    let bad = Bench::event("k1", "bad-1", false);
    bench.send("k1", &bad).await?;
    bench.send("k1", &Bench::event("k1", "2", false)).await?;
    bench.send("k3", b"\xff not an envelope").await?;
    bench.wait_letters("k1", 2).await?;
    bench.wait_letters("k3", 1).await?;
    let head = bench.letters("k1").await[0];

    // No reason, no skip; nothing changed.
    let (status, body) = bench
        .post(
            &format!("/v1/admin/dead-letters/{head}/skip"),
            json!({"reason": " "}),
        )
        .await?;
    assert_eq!(
        (status, &body["code"]),
        (422, &json!("validation_failed")),
        "{body}"
    );
    assert_eq!(bench.letters("k1").await.len(), 2);
    // A reason PostgreSQL cannot store is refused as such by both verbs.
    for verb in ["skip", "discard"] {
        let (status, body) = bench
            .post(
                &format!("/v1/admin/dead-letters/{head}/{verb}"),
                json!({"reason": "bad\u{0}byte"}),
            )
            .await?;
        assert_eq!(
            (status, &body["code"]),
            (422, &json!("validation_failed")),
            "{verb}: {body}"
        );
    }
    assert_eq!(bench.letters("k1").await.len(), 2);

    // A record that does not decode has no event id to mark: discard it.
    let undecodable = bench.letters("k3").await[0];
    let (status, body) = bench
        .post(
            &format!("/v1/admin/dead-letters/{undecodable}/skip"),
            json!({"reason": "unreadable"}),
        )
        .await?;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap_or_default().contains("discard"),
        "{body}"
    );
    assert_eq!(bench.letters("k3").await, [undecodable], "still there");

    let reason = "a bogus placement; the order goes on without it";
    let (status, body) = bench
        .post(
            &format!("/v1/admin/dead-letters/{head}/skip"),
            json!({"reason": reason}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["skipped"]["id"], head);
    assert_eq!(body["reason"], reason);
    assert_eq!(body["replay"]["report"]["replayed"], 1, "{body}");
    assert_eq!(body["replay"]["report"]["remaining"], 0, "{body}");
    assert_eq!(
        bench.applied().await,
        ["k1:2"],
        "the later record went on, not the skipped one"
    );
    assert!(!bench.parked("k1").await && bench.letters("k1").await.is_empty());
    let kept: (String, uuid::Uuid) =
        sqlx::query_as("SELECT reason, event_id FROM skipped_dead_letters WHERE id = $1")
            .bind(head)
            .fetch_one(&bench.pool)
            .await?;
    assert_eq!(kept.0, reason);
    assert_eq!(kept.1.to_string(), body["event_id"].as_str().context("event_id")?);

    // The same record again (the relay sending it once more): dropped as
    // a duplicate, not parked; the order's next record is applied.
    bench.send("k1", &bad).await?;
    bench.send("k1", &Bench::event("k1", "3", false)).await?;
    testing::wait_for("the next record of k1", WAIT, || async {
        (bench.applied().await.len() == 2).then_some(())
    })
    .await?;
    assert_eq!(bench.applied().await, ["k1:2", "k1:3"]);
    assert!(!bench.parked("k1").await && bench.letters("k1").await.is_empty());
    bench.token.cancel();
    Ok(())
}

#[tokio::test]
async fn a_redrive_replays_each_matching_key_in_its_order_holds_the_rest_and_a_dry_run_or_bad_filters_change_nothing(
) -> Result<()> {
    let bench = Bench::start().await?;
    let since = chrono::Utc::now() - chrono::Duration::minutes(1);
    // a and b: a placement that fails, and later ones parked behind it;
    // c: a reservation that fails, and a placement behind it.
    for (key, step, reserved) in [
        ("a", "bad-1", false),
        ("a", "2", false),
        ("b", "bad-1", false),
        ("a", "3", false),
        ("b", "2", false),
        ("c", "bad-1", true),
        ("c", "2", false),
    ] {
        bench.send(key, &Bench::event(key, step, reserved)).await?;
    }
    bench.wait_letters("a", 3).await?;
    bench.wait_letters("b", 2).await?;
    bench.wait_letters("c", 2).await?;
    let total = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM dead_letters")
            .fetch_one(&bench.pool)
            .await
            .unwrap_or(-1)
    };
    assert_eq!(total().await, 7);

    for bad in [
        json!({"from": "2026-12-07T10:00:00Z", "to": "2026-12-07T09:00:00Z"}),
        json!({"limit": 0}),
        json!({"topic": "  "}),
        json!({"event_type": "Order\u{0}Placed"}),
        json!({"event": "OrderPlaced"}),
        json!({"from": "yesterday"}),
    ] {
        let (status, body) = bench.post("/v1/admin/dead-letters/redrive", bad.clone()).await?;
        assert!(
            (400..500).contains(&status) && body["code"].is_string(),
            "{bad}: {status} {body}"
        );
    }
    assert_eq!(total().await, 7, "bad filters changed nothing");

    let filters = json!({"topic": "orders.v1", "event_type": "OrderPlaced", "from": since});
    let mut dry = filters.clone();
    dry["dry_run"] = true.into();
    dry["limit"] = 1.into();
    let (status, page) = bench.post("/v1/admin/dead-letters/redrive", dry.clone()).await?;
    assert_eq!(status, 200, "{page}");
    let keys = |v: &Value| -> Vec<String> {
        v["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|k| {
                format!(
                    "{}:{}",
                    k["key"].as_str().unwrap_or("?"),
                    k["letters"].as_array().map_or(0, Vec::len)
                )
            })
            .collect()
    };
    // One key a page, the key with the older first dead letter first (a
    // and b may sit on different partitions: either may be first).
    let first = keys(&page);
    assert_eq!(first.len(), 1, "{page}");
    let after = page["next_after"].as_i64().context("a second page")?;
    dry["after"] = after.into();
    let (_, next) = bench.post("/v1/admin/dead-letters/redrive", dry).await?;
    assert!(next["next_after"].is_null(), "{next}");
    let mut both = [first, keys(&next)].concat();
    both.sort();
    assert_eq!(both, ["a:3", "b:2"], "{page} {next}");
    let held = &page["held"][0];
    assert_eq!(
        (&held["letter"]["key"], &held["behind"]),
        (&json!("c"), &json!(bench.letters("c").await[0])),
        "c's placement waits behind its reservation: {page}"
    );
    assert_eq!(total().await, 7, "a dry run changed nothing");
    assert!(bench.applied().await.is_empty());

    bench.fickle.broken.store(false, Ordering::SeqCst);
    let (status, done) = bench.post("/v1/admin/dead-letters/redrive", filters).await?;
    assert_eq!(status, 200, "{done}");
    let mut redriven = keys(&done);
    redriven.sort();
    assert_eq!(redriven, ["a:3", "b:2"], "{done}");
    for k in done["keys"].as_array().into_iter().flatten() {
        assert_eq!(
            (&k["report"]["remaining"], &k["report"]["error"]),
            (&json!(0), &Value::Null),
            "{k}"
        );
    }
    let applied = bench.applied().await;
    let of = |key: &str| -> Vec<String> { applied.iter().filter(|l| l.starts_with(key)).cloned().collect() };
    assert_eq!(of("a:"), ["a:bad-1", "a:2", "a:3"], "a in its order");
    assert_eq!(of("b:"), ["b:bad-1", "b:2"], "b in its order");
    assert!(of("c:").is_empty(), "c was left out");
    assert!(!bench.parked("a").await && !bench.parked("b").await && bench.parked("c").await);
    assert_eq!(bench.letters("c").await.len(), 2);
    bench.token.cancel();
    Ok(())
}
