//! The order routes: place an order, show it with its timeline, cancel it,
//! and retry its payment with another method.

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    Extension, Json,
};
use chrono::{Datelike, Duration, NaiveDate, Weekday};
use omnisaga_proto::v1::{envelope::Payload, LineItem, Money};
use omnisaga_runtime::{
    auth::Caller,
    event::EventMeta,
    http::{ApiError, ApiJson, RequestId},
    store::{StoreError, StoredEvent},
    TraceContext,
};
use serde_json::{json, Value};
use tracing::Instrument as _;
use uuid::Uuid;

use omnisaga_runtime::http::ErrorBody;
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    dto::{
        CancelResponse, ListQuery, OrderList, OrderResponse, OrderSummary, PlaceOrderRequest,
        PlaceOrderResponse, RetryRequest, RetryResponse,
    },
    idempotency::{idempotency_key, idempotency_key_reused, request_hash},
    validation::{valid_token, validate, Problems, TOKEN_RULE},
    ApiState,
};
use crate::{
    application::CommandError,
    domain::{self, Command, Order, OrderError, PlaceOrder},
    store::{self as db, CatalogItem, NewOrderView},
};

/// The target of this API's log lines, the module they were first written in.
const LOG_TARGET: &str = "omnisaga_order::api";

/// Place an order
///
/// Prices the items from the catalog and places the order for the token's subject; the saga goes on from there (payment, stock, shipping). The same Idempotency-Key and body answers as the first request did.
#[utoipa::path(post, path = "/v1/orders", tag = "orders", request_body = PlaceOrderRequest,
    params(("Idempotency-Key" = String, Header, min_length = 1, max_length = 128, pattern = "^[!-~]+$",
        description = "Retries with the same key and body get the first answer; another body gets 422 idempotency_key_reused.")),
    security(("bearer" = ["orders:write"])),
    responses(
        (status = 201, description = "accepted (also the replay of an earlier request with the same key and body)", body = PlaceOrderResponse),
        (status = 422, description = "validation_failed (details.fields), unknown_sku (details.skus), idempotency_key_reused, unknown_field", body = ErrorBody),
    ))]
pub(super) async fn place_order(
    State(s): State<ApiState>,
    caller: Caller,
    Extension(RequestId(request_id)): Extension<RequestId>,
    Extension(trace): Extension<TraceContext>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<PlaceOrderRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let key = idempotency_key(&headers)?;
    validate(&req, &s.config)?;
    // The customer is who the token says, never what the body says.
    let customer_id = caller.subject().to_owned();
    let request_hash = request_hash(&req)?;

    let skus: Vec<String> = req.items.iter().map(|i| i.sku.clone()).collect();
    let placement = db::prepare_placement(&s.pool, &customer_id, &key, &skus).await?;
    // A replay of a placement that committed: its answer, and no number
    // taken for it.
    if let Some(earlier) = placement.earlier {
        if earlier.request_hash != request_hash {
            return Err(idempotency_key_reused());
        }
        return Ok((StatusCode::CREATED, Json(earlier.response)));
    }
    let items = priced_items(&req, &placement.catalog)?;

    let order_id = Uuid::now_v7();
    let order_number = match placement.order_number {
        Some(number) => number,
        None => db::next_order_number(&s.pool).await?,
    };
    let now = omnisaga_runtime::clock::now();
    let estimated_delivery = add_business_days(now.date_naive(), s.config.delivery_days).to_string();
    let cmd = Command::Place(PlaceOrder {
        order_id: order_id.to_string(),
        order_number: order_number.clone(),
        customer_id: customer_id.clone(),
        channel: req.channel.into(),
        items,
        shipping_address: req.shipping_address.to_address(),
        payment_method_token: req.payment_method.clone(),
        estimated_delivery: estimated_delivery.clone(),
    });
    let total = match &cmd {
        Command::Place(p) => Some(domain::total(&p.items).map_err(|e| ApiError::validation(e.to_string()))?),
        _ => None,
    };
    let response = serde_json::to_value(PlaceOrderResponse {
        estimated_delivery,
        order_id,
        order_number: order_number.clone(),
        status: "PLACED",
        total: total.as_ref().into(),
        trace_id: trace.trace_id().map(str::to_owned),
    })
    .map_err(ApiError::internal)?;

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
    let placed_at = match s.orders.place_in(&mut tx, order_id, cmd, &meta).await {
        Ok((_, at)) => at,
        Err(CommandError::Domain(e)) => return Err(ApiError::validation(e.to_string())),
        Err(e) => return Err(command_error(e)),
    };
    db::insert_view(
        &mut tx,
        NewOrderView {
            order_id,
            order_number: &order_number,
            customer_id: &customer_id,
            channel: req.channel.name(),
            status: "PLACED",
            trace_id: trace.trace_id(),
            traceparent: trace.traceparent.as_deref(),
            at: placed_at,
        },
    )
    .await?;
    tx.commit()
        .instrument(omnisaga_runtime::db::span("COMMIT"))
        .await?;
    s.waker.wake();
    tracing::info!(target: LOG_TARGET, { order.id = %order_id, order.number = %order_number }, "order placed");
    Ok((StatusCode::CREATED, Json(response)))
}

/// The request's items priced from `catalog`, in request order; `unknown_sku`
/// listing every SKU the catalog lacks.
pub fn priced_items(req: &PlaceOrderRequest, catalog: &[CatalogItem]) -> Result<Vec<LineItem>, ApiError> {
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
    Ok(items)
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

/// An order
///
/// An order with its status and its timeline across services: the customer's own (orders:read), any for operators (admin).
#[utoipa::path(get, path = "/v1/orders/{id}", tag = "orders",
    params(("id" = Uuid, Path, description = "the order's id")),
    security(("bearer" = ["orders:read"])),
    responses(
        (status = 200, description = "the order", body = OrderResponse),
        (status = 404, description = "not_found: no such order, or another customer's", body = ErrorBody),
    ))]
pub(super) async fn get_order(
    State(s): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<OrderResponse>, ApiError> {
    let order_id = parse_order_id(&id)?;
    let (state, events) = load_order(&s, order_id).await?;
    // The stream says whose it is: another customer's order is no such order.
    let owner = state
        .placed
        .customer
        .as_ref()
        .map_or("", |c| c.customer_id.as_str());
    if !caller.owns(owner) {
        return Err(ApiError::not_found("no such order"));
    }
    let (trace_id, payment_deadline) = db::view_notes(&s.pool, order_id).await?;
    Ok(Json(OrderResponse::new(
        &state,
        &events,
        trace_id,
        payment_deadline,
    )))
}

/// Retry the payment
///
/// A new payment attempt with another payment method, only while the order is AWAITING_PAYMENT.
#[utoipa::path(post, path = "/v1/orders/{id}/payment-retry", tag = "orders", request_body = RetryRequest,
    params(("id" = Uuid, Path, description = "the order's id"),
        ("Idempotency-Key" = String, Header, min_length = 1, max_length = 128, pattern = "^[!-~]+$",
        description = "Retries with the same key and body get the first answer; another body gets 422 idempotency_key_reused.")),
    security(("bearer" = ["orders:write"])),
    responses(
        (status = 202, description = "attempt requested", body = RetryResponse),
        (status = 404, description = "not_found: no such order, or another customer's", body = ErrorBody),
        (status = 409, description = "payment_retry_not_allowed (not awaiting payment), payment_retry_in_progress", body = ErrorBody),
        (status = 422, description = "validation_failed, idempotency_key_reused, unknown_field", body = ErrorBody),
    ))]
pub(super) async fn retry_payment(
    State(s): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    Extension(trace): Extension<TraceContext>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RetryRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let key = idempotency_key(&headers)?;
    let order_id = parse_order_id(&id)?;
    ensure_owner(&s, &caller, order_id).await?;
    let mut p = Problems::default();
    p.check(valid_token(&req.payment_method), "payment_method", TOKEN_RULE);
    p.into_result()?;
    let request_hash = request_hash(&req)?;
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
    // A refused retry stores `null`: its replay answers with the error again.
    let response = match &outcome {
        Ok(o) => serde_json::to_value(RetryResponse {
            attempt: o.order.attempts,
            order_id,
            status: o.order.status.as_str(),
        })
        .map_err(ApiError::internal)?,
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
    tracing::info!(target: LOG_TARGET, { order.id = %order_id }, "payment retry requested");
    Ok((StatusCode::ACCEPTED, Json(response)))
}

/// Cancel an order
///
/// Cancels until the order has shipped; compensations follow (the warehouse releases stock not yet shipped, then payment voids the authorisation). If the parcel left before the cancellation reached the warehouse, the order ships and stays paid. Cancelling again answers the same.
#[utoipa::path(post, path = "/v1/orders/{id}/cancel", tag = "orders",
    params(("id" = Uuid, Path, description = "the order's id")),
    security(("bearer" = ["orders:write"])),
    responses(
        (status = 200, description = "cancelled", body = CancelResponse),
        (status = 404, description = "not_found: no such order, or another customer's", body = ErrorBody),
        (status = 409, description = "order_not_cancellable: it has shipped", body = ErrorBody),
    ))]
pub(super) async fn cancel_order(
    State(s): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    Extension(trace): Extension<TraceContext>,
) -> Result<Json<CancelResponse>, ApiError> {
    let order_id = parse_order_id(&id)?;
    ensure_owner(&s, &caller, order_id).await?;
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
            tracing::info!(target: LOG_TARGET, { order.id = %order_id }, "order cancelled by the customer");
            Ok(Json(CancelResponse::new(order_id, &o.order)))
        }
        Err(CommandError::Domain(OrderError::AlreadyCancelled)) => {
            let (order, _) = load_order(&s, order_id).await?;
            Ok(Json(CancelResponse::new(order_id, &order)))
        }
        Err(e) => Err(command_error(e)),
    }
}

/// The caller's orders
///
/// The caller's own orders, newest first, a page at a time (limit, and cursor from the previous page's next_cursor).
#[utoipa::path(get, path = "/v1/orders", tag = "orders", params(ListQuery),
    security(("bearer" = ["orders:read"])),
    responses(
        (status = 200, description = "a page of orders", body = OrderList),
        (status = 422, description = "validation_failed: limit out of range or a cursor this API did not return", body = ErrorBody),
    ))]
pub(super) async fn list_orders(
    State(s): State<ApiState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<OrderList>, ApiError> {
    let mut p = Problems::default();
    let limit = q.limit.unwrap_or(20);
    p.check((1..=100).contains(&limit), "limit", "must be between 1 and 100");
    let cursor = q.cursor.as_deref().map(Uuid::parse_str);
    p.check(
        !matches!(cursor, Some(Err(_))),
        "cursor",
        "must be a next_cursor this API returned",
    );
    p.into_result()?;
    let before = cursor.and_then(Result::ok);
    let mut rows = db::orders_of(&s.pool, caller.subject(), before, limit + 1).await?;
    let next_cursor = (rows.len() > limit as usize).then(|| {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.order_id.to_string())
    });
    Ok(Json(OrderList {
        items: rows
            .into_iter()
            .map(|r| OrderSummary {
                order_id: r.order_id,
                order_number: r.order_number,
                status: r.status,
                created_at: r.created_at,
                updated_at: r.updated_at,
            })
            .collect(),
        next_cursor: next_cursor.flatten(),
    }))
}

/// A payment attempt's token.
#[derive(Serialize, ToSchema)]
pub(super) struct PaymentMethod {
    order_id: Uuid,
    attempt: u32,
    /// The payment method token of that attempt.
    payment_method: String,
}

/// A payment attempt's token
///
/// The payment token of an order's payment attempt, for the payment service (payment-methods:read): the topics every service and analyst reads do not carry it.
#[utoipa::path(get, path = "/v1/internal/orders/{id}/payment-methods/{attempt}", tag = "internal",
    params(("id" = Uuid, Path, description = "the order's id"),
        ("attempt" = u32, Path, minimum = 1, description = "1 for the placement, then each retry")),
    security(("bearer" = ["payment-methods:read"])),
    responses(
        (status = 200, description = "the token", body = PaymentMethod),
        (status = 404, description = "not_found: no such order or attempt", body = ErrorBody),
    ))]
pub(super) async fn payment_method(
    State(s): State<ApiState>,
    Path((id, attempt)): Path<(String, u32)>,
) -> Result<Json<PaymentMethod>, ApiError> {
    let order_id = parse_order_id(&id)?;
    let (_, events) = load_order(&s, order_id).await?;
    let token = events.iter().find_map(|e| match &e.envelope.payload {
        Some(Payload::OrderPlaced(placed)) if attempt == 1 => Some(placed.payment_method_token.clone()),
        Some(Payload::PaymentRetryRequested(retry)) if retry.attempt == attempt => {
            Some(retry.payment_method_token.clone())
        }
        _ => None,
    });
    let token = token.ok_or_else(|| ApiError::not_found("no such payment attempt"))?;
    Ok(Json(PaymentMethod {
        order_id,
        attempt,
        payment_method: token,
    }))
}

/// `order_id` as its stream folds, with the stream's events; no such order
/// when there is no stream.
async fn load_order(s: &ApiState, order_id: Uuid) -> Result<(Order, Vec<StoredEvent>), ApiError> {
    let mut conn = s.pool.acquire().await?;
    s.orders
        .load(&mut conn, order_id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("no such order"))
}

/// Another customer's order is no such order: the same 404 as one that
/// does not exist, so ids cannot be probed. Operators see every order.
async fn ensure_owner(s: &ApiState, caller: &Caller, order_id: Uuid) -> Result<(), ApiError> {
    match db::customer_of(&s.pool, order_id).await? {
        Some(owner) if caller.owns(&owner) => Ok(()),
        _ => Err(ApiError::not_found("no such order")),
    }
}

/// The order id of a path; one that is not a UUID is no such order.
fn parse_order_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found("no such order"))
}

/// The API's answer to a command that failed: a refusal is a conflict with
/// its business reason, an unknown order is 404, the rest is a server error.
fn command_error(e: CommandError) -> ApiError {
    use OrderError as E;
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
