//! The warehouse's projections rebuilt from its events: stock levels
//! (`stock`, `shipped`) and the pick backlog (`pick_tasks`) after real
//! flows are what the events say; a row deleted, changed or added by hand
//! is reported by `--verify` and repaired by a rebuild, which keeps the
//! columns the events do not decide.

use std::time::Duration;

use omnisaga_proto::v1::{envelope::Payload, OrderCancelled};
use omnisaga_runtime::{
    projection::Projection,
    rebuild::{self, Mode, Progress, ProjectionReport},
    testing,
};
use omnisaga_warehouse::projection::{PickBacklog, StockLevels};
use uuid::Uuid;

use crate::helpers::{spawn_app_with, TestApp};

impl TestApp {
    async fn rebuild(&self, projection: &dyn Projection, mode: Mode) -> ProjectionReport {
        rebuild::run(&self.pool, projection, mode, &Progress::default())
            .await
            .expect("the rebuild runs")
    }

    async fn wait_for_task(&self, order_id: Uuid, status: &str) {
        testing::wait_for(status, Duration::from_secs(30), || async {
            (self.task_status(order_id).await? == status).then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("{order_id}'s task {status} within 30 s: {e}"));
    }

    async fn sql(&self, statement: &str) {
        sqlx::query(statement).execute(&self.pool).await.expect(statement);
    }
}

/// The table's report in `report`: (missing, extra, different, examples).
fn found(report: &ProjectionReport, table: &str) -> (u64, u64, u64, String) {
    let t = report
        .tables
        .iter()
        .find(|t| t.table == table)
        .unwrap_or_else(|| panic!("{table} in {report:?}"));
    (t.missing as u64, t.extra as u64, t.different as u64, t.examples.join(" | "))
}

#[tokio::test]
async fn stock_and_the_pick_backlog_are_rebuilt_from_the_events_alone() {
    let app = spawn_app_with(|config| {
        config.pick = Duration::from_millis(10);
        config.pack = Duration::from_millis(10);
        config.ship = Duration::from_millis(10);
    })
    .await;
    // Goods received, an order shipped, one cancelled after its stock was
    // reserved, one refused for want of stock, one waiting for payment.
    let csv = "sku,quantity\nSKU-LAMP,5\nSKU-KETTLE,12\n";
    let resp = app
        .http
        .post(format!("{}/v1/stock/batch", app.admin_url))
        .header("content-type", "text/csv")
        .header("batch-id", "delivery-1")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let shipped = app.place_order("SKU-LAMP", 2).await;
    let cancelled = app.place_order("SKU-KETTLE", 3).await;
    let refused = app.place_order("SKU-RARE", 2).await;
    let waiting = app.place_order("SKU-MUG", 1).await;
    app.wait_for_task(shipped, "WAITING_PAYMENT").await;
    app.pay(shipped).await;
    app.wait_for_task(cancelled, "WAITING_PAYMENT").await;
    let cancel = Payload::OrderCancelled(OrderCancelled {
        order_id: cancelled.to_string(),
        reason: "customer_request".into(),
    });
    app.publish_as("order", &app.kafka.topics().orders, cancelled, cancel)
        .await;
    app.wait_for_task(shipped, "SHIPPED").await;
    app.wait_for_task(cancelled, "CANCELLED").await;
    app.wait_for_task(waiting, "WAITING_PAYMENT").await;
    testing::wait_for("the refusal", Duration::from_secs(30), || async {
        (app.events_of(refused).await == ["StockUnavailable"]).then_some(())
    })
    .await
    .expect("stock unavailable within 30 s");
    let kettle = app.stock_of("SKU-KETTLE").await;
    assert_eq!((&kettle["on_hand"], &kettle["reserved"]), (&12.into(), &0.into()));

    for projection in [&StockLevels as &dyn Projection, &PickBacklog] {
        let report = app.rebuild(projection, Mode::Verify).await;
        assert!(report.identical(), "{report:?}");
    }

    // By hand: a row deleted, a decided column changed, a stray row added
    // in each projection, and a column the events do not decide changed.
    let task_of = |order: Uuid| async move {
        sqlx::query_scalar::<_, Uuid>("SELECT pick_task_id FROM pick_tasks WHERE order_id = $1")
            .bind(order)
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    let (waiting_task, shipped_task) = (task_of(waiting).await, task_of(shipped).await);
    let stray = Uuid::new_v4();
    app.sql(&format!("DELETE FROM pick_tasks WHERE order_id = '{waiting}'")).await;
    app.sql(&format!(
        "UPDATE pick_tasks SET items = '[]', correlation_id = 'kept by hand' WHERE order_id = '{shipped}'"
    ))
    .await;
    app.sql(&format!(
        "INSERT INTO pick_tasks (pick_task_id, order_id, items, status) VALUES ('{stray}', '{}', '[]', 'SHIPPED')",
        Uuid::new_v4()
    ))
    .await;
    app.sql("DELETE FROM stock WHERE sku = 'SKU-KETTLE'").await;
    app.sql("UPDATE stock SET reserved = reserved + 5 WHERE sku = 'SKU-LAMP'").await;
    app.sql("INSERT INTO shipped (sku, quantity) VALUES ('SKU-GHOST', 3)").await;

    let tasks = app.rebuild(&PickBacklog, Mode::Verify).await;
    let (missing, extra, different, examples) = found(&tasks, "pick_tasks");
    assert_eq!((missing, extra, different), (1, 1, 1), "{tasks:?}");
    for id in [waiting_task, shipped_task, stray] {
        assert!(examples.contains(&id.to_string()), "{id} in {examples}");
    }
    let stock = app.rebuild(&StockLevels, Mode::Verify).await;
    let (missing, extra, different, examples) = found(&stock, "stock");
    assert_eq!((missing, extra, different), (1, 0, 1), "{stock:?}");
    assert!(examples.contains("SKU-KETTLE") && examples.contains("SKU-LAMP"), "{examples}");
    let (missing, extra, different, examples) = found(&stock, "shipped");
    assert_eq!((missing, extra, different), (0, 1, 0), "{stock:?}");
    assert!(examples.contains("SKU-GHOST"), "{examples}");

    for projection in [&StockLevels as &dyn Projection, &PickBacklog] {
        app.rebuild(projection, Mode::Rebuild).await;
        let report = app.rebuild(projection, Mode::Verify).await;
        assert!(report.identical(), "after the rebuild: {report:?}");
    }
    let kettle = app.stock_of("SKU-KETTLE").await;
    assert_eq!((&kettle["on_hand"], &kettle["reserved"]), (&12.into(), &0.into()));
    assert_eq!(app.stock_of("SKU-LAMP").await["reserved"], 0);
    assert_eq!(app.task_status(waiting).await.as_deref(), Some("WAITING_PAYMENT"));
    let (items, correlation): (serde_json::Value, String) =
        sqlx::query_as("SELECT items, correlation_id FROM pick_tasks WHERE order_id = $1")
            .bind(shipped)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(items, serde_json::json!([{"sku": "SKU-LAMP", "quantity": 2}]));
    assert_eq!(correlation, "kept by hand", "a column the events do not decide is kept");
}
