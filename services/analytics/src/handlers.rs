//! Records each event, the stage it marks and, for a placement, the order's
//! channel and lines; times the stages it completes (see [`crate::domain`]).
//! The rows are [`crate::store`]'s.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use omnisaga_proto::v1::{envelope::Payload, Channel, OrderPlaced};
use omnisaga_runtime::{
    consumer::{Handler, HandlerError, Incoming},
    event::{event_id, occurred_at},
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{channel_name, durations, Stage},
    store::{self, Known, Line, Placement, Received},
};

static STAGES: std::sync::LazyLock<omnisaga_runtime::metrics::Histograms> = std::sync::LazyLock::new(|| {
    omnisaga_runtime::metrics::histogram_vec(
        "omnisaga_saga_stage_duration_seconds",
        "From OrderPlaced to a later stage (placed_to_paid, placed_to_ready_for_shipment, placed_to_shipped)",
        &["stage"],
    )
});

/// True when analytics acts on `payload` beyond recording its receipt: the
/// stages of the funnel ([`Stage::of`]).
pub fn reacts_to(payload: &Payload) -> bool {
    Stage::of(payload).is_some()
}

/// The consumer's handler, with the dimension rows it has written.
#[derive(Debug, Default)]
pub struct SagaEvents {
    known: Known,
}

#[async_trait]
impl Handler for SagaEvents {
    async fn handle(&self, tx: &mut PgConnection, event: &Incoming) -> Result<(), HandlerError> {
        if event.envelope.payload.is_none() {
            return Ok(());
        }
        let order_id = event.order_id()?;
        self.record(tx, event, order_id).await.map_err(|e| self.failed(e))
    }
}

impl SagaEvents {
    async fn record(&self, tx: &mut PgConnection, event: &Incoming, order_id: Uuid) -> Result<(), sqlx::Error> {
        let env = &event.envelope;
        let Some(payload) = &env.payload else {
            return Ok(());
        };
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
        let Some(stage) = Stage::of(payload) else {
            return Ok(());
        };
        if let Payload::OrderPlaced(placed) = payload {
            record_placement(tx, &self.known, order_id, placed, at).await?;
        }
        // Time the stages this event completed, when it set its own.
        if let Some(stages) = store::record_stage(tx, &self.known, received.event_id, order_id, stage, at).await? {
            for (label, seconds) in durations(stage, &stages) {
                STAGES.with_label_values(&[label]).observe(seconds);
            }
        }
        Ok(())
    }

    /// `e` sorted for the consumer. A foreign key violation is a day or a
    /// SKU remembered as written that is not (its transaction rolled back):
    /// forgotten, and the record retried, which writes them again.
    fn failed(&self, e: sqlx::Error) -> HandlerError {
        if store::is_foreign_key_violation(&e) && self.known.forget() {
            HandlerError::Transient(anyhow::Error::new(e).context("a dimension row remembered as written is missing"))
        } else {
            e.into()
        }
    }
}

/// Records what `placed` tells besides the stage: channel, lines, total.
async fn record_placement(
    tx: &mut PgConnection,
    known: &Known,
    order_id: Uuid,
    placed: &OrderPlaced,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let total = placed.total.clone().unwrap_or_default();
    let lines: Vec<Line> = placed
        .items
        .iter()
        .map(|item| {
            let price = item.unit_price.as_ref();
            Line {
                sku: &item.sku,
                name: &item.name,
                quantity: i32::try_from(item.quantity).unwrap_or(i32::MAX),
                unit_price_minor_units: price.map_or(0, |p| p.minor_units),
                currency: price.map_or("", |p| p.currency.as_str()),
            }
        })
        .collect();
    let placement = Placement {
        channel: channel_name(Channel::try_from(placed.channel).unwrap_or(Channel::Unspecified)),
        at,
        lines: &lines,
        total_minor_units: total.minor_units,
        currency: &total.currency,
    };
    store::record_placement(tx, known, order_id, &placement).await
}

#[cfg(test)]
mod tests {
    use omnisaga_runtime::testing::catalog_drift;

    use super::reacts_to;

    #[test]
    fn the_topic_catalog_lists_what_analytics_publishes_and_acts_on_and_nothing_else() {
        assert_eq!(
            catalog_drift("analytics", |_| false, reacts_to),
            Vec::<String>::new()
        );
    }
}
