//! Records what payment and the warehouse publish about an order into the
//! order's own stream, and runs the saga owner's reaction (a cancellation
//! when stock is unavailable) in the same transaction.

use async_trait::async_trait;
use omnisaga_runtime::{
    consumer::{Handler, HandlerError, Incoming},
    event::EventMeta,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    commands::{CommandError, Orders},
    domain::{Command, OrderError},
    wire,
};

/// True when the order's consumer acts on `payload`: what the order keeps
/// of it (`crate::wire`).
pub fn reacts_to(payload: &omnisaga_proto::v1::envelope::Payload) -> bool {
    wire::event(payload).is_some()
}

pub struct SagaEvents {
    pub orders: Orders,
}

#[async_trait]
impl Handler for SagaEvents {
    async fn handle(&self, tx: &mut PgConnection, event: &Incoming) -> Result<(), HandlerError> {
        let env = &event.envelope;
        // Only what the order keeps (`crate::wire`); the rest is passed over.
        let Some(fact) = env.payload.as_ref().and_then(wire::event) else {
            return Ok(());
        };
        let order_id = Uuid::parse_str(&env.order_id).map_err(|_| {
            HandlerError::Rejected(anyhow::anyhow!("order id {:?} is not a UUID", env.order_id))
        })?;
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
}
