//! Records each event and the stage it marks.

use async_trait::async_trait;
use omnisaga_proto::v1::envelope::Payload;
use omnisaga_runtime::{
    consumer::{Handler, HandlerError, Incoming},
    event::{event_id, occurred_at},
};
use sqlx::PgConnection;
use uuid::Uuid;

static STAGES: std::sync::LazyLock<omnisaga_runtime::metrics::Histograms> = std::sync::LazyLock::new(|| {
    omnisaga_runtime::metrics::histogram_vec(
        "omnisaga_saga_stage_duration_seconds",
        "From OrderPlaced to a later stage (placed_to_paid, placed_to_ready_for_shipment, placed_to_shipped)",
        &["stage"],
    )
});

pub struct SagaEvents;

/// The `order_stages` column an event sets, if it marks a stage.
fn stage_column(event: &Payload) -> Option<&'static str> {
    match event {
        Payload::OrderPlaced(_) => Some("placed_at"),
        Payload::PaymentAuthorized(_) => Some("paid_at"),
        Payload::OrderReadyForShipment(_) => Some("ready_at"),
        Payload::OrderShipped(_) => Some("shipped_at"),
        Payload::OrderCancelled(_) => Some("cancelled_at"),
        _ => None,
    }
}

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
        let fresh = sqlx::query(
            "INSERT INTO received_events (event_id, order_id, event_type, occurred_at, topic)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(event_id(env).unwrap_or_default())
        .bind(order_id)
        .bind(&env.event_type)
        .bind(at)
        .bind(&event.topic)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            return Ok(());
        }
        if let Some(column) = stage_column(payload) {
            // `column` comes from the fixed list above, never from input.
            let sql = format!(
                "INSERT INTO order_stages (order_id, {column}) VALUES ($1, $2)
                 ON CONFLICT (order_id) DO UPDATE SET {column} = coalesce(order_stages.{column}, $2)"
            );
            sqlx::query(&sql)
                .bind(order_id)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            let stage = match column {
                "paid_at" => Some("placed_to_paid"),
                "ready_at" => Some("placed_to_ready_for_shipment"),
                "shipped_at" => Some("placed_to_shipped"),
                _ => None,
            };
            if let Some(stage) = stage {
                // The time from placement to this stage, when this event set it.
                let sql = format!(
                    "SELECT extract(epoch FROM {column} - placed_at)::float8 FROM order_stages
                     WHERE order_id = $1 AND {column} = $2 AND placed_at IS NOT NULL"
                );
                let seconds: Option<Option<f64>> = sqlx::query_scalar(&sql)
                    .bind(order_id)
                    .bind(at)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(s) = seconds.flatten() {
                    STAGES.with_label_values(&[stage]).observe(s.max(0.0));
                }
            } else if column == "placed_at" {
                // Stages come from other topics and may arrive before the
                // placement: time those now, when this event set it.
                let later: Option<(Option<f64>, Option<f64>, Option<f64>)> = sqlx::query_as(
                    "SELECT extract(epoch FROM paid_at - placed_at)::float8,
                            extract(epoch FROM ready_at - placed_at)::float8,
                            extract(epoch FROM shipped_at - placed_at)::float8
                     FROM order_stages WHERE order_id = $1 AND placed_at = $2",
                )
                .bind(order_id)
                .bind(at)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some((paid, ready, shipped)) = later {
                    for (stage, s) in [
                        ("placed_to_paid", paid),
                        ("placed_to_ready_for_shipment", ready),
                        ("placed_to_shipped", shipped),
                    ] {
                        if let Some(s) = s {
                            STAGES.with_label_values(&[stage]).observe(s.max(0.0));
                        }
                    }
                }
            }
        } else if matches!(payload, Payload::PaymentFailed(_)) {
            sqlx::query(
                "INSERT INTO order_stages (order_id, payment_failures) VALUES ($1, 1)
                 ON CONFLICT (order_id) DO UPDATE SET payment_failures = order_stages.payment_failures + 1",
            )
            .bind(order_id)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }
}
