//! The payment database beside the streams (which the runtime's aggregate
//! executor keeps, see `crate::wire`): the queue of calls to the provider;
//! the payment view support reads in `view`, the provider simulator's
//! ledger in `ledger`. Every statement of the service is in this module.

use std::time::Duration;

use omnisaga_proto::v1::Money;
use omnisaga_runtime::{
    store::{self as es, StoreError, StoredEvent},
    work, TraceContext,
};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::domain::Request;

pub mod ledger;
pub mod view;

pub use view::{update_view, view, ViewRow, ViewStatus};

/// A call to the provider, queued in the transaction that decided it.
#[derive(Debug, Clone)]
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
    /// The order's payment stream as the claim read it (empty for a void).
    pub stream: Vec<StoredEvent>,
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

/// Leases the oldest queued call nobody holds a lease on for `lease`, in
/// one statement committed at once (the caller holds no transaction while
/// it calls), and says whether another is queued that nobody holds. An
/// authorisation comes with its order's payment stream as the statement
/// read it (`stream_prefix` and the order id name it), which the caller
/// decides over before it asks the provider.
pub async fn claim_call(
    pool: &PgPool,
    lease: Duration,
    stream_prefix: &str,
) -> Result<Option<(Call, bool)>, StoreError> {
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
                        AND (o.leased_until IS NULL OR o.leased_until <= clock_timestamp())),
                CASE WHEN c.action = 'AUTHORIZE' THEN ARRAY(
                    SELECT e.version FROM events e WHERE e.stream_id = $2 || c.order_id::text
                    ORDER BY e.version) END,
                CASE WHEN c.action = 'AUTHORIZE' THEN ARRAY(
                    SELECT e.envelope FROM events e WHERE e.stream_id = $2 || c.order_id::text
                    ORDER BY e.version) END",
    )
    .bind(lease.as_secs_f64())
    .bind(stream_prefix)
    .fetch_optional(pool)
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
        stream: stream(row.get(13), row.get(14))?,
    };
    Ok(Some((call, row.get(12))))
}

/// The stream a claim read, one row per event (none for a void).
fn stream(
    versions: Option<Vec<i64>>,
    envelopes: Option<Vec<Vec<u8>>>,
) -> Result<Vec<StoredEvent>, StoreError> {
    versions
        .unwrap_or_default()
        .into_iter()
        .zip(envelopes.unwrap_or_default())
        .map(|(version, bytes)| es::decode(version, &bytes))
        .collect()
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
