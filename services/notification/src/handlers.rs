//! Queues one message per customer-facing event, in the inbox transaction,
//! unless a cancellation already made it stale (see [`stale_once_cancelled`]).

use async_trait::async_trait;
use omnisaga_proto::v1::envelope::Payload;
use omnisaga_runtime::{
    consumer::{Handler, HandlerError, Incoming},
    event::event_id,
    outbox, TraceContext,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::templates::{stale_once_cancelled, template_for};

pub struct SagaEvents;

#[async_trait]
impl Handler for SagaEvents {
    async fn handle(&self, tx: &mut PgConnection, event: &Incoming) -> Result<(), HandlerError> {
        let env = &event.envelope;
        let Some(payload) = &env.payload else {
            return Ok(());
        };
        let order_id = Uuid::parse_str(&env.order_id).map_err(|_| {
            HandlerError::Rejected(anyhow::anyhow!("order id {:?} is not a UUID", env.order_id))
        })?;
        if let Payload::OrderPlaced(placed) = payload {
            sqlx::query(
                "INSERT INTO recipients (order_id, customer_id, order_number) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(order_id)
            .bind(placed.customer.as_ref().map(|c| c.customer_id.as_str()).unwrap_or("guest"))
            .bind(&placed.order_number)
            .execute(&mut *tx)
            .await?;
        }
        let Some(template) = template_for(payload) else {
            return Ok(());
        };
        if stale_once_cancelled(template) {
            let cancelled: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM notifications WHERE order_id = $1 AND template = 'order_cancelled')",
            )
            .bind(order_id)
            .fetch_one(&mut *tx)
            .await?;
            if cancelled {
                tracing::debug!(template, "not sent: the customer was told the order is cancelled");
                return Ok(());
            }
        }
        let source = event_id(env).unwrap_or_default();
        // The message's span will be a child of this consumer's span.
        let trace = TraceContext::current();
        sqlx::query(
            "INSERT INTO notifications (notification_id, order_id, source_event_id, source_event_type, template,
                                        correlation_id, traceparent, tracestate)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (source_event_id) DO NOTHING",
        )
        .bind(Uuid::now_v7())
        .bind(order_id)
        .bind(source)
        .bind(&env.event_type)
        .bind(template)
        .bind(&env.correlation_id)
        .bind(&trace.traceparent)
        .bind(&trace.tracestate)
        .execute(&mut *tx)
        .await?;
        outbox::note_work();
        Ok(())
    }
}
