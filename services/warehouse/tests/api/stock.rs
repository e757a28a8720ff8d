//! `GET /v1/stock`: what is on hand, reserved and available per SKU.

use std::time::Duration;

use omnisaga_runtime::testing;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn stock_lists_the_seeded_catalog_by_sku_with_nothing_reserved() {
    let app = spawn_app().await;
    let stock = app.get_json("/v1/stock").await;
    let items = stock["items"].as_array().expect("items");
    let skus: Vec<&str> = items.iter().map(|i| i["sku"].as_str().unwrap()).collect();
    assert_eq!(
        skus,
        [
            "SKU-BOTTLE",
            "SKU-HOODIE-L",
            "SKU-LAMP",
            "SKU-MUG",
            "SKU-RARE",
            "SKU-TSHIRT-M"
        ]
    );
    assert_eq!(
        app.stock_of("SKU-LAMP").await,
        json!({"sku": "SKU-LAMP", "on_hand": 25, "reserved": 0, "available": 25})
    );
}

#[tokio::test]
async fn a_placed_order_reserves_its_items() {
    let app = spawn_app().await;
    app.place_order("SKU-LAMP", 2).await;
    let lamp = testing::wait_for("two lamps to be reserved", Duration::from_secs(30), || async {
        let lamp = app.stock_of("SKU-LAMP").await;
        (lamp["reserved"] != 0).then_some(lamp)
    })
    .await
    .unwrap();
    assert_eq!(
        lamp,
        json!({"sku": "SKU-LAMP", "on_hand": 25, "reserved": 2, "available": 23})
    );
}

#[tokio::test]
async fn an_order_for_more_than_is_on_hand_reserves_nothing() {
    let app = spawn_app().await;
    // One signed first edition is stocked; the order wants two.
    let order_id = app.place_order("SKU-RARE", 2).await;
    let events = testing::wait_for("the order to be answered", Duration::from_secs(30), || async {
        let events = app.events_of(order_id).await;
        (!events.is_empty()).then_some(events)
    })
    .await
    .unwrap();
    assert_eq!(events, ["StockUnavailable"]);
    assert_eq!(
        app.stock_of("SKU-RARE").await,
        json!({"sku": "SKU-RARE", "on_hand": 1, "reserved": 0, "available": 1})
    );
}
