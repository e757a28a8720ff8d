//! `GET /v1/admin/orders`: operators find orders (every customer's) by
//! status, customer, channel, placement time and whether they are stuck,
//! newest first, a page at a time; `GET /v1/admin/orders/{id}` is one of
//! them. Each says whether it is stuck and its deadlines: when the order
//! service itself acts on it if nothing else happens first. "Stuck" is
//! what the gauges behind the `SagaStuck` and `SagasStuckPastDeadline`
//! alerts count, so the list and the alert agree.

use axum::{
    extract::{Path, Query, State},
    Json,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use chrono::{DateTime, Utc};
use omnisaga_runtime::http::{ApiError, ErrorBody};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{dto::ChannelDto, validation::Problems, ApiState};
use crate::{
    config::Config,
    domain,
    store::find::{self, FoundOrder},
};

/// The statuses an order can be in, as the API spells them.
const STATUSES: [&str; 6] = [
    "PLACED",
    "AWAITING_PAYMENT",
    "PAID",
    "READY_FOR_SHIPMENT",
    "SHIPPED",
    "CANCELLED",
];

/// The channels an order can come in through.
const CHANNELS: [&str; 4] = ["mobile", "web", "pos", "marketplace"];

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct FindQuery {
    /// Only orders in this status.
    #[param(value_type = Option<domain::Status>)]
    status: Option<String>,
    /// Only this customer's orders (the token subject that placed them).
    #[param(min_length = 1, max_length = 256)]
    customer: Option<String>,
    /// Only orders placed through this channel.
    #[param(value_type = Option<ChannelDto>)]
    channel: Option<String>,
    /// Only orders placed at or after this time (RFC 3339).
    placed_after: Option<DateTime<Utc>>,
    /// Only orders placed before this time (RFC 3339); one not after placed_after finds nothing.
    placed_before: Option<DateTime<Utc>>,
    /// Only orders past their stage's limit (true), as the stuck-saga alerts count them.
    stuck: Option<bool>,
    /// Only orders escalated at their stage's deadline and still waiting in that stage (true).
    escalated: Option<bool>,
    /// Orders per page, 1 to 100 (20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// The previous page's next_cursor.
    #[param(pattern = "^[A-Za-z0-9_-]{21}[AQgw]$")]
    cursor: Option<String>,
}

/// A page of orders, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct AdminOrderList {
    items: Vec<AdminOrder>,
    /// Pass it as `cursor` for the next (older) page; `null` on the last.
    next_cursor: Option<String>,
}

/// An order as operators see it in a list.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct AdminOrder {
    /// mobile, web, pos or marketplace; null for an order placed before the view kept it.
    channel: Option<String>,
    customer_id: String,
    /// When the order service acts on the order if nothing else happens first, earliest first; empty once it is finished.
    deadlines: Vec<Deadline>,
    /// Escalated at its stage's deadline and still waiting in that stage: the customer was told it is delayed, omnisaga_sagas_escalated counts it.
    escalated: bool,
    order_id: Uuid,
    order_number: String,
    placed_at: DateTime<Utc>,
    #[schema(value_type = domain::Status)]
    status: String,
    /// Past its stage's limit: awaiting payment past its payment deadline, or PLACED, PAID or READY_FOR_SHIPMENT unchanged for longer than ORDER_STUCK_AFTER_MS (what omnisaga_sagas_past_deadline and omnisaga_sagas_stuck count).
    stuck: bool,
    trace_id: Option<String>,
    /// Its last change of status.
    updated_at: DateTime<Utc>,
}

/// A moment the order service acts on an order by itself.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Deadline {
    /// When; in the past when it is overdue.
    at: DateTime<Utc>,
    /// payment_deadline, payment_delay_notice, escalation or stuck.
    kind: &'static str,
    /// What happens then.
    then: &'static str,
}

/// Find orders
///
/// Every customer's orders, filtered by status, customer, channel, placement time and whether they are stuck (past their stage's limit, as the stuck-saga alerts count), newest first, a page at a time (limit, and cursor from the previous page's next_cursor).
#[utoipa::path(get, path = "/v1/admin/orders", tag = "operations", params(FindQuery),
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "a page of orders", body = AdminOrderList),
        (status = 400, description = "bad_request: a time that is not RFC 3339, stuck or escalated not true or false, an unknown parameter", body = ErrorBody),
        (status = 422, description = "validation_failed (details.fields): an unknown status or channel, limit out of range, a cursor this API did not return", body = ErrorBody),
    ))]
pub(super) async fn find_orders(
    State(s): State<ApiState>,
    Query(q): Query<FindQuery>,
) -> Result<Json<AdminOrderList>, ApiError> {
    let mut p = Problems::default();
    let limit = q.limit.unwrap_or(20);
    p.check((1..=100).contains(&limit), "limit", "must be between 1 and 100");
    p.check(
        q.status.as_deref().is_none_or(|s| STATUSES.contains(&s)),
        "status",
        "must be PLACED, AWAITING_PAYMENT, PAID, READY_FOR_SHIPMENT, SHIPPED or CANCELLED",
    );
    p.check(
        q.channel.as_deref().is_none_or(|c| CHANNELS.contains(&c)),
        "channel",
        "must be mobile, web, pos or marketplace",
    );
    p.check(
        q.customer
            .as_deref()
            .is_none_or(|c| !c.is_empty() && c.len() <= 256),
        "customer",
        "must be 1 to 256 characters",
    );
    let before = q.cursor.as_deref().map(decode_cursor);
    p.check(
        !matches!(before, Some(None)),
        "cursor",
        "must be a next_cursor this API returned",
    );
    p.into_result()?;
    let filter = find::Filter {
        status: q.status,
        customer_id: q.customer,
        channel: q.channel,
        placed_after: q.placed_after,
        placed_before: q.placed_before,
        stuck: q.stuck.unwrap_or(false),
        escalated: q.escalated.unwrap_or(false),
    };
    let mut rows = find::find(
        &s.pool,
        &filter,
        s.config.stuck_after,
        before.flatten(),
        limit + 1,
    )
    .await?;
    let next_cursor = (rows.len() > limit as usize).then(|| {
        rows.truncate(limit as usize);
        rows.last().map(|r| encode_cursor(r.order_id))
    });
    Ok(Json(AdminOrderList {
        items: rows.into_iter().map(|r| AdminOrder::of(r, &s.config)).collect(),
        next_cursor: next_cursor.flatten(),
    }))
}

/// An order's saga state
///
/// One order of any customer as operators see it in a list: its status, whether it is stuck, and its deadlines.
#[utoipa::path(get, path = "/v1/admin/orders/{id}", tag = "operations",
    params(("id" = Uuid, Path, description = "the order's id")),
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "the order", body = AdminOrder),
        (status = 404, description = "not_found: no such order", body = ErrorBody),
    ))]
pub(super) async fn admin_order(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<AdminOrder>, ApiError> {
    let order_id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("no such order"))?;
    let row = find::one(&s.pool, order_id, s.config.stuck_after)
        .await?
        .ok_or_else(|| ApiError::not_found("no such order"))?;
    Ok(Json(AdminOrder::of(row, &s.config)))
}

impl AdminOrder {
    fn of(r: FoundOrder, config: &Config) -> Self {
        Self {
            deadlines: deadlines(&r, config),
            escalated: r.escalated_status.as_deref() == Some(r.status.as_str()),
            channel: r.channel,
            customer_id: r.customer_id,
            order_id: r.order_id,
            order_number: r.order_number,
            placed_at: r.created_at,
            status: r.status,
            stuck: r.stuck,
            trace_id: r.trace_id,
            updated_at: r.updated_at,
        }
    }
}

/// When the order service acts on `r` by itself, earliest first: the
/// payment deadline (it cancels), the delay notice (it tells the
/// customer), the stage's deadline (it escalates), the stuck limit (the gauge counts it, the alert follows).
fn deadlines(r: &FoundOrder, config: &Config) -> Vec<Deadline> {
    let after = |d: std::time::Duration, from: DateTime<Utc>| {
        chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| from.checked_add_signed(d))
    };
    let mut out = Vec::new();
    let mut push = |at: Option<DateTime<Utc>>, kind, then| {
        if let Some(at) = at {
            out.push(Deadline { at, kind, then });
        }
    };
    match r.status.as_str() {
        "AWAITING_PAYMENT" => push(
            r.payment_deadline_at,
            "payment_deadline",
            "the order service cancels the order unless a payment retry was authorized",
        ),
        "PLACED" | "PAID" | "READY_FOR_SHIPMENT" => {
            if r.status == "PLACED" && !r.delay_noticed {
                push(
                    after(config.payment_delay_notice, r.created_at),
                    "payment_delay_notice",
                    "the customer is told payment is delayed",
                );
            }
            if r.escalated_status.as_deref() != Some(r.status.as_str()) {
                let since = if r.status == "PLACED" {
                    r.created_at
                } else {
                    r.updated_at
                };
                push(
                    config
                        .stage_deadlines
                        .of(&r.status)
                        .and_then(|d| after(d, since)),
                    "escalation",
                    "the order service escalates the order (OrderEscalated): the customer is told once it is delayed, it is listed escalated and counted in omnisaga_sagas_escalated (alert SagaEscalated); it is not cancelled",
                );
            }
            push(
                after(config.stuck_after, r.updated_at),
                "stuck",
                "counted stuck in omnisaga_sagas_stuck; the SagaStuck alert fires 10 minutes later",
            );
        }
        _ => {}
    }
    out.sort_by_key(|d| d.at);
    out
}

/// The cursor of the page after the order `last`: opaque to clients.
fn encode_cursor(last: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(last.as_bytes())
}

/// The order a cursor names; `None` for one this API did not return.
fn decode_cursor(cursor: &str) -> Option<Uuid> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    Uuid::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_is_the_order_it_was_made_from_and_nothing_else_is_one() {
        let id = Uuid::now_v7();
        let cursor = encode_cursor(id);
        assert_eq!(decode_cursor(&cursor), Some(id));
        // As the document's pattern says: 22 characters, the last one's low bits zero.
        assert!(cursor.len() == 22 && "AQgw".contains(&cursor[21..]), "{cursor}");
        for bad in ["", "nope", "AAAA", &id.to_string()] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }
}
