//! On `OrderPlaced`: ask the provider, record the answer in the order's
//! payment stream and publish it through the outbox, in one transaction.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use omnisaga_proto::v1::envelope::Payload;
use omnisaga_runtime::{
    consumer::{Handler, HandlerError, Incoming},
    event::{self, EventMeta},
    outbox, store,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{self, AuthorizePayment, Payment, PaymentError, ProviderAnswer},
    provider::{Outcome, Provider},
};

pub struct OrderEvents {
    pub provider: Arc<Provider>,
    pub payments_topic: String,
}

#[async_trait]
impl Handler for OrderEvents {
    async fn handle(&self, tx: &mut PgConnection, event: &Incoming) -> Result<(), HandlerError> {
        let Some(Payload::OrderPlaced(placed)) = &event.envelope.payload else {
            return Ok(());
        };
        let order_id = Uuid::parse_str(&placed.order_id).map_err(|_| {
            HandlerError::Rejected(anyhow::anyhow!("order id {:?} is not a UUID", placed.order_id))
        })?;
        let amount = placed
            .total
            .clone()
            .ok_or_else(|| HandlerError::Rejected(anyhow::anyhow!("OrderPlaced has no total")))?;
        let stream = format!("payment-{order_id}");
        let history = store::load(tx, &stream).await?;
        let version = history.last().map_or(0, |e| e.version);
        let state = history
            .iter()
            .filter_map(|e| e.envelope.payload.as_ref())
            .fold(Payment::default(), domain::evolve);
        let attempt = state.attempts + 1;
        let answer = match self
            .provider
            .authorize(
                &domain::payment_id(&placed.order_id, attempt),
                &placed.payment_method_token,
            )
            .await
        {
            Outcome::Approved => ProviderAnswer::Approved,
            Outcome::Declined(reason) => ProviderAnswer::Declined(reason),
            Outcome::Unavailable => ProviderAnswer::Unavailable,
        };
        let cmd = AuthorizePayment {
            order_id: placed.order_id.clone(),
            amount,
            attempt,
            answer,
        };
        let events = match domain::decide(&state, cmd) {
            Ok(events) => events,
            Err(PaymentError::AlreadyAuthorized) => return Ok(()),
            Err(e) => return Err(HandlerError::Rejected(e.into())),
        };
        let meta = EventMeta::caused_by(&event.envelope, &event.trace);
        let now = Utc::now();
        let envelopes: Vec<_> = events
            .into_iter()
            .map(|e| event::envelope("payment", &placed.order_id, e, &meta, now))
            .collect();
        store::append(tx, &stream, version, &envelopes).await?;
        for env in &envelopes {
            outbox::enqueue(tx, &self.payments_topic, env, &meta.trace).await?;
            tracing::info!(event.type = %env.event_type, "payment answered");
        }
        let after = envelopes
            .iter()
            .filter_map(|e| e.payload.as_ref())
            .fold(state, domain::evolve);
        let total = after.amount.clone().unwrap_or_default();
        sqlx::query(
            "INSERT INTO payment_view (order_id, status, attempts, amount_minor, currency) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (order_id) DO UPDATE SET status = $2, attempts = $3, updated_at = now()",
        )
        .bind(order_id)
        .bind(if after.authorized.is_some() { "AUTHORIZED" } else { "FAILED" })
        .bind(after.attempts as i32)
        .bind(total.minor_units)
        .bind(&total.currency)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}
