//! Queues one message per customer-facing event, in the inbox transaction,
//! unless a message already queued made it stale (see
//! [`Template::superseded_by`](crate::domain::Template::superseded_by)).
//! An `OrderPlaced` also records who receives the order's messages. What is
//! told comes from [`crate::domain`], the rows from [`crate::store`].

use std::sync::LazyLock;

use async_trait::async_trait;
use omnisaga_proto::v1::envelope::Payload;
use omnisaga_runtime::{
    consumer::{Handler, HandlerError, Incoming, Wanted},
    event::event_id,
    work, TraceContext,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{recipient_of, template_for},
    store::{self, NewMessage},
};

/// True when the notification consumer acts on `payload`: a placement
/// (the recipient) or anything the customer is told about.
pub fn reacts_to(payload: &Payload) -> bool {
    matches!(payload, Payload::OrderPlaced(_)) || template_for(payload).is_some()
}

/// The event types [`reacts_to`] takes: a record of any other is passed
/// over before a transaction.
static WANTED: LazyLock<Wanted> = LazyLock::new(|| Wanted::reacted_to(reacts_to));

pub struct SagaEvents;

#[async_trait]
impl Handler for SagaEvents {
    fn wants(&self, event_type: &str) -> bool {
        WANTED.wants(event_type)
    }

    async fn handle(&self, tx: &mut PgConnection, event: &Incoming) -> Result<(), HandlerError> {
        let env = &event.envelope;
        let Some(payload) = &env.payload else {
            return Ok(());
        };
        let order_id = event.order_id()?;
        if let Payload::OrderPlaced(placed) = payload {
            store::add_recipient(tx, order_id, recipient_of(placed), &placed.order_number).await?;
        }
        let Some(template) = template_for(payload) else {
            return Ok(());
        };
        let superseded_by = template.superseded_by();
        if !superseded_by.is_empty() && store::told_any(tx, order_id, superseded_by).await? {
            tracing::debug!(
                template = template.name(),
                "not queued: a message already queued made it stale"
            );
            return Ok(());
        }
        // The message's span will be a child of this consumer's span.
        let trace = TraceContext::current();
        let msg = NewMessage {
            notification_id: Uuid::now_v7(),
            order_id,
            source_event_id: event_id(env).unwrap_or_default(),
            source_event_type: &env.event_type,
            template,
            correlation_id: &env.correlation_id,
            trace: &trace,
        };
        store::queue(tx, &msg).await?;
        work::note_work();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use omnisaga_runtime::{aggregate::publishes, testing::catalog_drift};

    use crate::domain::MessagesAggregate;

    use super::reacts_to;

    #[test]
    fn the_topic_catalog_lists_what_notification_publishes_and_acts_on_and_nothing_else() {
        assert_eq!(
            catalog_drift("notification", publishes::<MessagesAggregate>, reacts_to),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_consumer_passes_over_before_a_transaction_every_type_it_does_not_react_to() {
        use omnisaga_runtime::consumer::Handler;
        let handler = super::SagaEvents;
        for payload in omnisaga_proto::every_payload() {
            let t = payload.event_type();
            assert_eq!(handler.wants(t), reacts_to(&payload), "{t}");
        }
    }
}
