//! The sent messages as a projection of the notification streams: after
//! real flows through the running service (an order told every step to
//! its shipping, one whose payment failed and that was cancelled, one
//! whose customer the channel cannot reach, its message dead), folding
//! the event store into a table without sent messages makes the live sent
//! messages exactly, on every column their events decide, whatever order
//! the events come in; the dead message is no projection's and stays.
//! Through `/v1/admin/rebuilds`, a verify finds them identical, then
//! reports a message lost, one changed and a stray one, and a rebuild
//! repairs them, keeping what no event decides.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use omnisaga_notification::{
    channel::{Channel, Message},
    projection::{SentMessages, TABLES},
};
use omnisaga_proto::v1::{envelope::Payload, OrderCancelled, PaymentFailed};
use omnisaga_runtime::{
    projection::{Projection, Recorded},
    store, testing,
};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{spawn_app_with, TestApp};

/// Takes every message but those for `UNREACHABLE`.
struct Gateway;

const UNREACHABLE: &str = "cust-unreachable";

#[async_trait]
impl Channel for Gateway {
    fn name(&self) -> &'static str {
        "gateway"
    }
    async fn send(&self, msg: &Message) -> anyhow::Result<()> {
        if msg.customer_id == UNREACHABLE {
            anyhow::bail!("gateway says: recipient unreachable")
        }
        Ok(())
    }
}

/// Waits until `order_id` has `n` messages, each `status`.
async fn wait_messages(app: &TestApp, order_id: Uuid, n: i64, status: &str) {
    testing::wait_for(
        &format!("{n} messages of {order_id} to be {status}"),
        Duration::from_secs(60),
        || async {
            let (all, with): (i64, i64) = sqlx::query_as(
                "SELECT count(*), count(*) FILTER (WHERE status = $2) FROM notifications WHERE order_id = $1",
            )
            .bind(order_id)
            .bind(status)
            .fetch_one(&app.pool)
            .await
            .unwrap();
            (all == n && with == n).then_some(())
        },
    )
    .await
    .unwrap();
}

/// Runs the flows whose messages the tests fold: shipped (4 sent), paid
/// in vain and cancelled (3 sent), unreachable (1 dead). Returns the
/// orders.
async fn flows(app: &TestApp) -> [Uuid; 3] {
    let topics = app.kafka.topics();
    let shipped = app.place_order("OS-1", "cust-1").await;
    app.ship_order(shipped).await;
    let cancelled = app.place_order("OS-2", "cust-2").await;
    let failed = Payload::PaymentFailed(PaymentFailed {
        order_id: cancelled.to_string(),
        reason: "card_declined".into(),
        attempt: 1,
        ..Default::default()
    });
    app.publish_as("payment", &topics.payments, cancelled, failed)
        .await;
    let cancel = Payload::OrderCancelled(OrderCancelled {
        order_id: cancelled.to_string(),
        ..Default::default()
    });
    app.publish_as("order", &topics.orders, cancelled, cancel).await;
    let unreachable = app.place_order("OS-3", UNREACHABLE).await;
    wait_messages(app, shipped, 4, "SENT").await;
    wait_messages(app, cancelled, 3, "SENT").await;
    wait_messages(app, unreachable, 1, "DEAD").await;
    [shipped, cancelled, unreachable]
}

/// The sent messages' columns their events decide, as JSON, by id.
fn decided() -> String {
    let table = &TABLES[0];
    format!(
        "SELECT row_to_json(m)::text FROM (SELECT {} FROM notifications WHERE {} ORDER BY notification_id) m",
        table.columns.join(", "),
        table.rows.unwrap()
    )
}

/// The live sent messages, and those folding the whole event store into
/// the table without them makes, `batch` events at a time, the batches
/// `reversed` or not (in a transaction rolled back: nothing changes); and
/// how many messages not sent the fold left.
async fn live_and_folded(pool: &PgPool, batch: usize, reversed: bool) -> (Vec<String>, Vec<String>, i64) {
    let mut tx = pool.begin().await.unwrap();
    let live: Vec<String> = sqlx::query_scalar(&decided()).fetch_all(&mut *tx).await.unwrap();
    sqlx::query("DELETE FROM notifications WHERE status = 'SENT'")
        .execute(&mut *tx)
        .await
        .unwrap();
    let stored: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT global_position, envelope FROM events ORDER BY global_position")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    let recorded: Vec<Recorded> = stored
        .into_iter()
        .map(|(position, bytes)| Recorded {
            position,
            envelope: store::decode(position, &bytes).unwrap().envelope,
        })
        .collect();
    let mut batches: Vec<&[Recorded]> = recorded.chunks(batch).collect();
    if reversed {
        batches.reverse();
    }
    for events in batches {
        SentMessages.apply(&mut tx, events).await.expect("folded");
    }
    let folded: Vec<String> = sqlx::query_scalar(&decided()).fetch_all(&mut *tx).await.unwrap();
    let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications WHERE status <> 'SENT'")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    (live, folded, unsent)
}

#[tokio::test]
async fn the_sent_messages_folded_from_the_streams_are_the_live_ones() {
    let app = spawn_app_with(Arc::new(Gateway)).await;
    flows(&app).await;

    let (live, folded, unsent) = live_and_folded(&app.pool, 3, false).await;
    assert_eq!(live.len(), 7, "{live:#?}");
    assert_eq!(
        folded, live,
        "the fold agrees with the live path on every decided column"
    );
    assert_eq!(unsent, 1, "the dead message is left as it is");
    let (_, backwards, _) = live_and_folded(&app.pool, 1, true).await;
    assert_eq!(backwards, live, "the events' order does not matter");
}

async fn rebuild(app: &TestApp, mode: &str) -> Value {
    testing::rebuild::run(app, "notification", mode, None).await
}

/// The sent messages' report in `run`.
fn sent(run: &Value) -> &Value {
    let report = run["report"].as_array().unwrap();
    assert_eq!(report.len(), 1, "notification keeps one projection: {run}");
    assert_eq!(report[0]["projection"], "sent_messages");
    &report[0]["tables"][0]
}

/// Message `id`'s every column as JSON, but `but`; `None` when it is gone.
async fn row(pool: &PgPool, id: Uuid, but: &str) -> Option<String> {
    sqlx::query_scalar("SELECT (to_jsonb(n) - $2)::text FROM notifications n WHERE notification_id = $1")
        .bind(id)
        .bind(but)
        .fetch_optional(pool)
        .await
        .unwrap()
}

/// The id of `order_id`'s message of `template`.
async fn message(pool: &PgPool, order_id: Uuid, template: &str) -> Uuid {
    sqlx::query_scalar("SELECT notification_id FROM notifications WHERE order_id = $1 AND template = $2")
        .bind(order_id)
        .bind(template)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_sent_messages_are_rebuilt_from_the_streams_and_a_verify_finds_each_difference() {
    let app = spawn_app_with(Arc::new(Gateway)).await;
    let [shipped, cancelled, unreachable] = flows(&app).await;
    let pool = &app.pool;

    let run = rebuild(&app, "verify").await;
    assert_eq!(run["identical"], true, "{run}");
    let table = sent(&run);
    assert_eq!(
        (&table["live_rows"], &table["rebuilt_rows"]),
        (&json!(7), &json!(7)),
        "{run}"
    );
    let intact: Vec<String> = sqlx::query_scalar(&decided()).fetch_all(pool).await.unwrap();

    // One message lost, one changed (and what no event decides of it
    // changed too, which a rebuild keeps), one no stream gives.
    let (lost, changed) = (
        message(pool, shipped, "shipped").await,
        message(pool, cancelled, "order_cancelled").await,
    );
    let dead = message(pool, unreachable, "order_created").await;
    let dead_before = row(pool, dead, "").await;
    let stray = Uuid::now_v7();
    for statement in [
        format!("DELETE FROM notifications WHERE notification_id = '{lost}'"),
        format!(
            "UPDATE notifications SET text = 'Your order was shipped.', attempts = 7, last_error = 'kept'
             WHERE notification_id = '{changed}'"
        ),
        format!(
            "INSERT INTO notifications (notification_id, order_id, source_event_id, source_event_type, template,
                                        text, channel, status, sent_at)
             VALUES ('{stray}', '{shipped}', '{stray}', 'OrderPlaced', 'order_created', 'Stray', 'log', 'SENT', now())"
        ),
    ] {
        sqlx::query(&statement).execute(pool).await.unwrap();
    }
    let changed_but_text = row(pool, changed, "text").await;

    let run = rebuild(&app, "verify").await;
    assert_eq!(run["identical"], false, "{run}");
    let table = sent(&run);
    testing::rebuild::assert_found(
        table,
        (1, 1, 1),
        &[
            format!("missing {lost}"),
            format!("extra {stray}"),
            format!("different {changed} (text)"),
        ],
    );
    assert_eq!(row(pool, lost, "").await, None, "a verify changed nothing");

    let run = rebuild(&app, "rebuild").await;
    assert_eq!(sent(&run)["repaired"], 3, "{run}");
    let repaired: Vec<String> = sqlx::query_scalar(&decided()).fetch_all(pool).await.unwrap();
    assert_eq!(
        repaired, intact,
        "every sent message as its event says, none more"
    );
    assert_eq!(
        row(pool, changed, "text").await,
        changed_but_text,
        "what no event decides is kept"
    );
    assert_eq!(
        row(pool, dead, "").await,
        dead_before,
        "the dead message is untouched"
    );
    let (source_event_type, attempts): (String, i32) =
        sqlx::query_as("SELECT source_event_type, attempts FROM notifications WHERE notification_id = $1")
            .bind(lost)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(
        (source_event_type.as_str(), attempts),
        ("", 0),
        "the re-added message's defaults"
    );
    assert_eq!(rebuild(&app, "verify").await["identical"], true);
}
