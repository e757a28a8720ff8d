//! `GET /v1/admin/orders`: operators find every customer's orders by
//! status, customer, channel, placement time and "stuck" (the stuck-saga
//! gauges' limits), newest first through an opaque cursor; bad filters are
//! refused with the error envelope. `GET /v1/admin/orders/{id}` is one.

use chrono::{Duration, Utc};
use omnisaga_runtime::testing::{self, assert_error};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{json_of, order_body, spawn_app, spawn_app_configured, TestApp, CUSTOMER};

/// Places an order through `channel` as `client`'s customer.
async fn place(app: &TestApp, client: &reqwest::Client, channel: &str) -> String {
    let mut body = order_body();
    body["channel"] = channel.into();
    let resp = client
        .post(format!("{}/v1/orders", app.url))
        .header("Idempotency-Key", Uuid::new_v4().to_string())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    body["order_id"].as_str().unwrap().to_owned()
}

/// Every order `query` finds, page after page of `page` orders, each page
/// checked against the OpenAPI document.
async fn find_all(app: &TestApp, admin: &reqwest::Client, query: &str, page: u32) -> Vec<Value> {
    let mut found = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{}/v1/admin/orders?limit={page}&{query}", app.admin_url);
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let resp = admin.get(url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{query}");
        let body: Value = resp.json().await.unwrap();
        testing::openapi::check_response("order", "get", "/v1/admin/orders", 200, &body).unwrap();
        found.extend(body["items"].as_array().unwrap().iter().cloned());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return found,
        }
    }
}

fn ids(orders: &[Value]) -> Vec<String> {
    orders
        .iter()
        .map(|o| o["order_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_operator_finds_orders_by_status_customer_channel_time_and_stuck_newest_first() {
    // Deadlines checked hourly: the one made to pass below stays as it is.
    let app = spawn_app_configured(|c| c.deadline_tick = std::time::Duration::from_secs(3600)).await;
    let other = app.as_caller(&testing::auth::customer_token("cust-2"));
    let web = place(&app, &app.http, "web").await;
    let pos = place(&app, &app.http, "pos").await;
    let others = place(&app, &other, "mobile").await;
    let stuck = place(&app, &app.http, "pos").await;
    // As a saga that stopped would leave it: PAID and unchanged for two
    // hours, beyond ORDER_STUCK_AFTER_MS (30 minutes in the tests).
    sqlx::query(
        "UPDATE order_view SET status = 'PAID', updated_at = now() - interval '2 hours' WHERE order_id = $1::uuid",
    )
    .bind(&stuck)
    .execute(&app.pool)
    .await
    .unwrap();
    // And one awaiting payment past its deadline (what
    // omnisaga_sagas_past_deadline counts).
    sqlx::query(
        "UPDATE order_view SET status = 'AWAITING_PAYMENT', payment_deadline_at = now() - interval '1 minute'
         WHERE order_id = $1::uuid",
    )
    .bind(&web)
    .execute(&app.pool)
    .await
    .unwrap();
    let admin = app.as_caller(&testing::auth::admin_token());

    let all = find_all(&app, &admin, "", 3).await;
    assert_eq!(
        ids(&all),
        [stuck.as_str(), &others, &pos, &web],
        "newest first, every customer's"
    );
    let first = &all[0];
    assert_eq!(
        (
            &first["status"],
            &first["channel"],
            &first["customer_id"],
            &first["stuck"]
        ),
        (&"PAID".into(), &"pos".into(), &CUSTOMER.into(), &true.into()),
        "{first}"
    );
    assert_eq!(first["deadlines"][0]["kind"], "stuck", "{first}");
    assert_eq!(all[1]["stuck"], false, "{}", all[1]);
    assert_eq!(
        all[1]["deadlines"][0]["kind"], "payment_delay_notice",
        "a PLACED order's next deadline is the delay notice: {}",
        all[1]
    );

    for (query, expected) in [
        ("status=PAID", vec![stuck.as_str()]),
        ("status=PLACED", vec![others.as_str(), pos.as_str()]),
        ("stuck=true", vec![stuck.as_str(), web.as_str()]),
        ("status=AWAITING_PAYMENT", vec![web.as_str()]),
        ("channel=pos", vec![stuck.as_str(), pos.as_str()]),
        ("customer=cust-2", vec![others.as_str()]),
        ("channel=pos&status=PLACED", vec![pos.as_str()]),
        ("status=SHIPPED", Vec::<&str>::new()),
    ] {
        assert_eq!(ids(&find_all(&app, &admin, query, 1).await), expected, "{query}");
    }
    let future = (Utc::now() + Duration::hours(1)).timestamp();
    let past = (Utc::now() - Duration::hours(1)).timestamp();
    let at = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    assert_eq!(
        find_all(&app, &admin, &format!("placed_after={}", at(future)), 5)
            .await
            .len(),
        0
    );
    assert_eq!(
        find_all(&app, &admin, &format!("placed_before={}", at(past)), 5)
            .await
            .len(),
        0
    );
    assert_eq!(
        find_all(
            &app,
            &admin,
            &format!("placed_after={}&placed_before={}", at(past), at(future)),
            5
        )
        .await
        .len(),
        4
    );

    assert_eq!(
        (&all[3]["stuck"], &all[3]["deadlines"][0]["kind"]),
        (&true.into(), &"payment_deadline".into()),
        "{}",
        all[3]
    );
    let one = json_of(admin.get(format!("{}/v1/admin/orders/{stuck}", app.admin_url))).await;
    testing::openapi::check_response("order", "get", "/v1/admin/orders/{id}", 200, &one).unwrap();
    assert_eq!(
        (&one["order_id"], &one["stuck"]),
        (&stuck.clone().into(), &true.into()),
        "{one}"
    );
    let unknown = app.admin_url.clone() + &format!("/v1/admin/orders/{}", Uuid::now_v7());
    assert_error(app.send(admin.get(unknown)).await, 404, "not_found").await;
}

#[tokio::test]
async fn bad_filters_and_cursors_are_refused_with_the_error_envelope() {
    let app = spawn_app().await;
    let admin = app.as_caller(&testing::auth::admin_token());
    for (query, status, code) in [
        ("status=STUCK", 422, "validation_failed"),
        ("channel=fax", 422, "validation_failed"),
        ("limit=0", 422, "validation_failed"),
        ("limit=101", 422, "validation_failed"),
        ("cursor=nope", 422, "validation_failed"),
        ("customer=", 422, "validation_failed"),
        ("placed_after=yesterday", 400, "bad_request"),
        ("stuck=maybe", 400, "bad_request"),
        ("colour=red", 400, "bad_request"),
    ] {
        let req = admin.get(format!("{}/v1/admin/orders?{query}", app.admin_url));
        let body = assert_error(app.send(req).await, status, code).await;
        if status == 422 {
            let field = query.split('=').next().unwrap();
            assert_eq!(body["details"]["fields"][0]["field"], field, "{query}: {body}");
        }
    }
    // Operators only: a customer's token is refused.
    let resp = app
        .send(app.http.get(format!("{}/v1/admin/orders", app.admin_url)))
        .await;
    assert_eq!(resp.status(), 403);
}
