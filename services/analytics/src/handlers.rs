//! Records each event, the stage it marks and, for a placement, the order's
//! channel and lines; times the stages it completes (see [`crate::domain`]).
//! A fetched batch is recorded at once. The rows are [`crate::store`]'s.

use async_trait::async_trait;
use chrono::SubsecRound as _;
use omnisaga_proto::v1::{envelope::Payload, Channel, Envelope, OrderPlaced};
use omnisaga_runtime::{
    consumer::{Handler, HandlerError, Incoming},
    event::{event_id, occurred_at},
};
use prost::Message as _;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{channel_name, Stage},
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

/// The consumer's handler, with the dimension rows it has written. It
/// records a batch of events at once, one statement per table.
#[derive(Debug, Default)]
pub struct SagaEvents {
    known: Known,
}

#[async_trait]
impl Handler for SagaEvents {
    async fn handle(&self, tx: &mut PgConnection, event: &Incoming) -> Result<(), HandlerError> {
        self.handle_batch(tx, &[event]).await
    }

    async fn handle_batch(&self, tx: &mut PgConnection, events: &[&Incoming]) -> Result<(), HandlerError> {
        let mut received = Vec::with_capacity(events.len());
        for event in events {
            if let Some(r) = received_of(event)? {
                received.push(r);
            }
        }
        if received.is_empty() {
            return Ok(());
        }
        let completed = store::record_all(tx, &self.known, &received)
            .await
            .map_err(|e| self.failed(e))?;
        for (label, seconds) in completed {
            STAGES.with_label_values(&[label]).observe(seconds);
        }
        Ok(())
    }

    fn batches(&self) -> bool {
        true
    }
}

impl SagaEvents {
    /// `e` sorted for the consumer. A foreign key violation is a day or a
    /// SKU remembered as written that is not (its transaction rolled back):
    /// forgotten, and the record retried, which writes them again.
    fn failed(&self, e: sqlx::Error) -> HandlerError {
        if store::is_foreign_key_violation(&e) && self.known.forget() {
            HandlerError::Transient(
                anyhow::Error::new(e).context("a dimension row remembered as written is missing"),
            )
        } else {
            e.into()
        }
    }
}

/// `event` as analytics records it; `None` for one without a payload.
fn received_of(event: &Incoming) -> Result<Option<Received<'_>>, HandlerError> {
    let order_id = event.order_id()?;
    Ok(received(&event.envelope, order_id, &event.topic, true))
}

/// `env`, of `order_id`, read from `topic`, as analytics records it (with
/// its encoding when `encode`: what a rebuild needs it not); `None` for one
/// without a payload. The consumer's and a rebuild's
/// (`crate::projection`) reading of an event.
pub(crate) fn received<'a>(
    env: &'a Envelope,
    order_id: Uuid,
    topic: &'a str,
    encode: bool,
) -> Option<Received<'a>> {
    let payload = env.payload.as_ref()?;
    Some(Received {
        event_id: event_id(env).unwrap_or_default(),
        order_id,
        event_type: &env.event_type,
        occurred_at: occurred_at(env).trunc_subsecs(6),
        topic,
        envelope: if encode { env.encode_to_vec() } else { Vec::new() },
        stage: Stage::of(payload),
        placement: match payload {
            Payload::OrderPlaced(placed) => Some(placement(placed)),
            _ => None,
        },
        payment: store::payment_of(payload),
    })
}

/// What `placed` tells besides the stage: channel, lines, total.
fn placement(placed: &OrderPlaced) -> Placement<'_> {
    let total = placed.total.as_ref();
    Placement {
        channel: channel_name(Channel::try_from(placed.channel).unwrap_or(Channel::Unspecified)),
        customer_id: placed.customer.as_ref().map_or("", |c| c.customer_id.as_str()),
        lines: placed
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
            .collect(),
        total_minor_units: total.map_or(0, |t| t.minor_units),
        currency: total.map_or("", |t| t.currency.as_str()),
    }
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
