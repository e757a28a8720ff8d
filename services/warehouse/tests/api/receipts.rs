//! Goods received are events: each SKU seeded, each row imported and the
//! opening balance of stock counted before receipts were events is a
//! `GoodsReceived` in the SKU's stream `stock-<sku>`, recorded with the
//! stock it adds.

use omnisaga_proto::v1::envelope::Payload;
use omnisaga_runtime::store;
use omnisaga_warehouse::store::{open_balances, seed_stock, stock_stream};

use crate::helpers::{spawn_app, TestApp};

impl TestApp {
    /// The receipts of `sku`, in order: (source, quantity).
    pub async fn receipts(&self, sku: &str) -> Vec<(String, i64)> {
        let mut conn = self.pool.acquire().await.unwrap();
        store::load(&mut conn, &stock_stream(sku))
            .await
            .unwrap()
            .into_iter()
            .map(|e| match e.envelope.payload {
                Some(Payload::GoodsReceived(g)) => {
                    assert_eq!(g.sku, sku);
                    (g.source, g.quantity)
                }
                other => panic!("{other:?} in the receipts of {sku}"),
            })
            .collect()
    }
}

#[tokio::test]
async fn each_sku_seeded_is_received_once_however_often_the_seed_runs() {
    let app = spawn_app().await;
    assert_eq!(app.receipts("SKU-LAMP").await, [("seed".to_owned(), 25)]);
    assert_eq!(app.receipts("SKU-RARE").await, [("seed".to_owned(), 1)]);

    // A restart seeds the catalog again: only a SKU it did not know is added.
    let catalog = [("SKU-LAMP".to_owned(), 99), ("SKU-KETTLE".to_owned(), 3)];
    seed_stock(&app.pool, &catalog).await.unwrap();
    seed_stock(&app.pool, &catalog).await.unwrap();
    assert_eq!(app.receipts("SKU-LAMP").await, [("seed".to_owned(), 25)]);
    assert_eq!(app.receipts("SKU-KETTLE").await, [("seed".to_owned(), 3)]);
    assert_eq!(app.stock_of("SKU-LAMP").await["on_hand"], 25);
    assert_eq!(app.stock_of("SKU-KETTLE").await["on_hand"], 3);
}

#[tokio::test]
async fn stock_counted_before_receipts_were_events_is_opened_once() {
    let app = spawn_app().await;
    // A SKU stocked before this change, and one whose receipts are gone.
    sqlx::query("INSERT INTO stock (sku, on_hand, reserved) VALUES ('SKU-OLD', 7, 2)")
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM events WHERE stream_id = 'stock-SKU-MUG'")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(open_balances(&app.pool).await.unwrap(), ["SKU-MUG", "SKU-OLD"]);
    assert_eq!(open_balances(&app.pool).await.unwrap(), Vec::<String>::new());
    assert_eq!(app.receipts("SKU-OLD").await, [("opening".to_owned(), 7)]);
    assert_eq!(app.receipts("SKU-MUG").await, [("opening".to_owned(), 100_000)]);
    assert_eq!(app.receipts("SKU-LAMP").await, [("seed".to_owned(), 25)]);
}
