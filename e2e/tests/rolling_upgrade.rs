//! The rolling upgrade of an event's version, on a real stack: the
//! warehouse publishes `OrderShipped` version 1 (as it does until every
//! consumer runs the release that reads version 2), then, restarted with
//! `WAREHOUSE_ORDER_SHIPPED_VERSION=2`, version 2. Every consumer (order,
//! notification, analytics) acts on both, the app sees both shipments'
//! tracking numbers alike, and the warehouse still reads its own stream
//! with the version-1 event in it.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use omnisaga_e2e::{
    client::{order_body, wait_for, Client},
    Stack, StackOptions,
};
use omnisaga_proto::v1::{envelope::Payload, Envelope};
use prost::Message;
use sqlx::Connection;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_ship_while_the_warehouse_moves_from_order_shipped_v1_to_v2() -> Result<()> {
    let options = StackOptions::for_test().warehouse_ms(20, 0, 20).set_env(
        "warehouse",
        "WAREHOUSE_ORDER_SHIPPED_VERSION",
        "1",
    );
    let mut stack = Stack::start(options).await?;
    let result = run(&mut stack).await;
    stack.finish(result.is_ok()).await?;
    result
}

async fn run(stack: &mut Stack) -> Result<()> {
    let c = Client::new(stack);
    let before = c
        .place(&order_body("SKU-MUG", 1, "tok_visa", "upgrade-before"))
        .await?;
    shipped_everywhere(&c, &before).await?;
    let (version, payload) = shipment_as_written(stack, &before).await?;
    let Some(Payload::OrderShipped(v1)) = payload else {
        anyhow::bail!("published before the switch as version {version}: {payload:?}");
    };
    ensure!(version == 1, "schema version {version} on a version-1 payload");
    // The order service keeps the fact as it came (a rollback reads it)...
    let (kept, fact) = stored_shipment(stack, "order", &format!("order-{before}")).await?;
    ensure!(
        kept == 1 && fact == Some(Payload::OrderShipped(v1.clone())),
        "the order service rewrote the version-1 fact: version {kept}, {fact:?}"
    );
    // ...and the app sees the version-1 shipment as one parcel.
    ensure!(
        tracking_numbers(&c, &before).await? == [v1.tracking_number.clone()],
        "the order does not show the version-1 shipment's tracking number {}",
        v1.tracking_number
    );

    stack.stop_service("warehouse").await?;
    stack.set_service_env("warehouse", "WAREHOUSE_ORDER_SHIPPED_VERSION", "2");
    stack.start_service("warehouse").await?;

    let after = c
        .place(&order_body("SKU-MUG", 1, "tok_visa", "upgrade-after"))
        .await?;
    shipped_everywhere(&c, &after).await?;
    let (version, payload) = shipment_as_written(stack, &after).await?;
    let Some(Payload::OrderShippedV2(shipped)) = payload else {
        anyhow::bail!("published after the switch as version {version}: {payload:?}");
    };
    ensure!(version == 2, "schema version {version} on a version-2 payload");
    ensure!(
        shipped.parcels.len() == 1 && shipped.parcels[0].tracking_number.starts_with("OSP"),
        "{shipped:?}"
    );
    let numbers: Vec<String> = shipped
        .parcels
        .iter()
        .map(|p| p.tracking_number.clone())
        .collect();
    ensure!(
        tracking_numbers(&c, &after).await? == numbers,
        "the order does not show the version-2 shipment's tracking numbers {numbers:?}"
    );

    // The restarted warehouse folds the stream holding the version-1 event.
    let fulfilment = c
        .get(&format!("{}/v1/orders/{before}/fulfilment", c.warehouse_admin))
        .await?;
    ensure!(
        fulfilment["stock"]["shipped"] == true,
        "the warehouse no longer reads its version-1 shipment: {fulfilment}"
    );
    Ok(())
}

/// The tracking numbers `GET /v1/orders/{id}` shows for the order's parcels.
async fn tracking_numbers(c: &Client, id: &str) -> Result<Vec<String>> {
    let order = c.order(id).await?;
    Ok(order["shipment"]["parcels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["tracking_number"].as_str().map(str::to_owned))
        .collect())
}

/// Waits until the order service, notification and analytics all acted on
/// the order's shipment.
async fn shipped_everywhere(c: &Client, id: &str) -> Result<()> {
    c.wait_status(id, "SHIPPED", WAIT).await?;
    c.wait_message(id, "shipped", WAIT).await?;
    wait_for(&format!("analytics to record {id} as shipped"), WAIT, || async {
        let stages = c.get(&format!("{}/v1/orders/{id}/stages", c.analytics)).await?;
        Ok(stages["stages"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["stage"] == "shipped")
            .then_some(()))
    })
    .await
}

/// The schema version and payload of the order's `OrderShipped` as the
/// warehouse wrote it (its stream keeps the bytes it published), not upcast.
async fn shipment_as_written(stack: &Stack, id: &str) -> Result<(u32, Option<Payload>)> {
    stored_shipment(stack, "warehouse", &format!("fulfilment-{id}")).await
}

/// The `OrderShipped` in `service`'s stream `stream_id`, as stored.
async fn stored_shipment(stack: &Stack, service: &str, stream_id: &str) -> Result<(u32, Option<Payload>)> {
    let url = format!("{}/{}", omnisaga_e2e::pg_server(), stack.database(service));
    let mut db = sqlx::PgConnection::connect(&url).await?;
    let bytes: Vec<u8> = sqlx::query_scalar(
        "SELECT envelope FROM events WHERE stream_id = $1 AND event_type = 'OrderShipped'",
    )
    .bind(stream_id)
    .fetch_one(&mut db)
    .await
    .with_context(|| format!("no OrderShipped in {service}'s stream {stream_id}"))?;
    let envelope = Envelope::decode(bytes.as_slice())?;
    Ok((envelope.schema_version, envelope.payload))
}
