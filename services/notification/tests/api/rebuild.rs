//! The sent messages as a projection of the notification streams: after
//! real flows through the running service (an order told every step to
//! its shipping, one whose payment failed and that was cancelled, one
//! whose customer the channel cannot reach, its message dead), folding
//! the event store into a table without sent messages makes the live sent
//! messages exactly, on every column their events decide, whatever order
//! the events come in; the dead message is no projection's and stays.

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
