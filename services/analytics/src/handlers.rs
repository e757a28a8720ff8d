//! Records each event and the stage it marks, and times the stages it
//! completes (see [`crate::domain`]); the rows are [`crate::store`]'s.

use async_trait::async_trait;
use omnisaga_runtime::{
    consumer::{Handler, HandlerError, Incoming},
    event::{event_id, occurred_at},
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{durations, mark_of, Mark},
    store::{self, Received},
};

static STAGES: std::sync::LazyLock<omnisaga_runtime::metrics::Histograms> = std::sync::LazyLock::new(|| {
    omnisaga_runtime::metrics::histogram_vec(
        "omnisaga_saga_stage_duration_seconds",
        "From OrderPlaced to a later stage (placed_to_paid, placed_to_ready_for_shipment, placed_to_shipped)",
        &["stage"],
    )
});

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
        let at = occurred_at(env);
        let received = Received {
            event_id: event_id(env).unwrap_or_default(),
            order_id,
            event_type: &env.event_type,
            occurred_at: at,
            topic: &event.topic,
        };
        if !store::record_received(tx, &received).await? {
            return Ok(());
        }
        match mark_of(payload) {
            Some(Mark::Reached(stage)) => {
                store::mark_stage(tx, order_id, stage, at).await?;
                // Time the stages this event completed, when it set its own.
                if stage.is_timed() {
                    if let Some(stages) = store::stages_if_reached_at(tx, order_id, stage, at).await? {
                        for (label, seconds) in durations(stage, &stages) {
                            STAGES.with_label_values(&[label]).observe(seconds);
                        }
                    }
                }
            }
            Some(Mark::PaymentFailure) => store::count_payment_failure(tx, order_id).await?,
            None => {}
        }
        Ok(())
    }
}
