//! A batch leaves the rows its events leave one by one: the same events,
//! after the same earlier ones, applied one by one in one database and as
//! one batch in another, and every table analytics writes compared.

use omnisaga_analytics::handlers::SagaEvents;
use omnisaga_proto::v1::{
    envelope::Payload, Channel, LineItem, Money, OrderCancelled, OrderPlaced, OrderReadyForShipment,
    OrderShipped, PaymentAuthorized, PaymentFailed, PaymentVoided, StockReserved,
};
use omnisaga_runtime::consumer::{Handler, Incoming};
use sqlx::PgPool;
use uuid::Uuid;

use super::{database, incoming, one_by_one};

/// Every table the handler writes, as text, without the time a row was written.
const TABLES: [&str; 6] = [
    "SELECT event_id, order_id, event_type, occurred_at, topic FROM received_events ORDER BY event_id",
    "SELECT * FROM stage_events ORDER BY event_id",
    "SELECT * FROM fact_orders ORDER BY order_id",
    "SELECT * FROM fact_order_lines ORDER BY order_id, line",
    "SELECT * FROM dim_sku ORDER BY sku",
    "SELECT * FROM dim_day ORDER BY day",
];

async fn tables(pool: &PgPool) -> Vec<String> {
    let mut dump = Vec::new();
    for query in TABLES {
        let sql = format!("SELECT coalesce(json_agg(t)::text, '[]') FROM ({query}) t");
        dump.push(sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap());
    }
    dump
}

fn placed(order_id: Uuid, channel: Channel, skus: &[(&str, &str)]) -> Incoming {
    let eur = |minor_units| {
        Some(Money {
            minor_units,
            currency: "EUR".into(),
        })
    };
    let items: Vec<LineItem> = skus
        .iter()
        .map(|(sku, name)| LineItem {
            sku: sku.to_string(),
            name: name.to_string(),
            quantity: 1,
            unit_price: eur(100),
        })
        .collect();
    let payload = Payload::OrderPlaced(OrderPlaced {
        order_id: order_id.to_string(),
        channel: channel.into(),
        total: eur(100 * items.len() as i64),
        items,
        ..Default::default()
    });
    incoming(order_id, "order", payload)
}

fn event(order_id: Uuid, of: fn(String) -> Payload) -> Incoming {
    incoming(order_id, "test", of(order_id.to_string()))
}

fn paid(order_id: String) -> Payload {
    Payload::PaymentAuthorized(PaymentAuthorized {
        order_id,
        ..Default::default()
    })
}

fn declined(order_id: String) -> Payload {
    Payload::PaymentFailed(PaymentFailed {
        order_id,
        ..Default::default()
    })
}

fn voided(order_id: String) -> Payload {
    Payload::PaymentVoided(PaymentVoided {
        order_id,
        ..Default::default()
    })
}

fn ready(order_id: String) -> Payload {
    Payload::OrderReadyForShipment(OrderReadyForShipment {
        order_id,
        ..Default::default()
    })
}

fn shipped(order_id: String) -> Payload {
    Payload::OrderShipped(OrderShipped {
        order_id,
        ..Default::default()
    })
}

fn cancelled(order_id: String) -> Payload {
    Payload::OrderCancelled(OrderCancelled {
        order_id,
        reason: "customer_request".into(),
    })
}

fn reserved(order_id: String) -> Payload {
    Payload::StockReserved(StockReserved {
        order_id,
        ..Default::default()
    })
}

#[tokio::test]
async fn a_batch_leaves_the_rows_its_events_leave_one_by_one() {
    let [a, b, c, d] = [(); 4].map(|_| Uuid::new_v4());
    // Rows there before the batch: a placed, b shipped, d cancelled.
    let before = vec![
        placed(a, Channel::Web, &[("SKU-1", "One")]),
        event(b, shipped),
        event(d, cancelled),
    ];
    let again = event(c, paid);
    let batch = vec![
        // a: paid after a decline, shipped, then cancelled too late; placed
        // again (a redelivery under another id) through another channel.
        event(a, declined),
        event(a, paid),
        event(a, shipped),
        event(a, cancelled),
        placed(a, Channel::Mobile, &[("SKU-1", "One"), ("SKU-2", "Two")]),
        // b: placed after it shipped (SKU-1 renamed), cancelled, voided.
        placed(b, Channel::Pos, &[("SKU-1", "One, renamed")]),
        event(b, cancelled),
        event(b, voided),
        event(b, reserved),
        // c: cancelled, then shipped, stages before its placement; one
        // event twice.
        event(c, cancelled),
        again.clone(),
        event(c, ready),
        again,
        event(c, shipped),
        placed(c, Channel::Marketplace, &[("SKU-2", "Two")]),
        // d: shipped after its cancellation, then paid.
        event(d, shipped),
        event(d, paid),
    ];

    let (apart, together) = (database().await, database().await);
    let handler = SagaEvents::default();
    one_by_one(&apart, &handler, &before).await;
    one_by_one(&apart, &handler, &batch).await;

    let handler = SagaEvents::default();
    one_by_one(&together, &handler, &before).await;
    let all: Vec<&Incoming> = batch.iter().collect();
    let mut tx = together.begin().await.unwrap();
    handler.handle_batch(&mut tx, &all).await.expect("handled");
    tx.commit().await.unwrap();

    let (apart, together) = (tables(&apart).await, tables(&together).await);
    for ((query, apart), together) in TABLES.iter().zip(&apart).zip(&together) {
        assert_eq!(apart, together, "{query}");
    }
    let orders: serde_json::Value = serde_json::from_str(&together[2]).unwrap();
    let outcome = |id: Uuid| {
        let row = orders
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["order_id"] == id.to_string())
            .unwrap();
        (
            row["channel"].as_str().unwrap_or("none").to_owned(),
            row["shipped_at"].is_string(),
            row["cancelled_at"].is_string(),
        )
    };
    assert_eq!(outcome(a), ("mobile".into(), true, false));
    assert_eq!(outcome(b), ("pos".into(), true, false));
    assert_eq!(outcome(c), ("marketplace".into(), true, false));
    assert_eq!(outcome(d), ("none".into(), true, false));
}
