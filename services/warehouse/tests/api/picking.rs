//! The pickers hold no transaction while they pick and pack.

use std::time::Duration;

use omnisaga_runtime::testing;

use crate::helpers::spawn_app_with;

#[tokio::test]
async fn a_pick_longer_than_the_idle_transaction_timeout_is_still_packed() {
    // A transaction idle for more than 300 ms is ended by the server; a
    // pick and pack takes 1.5 s.
    let app = spawn_app_with(|config| {
        config.common.database_timeouts.idle_in_transaction = Duration::from_millis(300);
        config.pick = Duration::from_millis(1000);
        config.pack = Duration::from_millis(500);
        config.ship = Duration::from_secs(3600);
    })
    .await;
    let order_id = app.place_order("SKU-LAMP", 1).await;
    testing::wait_for("the pick task", Duration::from_secs(30), || async {
        (app.task_status(order_id).await? == "WAITING_PAYMENT").then_some(())
    })
    .await
    .expect("a pick task waiting for payment");
    app.pay(order_id).await;
    testing::wait_for("the order to be packed", Duration::from_secs(30), || async {
        (app.task_status(order_id).await? == "PACKED").then_some(())
    })
    .await
    .expect("packed, though picking outlasts the idle-transaction timeout");
    let events = app.events_of(order_id).await;
    assert_eq!(
        events.iter().filter(|e| *e == "OrderReadyForShipment").count(),
        1,
        "{events:?}"
    );
}
