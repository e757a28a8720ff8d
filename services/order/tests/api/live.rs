//! Live order updates (`GET /v1/orders/{id}/events`, `GET /v1/orders/events`)
//! read with an SSE client library, as the app reads them: the current
//! state first, then each change as it is recorded, a reconnection with
//! `Last-Event-ID` resuming exactly after it, the end after a final state;
//! another customer's order is no such order, and streams are bounded.

use std::{pin::Pin, time::Duration};

use eventsource_stream::{Event, Eventsource as _};
use futures::{Stream, StreamExt as _};
use omnisaga_order::api::events::poll;
use omnisaga_proto::v1::{envelope::Payload, OrderReadyForShipment, OrderShipped, PaymentAuthorized};
use omnisaga_runtime::testing::{self, assert_error};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{order_body, spawn_app_configured, TestApp};

pub(crate) type Events = Pin<Box<dyn Stream<Item = Event> + Send>>;

/// How long a message may take to arrive.
pub(crate) const WAIT: Duration = Duration::from_secs(20);

pub(crate) async fn place(app: &TestApp) -> Uuid {
    let resp = app
        .post_order(Some(&Uuid::new_v4().to_string()), &order_body())
        .await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    body["order_id"].as_str().unwrap().parse().unwrap()
}

/// `GET path` as an event stream, after `last` when given.
pub(crate) async fn open(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    last: Option<&str>,
) -> reqwest::Response {
    let mut req = client
        .get(format!("{}{path}", app.url))
        .header("Accept", "text/event-stream")
        .header("X-Request-Id", testing::REQUEST_ID);
    if let Some(last) = last {
        req = req.header("Last-Event-ID", last);
    }
    req.send().await.expect("request sent")
}

/// The messages of an open stream, through the SSE parser.
pub(crate) fn events(resp: reqwest::Response) -> Events {
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let chunks = futures::stream::unfold(resp, |mut r| async move {
        match r.chunk().await {
            Ok(Some(b)) => Some((Ok::<_, reqwest::Error>(b), r)),
            _ => None,
        }
    });
    Box::pin(chunks.eventsource().map(|e| e.expect("a well-formed event")))
}

/// The next message, `None` once the stream ended.
pub(crate) async fn next(events: &mut Events) -> Option<Event> {
    tokio::time::timeout(WAIT, events.next())
        .await
        .expect("a message or the end in time")
}

/// The next message, with its data: its type and status checked.
pub(crate) async fn expect(events: &mut Events, event_type: &str, status: &str) -> (Event, Value) {
    let e = next(events).await.expect("one more message");
    let data: Value = serde_json::from_str(&e.data).unwrap();
    assert_eq!(
        (e.event.as_str(), data["status"].as_str()),
        (event_type, Some(status)),
        "{data}"
    );
    assert_eq!(data["entry"]["event_type"], event_type, "{data}");
    (e, data)
}

pub(crate) async fn status_is(app: &TestApp, id: Uuid, status: &str) {
    testing::wait_for(&format!("the order to be {status}"), WAIT, || async {
        let o: Value = app
            .http
            .get(format!("{}/v1/orders/{id}", app.url))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (o["status"] == status).then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn an_order_is_followed_live_and_resumed_exactly_where_it_was_left() {
    let app = spawn_app_configured(|c| c.live.heartbeat = Duration::from_millis(300)).await;
    let id = place(&app).await;
    let path = format!("/v1/orders/{id}/events");
    let mut stream = events(open(&app, &app.http, &path, None).await);
    let (first, data) = expect(&mut stream, "OrderPlaced", "PLACED").await;
    assert_eq!(
        (first.id.as_str(), data["order_id"].as_str()),
        ("1", Some(id.to_string().as_str()))
    );

    let paid = Payload::PaymentAuthorized(PaymentAuthorized {
        order_id: id.to_string(),
        attempt: 1,
        ..Default::default()
    });
    app.publish_as("payment", &app.kafka.topics().payments, id, paid)
        .await;
    let (second, _) = expect(&mut stream, "PaymentAuthorized", "PAID").await;
    assert_eq!(second.id, "2");
    drop(stream);

    // Recorded while no one listens: the reconnection gets it, once.
    let ready = Payload::OrderReadyForShipment(OrderReadyForShipment {
        order_id: id.to_string(),
        parcels: 1,
        ..Default::default()
    });
    app.publish_as("warehouse", &app.kafka.topics().warehouse, id, ready)
        .await;
    status_is(&app, id, "READY_FOR_SHIPMENT").await;
    let mut stream = events(open(&app, &app.http, &path, Some(&second.id)).await);
    let (third, _) = expect(&mut stream, "OrderReadyForShipment", "READY_FOR_SHIPMENT").await;
    assert_eq!(third.id, "3");

    let shipped = Payload::OrderShipped(OrderShipped {
        order_id: id.to_string(),
        carrier: "DHL".into(),
        tracking_number: "T1".into(),
    });
    app.publish_as("warehouse", &app.kafka.topics().warehouse, id, shipped)
        .await;
    let (fourth, _) = expect(&mut stream, "OrderShipped", "SHIPPED").await;
    assert_eq!(fourth.id, "4");
    assert!(next(&mut stream).await.is_none(), "the stream ends after SHIPPED");

    // Nothing after the last one of a finished order: no content, so the client stops.
    let resp = open(&app, &app.http, &path, Some("4")).await;
    assert_eq!(resp.status(), 204);
    // A new reader of a finished order gets its final state, then the end.
    let mut stream = events(open(&app, &app.http, &path, None).await);
    let (last, _) = expect(&mut stream, "OrderShipped", "SHIPPED").await;
    assert_eq!(last.id, "4");
    assert!(next(&mut stream).await.is_none());
}

#[tokio::test]
async fn a_stream_is_the_customers_own_bounded_kept_open_and_ends_when_cancelled() {
    let app = spawn_app_configured(|c| {
        c.live.heartbeat = Duration::from_millis(200);
        c.live.max_per_customer = 1;
    })
    .await;
    let id = place(&app).await;
    let path = format!("/v1/orders/{id}/events");
    let stranger = app.as_caller(&testing::auth::customer_token("cust-2"));
    assert_error(open(&app, &stranger, &path, None).await, 404, "not_found").await;
    assert_error(
        open(
            &app,
            &app.http,
            &format!("/v1/orders/{}/events", Uuid::now_v7()),
            None,
        )
        .await,
        404,
        "not_found",
    )
    .await;
    assert_error(
        open(&app, &app.http, &path, Some("x")).await,
        422,
        "validation_failed",
    )
    .await;
    assert_error(
        open(&app, &app.http, &path, Some("9")).await,
        422,
        "validation_failed",
    )
    .await;

    // The raw stream: the state, then a heartbeat comment while nothing happens.
    let mut raw = open(&app, &app.http, &path, None).await;
    assert_eq!(raw.status(), 200);
    let mut text = String::new();
    tokio::time::timeout(WAIT, async {
        while !text.contains(": heartbeat") {
            let chunk = raw.chunk().await.unwrap().expect("the stream stays open");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .expect("a heartbeat in time");
    assert!(text.starts_with("id: 1\nevent: OrderPlaced\ndata: {"), "{text}");

    // One stream per customer here: the second is refused, with the envelope.
    let refused = assert_error(open(&app, &app.http, &path, None).await, 429, "too_many_streams").await;
    assert!(
        refused["message"].as_str().unwrap().contains("at most 1"),
        "{refused}"
    );
    drop(raw);

    // The place is given back when the reader leaves.
    let mut stream = testing::wait_for("the first stream's place to be free", WAIT, || async {
        let resp = open(&app, &app.http, &path, None).await;
        (resp.status() == 200).then(|| events(resp))
    })
    .await
    .unwrap();
    expect(&mut stream, "OrderPlaced", "PLACED").await;
    let resp = app
        .http
        .post(format!("{}/v1/orders/{id}/cancel", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (cancelled, _) = expect(&mut stream, "OrderCancelled", "CANCELLED").await;
    assert_eq!(cancelled.id, "2");
    assert!(
        next(&mut stream).await.is_none(),
        "the stream ends after CANCELLED"
    );
}

/// The pids of the order app's poller connections.
async fn pollers(app: &TestApp) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1",
    )
    .bind(poll::APPLICATION_NAME)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_poller_runs_only_while_a_stream_is_open_and_misses_nothing_while_its_connection_is_down() {
    let app = spawn_app_configured(|c| {
        c.live.heartbeat = Duration::from_millis(300);
        c.live.poll = Duration::from_millis(500);
    })
    .await;
    let id = place(&app).await;
    assert_eq!(
        pollers(&app).await,
        Vec::<i32>::new(),
        "no stream open: no poller"
    );
    let mut stream = events(open(&app, &app.http, &format!("/v1/orders/{id}/events"), None).await);
    expect(&mut stream, "OrderPlaced", "PLACED").await;
    let poller = testing::wait_for("the poller's connection", WAIT, || async {
        pollers(&app).await.first().copied()
    })
    .await
    .unwrap();
    // Its connection dropped, the cancellation is recorded before it is back.
    let dropped: Vec<bool> = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(poller)
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(dropped, [true]);
    let resp = app
        .http
        .post(format!("{}/v1/orders/{id}/cancel", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Within the wait, before the 30 s re-read: the poller goes on from where it was.
    let (cancelled, _) = expect(&mut stream, "OrderCancelled", "CANCELLED").await;
    assert_eq!(cancelled.id, "2");
    assert!(next(&mut stream).await.is_none());
    // The last stream ended: the poller stops and lets its connection go.
    testing::wait_for("the poller to stop", WAIT, || async {
        pollers(&app).await.is_empty().then_some(())
    })
    .await
    .unwrap();
}
