//! Live updates of all of a customer's orders (`GET /v1/orders/events`),
//! read with an SSE client library, and the end of every stream when the
//! service stops.

use std::time::Duration;

use futures::StreamExt as _;

use crate::{
    helpers::spawn_app_configured,
    live::{events, expect, open, place, status_is},
};

#[tokio::test]
async fn all_of_a_customers_orders_are_followed_and_resumed_without_loss_or_repeat() {
    let app = spawn_app_configured(|c| c.live.heartbeat = Duration::from_millis(300)).await;
    let a = place(&app).await;
    let mut stream = events(open(&app, &app.http, "/v1/orders/events", None).await);
    let (first, data) = expect(&mut stream, "OrderPlaced", "PLACED").await;
    assert_eq!(data["order_id"], a.to_string());
    let b = place(&app).await;
    let (second, data) = expect(&mut stream, "OrderPlaced", "PLACED").await;
    assert_eq!(data["order_id"], b.to_string());
    drop(stream);

    // While away: A cancelled, C placed. Back: exactly those, in order.
    let resp = app
        .http
        .post(format!("{}/v1/orders/{a}/cancel", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let c = place(&app).await;
    status_is(&app, c, "PLACED").await;
    let mut stream = events(open(&app, &app.http, "/v1/orders/events", Some(&second.id)).await);
    let (third, data) = expect(&mut stream, "OrderCancelled", "CANCELLED").await;
    assert_eq!(data["order_id"], a.to_string());
    let (fourth, data) = expect(&mut stream, "OrderPlaced", "PLACED").await;
    assert_eq!(data["order_id"], c.to_string());
    let ids = [&first.id, &second.id, &third.id, &fourth.id];
    let positions: Vec<(i64, i64)> = ids
        .iter()
        .map(|id| {
            let (tx, at) = id.split_once('-').expect("tx-position");
            (tx.parse().unwrap(), at.parse().unwrap())
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    // Nothing more, not a repeat: the next thing is a heartbeat's silence.
    assert!(
        tokio::time::timeout(Duration::from_secs(1), stream.next())
            .await
            .is_err(),
        "nothing repeated"
    );

    // A new reader starts from the open orders' current state (B and C; A is finished).
    let mut stream = events(open(&app, &app.http, "/v1/orders/events", None).await);
    let (_, data) = expect(&mut stream, "OrderPlaced", "PLACED").await;
    assert_eq!(data["order_id"], b.to_string());
    let (last, data) = expect(&mut stream, "OrderPlaced", "PLACED").await;
    assert_eq!(data["order_id"], c.to_string());
    assert_eq!(last.id, fourth.id);
}

#[tokio::test]
async fn stopping_the_service_ends_open_streams_cleanly() {
    let app = spawn_app_configured(|c| c.live.heartbeat = Duration::from_millis(200)).await;
    let id = place(&app).await;
    let mut one = open(&app, &app.http, &format!("/v1/orders/{id}/events"), None).await;
    let mut all = open(&app, &app.http, "/v1/orders/events", None).await;
    assert_eq!((one.status().as_u16(), all.status().as_u16()), (200, 200));
    // Both have sent something: they are being served.
    assert!(one.chunk().await.unwrap().is_some());
    assert!(all.chunk().await.unwrap().is_some());
    drop(app);
    // The end of the body, not a connection cut at the end of the grace period (8 s).
    for stream in [&mut one, &mut all] {
        tokio::time::timeout(Duration::from_secs(4), async {
            while stream.chunk().await.expect("a clean end").is_some() {}
        })
        .await
        .expect("the stream ends at shutdown");
    }
}
