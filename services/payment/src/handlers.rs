//! On `OrderPlaced` and `PaymentRetryRequested`: ask the provider, record the
//! answer in the order's payment stream and publish it through the outbox, in
//! one transaction. On `OrderCancelled`: no further attempt. On the
//! warehouse's `StockReleased` or `StockUnavailable` (nothing of the order
//! ships): void an authorisation still standing. An attempt refused because
//! nothing is to be paid any more also voids an approval the provider holds
//! for it whose recording was rolled back.
//! Each is one shape, the runtime's aggregate executor in the consumer's
//! transaction: load, decide, append with the outbox. A refused command
//! changes nothing: it is a duplicate or comes too late (an attempt for a
//! cancelled or paid order).

use std::sync::Arc;

use async_trait::async_trait;
use omnisaga_proto::v1::{envelope::Payload, Envelope};
use omnisaga_runtime::{
    aggregate::{ExecuteError, Executor},
    consumer::{Handler, HandlerError, Incoming},
    event::EventMeta,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{self, Command, Event, Payment, PaymentAggregate, PaymentError, ProviderAnswer, Request},
    provider::{Outcome, Provider},
    store, wire,
};

static OUTCOMES: std::sync::LazyLock<omnisaga_runtime::metrics::Counters> = std::sync::LazyLock::new(|| {
    omnisaga_runtime::metrics::counter_vec(
        "omnisaga_payment_outcomes_total",
        "Payment answers and compensations (authorized, declined, unavailable, voided, voided_unrecorded)",
        &["outcome"],
    )
});

/// The event types payment acts on: the order's placement, retries and
/// cancellation, and the warehouse's word that nothing ships (which voids).
const HANDLED: [&str; 5] = [
    "OrderPlaced",
    "PaymentRetryRequested",
    "OrderCancelled",
    "StockReleased",
    "StockUnavailable",
];

pub struct OrderEvents {
    pub provider: Arc<Provider>,
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
        HANDLED.contains(&event_type)
    }

    async fn handle(&self, tx: &mut PgConnection, event: &Incoming) -> Result<(), HandlerError> {
        let env = &event.envelope;
        let order_id = Uuid::parse_str(&env.order_id)
            .map_err(|_| rejected(format!("order id {:?} is not a UUID", env.order_id)))?;
        let concerns_payment = env.payload.as_ref().is_some_and(|p| self.wants(p.event_type()));
        if !concerns_payment {
            return Ok(());
        }
        let executor = Executor::<PaymentAggregate>::new(&self.payments_topic);
        let stream_key = order_id.to_string();
        let loaded = executor.load(tx, &stream_key).await?;
        let state = &loaded.state;
        let cmd = match &env.payload {
            Some(Payload::OrderPlaced(placed)) => {
                let amount = placed
                    .total
                    .clone()
                    .ok_or_else(|| rejected("OrderPlaced has no total".into()))?;
                let request = Request::Placed { amount };
                self.authorize(state, env, request, &placed.payment_method_token)
                    .await
            }
            Some(Payload::PaymentRetryRequested(retry)) => {
                let request = Request::Retry {
                    attempt: retry.attempt,
                };
                self.authorize(state, env, request, &retry.payment_method_token)
                    .await
            }
            Some(Payload::OrderCancelled(cancelled)) => Ok(Command::Cancel(cancelled.clone())),
            Some(fact @ (Payload::StockReleased(_) | Payload::StockUnavailable(_))) => {
                let fact = wire::event(fact).expect("payment keeps the warehouse's word that nothing ships");
                Ok(Command::Void(Box::new(fact)))
            }
            _ => return Ok(()),
        };
        let cmd = match cmd {
            Ok(cmd) => cmd,
            Err(reason) => return refused(reason),
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
        // Still inside the transaction: a crash before its commit redelivers
        // the fact, which voids again (the provider dedupes on the payment id).
        for event in &done.events {
            if let Event::PaymentVoided(v) = event {
                self.provider.void(&v.payment_id).await;
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
    /// Asks the provider about the attempt `request` makes, once the domain
    /// says it may be made: a duplicate or late attempt must not charge.
    async fn authorize(
        &self,
        state: &Payment,
        env: &Envelope,
        request: Request,
        token: &str,
    ) -> Result<Command, PaymentError> {
        let attempt = match domain::attempt(state, &request) {
            Ok(attempt) => attempt,
            Err(refusal) => {
                if let Some(number) = domain::unrecorded_attempt(state, &request, &refusal) {
                    self.void_unrecorded(&domain::payment_id(&env.order_id, number))
                        .await;
                }
                return Err(refusal);
            }
        };
        let payment_id = domain::payment_id(&env.order_id, attempt.number);
        let answer = match self.provider.authorize(&payment_id, token).await {
            Outcome::Approved => ProviderAnswer::Approved,
            Outcome::Declined(reason) => ProviderAnswer::Declined(reason),
            Outcome::Unavailable => ProviderAnswer::Unavailable,
        };
        Ok(Command::Authorize {
            order_id: env.order_id.clone(),
            request,
            answer,
        })
    }

    /// Voids an approval the provider holds for an attempt that was never
    /// recorded (see [`domain::unrecorded_attempt`]).
    async fn void_unrecorded(&self, payment_id: &str) {
        if self.provider.holds(payment_id) {
            self.provider.void(payment_id).await;
            OUTCOMES.with_label_values(&["voided_unrecorded"]).inc();
            tracing::warn!(
                payment.id = payment_id,
                "voided an approval whose recording was rolled back"
            );
        }
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

fn outcome(out: &Envelope) -> &'static str {
    match &out.payload {
        Some(Payload::PaymentAuthorized(_)) => "authorized",
        Some(Payload::PaymentFailed(f)) if f.reason == "provider_unavailable" => "unavailable",
        Some(Payload::PaymentFailed(_)) => "declined",
        Some(Payload::PaymentVoided(_)) => "voided",
        _ => "other",
    }
}
