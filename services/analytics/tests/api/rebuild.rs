//! The star schema rebuilt from analytics' own log (`received_events`):
//! after real flows (an order shipped, one declined and cancelled, one paid,
//! cancelled and its payment voided) a verify finds it identical; a row
//! lost, a decided column changed and a stray row are each reported with
//! their key, and a rebuild repairs them. An order recorded before the log
//! kept envelopes is left alone. The admin route rebuilds it too.

use std::time::Duration;

use omnisaga_analytics::projection::StarSchema;
use omnisaga_proto::v1::{
    envelope::Payload, Channel, OrderCancelled, OrderReadyForShipment, OrderShipped, PaymentVoided,
};
use omnisaga_runtime::{
    rebuild::{self, Mode, Progress, ProjectionReport, TableReport},
    testing,
};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{placed_through, spawn_app, TestApp};

/// Waits until analytics has recorded `n` stage events of `order_id`.
async fn wait_for_stages(app: &TestApp, order_id: Uuid, n: i64) {
    testing::wait_for(
        "the stage events to be recorded",
        Duration::from_secs(30),
        || async {
            let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM stage_events WHERE order_id = $1")
                .bind(order_id)
                .fetch_one(&app.pool)
                .await
                .unwrap();
            (recorded >= n).then_some(())
        },
    )
    .await
    .unwrap();
}

async fn publish(app: &TestApp, producer: &str, order_id: Uuid, payload: Payload) {
    let topics = app.kafka.topics();
    let topic = match producer {
        "order" => topics.orders,
        "payment" => topics.payments,
        _ => topics.warehouse,
    };
    app.publish_as(producer, &topic, order_id, payload).await;
}

async fn run(pool: &PgPool, mode: Mode) -> ProjectionReport {
    rebuild::run(pool, &StarSchema, mode, &Progress::default())
        .await
        .unwrap()
}

fn table<'a>(report: &'a ProjectionReport, name: &str) -> &'a TableReport {
    report.tables.iter().find(|t| t.table == name).unwrap()
}

/// An order recorded before the log kept envelopes (migration 1003): its
/// placement's event without one, the rows it made then, and what the
/// migration noted of them.
async fn unkept_order(pool: &PgPool) -> Uuid {
    let order_id = Uuid::new_v4();
    for sql in [
        "INSERT INTO received_events (event_id, order_id, event_type, occurred_at, topic)
         VALUES (gen_random_uuid(), $1, 'OrderPlaced', '2019-06-01 10:00Z', 'omnisaga.orders.v1')",
        "INSERT INTO dim_day VALUES ('2019-06-01', 2019, 2, 6, 2019, 22, 6, true)",
        "INSERT INTO dim_sku VALUES ('SKU-OLD', 'An old product')",
        "INSERT INTO fact_orders (order_id, channel, placed_day, placed_at, items, total_minor_units, currency)
         VALUES ($1, 'web', '2019-06-01', '2019-06-01 10:00Z', 1, 300, 'EUR')",
        "INSERT INTO stage_events
         SELECT event_id, order_id, 'placed', occurred_at, '2019-06-01' FROM received_events WHERE order_id = $1",
        "INSERT INTO fact_order_lines VALUES ($1, 1, 'SKU-OLD', 1, 300, 'EUR')",
        // What the migration notes.
        "INSERT INTO unkept_orders VALUES ($1)",
        "INSERT INTO unkept_days VALUES ('2019-06-01')",
        "INSERT INTO unkept_skus VALUES ('SKU-OLD')",
    ] {
        sqlx::query(sql).bind(order_id).execute(pool).await.unwrap();
    }
    order_id
}

/// Every row of the unkept order and of the dimensions it names, as text.
async fn unkept_rows(pool: &PgPool, order_id: Uuid) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT o::text FROM fact_orders o WHERE order_id = $1
         UNION ALL SELECT s::text FROM stage_events s WHERE order_id = $1
         UNION ALL SELECT l::text FROM fact_order_lines l WHERE order_id = $1
         UNION ALL SELECT d::text FROM dim_day d WHERE day = '2019-06-01'
         UNION ALL SELECT k::text FROM dim_sku k WHERE sku = 'SKU-OLD'
         ORDER BY 1",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_star_schema_rebuilt_from_the_log_is_the_live_one_and_repairs_each_difference() {
    let app = spawn_app().await;
    let pool = &app.pool;
    let old = unkept_order(pool).await;
    let (shipped, declined, voided) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let lines: [(&str, u32, i64); 2] = [("SKU-TEA", 2, 450), ("SKU-CUP", 1, 1200)];
    let topics = app.kafka.topics();
    app.publish(&topics.orders, &placed_through(shipped, Channel::Web, &lines))
        .await;
    app.publish(
        &topics.orders,
        &placed_through(declined, Channel::Mobile, &lines[..1]),
    )
    .await;
    app.publish(&topics.orders, &placed_through(voided, Channel::Pos, &lines[1..]))
        .await;
    app.pay(shipped, true).await;
    app.pay(declined, false).await;
    app.pay(declined, false).await;
    app.pay(voided, true).await;
    let id = |o: Uuid| o.to_string();
    for (producer, order, payload) in [
        (
            "warehouse",
            shipped,
            Payload::OrderReadyForShipment(OrderReadyForShipment {
                order_id: id(shipped),
                ..Default::default()
            }),
        ),
        // Version 1, as received; a rebuild reads it upcast.
        (
            "warehouse",
            shipped,
            Payload::OrderShipped(OrderShipped {
                order_id: id(shipped),
                carrier: "DHL".into(),
                tracking_number: "T1".into(),
            }),
        ),
        (
            "order",
            declined,
            Payload::OrderCancelled(OrderCancelled {
                order_id: id(declined),
                reason: "payment_failed".into(),
            }),
        ),
        (
            "order",
            voided,
            Payload::OrderCancelled(OrderCancelled {
                order_id: id(voided),
                reason: "customer_request".into(),
            }),
        ),
        (
            "payment",
            voided,
            Payload::PaymentVoided(PaymentVoided {
                order_id: id(voided),
                payment_id: "p-voided".into(),
                ..Default::default()
            }),
        ),
        // The unkept order goes on after the migration: still left alone.
        (
            "warehouse",
            old,
            Payload::OrderShipped(OrderShipped {
                order_id: id(old),
                ..Default::default()
            }),
        ),
    ] {
        publish(&app, producer, order, payload).await;
    }
    for (order, stages) in [(shipped, 4), (declined, 4), (voided, 4), (old, 2)] {
        wait_for_stages(&app, order, stages).await;
    }
    let old_rows = unkept_rows(pool, old).await;

    // What the consumer wrote is what the log gives.
    let report = run(pool, Mode::Verify).await;
    assert!(report.identical(), "{report:#?}");
    for t in &report.tables {
        assert_eq!(t.live_rows, t.rebuilt_rows, "{t:?}");
    }
    assert_eq!(table(&report, "fact_orders").rebuilt_rows, 3, "{report:#?}");
    assert_eq!(table(&report, "stage_events").rebuilt_rows, 12, "{report:#?}");
    assert_eq!(table(&report, "fact_payments").rebuilt_rows, 5, "{report:#?}");
    assert_eq!(
        report.events,
        12 + 1,
        "every kept event, the unkept order's shipment too"
    );

    // A row lost, decided columns changed, stray rows.
    let (lost_stage, stray_payment) = (Uuid::new_v4(), Uuid::new_v4());
    sqlx::query("UPDATE stage_events SET event_id = $1 WHERE order_id = $2 AND stage = 'shipped'")
        .bind(lost_stage)
        .bind(shipped)
        .execute(pool)
        .await
        .unwrap();
    let shipped_stage: Uuid = sqlx::query_scalar(
        "SELECT event_id FROM received_events WHERE order_id = $1 AND event_type = 'OrderShipped'",
    )
    .bind(shipped)
    .fetch_one(pool)
    .await
    .unwrap();
    for sql in [
        "DELETE FROM fact_order_lines WHERE order_id = $1 AND line = 2",
        "UPDATE fact_orders SET channel = 'marketplace', payment_failures = 7 WHERE order_id = $1",
        "UPDATE dim_sku SET name = 'Not its name' WHERE sku = 'SKU-TEA'",
        "INSERT INTO dim_day VALUES ('2001-01-01', 2001, 1, 1, 2001, 1, 1, false)",
    ] {
        sqlx::query(sql).bind(shipped).execute(pool).await.unwrap();
    }
    sqlx::query(
        "INSERT INTO fact_payments VALUES ($1, $2, 'p-stray', 1, 'authorized', 1, 'EUR', '', now(), (now() AT TIME ZONE 'UTC')::date)",
    )
    .bind(stray_payment)
    .bind(Uuid::new_v4())
    .execute(pool)
    .await
    .unwrap();

    let report = run(pool, Mode::Verify).await;
    assert!(!report.identical());
    let expect = |name: &str, (missing, extra, different): (i64, i64, i64), keys: &[String]| {
        let t = table(&report, name);
        assert_eq!(
            (t.missing, t.extra, t.different),
            (missing, extra, different),
            "{t:?}"
        );
        for key in keys {
            assert!(
                t.examples.iter().any(|e| e.starts_with(key.as_str())),
                "{key} in {t:?}"
            );
        }
    };
    expect(
        "stage_events",
        (1, 1, 0),
        &[format!("missing {shipped_stage}"), format!("extra {lost_stage}")],
    );
    expect("fact_order_lines", (1, 0, 0), &[format!("missing {shipped}/2")]);
    expect("fact_orders", (0, 0, 1), &[format!("different {shipped}")]);
    expect("dim_sku", (0, 0, 1), &["different SKU-TEA".to_owned()]);
    expect("dim_day", (0, 1, 0), &["extra 2001-01-01".to_owned()]);
    expect("fact_payments", (0, 1, 0), &[format!("extra {stray_payment}")]);

    let report = run(pool, Mode::Rebuild).await;
    let repaired: i64 = report.tables.iter().map(|t| t.repaired).sum();
    assert_eq!(repaired, 7, "{report:#?}");
    let report = run(pool, Mode::Verify).await;
    assert!(report.identical(), "{report:#?}");
    // The generated outcome follows the repaired columns; the unkept
    // order's rows are as they were.
    let (channel, outcome): (String, String) =
        sqlx::query_as("SELECT channel, payment_outcome FROM fact_orders WHERE order_id = $1")
            .bind(shipped)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!((channel.as_str(), outcome.as_str()), ("web", "authorized"));
    assert_eq!(unkept_rows(pool, old).await, old_rows);
}

#[tokio::test]
async fn the_admin_route_verifies_the_star_schema_the_service_registered() {
    let app = spawn_app().await;
    let order = Uuid::new_v4();
    app.publish(
        &app.kafka.topics().orders,
        &placed_through(order, Channel::Web, &[("SKU-TEA", 1, 450)]),
    )
    .await;
    wait_for_stages(&app, order, 1).await;
    let run = testing::rebuild::run(&app, "analytics", "verify", Some(&["star_schema"])).await;
    assert_eq!(
        (&run["status"], &run["identical"]),
        (&json!("finished"), &json!(true)),
        "{run}"
    );
    assert_eq!(run["report"][0]["projection"], "star_schema", "{run}");
    assert_eq!(run["report"][0]["events"], 1, "{run}");
}
