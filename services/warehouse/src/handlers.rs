//! Reacts to the order and payment topics: reserve on `OrderPlaced`, release
//! the pick task on `PaymentAuthorized`, release stock on `OrderCancelled`,
//! each a use case of [`crate::application`] run in the consumer's
//! transaction.

use std::sync::LazyLock;

use async_trait::async_trait;
use omnisaga_proto::v1::envelope::Payload;
use omnisaga_runtime::{
    aggregate::Aggregate as _,
    consumer::{Handler, HandlerError, Incoming, Wanted},
};
use sqlx::PgConnection;

use crate::{application, domain::FulfilmentAggregate};

/// True when the warehouse's consumer acts on `payload`: a placement
/// (reserve), a payment (release for picking), a cancellation (release stock).
pub fn reacts_to(payload: &Payload) -> bool {
    matches!(
        payload,
        Payload::OrderPlaced(_) | Payload::PaymentAuthorized(_) | Payload::OrderCancelled(_)
    )
}

/// The event types [`reacts_to`] takes: a record of any other is passed
/// over before a transaction.
static WANTED: LazyLock<Wanted> = LazyLock::new(|| Wanted::reacted_to(reacts_to));

pub struct SagaEvents {
    pub warehouse_topic: String,
}

#[async_trait]
impl Handler for SagaEvents {
    fn wants(&self, event_type: &str) -> bool {
        WANTED.wants(event_type)
    }

    /// The order's fulfilment stream, for a placement and a payment: no
    /// picker works on the order before its payment is recorded. A
    /// cancellation reads it after locking the order's pick task, which a
    /// picker may hold.
    fn stream(&self, event: &Incoming) -> Option<String> {
        match event.envelope.payload.as_ref()? {
            Payload::OrderPlaced(_) | Payload::PaymentAuthorized(_) => {
                Some(FulfilmentAggregate::stream(&event.order_id().ok()?.to_string()))
            }
            _ => None,
        }
    }

    async fn handle(&self, tx: &mut PgConnection, event: &Incoming) -> Result<(), HandlerError> {
        let env = &event.envelope;
        let Some(payload) = env.payload.as_ref().filter(|p| reacts_to(p)) else {
            return Ok(());
        };
        let order_id = event.order_id()?;
        let topic = &self.warehouse_topic;
        match payload {
            Payload::OrderPlaced(placed) => application::reserve(tx, topic, order_id, env, placed).await,
            Payload::PaymentAuthorized(paid) => {
                application::release_for_picking(tx, topic, order_id, env, paid).await
            }
            Payload::OrderCancelled(cancelled) => {
                application::cancel(tx, topic, order_id, env, cancelled).await
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use omnisaga_runtime::{aggregate::publishes, testing::catalog_drift};

    use crate::domain::FulfilmentAggregate;

    use super::reacts_to;

    #[test]
    fn the_topic_catalog_lists_what_warehouse_publishes_and_acts_on_and_nothing_else() {
        assert_eq!(
            catalog_drift("warehouse", publishes::<FulfilmentAggregate>, reacts_to),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_consumer_passes_over_before_a_transaction_every_type_it_does_not_react_to() {
        use omnisaga_runtime::consumer::Handler;
        let handler = super::SagaEvents {
            warehouse_topic: String::new(),
        };
        for payload in omnisaga_proto::every_payload() {
            let t = payload.event_type();
            assert_eq!(handler.wants(t), reacts_to(&payload), "{t}");
        }
    }
}
