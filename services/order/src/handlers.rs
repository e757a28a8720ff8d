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
