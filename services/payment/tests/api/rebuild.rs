//! The payment view as a projection of the payment streams: after real
//! flows through the running service (approved, declined, approved then
//! voided, cancelled before any attempt), folding the event store into
//! empty tables makes the live rows exactly, whatever order the streams'
//! events come in; through `/v1/admin/rebuilds`, a verify finds the view
//! identical, then reports a row lost, one changed and a stray one, and a
//! rebuild repairs them.

use std::time::Duration;

use omnisaga_payment::projection::PaymentView;
use omnisaga_proto::v1::{envelope::Payload, OrderCancelled, StockReleased};
use omnisaga_runtime::{
    projection::{Projection, Recorded},
    store, testing,
};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{spawn_app, TestApp};

/// Every row of the view, as JSON, by order.
const ROWS: &str = "SELECT row_to_json(v)::text FROM payment_view v ORDER BY order_id";

/// Waits until `order_id`'s payment reads `status`.
async fn wait_status(app: &TestApp, order_id: Uuid, status: &str) {
    testing::wait_for(
        &format!("{order_id} to be {status}"),
        Duration::from_secs(30),
        || async {
            let now: Option<String> =
                sqlx::query_scalar("SELECT status FROM payment_view WHERE order_id = $1")
                    .bind(order_id)
                    .fetch_optional(&app.pool)
                    .await
                    .unwrap();
            (now.as_deref() == Some(status)).then_some(())
        },
    )
    .await
    .unwrap();
}

/// Runs the flows whose rows the tests fold: an order approved, one
/// declined, one approved then voided (cancelled, its stock released) and
/// one cancelled before payment heard of it.
async fn flows(app: &TestApp) -> [Uuid; 4] {
    let topics = app.kafka.topics();
    let paid = app.place_order(1999).await;
    let declined = app.place_order_paying(500, "tok_decline").await;
    let voided = app.place_order(2500).await;
    wait_status(app, paid, "AUTHORIZED").await;
    wait_status(app, declined, "FAILED").await;
    wait_status(app, voided, "AUTHORIZED").await;
    let cancel = |id: Uuid| {
        Payload::OrderCancelled(OrderCancelled {
            order_id: id.to_string(),
            reason: "customer".into(),
        })
    };
    app.publish_as("order", &topics.orders, voided, cancel(voided))
        .await;
    let released = Payload::StockReleased(StockReleased {
        order_id: voided.to_string(),
        ..Default::default()
    });
    app.publish_as("warehouse", &topics.warehouse, voided, released)
        .await;
    let cancelled = Uuid::new_v4();
    app.publish_as("order", &topics.orders, cancelled, cancel(cancelled))
        .await;
    wait_status(app, voided, "VOIDED").await;
    wait_status(app, cancelled, "CANCELLED").await;
    [paid, declined, voided, cancelled]
}

/// The view's live rows, and those folding the whole event store into an
/// empty view makes, `batch` events at a time, the batches `reversed` or
/// not (in a transaction rolled back: nothing changes).
async fn live_and_folded(pool: &PgPool, batch: usize, reversed: bool) -> (Vec<String>, Vec<String>) {
    let mut tx = pool.begin().await.unwrap();
    let live: Vec<String> = sqlx::query_scalar(ROWS).fetch_all(&mut *tx).await.unwrap();
    sqlx::query("DELETE FROM payment_view")
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
        PaymentView.apply(&mut tx, events).await.expect("folded");
    }
    let folded: Vec<String> = sqlx::query_scalar(ROWS).fetch_all(&mut *tx).await.unwrap();
    tx.rollback().await.unwrap();
    (live, folded)
}

#[tokio::test]
async fn the_view_folded_from_the_streams_is_the_live_view() {
    let app = spawn_app().await;
    let orders = flows(&app).await;

    let (live, folded) = live_and_folded(&app.pool, 2, false).await;
    assert_eq!(live.len(), orders.len(), "{live:#?}");
    assert_eq!(folded, live, "the fold agrees with the live path on every column");
    let (_, backwards) = live_and_folded(&app.pool, 1, true).await;
    assert_eq!(backwards, live, "the streams' order does not matter");
}

async fn rebuild(app: &TestApp, mode: &str) -> Value {
    testing::rebuild::run(app, "payment", mode, None).await
}

/// The payment view's report in `run`.
fn view(run: &Value) -> &Value {
    let report = run["report"].as_array().unwrap();
    assert_eq!(report.len(), 1, "payment keeps one projection: {run}");
    assert_eq!(report[0]["projection"], "payment_view");
    &report[0]["tables"][0]
}

#[tokio::test]
async fn the_view_is_rebuilt_from_the_streams_and_a_verify_finds_each_difference() {
    let app = spawn_app().await;
    let [paid, declined, _, _] = flows(&app).await;

    let run = rebuild(&app, "verify").await;
    assert_eq!(run["identical"], true, "{run}");
    let table = view(&run);
    assert_eq!(
        (&table["live_rows"], &table["rebuilt_rows"]),
        (&json!(4), &json!(4)),
        "{run}"
    );
    let intact: Vec<String> = sqlx::query_scalar(ROWS).fetch_all(&app.pool).await.unwrap();

    // One row lost, one changed, one no stream gives.
    let stray = Uuid::now_v7();
    for statement in [
        format!("DELETE FROM payment_view WHERE order_id = '{paid}'"),
        format!("UPDATE payment_view SET status = 'AUTHORIZED', attempts = 3 WHERE order_id = '{declined}'"),
        format!(
            "INSERT INTO payment_view (order_id, status, attempts, amount_minor, currency)
             VALUES ('{stray}', 'AUTHORIZED', 1, 100, 'EUR')"
        ),
    ] {
        sqlx::query(&statement).execute(&app.pool).await.unwrap();
    }
    let run = rebuild(&app, "verify").await;
    assert_eq!(run["identical"], false, "{run}");
    let table = view(&run);
    testing::rebuild::assert_found(
        table,
        (1, 1, 1),
        &[
            format!("missing {paid}"),
            format!("extra {stray}"),
            format!("different {declined} (status, attempts)"),
        ],
    );
    let damaged: Vec<String> = sqlx::query_scalar(ROWS).fetch_all(&app.pool).await.unwrap();
    assert_ne!(damaged, intact, "a verify changed nothing");

    let run = rebuild(&app, "rebuild").await;
    assert_eq!(view(&run)["repaired"], 3, "{run}");
    let repaired: Vec<String> = sqlx::query_scalar(ROWS).fetch_all(&app.pool).await.unwrap();
    assert_eq!(repaired, intact, "every row as the saga wrote it, none more");
    assert_eq!(rebuild(&app, "verify").await["identical"], true);
}
