//! The order HTTP API (`/v1`): catalog, place an order, show an order with
//! its timeline. Every error is the runtime's JSON envelope.

use std::{collections::BTreeSet, sync::Arc};

use axum::{
    extract::{DefaultBodyLimit, Path, State},
    http::{HeaderMap, StatusCode},
    routing::{get, post},
    Extension, Json, Router,
};
use chrono::{Datelike, Duration, NaiveDate, Utc, Weekday};
use omnisaga_proto::v1::{Address, Channel, LineItem, Money};
use omnisaga_runtime::{
    event::{self, EventMeta},
    http::{ApiError, ApiJson, RequestId},
    outbox::OutboxWaker,
    store::{StoreError, StoredEvent},
    TraceContext,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::{
    commands::{CommandError, Orders},
    config::Config,
    domain::{self, Command, PlaceOrder},
    store::{self as db, NewOrderView},
};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct ApiState {
    pub pool: PgPool,
    pub waker: OutboxWaker,
    pub config: Arc<Config>,
    pub http: reqwest::Client,
    pub orders: Orders,
}

pub fn routes(state: ApiState) -> Router {
    Router::new()
        .route("/v1/catalog", get(catalog))
        .route("/v1/orders", post(place_order))
        .route("/v1/orders/{id}", get(get_order))
        .route("/v1/orders/{id}/payment-retry", post(retry_payment))
        .route("/v1/orders/{id}/cancel", post(cancel_order))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelDto {
    Mobile,
    Web,
    Pos,
    Marketplace,
}

impl From<ChannelDto> for Channel {
    fn from(c: ChannelDto) -> Self {
        match c {
            ChannelDto::Mobile => Channel::Mobile,
            ChannelDto::Web => Channel::Web,
            ChannelDto::Pos => Channel::Pos,
            ChannelDto::Marketplace => Channel::Marketplace,
        }
    }
}

fn channel_name(c: i32) -> &'static str {
    match Channel::try_from(c).unwrap_or(Channel::Unspecified) {
        Channel::Mobile => "mobile",
        Channel::Web => "web",
        Channel::Pos => "pos",
        Channel::Marketplace => "marketplace",
        Channel::Unspecified => "unspecified",
    }
}

#[derive(Debug, Deserialize, Serialize)]
pub struct ItemRequest {
    pub sku: String,
    pub quantity: i64,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct AddressDto {
    pub name: String,
    pub line1: String,
    #[serde(default)]
    pub line2: String,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct PlaceOrderRequest {
    pub channel: ChannelDto,
    pub items: Vec<ItemRequest>,
    pub shipping_address: AddressDto,
    pub payment_method: String,
    #[serde(default)]
    pub customer_id: Option<String>,
}

async fn catalog(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let items = db::catalog(&s.pool).await?;
    let available = match &s.config.warehouse_url {
        Some(url) => stock_levels(&s.http, url).await,
        None => None,
    };
    let items: Vec<Value> = items
        .into_iter()
        .map(|i| {
            let avail = available
                .as_ref()
                .map(|a| a.get(&i.sku).and_then(Value::as_i64).unwrap_or(0));
            json!({
                "sku": i.sku,
                "name": i.name,
                "unit_price": {"minor_units": i.unit_price_minor, "currency": i.currency},
                "available": avail,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// Stock per SKU from the warehouse; `None` (unknown) when it does not answer in time.
async fn stock_levels(http: &reqwest::Client, base: &str) -> Option<serde_json::Map<String, Value>> {
    let resp = http.get(format!("{base}/v1/stock")).send().await.ok()?;
    let body: Value = resp.error_for_status().ok()?.json().await.ok()?;
    let mut out = serde_json::Map::new();
    for item in body.get("items")?.as_array()? {
        out.insert(
            item.get("sku")?.as_str()?.to_owned(),
            item.get("available")?.clone(),
        );
    }
    Some(out)
}

fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let key = headers.get("idempotency-key").ok_or_else(|| {
        ApiError::bad_request(
            "missing_idempotency_key",
            "the Idempotency-Key header is required",
        )
    })?;
    key.to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 128 && k.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 128 visible ASCII characters",
            )
        })
}

/// Field problems, reported together.
#[derive(Default)]
struct Problems(Vec<Value>);

impl Problems {
    fn check(&mut self, ok: bool, field: &str, problem: &str) {
        if !ok {
            self.0.push(json!({"field": field, "problem": problem}));
        }
    }
    fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            return Ok(());
        }
        Err(ApiError::validation("the order request is invalid").with_details(json!({ "fields": self.0 })))
    }
}

fn text_ok(s: &str, max: usize) -> bool {
    let t = s.trim();
    !t.is_empty() && t.chars().count() <= max && !t.chars().any(char::is_control)
}

fn validate(req: &PlaceOrderRequest, config: &Config) -> Result<(), ApiError> {
    let mut p = Problems::default();
    p.check(!req.items.is_empty(), "items", "at least one item is required");
    p.check(
        req.items.len() <= config.max_items,
        "items",
        &format!("at most {} items", config.max_items),
    );
    let mut seen = BTreeSet::new();
    for (i, item) in req.items.iter().enumerate() {
        p.check(
            text_ok(&item.sku, 64),
            &format!("items[{i}].sku"),
            "must be 1 to 64 characters",
        );
        p.check(
            seen.insert(item.sku.as_str()),
            &format!("items[{i}].sku"),
            "each SKU may appear once",
        );
        p.check(
            item.quantity >= 1 && item.quantity <= i64::from(config.max_quantity),
            &format!("items[{i}].quantity"),
            &format!("must be between 1 and {}", config.max_quantity),
        );
    }
    let a = &req.shipping_address;
    p.check(
        text_ok(&a.name, 200),
        "shipping_address.name",
        "must be 1 to 200 characters",
    );
    p.check(
        text_ok(&a.line1, 200),
        "shipping_address.line1",
        "must be 1 to 200 characters",
    );
    p.check(
        a.line2.chars().count() <= 200,
        "shipping_address.line2",
        "at most 200 characters",
    );
    p.check(
        text_ok(&a.city, 100),
        "shipping_address.city",
        "must be 1 to 100 characters",
    );
    p.check(
        text_ok(&a.postal_code, 20),
        "shipping_address.postal_code",
        "must be 1 to 20 characters",
    );
    p.check(
        a.country.len() == 2 && a.country.bytes().all(|b| b.is_ascii_uppercase()),
        "shipping_address.country",
        "must be an ISO 3166-1 alpha-2 code such as DE",
    );
    p.check(
        !req.payment_method.is_empty()
            && req.payment_method.len() <= 128
            && req
                .payment_method
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "payment_method",
        "must be a payment method token (letters, digits, _ and -, at most 128)",
    );
    if let Some(c) = &req.customer_id {
        p.check(
            !c.is_empty()
                && c.len() <= 64
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "customer_id",
            "must be 1 to 64 letters, digits, _ or -",
        );
    }
    p.into_result()
}

/// `days` business days after `from`.
fn add_business_days(from: NaiveDate, days: u32) -> NaiveDate {
    let mut d = from;
    let mut left = days;
    while left > 0 {
        d += Duration::days(1);
        if !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
            left -= 1;
        }
    }
    d
}

fn money_json(m: &Option<Money>) -> Value {
    let m = m.clone().unwrap_or_default();
    json!({"minor_units": m.minor_units, "currency": m.currency})
}

async fn place_order(
    State(s): State<ApiState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    Extension(trace): Extension<TraceContext>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<PlaceOrderRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let key = idempotency_key(&headers)?;
    validate(&req, &s.config)?;
    let customer_id = req.customer_id.clone().unwrap_or_else(|| "guest".to_owned());
    let request_hash = Sha256::digest(serde_json::to_vec(&req).map_err(ApiError::internal)?).to_vec();

    let skus: Vec<String> = req.items.iter().map(|i| i.sku.clone()).collect();
    let catalog = db::catalog_items(&s.pool, &skus).await?;
    let mut items = Vec::with_capacity(req.items.len());
    let mut unknown = Vec::new();
    for item in &req.items {
        match catalog.iter().find(|c| c.sku == item.sku) {
            Some(c) => items.push(LineItem {
                sku: c.sku.clone(),
                name: c.name.clone(),
                quantity: item.quantity as u32,
                unit_price: Some(Money {
                    minor_units: c.unit_price_minor,
                    currency: c.currency.clone(),
                }),
            }),
            None => unknown.push(item.sku.clone()),
        }
    }
    if !unknown.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_sku",
            "some items are not in the catalog",
        )
        .with_details(json!({ "skus": unknown })));
    }

    let order_id = Uuid::now_v7();
    let order_number = db::next_order_number(&s.pool).await?;
    let now = Utc::now();
    let estimated_delivery = add_business_days(now.date_naive(), s.config.delivery_days).to_string();
    let a = &req.shipping_address;
    let cmd = Command::Place(PlaceOrder {
        order_id: order_id.to_string(),
        order_number: order_number.clone(),
        customer_id: customer_id.clone(),
        channel: req.channel.into(),
        items,
        shipping_address: Address {
            name: a.name.trim().to_owned(),
            line1: a.line1.trim().to_owned(),
            line2: a.line2.trim().to_owned(),
            city: a.city.trim().to_owned(),
            postal_code: a.postal_code.trim().to_owned(),
            country: a.country.clone(),
        },
        payment_method_token: req.payment_method.clone(),
        estimated_delivery: estimated_delivery.clone(),
    });
    let total = match &cmd {
        Command::Place(p) => Some(domain::total(&p.items).map_err(|e| ApiError::validation(e.to_string()))?),
        _ => None,
    };
    let response = json!({
        "order_id": order_id,
        "order_number": order_number,
        "status": "PLACED",
        "estimated_delivery": estimated_delivery,
        "total": money_json(&total),
        "trace_id": trace.trace_id(),
    });

    let mut tx = s.pool.begin().await?;
    if let Some(earlier) =
        db::claim_idempotency_key(&mut tx, &customer_id, &key, &request_hash, order_id, &response).await?
    {
        tx.rollback().await?;
        if earlier.request_hash != request_hash {
            return Err(idempotency_key_reused());
        }
        return Ok((StatusCode::CREATED, Json(earlier.response)));
    }
    let meta = EventMeta {
        correlation_id: request_id,
        causation_id: String::new(),
        trace: trace.clone(),
    };
    match s.orders.place_in(&mut tx, order_id, cmd, &meta).await {
        Ok(_) => {}
        Err(CommandError::Domain(e)) => return Err(ApiError::validation(e.to_string())),
        Err(e) => return Err(command_error(e)),
    }
    db::insert_view(
        &mut tx,
        NewOrderView {
            order_id,
            order_number: &order_number,
            customer_id: &customer_id,
            status: "PLACED",
            trace_id: trace.trace_id(),
            traceparent: trace.traceparent.as_deref(),
            at: now,
        },
    )
    .await?;
    tx.commit()
        .instrument(omnisaga_runtime::db::span("COMMIT"))
        .await?;
    s.waker.wake();
    tracing::info!(order.id = %order_id, order.number = %order_number, "order placed");
    Ok((StatusCode::CREATED, Json(response)))
}

fn command_error(e: CommandError) -> ApiError {
    use crate::domain::OrderError as E;
    match e {
        CommandError::Domain(E::UnknownOrder) => ApiError::not_found("no such order"),
        CommandError::Domain(e @ E::RetryNotAllowed(_)) => {
            ApiError::conflict("payment_retry_not_allowed", e.to_string())
        }
        CommandError::Domain(e @ E::RetryPending) => {
            ApiError::conflict("payment_retry_in_progress", e.to_string())
        }
        CommandError::Domain(e @ E::TooLateToCancel(_)) => {
            ApiError::conflict("order_not_cancellable", e.to_string())
        }
        CommandError::Domain(e) => ApiError::conflict("conflict", e.to_string()),
        CommandError::Store(StoreError::Conflict { .. }) => {
            ApiError::conflict("conflict", "the order is changing right now, retry")
        }
        CommandError::Store(StoreError::Database(e)) => e.into(),
        CommandError::Store(e) => ApiError::internal(e),
        e @ CommandError::FactWithoutCause => ApiError::internal(e),
    }
}

fn parse_order_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found("no such order"))
}

#[derive(Debug, Deserialize, Serialize)]
pub struct RetryRequest {
    pub payment_method: String,
}

/// `POST /v1/orders/{id}/payment-retry`: a new payment attempt with another method.
async fn retry_payment(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    Extension(trace): Extension<TraceContext>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RetryRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let key = idempotency_key(&headers)?;
    let order_id = parse_order_id(&id)?;
    let mut p = Problems::default();
    p.check(valid_token(&req.payment_method), "payment_method", TOKEN_RULE);
    p.into_result()?;
    let request_hash = Sha256::digest(serde_json::to_vec(&req).map_err(ApiError::internal)?).to_vec();
    let scope = format!("order:{order_id}:payment-retry");
    let meta = EventMeta {
        correlation_id: request_id,
        causation_id: String::new(),
        trace,
    };
    let cmd = Command::RetryPayment {
        payment_method_token: req.payment_method.clone(),
    };

    // A concurrent writer of the order (a payment event, the same request
    // twice at once) aborts the transaction: start it again on the new state.
    let mut conflicts = 0;
    let (mut tx, outcome) = loop {
        let mut tx = s.pool.begin().await?;
        let outcome = s
            .orders
            .execute_in(&mut tx, order_id, cmd.clone(), Some(meta.clone()), None)
            .await;
        match outcome {
            Err(CommandError::Store(StoreError::Conflict { .. })) if conflicts < 5 => {
                tx.rollback().await?;
                conflicts += 1;
            }
            Err(e @ CommandError::Store(_)) => return Err(command_error(e)),
            outcome => break (tx, outcome),
        }
    };
    let response = match &outcome {
        Ok(o) => {
            json!({"order_id": order_id, "status": o.order.status.as_str(), "attempt": o.order.attempts})
        }
        Err(_) => Value::Null,
    };
    // A retry of the same request answers as the first did, even once the state moved on.
    let earlier =
        db::claim_idempotency_key(&mut tx, &scope, &key, &request_hash, order_id, &response).await?;
    if let Some(earlier) = earlier {
        tx.rollback().await?;
        if earlier.request_hash != request_hash {
            return Err(idempotency_key_reused());
        }
        return Ok((StatusCode::ACCEPTED, Json(earlier.response)));
    }
    outcome.map_err(command_error)?;
    tx.commit().await?;
    s.waker.wake();
    tracing::info!(order.id = %order_id, "payment retry requested");
    Ok((StatusCode::ACCEPTED, Json(response)))
}

/// `POST /v1/orders/{id}/cancel`: cancels until the order has shipped;
/// cancelling a cancelled order answers the same again.
async fn cancel_order(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    Extension(trace): Extension<TraceContext>,
) -> Result<Json<Value>, ApiError> {
    let order_id = parse_order_id(&id)?;
    let meta = EventMeta {
        correlation_id: request_id,
        causation_id: String::new(),
        trace,
    };
    let cmd = Command::Cancel {
        reason: "customer_request".into(),
    };
    match s.orders.execute(order_id, cmd, Some(meta)).await {
        Ok(o) => {
            tracing::info!(order.id = %order_id, "order cancelled by the customer");
            Ok(Json(
                json!({"order_id": order_id, "status": o.order.status.as_str(), "reason": o.order.cancel_reason}),
            ))
        }
        Err(CommandError::Domain(crate::domain::OrderError::AlreadyCancelled)) => {
            let mut conn = s.pool.acquire().await?;
            let (order, _) = s
                .orders
                .load(&mut conn, order_id)
                .await
                .map_err(ApiError::internal)?
                .ok_or_else(|| ApiError::not_found("no such order"))?;
            Ok(Json(
                json!({"order_id": order_id, "status": order.status.as_str(), "reason": order.cancel_reason}),
            ))
        }
        Err(e) => Err(command_error(e)),
    }
}

fn idempotency_key_reused() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "this Idempotency-Key was already used with a different request body",
    )
}

const TOKEN_RULE: &str = "must be a payment method token (letters, digits, _ and -, at most 128)";

fn valid_token(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

async fn get_order(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let order_id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("no such order"))?;
    let mut conn = s.pool.acquire().await?;
    let (state, events) = s
        .orders
        .load(&mut conn, order_id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("no such order"))?;
    drop(conn);
    let trace_id = db::trace_id(&s.pool, order_id).await?;
    Ok(Json(order_json(&state, &events, trace_id)))
}

fn order_json(order: &domain::Order, events: &[StoredEvent], trace_id: Option<String>) -> Value {
    let p = &order.placed;
    let timeline: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({
                "event_type": e.envelope.event_type,
                "occurred_at": event::occurred_at(&e.envelope),
                "service": e.envelope.producer,
                "event_id": e.envelope.event_id,
            })
        })
        .collect();
    let items: Vec<Value> = p
        .items
        .iter()
        .map(|i| json!({"sku": i.sku, "name": i.name, "quantity": i.quantity, "unit_price": money_json(&i.unit_price)}))
        .collect();
    json!({
        "order_id": p.order_id,
        "order_number": p.order_number,
        "customer_id": p.customer.as_ref().map(|c| c.customer_id.clone()),
        "channel": channel_name(p.channel),
        "status": order.status.as_str(),
        "items": items,
        "total": money_json(&p.total),
        "estimated_delivery": p.estimated_delivery,
        "trace_id": trace_id,
        "placed_at": events.first().map(|e| event::occurred_at(&e.envelope)),
        "updated_at": events.last().map(|e| event::occurred_at(&e.envelope)),
        "timeline": timeline,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_estimates_skip_weekends() {
        let friday = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        assert_eq!(
            add_business_days(friday, 1),
            NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()
        );
        assert_eq!(
            add_business_days(friday, 3),
            NaiveDate::from_ymd_opt(2026, 12, 2).unwrap()
        );
    }
}
