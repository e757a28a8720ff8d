//! Reacts to the saga's events: an `OrderPlaced` records who receives the
//! order's messages, and every event the customer is told about queues its
//! message; each a use case of [`crate::application`] in the consumer's
//! transaction.

use std::sync::LazyLock;

use async_trait::async_trait;
use omnisaga_proto::v1::envelope::Payload;
use omnisaga_runtime::consumer::{Handler, HandlerError, Incoming, Wanted};
use sqlx::PgConnection;

use crate::{application, domain::template_for};

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
            application::record_recipient(tx, order_id, placed).await?;
        }
        match template_for(payload) {
            Some(template) => application::tell(tx, order_id, env, template).await,
            None => Ok(()),
        }
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
