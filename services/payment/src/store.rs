//! The payment database beside the streams (which the runtime's aggregate
//! executor keeps, see `crate::wire`): the payment view support reads, and
//! the queue of calls to the provider; the provider simulator's ledger in
//! `ledger`. Every statement of the service is in this module.

use std::time::Duration;

use omnisaga_proto::v1::Money;
use omnisaga_runtime::{work, TraceContext};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::domain::{Payment, Request};

pub mod ledger;

/// A payment as support sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewStatus {
    /// An attempt was approved and stands.
    Authorized,
    /// No attempt was approved (yet): declined or the provider unreachable.
    Failed,
    /// The order was cancelled before any attempt was approved.
    Cancelled,
    /// The authorisation was released because nothing of the order ships.
    Voided,
}

impl ViewStatus {
    /// What the view says of `payment`.
    pub fn of(payment: &Payment) -> Self {
        match (payment.cancelled, payment.voided, payment.authorized.is_some()) {
            (_, true, _) => ViewStatus::Voided,
            (_, _, true) => ViewStatus::Authorized,
            (true, _, _) => ViewStatus::Cancelled,
            _ => ViewStatus::Failed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ViewStatus::Authorized => "AUTHORIZED",
            ViewStatus::Failed => "FAILED",
            ViewStatus::Cancelled => "CANCELLED",
            ViewStatus::Voided => "VOIDED",
        }
    }
}

/// Writes the order's payment as support sees it.
pub async fn update_view(conn: &mut PgConnection, order_id: Uuid, p: &Payment) -> Result<(), sqlx::Error> {
    let total = p.amount.clone().unwrap_or_default();
    sqlx::query(
        "INSERT INTO payment_view (order_id, status, attempts, amount_minor, currency) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (order_id) DO UPDATE SET status = $2, attempts = $3, updated_at = now()",
    )
    .bind(order_id)
    .bind(ViewStatus::of(p).as_str())
    .bind(p.attempts as i32)
    .bind(total.minor_units)
    .bind(&total.currency)
    .execute(conn)
    .await?;
    Ok(())
}

/// An order's payment as support sees it.
pub struct ViewRow {
    pub status: String,
    pub attempts: i32,
    pub amount_minor: i64,
    pub currency: String,
}

/// The payment view of `order_id`; `None` until the provider answered.
pub async fn view(pool: &PgPool, order_id: Uuid) -> Result<Option<ViewRow>, sqlx::Error> {
    let row =
        sqlx::query("SELECT status, attempts, amount_minor, currency FROM payment_view WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|r| ViewRow {
        status: r.get(0),
        attempts: r.get(1),
        amount_minor: r.get(2),
        currency: r.get(3),
    }))
}

/// A call to the provider, queued in the transaction that decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub id: i64,
    pub order_id: Uuid,
    pub payment_id: String,
    pub action: Action,
    pub correlation_id: String,
    /// The event the call is for: the placement or retry, or the
    /// `PaymentVoided` recorded.
    pub causation_id: String,
    pub trace: TraceContext,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Ask for the attempt `request` makes, with `token`.
    Authorize { request: Request, token: String },
    /// Release the authorisation.
    Void,
}

/// Queues the call `action` for `payment_id`, unless it is queued already
/// (a redelivered placement); a worker is woken once the caller commits.
pub async fn queue_call(
    conn: &mut PgConnection,
    order_id: Uuid,
    payment_id: &str,
    action: &Action,
    correlation_id: &str,
    causation_id: &str,
    trace: &TraceContext,
) -> Result<(), sqlx::Error> {
    let (name, attempt, amount, token) = match action {
        Action::Authorize { request, token } => match request {
            Request::Placed { amount } => ("AUTHORIZE", 1, Some(amount), token.as_str()),
            Request::Retry { attempt } => ("AUTHORIZE", *attempt as i32, None, token.as_str()),
        },
        Action::Void => ("VOID", 0, None, ""),
    };
    sqlx::query(
        "INSERT INTO provider_calls (payment_id, order_id, action, attempt, amount_minor, currency,
                                     payment_method_token, correlation_id, causation_id, traceparent, tracestate)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (payment_id, action) DO NOTHING",
    )
    .bind(payment_id)
    .bind(order_id)
    .bind(name)
    .bind(attempt)
    .bind(amount.map(|a| a.minor_units))
    .bind(amount.map(|a| a.currency.as_str()))
    .bind(token)
    .bind(correlation_id)
    .bind(causation_id)
    .bind(&trace.traceparent)
    .bind(&trace.tracestate)
    .execute(conn)
    .await?;
    work::note_work();
    Ok(())
}

/// Leases the oldest queued call nobody holds a lease on for `lease`
/// (committed with the caller's transaction, so it holds none while it
/// calls), and whether another is queued that nobody holds.
pub async fn claim_call(
    conn: &mut PgConnection,
    lease: Duration,
) -> Result<Option<(Call, bool)>, sqlx::Error> {
    let row = sqlx::query(
        "WITH next AS (
             SELECT id FROM provider_calls
             WHERE leased_until IS NULL OR leased_until <= clock_timestamp()
             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
         UPDATE provider_calls c SET leased_until = clock_timestamp() + make_interval(secs => $1)
         FROM next WHERE c.id = next.id
         RETURNING c.id, c.order_id, c.payment_id, c.action, c.attempt, c.amount_minor, c.currency,
                c.payment_method_token, c.correlation_id, c.causation_id, c.traceparent, c.tracestate,
                EXISTS (SELECT 1 FROM provider_calls o WHERE o.id <> c.id
                        AND (o.leased_until IS NULL OR o.leased_until <= clock_timestamp()))",
    )
    .bind(lease.as_secs_f64())
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let action = match row.get::<&str, _>(3) {
        "VOID" => Action::Void,
        _ => {
            let amount: Option<i64> = row.get(5);
            let request = match amount {
                Some(minor_units) => Request::Placed {
                    amount: Money {
                        minor_units,
                        currency: row.get::<Option<String>, _>(6).unwrap_or_default(),
                    },
                },
                None => Request::Retry {
                    attempt: row.get::<i32, _>(4) as u32,
                },
            };
            Action::Authorize {
                request,
                token: row.get(7),
            }
        }
    };
    let call = Call {
        id: row.get(0),
        order_id: row.get(1),
        payment_id: row.get(2),
        action,
        correlation_id: row.get(8),
        causation_id: row.get(9),
        trace: TraceContext {
            traceparent: row.get(10),
            tracestate: row.get(11),
        },
    };
    Ok(Some((call, row.get(12))))
}

/// Takes a call made off the queue; false when it was no longer there (its
/// lease ran out and another caller made it and recorded the answer).
pub async fn call_done(conn: &mut PgConnection, id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM provider_calls WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives up the lease of a call that failed, so it is made again after the
/// caller's back-off rather than once the lease runs out.
pub async fn release_call(pool: &PgPool, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE provider_calls SET leased_until = NULL WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Calls queued and not yet made: the backlog.
pub async fn calls_queued(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM provider_calls")
        .fetch_one(conn)
        .await
}
