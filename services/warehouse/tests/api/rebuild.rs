//! The warehouse's projections rebuilt from its events: stock levels
//! (`stock`, `shipped`) and the pick backlog (`pick_tasks`) after real
//! flows are what the events say; a row deleted, changed or added by hand
//! is reported by `--verify` and repaired by a rebuild, which keeps the
//! columns the events do not decide.

use std::time::Duration;

use omnisaga_proto::v1::{envelope::Payload, OrderCancelled};
use omnisaga_runtime::testing;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{spawn_app_with, TestApp};

const WAIT: Duration = Duration::from_secs(30);

impl TestApp {
    /// Runs `/v1/admin/rebuilds` in `mode` over both projections and waits
    /// for it to end: each projection's report, by name.
    async fn rebuild(&self, mode: &str) -> Value {
        let run = testing::rebuild::run(self, "warehouse", mode, None).await;
        let reports = run["report"].as_array().unwrap();
        let names: Vec<&str> = reports
            .iter()
            .map(|r| r["projection"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["stock", "pick_tasks"], "{run}");
        run
    }

    async fn wait_for_task(&self, order_id: Uuid, status: &str) {
        testing::wait_for(status, WAIT, || async {
            (self.task_status(order_id).await? == status).then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("{order_id}'s task {status} within 30 s: {e}"));
    }

    async fn task_id(&self, order_id: Uuid) -> Uuid {
        sqlx::query_scalar("SELECT pick_task_id FROM pick_tasks WHERE order_id = $1")
            .bind(order_id)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    async fn sql(&self, statement: &str) {
        sqlx::query(statement).execute(&self.pool).await.expect(statement);
    }
}

/// `table`'s report in `run`: (missing, extra, different, examples).
fn found(run: &Value, table: &str) -> (i64, i64, i64, String) {
    let t = run["report"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["tables"].as_array().unwrap())
        .find(|t| t["table"] == table)
        .unwrap_or_else(|| panic!("{table} in {run}"));
    let n = |k: &str| t[k].as_i64().unwrap();
    (
        n("missing"),
        n("extra"),
        n("different"),
        t["examples"].to_string(),
    )
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

    let run = app.rebuild("verify").await;
    assert_eq!(run["identical"], true, "{run}");

    // By hand: a row deleted, a decided column changed, a stray row added
    // in each projection, and a column the events do not decide changed.
    let (waiting_task, shipped_task) = (app.task_id(waiting).await, app.task_id(shipped).await);
    let stray = Uuid::new_v4();
    app.sql(&format!("DELETE FROM pick_tasks WHERE order_id = '{waiting}'"))
        .await;
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
    app.sql("UPDATE stock SET reserved = reserved + 5 WHERE sku = 'SKU-LAMP'")
        .await;
    app.sql("INSERT INTO shipped (sku, quantity) VALUES ('SKU-GHOST', 3)")
        .await;

    let run = app.rebuild("verify").await;
    assert_eq!(run["identical"], false, "{run}");
    let (missing, extra, different, examples) = found(&run, "pick_tasks");
    assert_eq!((missing, extra, different), (1, 1, 1), "{run}");
    for example in [
        format!("missing {waiting_task}"),
        format!("extra {stray}"),
        format!("different {shipped_task} (items)"),
    ] {
        assert!(examples.contains(&example), "{example} in {examples}");
    }
    let (missing, extra, different, examples) = found(&run, "stock");
    assert_eq!((missing, extra, different), (1, 0, 1), "{run}");
    for example in ["missing SKU-KETTLE", "different SKU-LAMP (reserved)"] {
        assert!(examples.contains(example), "{example} in {examples}");
    }
    let (missing, extra, different, examples) = found(&run, "shipped");
    assert_eq!((missing, extra, different), (0, 1, 0), "{run}");
    assert!(examples.contains("extra SKU-GHOST"), "{examples}");

    let run = app.rebuild("rebuild").await;
    assert_eq!(run["identical"], false, "{run}");
    let run = app.rebuild("verify").await;
    assert_eq!(run["identical"], true, "after the rebuild: {run}");
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
    assert_eq!(
        correlation, "kept by hand",
        "a column the events do not decide is kept"
    );
}
