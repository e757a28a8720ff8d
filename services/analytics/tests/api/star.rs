//! The star schema analysts query: what a placement and the later stage
//! events fill in, whatever order they arrive in, one order's stages over
//! the API, and docs/analytics.md agreeing with the database.

use std::{collections::BTreeSet, time::Duration};

use omnisaga_proto::v1::{envelope::Payload, Channel, OrderCancelled, OrderShipped, PaymentVoided};
use omnisaga_runtime::testing;
use serde_json::Value;
use sqlx::Row;
use uuid::Uuid;

use crate::helpers::{paid, placed, placed_through, spawn_app, TestApp};

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

#[tokio::test]
async fn a_placement_records_the_orders_channel_day_lines_and_skus() {
    let app = spawn_app().await;
    let order_id = Uuid::new_v4();
    let placed = placed_through(
        order_id,
        Channel::Web,
        &[("SKU-TEA", 2, 450), ("SKU-CUP", 1, 1200)],
    );
    app.publish(&app.kafka.topics().orders, &placed).await;
    wait_for_stages(&app, order_id, 1).await;

    let order = sqlx::query(
        "SELECT channel, placed_day = (placed_at AT TIME ZONE 'UTC')::date, items, total_minor_units, currency,
                payment_outcome
         FROM fact_orders WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(order.get::<String, _>(0), "web");
    assert!(order.get::<bool, _>(1), "placed_day is the UTC day of placed_at");
    assert_eq!(order.get::<i32, _>(2), 3);
    assert_eq!(order.get::<i64, _>(3), 2100);
    assert_eq!(order.get::<String, _>(4), "EUR");
    assert_eq!(order.get::<String, _>(5), "none");

    let lines: Vec<(String, i32, i64, String)> = sqlx::query_as(
        "SELECT l.sku, l.quantity, l.unit_price_minor_units, s.name
         FROM fact_order_lines l JOIN dim_sku s USING (sku) WHERE order_id = $1 ORDER BY line",
    )
    .bind(order_id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        lines,
        [
            ("SKU-TEA".into(), 2, 450, "SKU-TEA name".into()),
            ("SKU-CUP".into(), 1, 1200, "SKU-CUP name".into())
        ]
    );
    let weekend: bool = sqlx::query_scalar(
        "SELECT d.is_weekend = (extract(isodow FROM d.day) >= 6) FROM fact_orders o JOIN dim_day d ON d.day = o.placed_day
         WHERE o.order_id = $1",
    )
    .bind(order_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(weekend, "the placement's day is in dim_day with its attributes");
}

#[tokio::test]
async fn stages_arriving_before_the_placement_get_its_channel_and_their_durations() {
    let app = spawn_app().await;
    let order_id = Uuid::new_v4();
    // Payment's topic is read apart from the orders topic: its answer may come first.
    app.publish(&app.kafka.topics().payments, &paid(order_id, false))
        .await;
    app.publish(&app.kafka.topics().payments, &paid(order_id, true))
        .await;
    wait_for_stages(&app, order_id, 2).await;
    let before: String = sqlx::query_scalar("SELECT DISTINCT channel FROM fact_stages WHERE order_id = $1")
        .bind(order_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(before, "unknown");

    let placed = placed_through(order_id, Channel::Mobile, &[("SKU-TEA", 1, 450)]);
    app.publish(&app.kafka.topics().orders, &placed).await;
    wait_for_stages(&app, order_id, 3).await;

    let rows: Vec<(String, String, String, Option<f64>)> = sqlx::query_as(
        "SELECT stage, channel, payment_outcome, seconds_since_previous FROM fact_stages
         WHERE order_id = $1 ORDER BY occurred_at, event_id",
    )
    .bind(order_id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let stages: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        stages,
        ["payment_declined", "paid", "placed"],
        "by the time each happened"
    );
    assert!(
        rows.iter().all(|r| r.1 == "mobile" && r.2 == "authorized"),
        "{rows:?}"
    );
    assert_eq!(rows[0].3, None, "the first stage has no previous one");
    assert!(
        rows[1..].iter().all(|r| r.3.is_some_and(|s| s >= 0.0)),
        "{rows:?}"
    );
}

#[tokio::test]
async fn an_order_that_shipped_after_its_cancellation_counts_as_shipped_in_either_order() {
    let app = spawn_app().await;
    let cancelled = |id: Uuid| {
        testing::envelope(
            "order",
            &id.to_string(),
            Payload::OrderCancelled(OrderCancelled {
                order_id: id.to_string(),
                reason: "customer_request".into(),
            }),
        )
    };
    let shipped = |id: Uuid| {
        testing::envelope(
            "warehouse",
            &id.to_string(),
            Payload::OrderShipped(OrderShipped {
                order_id: id.to_string(),
                ..Default::default()
            }),
        )
    };
    let topics = app.kafka.topics();
    // The cancellation first (the warehouse had not seen it), then the shipment;
    // and the shipment first (its topic was read sooner), then the cancellation.
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    app.publish(&topics.orders, &placed(first)).await;
    app.publish(&topics.orders, &cancelled(first)).await;
    wait_for_stages(&app, first, 2).await;
    app.publish(&topics.warehouse, &shipped(first)).await;
    app.publish(&topics.orders, &placed(second)).await;
    app.publish(&topics.warehouse, &shipped(second)).await;
    wait_for_stages(&app, second, 2).await;
    app.publish(&topics.orders, &cancelled(second)).await;
    wait_for_stages(&app, first, 3).await;
    wait_for_stages(&app, second, 3).await;
    for id in [first, second] {
        let (shipped, cancelled): (bool, bool) = sqlx::query_as(
            "SELECT shipped_at IS NOT NULL, cancelled_at IS NOT NULL FROM fact_orders WHERE order_id = $1",
        )
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!((shipped, cancelled), (true, false), "{id}");
        let stages: Vec<String> =
            sqlx::query_scalar("SELECT stage FROM stage_events WHERE order_id = $1 ORDER BY stage")
                .bind(id)
                .fetch_all(&app.pool)
                .await
                .unwrap();
        assert_eq!(
            stages,
            ["cancelled", "placed", "shipped"],
            "the cancellation stays a stage"
        );
    }
}

#[tokio::test]
async fn one_orders_stages_are_listed_in_order_and_an_unknown_order_is_not_found() {
    let app = spawn_app().await;
    let order_id = Uuid::new_v4();
    let id = order_id.to_string();
    let topics = app.kafka.topics();
    app.publish(
        &topics.orders,
        &placed_through(order_id, Channel::Pos, &[("SKU-TEA", 1, 450)]),
    )
    .await;
    app.pay(order_id, true).await;
    let voided = PaymentVoided {
        order_id: id.clone(),
        ..Default::default()
    };
    app.publish(
        &topics.payments,
        &testing::envelope("payment", &id, Payload::PaymentVoided(voided)),
    )
    .await;
    let shipped = OrderShipped {
        order_id: id.clone(),
        ..Default::default()
    };
    app.publish(
        &topics.warehouse,
        &testing::envelope("warehouse", &id, Payload::OrderShipped(shipped)),
    )
    .await;
    wait_for_stages(&app, order_id, 4).await;

    let resp = app.get(&format!("/v1/orders/{order_id}/stages")).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    testing::openapi::check_response("analytics", "get", "/v1/orders/{id}/stages", 200, &body).unwrap();
    assert_eq!(body["channel"], "pos");
    assert_eq!(body["payment_outcome"], "authorized");
    let stages: BTreeSet<&str> = body["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        BTreeSet::from(["placed", "paid", "payment_voided", "shipped"])
    );
    let times: Vec<&str> = body["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["at"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{body}");
    assert_eq!(body["stages"][0]["seconds_since_previous"], Value::Null);
    let voids: i32 = sqlx::query_scalar("SELECT payment_voids FROM fact_orders WHERE order_id = $1")
        .bind(order_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(voids, 1);

    for unknown in [Uuid::new_v4().to_string(), "not-a-uuid".to_owned()] {
        let resp = app.get(&format!("/v1/orders/{unknown}/stages")).await;
        assert_eq!(resp.status(), 404, "{unknown}");
        let error: Value = resp.json().await.unwrap();
        testing::openapi::check_response("analytics", "get", "/v1/orders/{id}/stages", 404, &error).unwrap();
        assert_eq!(error["code"], "not_found", "{error}");
    }
}

/// docs/analytics.md: its `### \`table\`` headings with a `| \`column\` |`
/// row per column, the tables its "Operational tables" section lists
/// (`- \`table\``), and its example queries (```sql blocks).
struct Docs {
    columns: BTreeSet<(String, String)>,
    operational: BTreeSet<String>,
    queries: Vec<String>,
}

fn docs() -> Docs {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/analytics.md");
    let text = std::fs::read_to_string(path).expect("docs/analytics.md");
    let mut columns = BTreeSet::new();
    let mut queries = Vec::new();
    let mut operational = BTreeSet::new();
    let mut in_operational = false;
    let (mut table, mut sql): (Option<String>, Option<String>) = (None, None);
    for line in text.lines() {
        if let Some(query) = sql.as_mut() {
            if line.starts_with("```") {
                queries.push(sql.take().unwrap());
            } else {
                query.push_str(line);
                query.push('\n');
            }
        } else if line.starts_with("```sql") {
            sql = Some(String::new());
        } else if let Some(heading) = line.strip_prefix("### `") {
            table = heading.split('`').next().map(str::to_owned);
        } else if let Some(section) = line.strip_prefix("## ") {
            table = None;
            in_operational = section.starts_with("Operational tables");
        } else if let (true, Some(item)) = (in_operational, line.strip_prefix("- `")) {
            operational.insert(item.split('`').next().unwrap_or_default().to_owned());
        } else if let (Some(t), Some(cell)) = (&table, line.strip_prefix("| `")) {
            let column = cell.split('`').next().unwrap_or_default();
            columns.insert((t.clone(), column.to_owned()));
        }
    }
    Docs {
        columns,
        operational,
        queries,
    }
}

#[tokio::test]
async fn docs_analytics_documents_every_table_and_column_and_its_queries_run() {
    let app = spawn_app().await;
    let order_id = Uuid::new_v4();
    app.publish(
        &app.kafka.topics().orders,
        &placed_through(order_id, Channel::Web, &[("SKU-TEA", 1, 450)]),
    )
    .await;
    app.pay(order_id, true).await;
    let id = order_id.to_string();
    let shipped = OrderShipped {
        order_id: id.clone(),
        ..Default::default()
    };
    app.publish(
        &app.kafka.topics().warehouse,
        &testing::envelope("warehouse", &id, Payload::OrderShipped(shipped)),
    )
    .await;
    wait_for_stages(&app, order_id, 3).await;

    let in_database: BTreeSet<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns c
         WHERE table_schema = 'public' AND NOT EXISTS
           (SELECT 1 FROM pg_class p WHERE p.relname = c.table_name AND p.relispartition)",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let docs = docs();
    let in_database: BTreeSet<(String, String)> = in_database
        .into_iter()
        .filter(|(table, _)| !docs.operational.contains(table))
        .collect();
    let operational_tables: BTreeSet<String> = sqlx::query_scalar(
        // A partition is its parent's: the audit log's months are not listed.
        "SELECT table_name::text FROM information_schema.tables t WHERE table_schema = 'public' AND NOT EXISTS
           (SELECT 1 FROM pg_class p WHERE p.relname = t.table_name AND p.relispartition)",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
    .into_iter()
    .filter(|t| docs.operational.contains(t))
    .collect();
    assert_eq!(
        operational_tables, docs.operational,
        "operational tables listed that do not exist"
    );
    assert_eq!(
        docs.columns, in_database,
        "docs/analytics.md and the analytics database disagree on tables and columns"
    );
    assert!(docs.queries.len() >= 5, "the example queries: {:?}", docs.queries);
    for query in &docs.queries {
        let rows = sqlx::query(query)
            .fetch_all(&app.pool)
            .await
            .unwrap_or_else(|e| panic!("{query}\nfails: {e}"));
        assert!(!rows.is_empty(), "{query}\nanswers nothing after an order");
    }
}
