//! On `OrderPlaced` and `PaymentRetryRequested`: queue the call to the
//! provider the attempt needs, once the order's payment stream says it may
//! be made (the provider callers of `crate::calls` make it and record the
//! answer). On `OrderCancelled`: no further attempt. On the warehouse's
//! `StockReleased` or `StockUnavailable` (nothing of the order ships): void
//! an authorisation still standing, the provider's release queued the same
//! way. The consumer's transaction never waits for the provider.
//! Each is one shape, the runtime's aggregate executor in the consumer's
//! transaction: load, decide, append with the outbox. A refused command
//! changes nothing: it is a duplicate or comes too late (an attempt for a
//! cancelled or paid order).

use std::sync::LazyLock;

use async_trait::async_trait;
use omnisaga_proto::v1::{envelope::Payload, Envelope};
use omnisaga_runtime::{
    aggregate::{ExecuteError, Executor},
    consumer::{Handler, HandlerError, Incoming, Wanted},
    event::EventMeta,
    metrics::Counters,
    TraceContext,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{self, Command, Event, Payment, PaymentAggregate, PaymentError, Request},
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

/// The event types payment acts on: the order's placement, retries and
/// cancellation, and the warehouse's word that nothing ships (which voids).
pub const HANDLED: [&str; 5] = [
    "OrderPlaced",
    "PaymentRetryRequested",
    "OrderCancelled",
    "StockReleased",
    "StockUnavailable",
];

/// True when payment's consumer acts on `payload` ([`HANDLED`]).
pub fn reacts_to(payload: &Payload) -> bool {
    HANDLED.contains(&payload.event_type())
}

/// The event types [`reacts_to`] takes: a record of any other is passed
/// over before a transaction.
static WANTED: LazyLock<Wanted> = LazyLock::new(|| Wanted::reacted_to(reacts_to));

pub struct OrderEvents {
    pub payments_topic: String,
}

fn rejected(msg: String) -> HandlerError {
    HandlerError::Rejected(anyhow::anyhow!(msg))
}

#[async_trait]
impl Handler for OrderEvents {
    /// The order's own steps and the warehouse's word that nothing ships;
    /// the warehouse's progress (reserved, picked, ready, shipped) is passed
    /// over before any transaction.
    fn wants(&self, event_type: &str) -> bool {
        WANTED.wants(event_type)
    }

    async fn handle(&self, tx: &mut PgConnection, event: &Incoming) -> Result<(), HandlerError> {
        let env = &event.envelope;
        let order_id = event.order_id()?;
        let concerns_payment = env.payload.as_ref().is_some_and(reacts_to);
        if !concerns_payment {
            return Ok(());
        }
        let executor = Executor::<PaymentAggregate>::new(&self.payments_topic);
        let stream_key = order_id.to_string();
        let loaded = executor.load(tx, &stream_key).await?;
        // A placement or a retry asks for an attempt: a provider call, queued.
        let attempt = match &env.payload {
            Some(Payload::OrderPlaced(placed)) => {
                let amount = placed
                    .total
                    .clone()
                    .ok_or_else(|| rejected("OrderPlaced has no total".into()))?;
                Some((Request::Placed { amount }, placed.payment_method_token.as_str()))
            }
            Some(Payload::PaymentRetryRequested(retry)) => Some((
                Request::Retry {
                    attempt: retry.attempt,
                },
                retry.payment_method_token.as_str(),
            )),
            _ => None,
        };
        if let Some((request, token)) = attempt {
            return self
                .queue_attempt(tx, order_id, &loaded.state, env, request, token)
                .await;
        }
        let cmd = match &env.payload {
            Some(Payload::OrderCancelled(cancelled)) => Command::Cancel(cancelled.clone()),
            Some(fact @ (Payload::StockReleased(_) | Payload::StockUnavailable(_))) => {
                let fact = wire::event(fact).expect("payment keeps the warehouse's word that nothing ships");
                Command::Void(Box::new(fact))
            }
            _ => return Ok(()),
        };
        let meta = EventMeta::caused_by(env);
        let done = match executor
            .decide(tx, &stream_key, loaded, cmd, Some(env), &meta)
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
                    &env.correlation_id,
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
        store::update_view(tx, order_id, &done.state).await?;
        Ok(())
    }
}

impl OrderEvents {
    /// Queues the provider call for the attempt `request` makes, once the
    /// domain says it may be made: a duplicate or late attempt must not
    /// charge. An attempt refused here is not voided: a call queued for it
    /// and made meanwhile is the caller's to compensate (see `crate::calls`).
    async fn queue_attempt(
        &self,
        tx: &mut PgConnection,
        order_id: Uuid,
        state: &Payment,
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

pub(crate) fn outcome(out: &Envelope) -> &'static str {
    match &out.payload {
        Some(Payload::PaymentAuthorized(_)) => "authorized",
        Some(Payload::PaymentFailed(f)) if f.reason == "provider_unavailable" => "unavailable",
        Some(Payload::PaymentFailed(_)) => "declined",
        Some(Payload::PaymentVoided(_)) => "voided",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use omnisaga_runtime::{aggregate::publishes, testing::catalog_drift};

    use super::reacts_to;
    use crate::domain::PaymentAggregate;

    #[test]
    fn the_topic_catalog_lists_what_payment_publishes_and_acts_on_and_nothing_else() {
        assert_eq!(
            catalog_drift("payment", publishes::<PaymentAggregate>, reacts_to),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_consumer_passes_over_before_a_transaction_every_type_it_does_not_react_to() {
        use omnisaga_runtime::consumer::Handler;
        let handler = super::OrderEvents {
            payments_topic: String::new(),
        };
        for payload in omnisaga_proto::every_payload() {
            let t = payload.event_type();
            assert_eq!(handler.wants(t), reacts_to(&payload), "{t}");
        }
    }
}
