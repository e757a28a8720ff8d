//! `GET /v1/summary?from=&to=` (the figures of the orders placed in a
//! window) and `GET /v1/exports/orders.csv` (their facts as CSV).

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use omnisaga_proto::v1::{envelope::Payload, Channel, Customer, Envelope};
use omnisaga_runtime::{event, testing, EventMeta};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{paid, placed_through, spawn_app, TestApp};

/// `env` as if it had happened at `at`.
pub fn at(env: Envelope, at: DateTime<Utc>) -> Envelope {
    let payload = env.payload.expect("a payload");
    event::envelope(&env.producer, &env.order_id, payload, &EventMeta::default(), at)
}

/// An `OrderPlaced` of `order_id` by `customer` through `channel` at `time`.
pub fn placed_by(order_id: Uuid, customer: &str, channel: Channel, time: DateTime<Utc>) -> Envelope {
    let mut env = placed_through(order_id, channel, &[("SKU-TEA", 2, 450)]);
    if let Some(Payload::OrderPlaced(p)) = env.payload.as_mut() {
        p.customer = Some(Customer {
            customer_id: customer.into(),
        });
    }
    at(env, time)
}

/// 10:00 UTC on `day` November 2026.
fn november(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, 10, 0, 0).unwrap()
}

/// RFC 3339 as a query takes it (`Z`: no `+` to encode).
fn q(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

async fn summary_of(app: &TestApp, query: &str) -> Value {
    let resp = app.get(&format!("/v1/summary?{query}")).await;
    assert_eq!(resp.status(), 200, "{query}");
    let body: Value = resp.json().await.unwrap();
    testing::openapi::check_response("analytics", "get", "/v1/summary", 200, &body).unwrap();
    body
}

/// Asks `path`, expects `status` with the error `code`, documented.
async fn refused(app: &TestApp, path: &str, route: &str, status: u16, code: &str) {
    let resp = app.get(path).await;
    assert_eq!(resp.status(), status, "{path}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], code, "{path}: {body}");
    testing::openapi::check_response("analytics", "get", route, status, &body).unwrap();
}

#[tokio::test]
async fn a_window_sums_up_the_orders_placed_in_it_and_a_reversed_one_is_refused() {
    let app = spawn_app().await;
    let topics = app.kafka.topics();
    let (early, late, stray) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    app.publish(
        &topics.orders,
        &placed_by(early, "c-1", Channel::Web, november(1)),
    )
    .await;
    app.publish(&topics.payments, &at(paid(early, true), november(1)))
        .await;
    app.publish(
        &topics.orders,
        &placed_by(late, "c-2", Channel::Mobile, november(2)),
    )
    .await;
    app.publish(&topics.payments, &at(paid(late, false), november(2)))
        .await;
    // A payment whose placement has not arrived: in no bounded window.
    app.pay(stray, true).await;
    testing::wait_for("five events to be counted", Duration::from_secs(30), || async {
        let s = app.summary().await;
        let counted =
            s["orders"]["placed"] == 2 && s["payments"]["authorized"] == 2 && s["payments"]["failed"] == 1;
        counted.then_some(())
    })
    .await
    .unwrap();

    let hour = chrono::Duration::hours(1);
    let second_day = summary_of(
        &app,
        &format!("from={}&to={}", q(november(2) - hour), q(november(3))),
    )
    .await;
    assert_eq!(second_day["orders"]["placed"], 1, "{second_day}");
    assert_eq!(second_day["orders"]["paid"], 0, "{second_day}");
    assert_eq!(second_day["payments"]["failed"], 1, "{second_day}");
    assert_eq!(second_day["payments"]["authorized"], 0, "{second_day}");
    assert_eq!(second_day["payments"]["success_share"], 0.0, "{second_day}");
    let channels: Vec<&str> = second_day["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, ["mobile"]);

    let since_first = summary_of(&app, &format!("from={}", q(november(1) - hour))).await;
    assert_eq!(since_first["orders"]["placed"], 2, "{since_first}");
    assert_eq!(
        since_first["payments"]["authorized"], 1,
        "the stray payment is in no window"
    );
    assert!(
        since_first["channels"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["channel"] != "unknown"),
        "{since_first}"
    );
    let before_second = summary_of(&app, &format!("to={}", q(november(2) - hour))).await;
    assert_eq!(before_second["orders"]["placed"], 1, "{before_second}");
    assert_eq!(before_second["payments"]["success_share"], 1.0, "{before_second}");
    let everything = summary_of(&app, "").await;
    assert_eq!(everything["payments"]["authorized"], 2, "no window: every order");

    let reversed = format!("/v1/summary?from={}&to={}", q(november(2)), q(november(1)));
    refused(&app, &reversed, "/v1/summary", 422, "validation_failed").await;
    refused(
        &app,
        "/v1/summary?from=yesterday",
        "/v1/summary",
        400,
        "bad_request",
    )
    .await;
}

#[tokio::test]
async fn the_export_streams_the_windows_order_facts_as_csv_with_quoted_fields() {
    let app = spawn_app().await;
    let topics = app.kafka.topics();
    let (quoted, plain, outside) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let odd = "c-\"quoted\", with comma";
    app.publish(&topics.orders, &placed_by(quoted, odd, Channel::Web, november(1)))
        .await;
    app.publish(&topics.payments, &at(paid(quoted, true), november(1)))
        .await;
    app.publish(
        &topics.orders,
        &placed_by(plain, "c-2", Channel::Pos, november(2)),
    )
    .await;
    app.publish(
        &topics.orders,
        &placed_by(outside, "c-3", Channel::Pos, november(5)),
    )
    .await;
    testing::wait_for(
        "the placements and the payment",
        Duration::from_secs(30),
        || async {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM fact_orders WHERE placed_at IS NOT NULL")
                .fetch_one(&app.pool)
                .await
                .unwrap();
            let paid: i64 = sqlx::query_scalar("SELECT count(*) FROM fact_orders WHERE paid_at IS NOT NULL")
                .fetch_one(&app.pool)
                .await
                .unwrap();
            (n == 3 && paid == 1).then_some(())
        },
    )
    .await
    .unwrap();
    // Enough orders for several batches of the cursor, on a day of their own.
    sqlx::query(
        "INSERT INTO fact_orders (order_id, placed_at, channel, customer_id, items, total_minor_units, currency)
         SELECT gen_random_uuid(), $1::timestamptz + n * interval '1 second', 'web', 'bulk-' || n, 1, n, 'EUR'
         FROM generate_series(1, 1200) n",
    )
    .bind(november(20))
    .execute(&app.pool)
    .await
    .unwrap();

    let path = format!(
        "/v1/exports/orders.csv?from={}&to={}",
        q(november(1) - chrono::Duration::hours(1)),
        q(november(3))
    );
    let resp = app.get(&path).await;
    assert_eq!(resp.status(), 200);
    let headers = resp.headers().clone();
    assert!(
        headers["content-type"].to_str().unwrap().starts_with("text/csv"),
        "{headers:?}"
    );
    let text = resp.text().await.unwrap();
    let lines: Vec<&str> = text.split_terminator("\r\n").collect();
    assert_eq!(
        lines[0],
        "order_id,customer_id,channel,placed_at,paid_at,ready_at,shipped_at,cancelled_at,payment_outcome,\
         payment_failures,payment_voids,items,total_minor_units,currency"
    );
    assert_eq!(lines.len(), 3, "the header and the window's two orders: {text}");
    assert!(
        lines[1].starts_with(&format!(
            "{quoted},\"c-\"\"quoted\"\", with comma\",web,2026-11-01T10:00:00.000000Z,2026-11-01T10:00:00.000000Z,"
        )),
        "{}",
        lines[1]
    );
    assert!(lines[1].ends_with(",,,,authorized,0,0,2,900,EUR"), "{}", lines[1]);
    assert_eq!(
        lines[2],
        format!("{plain},c-2,pos,2026-11-02T10:00:00.000000Z,,,,,none,0,0,2,900,EUR")
    );

    let path = format!(
        "/v1/exports/orders.csv?from={}&to={}",
        q(november(20)),
        q(november(21))
    );
    let resp = app.get(&path).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers().get("content-length").is_none(),
        "streamed, not sent whole: {:?}",
        resp.headers()
    );
    let text = resp.text().await.unwrap();
    let rows: Vec<&str> = text.split_terminator("\r\n").skip(1).collect();
    assert_eq!(rows.len(), 1200, "every row of several batches");
    let customers: Vec<&str> = rows.iter().map(|r| r.split(',').nth(1).unwrap()).collect();
    let expected: Vec<String> = (1..=1200).map(|n| format!("bulk-{n}")).collect();
    assert_eq!(customers, expected, "by placement time");

    let route = "/v1/exports/orders.csv";
    let window = |from: DateTime<Utc>, to: DateTime<Utc>| format!("{route}?from={}&to={}", q(from), q(to));
    refused(
        &app,
        &window(november(2), november(1)),
        route,
        422,
        "validation_failed",
    )
    .await;
    let long = window(november(1), november(1) + chrono::Duration::days(367));
    refused(&app, &long, route, 422, "validation_failed").await;
    refused(
        &app,
        &format!("{route}?from={}", q(november(1))),
        route,
        400,
        "bad_request",
    )
    .await;
}
