//! `GET /v1/customers/{id}/payments`: one customer's payments, newest
//! first, a page at a time, for a CRM's loyalty bonuses: each payment
//! answer (authorised or declined) and each void of the customer's orders,
//! with its order, amount, currency and time. The customer is the one the
//! order's placement names; payments recorded before this version kept no
//! payload and are not listed (docs/analytics.md, `fact_payments`).

use axum::{
    extract::{Path, Query, State},
    Extension, Json,
};
use chrono::{DateTime, Utc};
use omnisaga_runtime::{
    audit::PersonalRead,
    http::{ApiError, ErrorBody},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    api::ApiState,
    store::{self, CustomerPayment},
};

/// The longest customer id (the order service's token subjects).
const MAX_CUSTOMER: usize = 256;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Payments per page, 1 to 100 (20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// The previous page's next_cursor.
    #[param(pattern = "^-?[0-9]{1,16}-[0-9a-f]{32}$")]
    cursor: Option<String>,
}

/// A page of a customer's payments, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentHistory {
    customer_id: String,
    items: Vec<Payment>,
    /// Pass it as `cursor` for the next (older) page; `null` on the last.
    next_cursor: Option<String>,
}

/// One payment answer or void.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    order_id: Uuid,
    /// The payment service's id of the payment (an attempt's; a void names the authorisation it releases).
    payment_id: String,
    /// The attempt's number, from 1; null for a void.
    #[schema(minimum = 1)]
    attempt: Option<i32>,
    /// authorized: the provider approved; declined: it refused (reason says why); voided: an authorisation was released, nothing of the order shipping. For a bonus, count an authorisation whose payment_id has no void.
    #[schema(pattern = "^(authorized|declined|voided)$")]
    outcome: String,
    /// In minor units (cents) of currency.
    amount_minor_units: i64,
    /// ISO 4217.
    currency: String,
    /// The provider's reason for a decline; null otherwise.
    reason: Option<String>,
    /// When the payment service recorded the answer.
    at: DateTime<Utc>,
}

/// A customer's payments
///
/// One customer's payment answers (authorised, declined) and voids, newest first, a page at a time (limit, and cursor from the previous page's next_cursor), with each payment's order, amount, currency and time: what a CRM reads for loyalty bonuses. The customer is the one the order was placed by; a customer without payments has an empty list.
#[utoipa::path(get, path = "/v1/customers/{id}/payments", tag = "analytics",
    params(("id" = String, Path, description = "the customer's id (the subject of the token the orders were placed with)", min_length = 1, max_length = 256), PageQuery),
    security(("bearer" = ["analytics:read"])),
    responses(
        (status = 200, description = "a page of the customer's payments", body = PaymentHistory),
        (status = 422, description = "validation_failed (details.fields): limit out of range, a cursor this API did not return, a customer id longer than 256 characters", body = ErrorBody),
    ))]
pub async fn customer_payments(
    State(s): State<ApiState>,
    Path(customer): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<(Extension<PersonalRead>, Json<PaymentHistory>), ApiError> {
    let limit = q.limit.unwrap_or(20);
    let before = q.cursor.as_deref().map(decode_cursor);
    let mut problems = Vec::new();
    if !(1..=100).contains(&limit) {
        problems.push(json!({"field": "limit", "problem": "must be between 1 and 100"}));
    }
    if matches!(before, Some(None)) {
        problems.push(json!({"field": "cursor", "problem": "must be a next_cursor this API returned"}));
    }
    if customer.is_empty() || customer.chars().count() > MAX_CUSTOMER {
        problems.push(json!({"field": "id", "problem": "must be 1 to 256 characters"}));
    }
    if !problems.is_empty() {
        return Err(ApiError::validation("the payment history request is invalid")
            .with_details(json!({ "fields": problems })));
    }
    let mut db = s.pool.acquire().await?;
    let mut rows = store::customer_payments(&mut db, &customer, before.flatten(), limit + 1).await?;
    let next_cursor = (rows.len() > limit as usize).then(|| {
        rows.truncate(limit as usize);
        rows.last().map(|p| encode_cursor(p.at, p.event_id))
    });
    // One customer's payments shown to an analyst or a CRM: audited.
    Ok((
        Extension(PersonalRead),
        Json(PaymentHistory {
            customer_id: customer,
            items: rows.into_iter().map(Payment::of).collect(),
            next_cursor: next_cursor.flatten(),
        }),
    ))
}

impl Payment {
    fn of(p: CustomerPayment) -> Self {
        Self {
            order_id: p.order_id,
            payment_id: p.payment_id,
            attempt: p.attempt,
            outcome: p.outcome,
            amount_minor_units: p.amount_minor_units,
            currency: p.currency,
            reason: Some(p.reason).filter(|r| !r.is_empty()),
            at: p.at,
        }
    }
}

/// The cursor after the payment of event `id` at `at`: its time in
/// microseconds since the epoch and its event id.
fn encode_cursor(at: DateTime<Utc>, id: Uuid) -> String {
    format!("{}-{}", at.timestamp_micros(), id.simple())
}

/// The time and event id of a cursor [`encode_cursor`] made; `None` for
/// anything else.
fn decode_cursor(cursor: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let (micros, id) = cursor.rsplit_once('-')?;
    // At most 16 digits: within what both chrono and PostgreSQL hold (1653 to 2286).
    if micros.trim_start_matches('-').len() > 16
        || id.len() != 32
        || !id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
    Some((at, Uuid::parse_str(id).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_comes_back_as_the_time_and_event_it_was_made_from() {
        let at: DateTime<Utc> = "2026-12-01T10:00:00.123456Z".parse().unwrap();
        let id = Uuid::new_v4();
        assert_eq!(decode_cursor(&encode_cursor(at, id)), Some((at, id)));
        let before_1970: DateTime<Utc> = "1969-12-31T23:59:59Z".parse().unwrap();
        assert_eq!(
            decode_cursor(&encode_cursor(before_1970, id)),
            Some((before_1970, id))
        );
        let far = format!("{}-{}", "9".repeat(17), id.simple());
        for bad in [
            "",
            "abc",
            "12-xyz",
            "12-",
            &format!("x-{}", id.simple()),
            &format!("1-{id}"),
            &far,
        ] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }
}
