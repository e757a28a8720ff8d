//! On `OrderPlaced` and `PaymentRetryRequested`: ask the provider, record the
//! answer in the order's payment stream and publish it through the outbox, in
//! one transaction. On `OrderCancelled`: void an authorisation still standing.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use omnisaga_proto::v1::{envelope::Payload, Envelope, Money};
use omnisaga_runtime::{
    consumer::{Handler, HandlerError, Incoming},
    event::{self, EventMeta},
    outbox, store,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{self, AuthorizePayment, Payment, ProviderAnswer},
    provider::{Outcome, Provider},
};

static OUTCOMES: std::sync::LazyLock<omnisaga_runtime::metrics::Counters> = std::sync::LazyLock::new(|| {
    omnisaga_runtime::metrics::counter_vec(
        "omnisaga_payment_outcomes_total",
        "Payment answers and compensations (authorized, declined, unavailable, voided)",
        &["outcome"],
    )
});

pub struct OrderEvents {
    pub provider: Arc<Provider>,
    pub payments_topic: String,
}

fn rejected(msg: String) -> HandlerError {
    HandlerError::Rejected(anyhow::anyhow!(msg))
}

#[async_trait]
impl Handler for OrderEvents {
    async fn handle(&self, tx: &mut PgConnection, event: &Incoming) -> Result<(), HandlerError> {
        let env = &event.envelope;
        let order_id = Uuid::parse_str(&env.order_id)
            .map_err(|_| rejected(format!("order id {:?} is not a UUID", env.order_id)))?;
        let stream = format!("payment-{order_id}");
        let history = store::load(tx, &stream).await?;
        let version = history.last().map_or(0, |e| e.version);
        let state = history
            .iter()
            .filter_map(|e| e.envelope.payload.as_ref())
            .fold(Payment::default(), domain::evolve);
        let meta = EventMeta::caused_by(env);
        let (recorded, events) = match &env.payload {
            Some(Payload::OrderPlaced(placed)) => {
                let amount = placed
                    .total
                    .clone()
                    .ok_or_else(|| rejected("OrderPlaced has no total".into()))?;
                let attempt = state.attempts + 1;
                (
                    None,
                    self.authorize(
                        &state,
                        &env.order_id,
                        amount,
                        attempt,
                        &placed.payment_method_token,
                    )
                    .await?,
                )
            }
            Some(Payload::PaymentRetryRequested(retry)) => {
                let amount = state
                    .amount
                    .clone()
                    .ok_or_else(|| rejected("retry before any attempt".into()))?;
                (
                    None,
                    self.authorize(
                        &state,
                        &env.order_id,
                        amount,
                        retry.attempt,
                        &retry.payment_method_token,
                    )
                    .await?,
                )
            }
            Some(cancelled @ Payload::OrderCancelled(_)) if !state.cancelled => {
                let voids = domain::void_on_cancel(&domain::evolve(state.clone(), cancelled), &env.order_id);
                for v in &voids {
                    if let Payload::PaymentVoided(v) = v {
                        self.provider.void(&v.payment_id).await;
                    }
                }
                (Some(env.clone()), voids)
            }
            _ => return Ok(()),
        };
        let now = Utc::now();
        let envelopes: Vec<Envelope> = events
            .into_iter()
            .map(|e| event::envelope("payment", &env.order_id, e, &meta, now))
            .collect();
        let all: Vec<Envelope> = recorded.into_iter().chain(envelopes.iter().cloned()).collect();
        store::append(tx, &stream, version, &all).await?;
        for out in &envelopes {
            outbox::enqueue(tx, &self.payments_topic, out, &meta.trace).await?;
            let outcome = match &out.payload {
                Some(Payload::PaymentAuthorized(_)) => "authorized",
                Some(Payload::PaymentFailed(f)) if f.reason == "provider_unavailable" => "unavailable",
                Some(Payload::PaymentFailed(_)) => "declined",
                Some(Payload::PaymentVoided(_)) => "voided",
                _ => "other",
            };
            OUTCOMES.with_label_values(&[outcome]).inc();
            tracing::info!(event.type = %out.event_type, "payment event");
        }
        let after = all
            .iter()
            .filter_map(|e| e.payload.as_ref())
            .fold(state, domain::evolve);
        update_view(tx, order_id, &after).await?;
        Ok(())
    }
}

impl OrderEvents {
    async fn authorize(
        &self,
        state: &Payment,
        order_id: &str,
        amount: Money,
        attempt: u32,
        token: &str,
    ) -> Result<Vec<Payload>, HandlerError> {
        // Checked before calling the provider: a duplicate or late attempt must not charge.
        if domain::may_attempt(state, attempt).is_err() {
            return Ok(vec![]);
        }
        let answer = match self
            .provider
            .authorize(&domain::payment_id(order_id, attempt), token)
            .await
        {
            Outcome::Approved => ProviderAnswer::Approved,
            Outcome::Declined(reason) => ProviderAnswer::Declined(reason),
            Outcome::Unavailable => ProviderAnswer::Unavailable,
        };
        let cmd = AuthorizePayment {
            order_id: order_id.to_owned(),
            amount,
            attempt,
            answer,
        };
        domain::decide(state, cmd).map_err(|e| HandlerError::Rejected(e.into()))
    }
}

async fn update_view(tx: &mut PgConnection, order_id: Uuid, p: &Payment) -> Result<(), sqlx::Error> {
    let status = match (p.cancelled, p.voided, p.authorized.is_some()) {
        (_, true, _) => "VOIDED",
        (_, _, true) => "AUTHORIZED",
        (true, _, _) => "CANCELLED",
        _ => "FAILED",
    };
    let total = p.amount.clone().unwrap_or_default();
    sqlx::query(
        "INSERT INTO payment_view (order_id, status, attempts, amount_minor, currency) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (order_id) DO UPDATE SET status = $2, attempts = $3, updated_at = now()",
    )
    .bind(order_id)
    .bind(status)
    .bind(p.attempts as i32)
    .bind(total.minor_units)
    .bind(&total.currency)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
