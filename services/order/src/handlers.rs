//! Records what payment and the warehouse publish about an order into the
//! order's own stream and keeps the order view's status in step.

use async_trait::async_trait;
use omnisaga_runtime::{
    consumer::{Handler, HandlerError, Incoming},
    store,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{self, Command, OrderError},
    store as db,
};

pub struct SagaEvents;

#[async_trait]
impl Handler for SagaEvents {
    async fn handle(&self, tx: &mut PgConnection, event: &Incoming) -> Result<(), HandlerError> {
        let env = &event.envelope;
        let Some(payload) = env.payload.clone() else {
            return Ok(());
        };
        let order_id = Uuid::parse_str(&env.order_id).map_err(|_| {
            HandlerError::Rejected(anyhow::anyhow!("order id {:?} is not a UUID", env.order_id))
        })?;
        let stream = format!("order-{order_id}");
        let history = store::load(tx, &stream).await?;
        let version = history.last().map_or(0, |e| e.version);
        let state = history
            .iter()
            .filter_map(|e| e.envelope.payload.as_ref())
            .fold(None, domain::evolve);
        match domain::decide(state.as_ref(), Command::Record(payload.clone())) {
            Ok(_) => {}
            Err(OrderError::NotRecorded(_)) => return Ok(()),
            Err(e) => return Err(HandlerError::Rejected(e.into())),
        }
        let before = state.as_ref().map(|s| s.status);
        let after = domain::evolve(state, &payload).map(|s| s.status);
        store::append(tx, &stream, version, std::slice::from_ref(env)).await?;
        if let Some(status) = after.filter(|s| Some(*s) != before) {
            db::update_view_status(tx, order_id, status.as_str()).await?;
        }
        Ok(())
    }
}
