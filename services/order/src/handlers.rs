//! Records what payment and the warehouse publish about an order into the
//! order's own stream, and runs the saga owner's reaction (a cancellation
//! when stock is unavailable) in the same transaction.

use std::sync::LazyLock;

use async_trait::async_trait;
use omnisaga_runtime::{
    aggregate::Aggregate as _,
    consumer::{Handler, HandlerError, Incoming, Wanted},
    event::EventMeta,
};
use sqlx::PgConnection;

use crate::{
    application::{CommandError, Orders},
    domain::{Command, OrderAggregate, OrderError},
    wire,
};

/// True when the order's consumer acts on `payload`: what the order keeps
/// of it (`crate::wire`).
pub fn reacts_to(payload: &omnisaga_proto::v1::envelope::Payload) -> bool {
    wire::event(payload).is_some()
}

/// The event types [`reacts_to`] takes: a record of any other is passed
/// over before a transaction.
static WANTED: LazyLock<Wanted> = LazyLock::new(|| Wanted::reacted_to(reacts_to));

pub struct SagaEvents {
    pub orders: Orders,
}

#[async_trait]
impl Handler for SagaEvents {
    fn wants(&self, event_type: &str) -> bool {
        WANTED.wants(event_type)
    }

    /// The order's stream, for every fact the order keeps.
    fn stream(&self, event: &Incoming) -> Option<String> {
        let env = &event.envelope;
        env.payload.as_ref().and_then(wire::event)?;
        Some(OrderAggregate::stream(&event.order_id().ok()?.to_string()))
    }

    async fn handle(&self, tx: &mut PgConnection, event: &Incoming) -> Result<(), HandlerError> {
        let env = &event.envelope;
        // Only what the order keeps (`crate::wire`); the rest is passed over.
        let Some(fact) = env.payload.as_ref().and_then(wire::event) else {
            return Ok(());
        };
        let order_id = event.order_id()?;
        let meta = EventMeta::caused_by(env);
        match self
            .orders
            .execute_in(tx, order_id, Command::Record(fact), Some(meta), Some(env))
            .await
        {
            Ok(_) | Err(CommandError::Domain(OrderError::NotRecorded(_))) => Ok(()),
            Err(CommandError::Domain(e)) => Err(HandlerError::Rejected(e.into())),
            Err(e @ CommandError::FactWithoutCause) => Err(HandlerError::Rejected(e.into())),
            Err(CommandError::Store(e)) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use omnisaga_runtime::{aggregate::publishes, testing::catalog_drift};

    use crate::domain::OrderAggregate;

    use super::reacts_to;

    #[test]
    fn the_topic_catalog_lists_what_order_publishes_and_acts_on_and_nothing_else() {
        assert_eq!(
            catalog_drift("order", publishes::<OrderAggregate>, reacts_to),
            Vec::<String>::new()
        );
    }

    #[tokio::test]
    async fn the_consumer_passes_over_before_a_transaction_every_type_it_does_not_react_to() {
        use omnisaga_runtime::consumer::Handler;
        let handler = super::SagaEvents {
            orders: crate::application::Orders {
                pool: sqlx::PgPool::connect_lazy("postgres://nobody@127.0.0.1/none").unwrap(),
                waker: Default::default(),
                topic: String::new(),
                payment_deadline: std::time::Duration::ZERO,
            },
        };
        for payload in omnisaga_proto::every_payload() {
            let t = payload.event_type();
            assert_eq!(handler.wants(t), reacts_to(&payload), "{t}");
        }
    }
}
