//! Reacts to the orders and warehouse topics: `OrderPlaced` and
//! `PaymentRetryRequested` ask for an attempt, `OrderCancelled` for no
//! further one, the warehouse's `StockReleased` or `StockUnavailable`
//! (nothing of the order ships) for a void; each a use case of
//! [`crate::application`] in the consumer's transaction.

use std::sync::LazyLock;

use async_trait::async_trait;
use omnisaga_proto::v1::envelope::Payload;
use omnisaga_runtime::{
    aggregate::Aggregate as _,
    consumer::{Handler, HandlerError, Incoming, Wanted},
};
use sqlx::PgConnection;

use crate::{application, domain::PaymentAggregate};

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

#[async_trait]
impl Handler for OrderEvents {
    /// The order's own steps and the warehouse's word that nothing ships;
    /// the warehouse's progress (reserved, picked, ready, shipped) is passed
    /// over before any transaction.
    fn wants(&self, event_type: &str) -> bool {
        WANTED.wants(event_type)
    }

    /// The order's payment stream: every use case decides on it.
    fn stream(&self, event: &Incoming) -> Option<String> {
        Some(PaymentAggregate::stream(&event.order_id().ok()?.to_string()))
    }

    async fn handle(&self, tx: &mut PgConnection, event: &Incoming) -> Result<(), HandlerError> {
        let env = &event.envelope;
        let order_id = event.order_id()?;
        let topic = &self.payments_topic;
        match &env.payload {
            Some(Payload::OrderPlaced(placed)) => application::pay(tx, topic, order_id, env, placed).await,
            Some(Payload::PaymentRetryRequested(retry)) => {
                application::retry(tx, topic, order_id, env, retry).await
            }
            Some(Payload::OrderCancelled(cancelled)) => {
                application::cancel(tx, topic, order_id, env, cancelled).await
            }
            Some(fact @ (Payload::StockReleased(_) | Payload::StockUnavailable(_))) => {
                application::void(tx, topic, order_id, env, fact).await
            }
            _ => Ok(()),
        }
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
