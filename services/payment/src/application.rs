//! Payment's use cases on the saga's events, one function each: what the
//! consumer (`crate::handlers`) calls. On `OrderPlaced` and
//! `PaymentRetryRequested` ([`pay`], [`retry`]): queue the call to the
//! provider the attempt needs, once the order's payment stream says it may
//! be made (the provider callers of `crate::workers` make it and record the
//! answer). On `OrderCancelled` ([`cancel`]): no further attempt. On the
//! warehouse's `StockReleased` or `StockUnavailable` ([`void`]: nothing of
//! the order ships): void an authorisation still standing, the provider's
//! release queued the same way. The caller's transaction never waits for
//! the provider.
//! Each is one shape, the runtime's aggregate executor in the caller's
//! transaction: load, decide, append with the outbox. A refused command
//! changes nothing: it is a duplicate or comes too late (an attempt for a
//! cancelled or paid order).

use std::sync::LazyLock;

use omnisaga_proto::v1::{envelope::Payload, Envelope, OrderCancelled, OrderPlaced, PaymentRetryRequested};
use omnisaga_runtime::{
    aggregate::{ExecuteError, Executor},
    consumer::HandlerError,
    event::EventMeta,
    metrics::Counters,
    TraceContext,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{self, Command, Event, PaymentAggregate, PaymentError, Request},
    store::{self, Action},
    wire,
};

/// Payment outcomes by kind, counted where each is recorded.
pub(crate) static OUTCOMES: LazyLock<Counters> = LazyLock::new(|| {
    omnisaga_runtime::metrics::counter_vec(
        "omnisaga_payment_outcomes_total",
        "Payment answers and compensations (authorized, declined, unavailable, voided, voided_unrecorded; ambiguous_found and ambiguous_none: an ambiguous answer resolved by asking the provider by key)",
        &["outcome"],
    )
});

/// A placed order's first attempt, of its total.
pub async fn pay(
    tx: &mut PgConnection,
    topic: &str,
    order_id: Uuid,
    cause: &Envelope,
    placed: &OrderPlaced,
) -> Result<(), HandlerError> {
    let loaded = Executor::<PaymentAggregate>::new(topic)
        .load(tx, &order_id.to_string())
        .await?;
    let amount = placed
        .total
        .clone()
        .ok_or_else(|| HandlerError::Rejected(anyhow::anyhow!("OrderPlaced has no total")))?;
    let request = Request::Placed { amount };
    queue_attempt(
        tx,
        order_id,
        &loaded.state,
        cause,
        request,
        &placed.payment_method_token,
    )
    .await
}

/// The attempt the customer's retry asks for.
pub async fn retry(
    tx: &mut PgConnection,
    topic: &str,
    order_id: Uuid,
    cause: &Envelope,
    retry: &PaymentRetryRequested,
) -> Result<(), HandlerError> {
    let loaded = Executor::<PaymentAggregate>::new(topic)
        .load(tx, &order_id.to_string())
        .await?;
    let request = Request::Retry {
        attempt: retry.attempt,
    };
    queue_attempt(
        tx,
        order_id,
        &loaded.state,
        cause,
        request,
        &retry.payment_method_token,
    )
    .await
}

/// A cancelled order: no further attempt.
pub async fn cancel(
    tx: &mut PgConnection,
    topic: &str,
    order_id: Uuid,
    cause: &Envelope,
    cancelled: &OrderCancelled,
) -> Result<(), HandlerError> {
    decide(tx, topic, order_id, cause, Command::Cancel(cancelled.clone())).await
}

/// The warehouse's word that nothing of the order ships (`fact`, a
/// `StockReleased` or `StockUnavailable`): an authorisation still standing
/// is voided.
pub async fn void(
    tx: &mut PgConnection,
    topic: &str,
    order_id: Uuid,
    cause: &Envelope,
    fact: &Payload,
) -> Result<(), HandlerError> {
    let fact = wire::event(fact).expect("payment keeps the warehouse's word that nothing ships");
    decide(tx, topic, order_id, cause, Command::Void(Box::new(fact))).await
}

/// Decides `cmd` on the order's payment, caused by `cause`; queues the
/// provider's release of what it voids and keeps the view in step.
async fn decide(
    tx: &mut PgConnection,
    topic: &str,
    order_id: Uuid,
    cause: &Envelope,
    cmd: Command,
) -> Result<(), HandlerError> {
    let executor = Executor::<PaymentAggregate>::new(topic);
    let stream_key = order_id.to_string();
    let loaded = executor.load(tx, &stream_key).await?;
    let meta = EventMeta::caused_by(cause);
    let done = match executor
        .decide(tx, &stream_key, loaded, cmd, Some(cause), &meta)
        .await
    {
        Ok(done) => done,
        Err(ExecuteError::Refused(reason)) => return refused(reason),
        Err(ExecuteError::Store(e)) => return Err(e.into()),
        Err(e @ ExecuteError::FactWithoutCause) => return Err(HandlerError::Rejected(e.into())),
    };
    // The provider releases the money once this commits.
    for (event, out) in done.events.iter().zip(&done.appended) {
        if let Event::PaymentVoided(v) = event {
            let void = Action::Void;
            store::queue_call(
                tx,
                order_id,
                &v.payment_id,
                &void,
                &cause.correlation_id,
                &out.event_id,
                &meta.trace,
            )
            .await?;
        }
    }
    for out in &done.published {
        OUTCOMES.with_label_values(&[outcome(out)]).inc();
        tracing::info!(event.type = %out.event_type, "payment event");
    }
    store::update_view(tx, order_id, &done).await?;
    Ok(())
}

/// Queues the provider call for the attempt `request` makes, once the
/// domain says it may be made: a duplicate or late attempt must not
/// charge. An attempt refused here is not voided: a call queued for it
/// and made meanwhile is the caller's to compensate (see `crate::workers`).
async fn queue_attempt(
    tx: &mut PgConnection,
    order_id: Uuid,
    state: &domain::Payment,
    env: &Envelope,
    request: Request,
    token: &str,
) -> Result<(), HandlerError> {
    let attempt = match domain::attempt(state, &request) {
        Ok(attempt) => attempt,
        Err(refusal) => return refused(refusal),
    };
    let payment_id = domain::payment_id(&env.order_id, attempt.number);
    let authorize = Action::Authorize {
        request,
        token: token.to_owned(),
    };
    store::queue_call(
        tx,
        order_id,
        &payment_id,
        &authorize,
        &env.correlation_id,
        &env.event_id,
        // The call's span will be a child of this consumer's span.
        &TraceContext::current(),
    )
    .await?;
    Ok(())
}

/// A refused command is a duplicate or too late, and changes nothing; only
/// a retry of an order payment never saw cannot be applied at all.
fn refused(reason: PaymentError) -> Result<(), HandlerError> {
    match reason {
        PaymentError::NothingToRetry => Err(HandlerError::Rejected(reason.into())),
        reason => {
            tracing::debug!(%reason, "nothing to do");
            Ok(())
        }
    }
}

/// The outcome label of a published payment event.
pub(crate) fn outcome(out: &Envelope) -> &'static str {
    match &out.payload {
        Some(Payload::PaymentAuthorized(_)) => "authorized",
        Some(Payload::PaymentFailed(f)) if f.reason == "provider_unavailable" => "unavailable",
        Some(Payload::PaymentFailed(_)) => "declined",
        Some(Payload::PaymentVoided(_)) => "voided",
        _ => "other",
    }
}
