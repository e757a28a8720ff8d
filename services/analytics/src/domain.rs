//! What analytics makes of an event, decided without I/O: which stage it
//! marks, which stage durations it lets time and how long each took, and the
//! summary's arithmetic.

use chrono::{DateTime, Utc};
use omnisaga_proto::v1::envelope::Payload;

/// A saga stage an order reaches; each is one `order_stages` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Placed,
    Paid,
    ReadyForShipment,
    Shipped,
    Cancelled,
}

impl Stage {
    /// The `order_stages` column that holds when the order reached it.
    pub fn column(self) -> &'static str {
        match self {
            Stage::Placed => "placed_at",
            Stage::Paid => "paid_at",
            Stage::ReadyForShipment => "ready_at",
            Stage::Shipped => "shipped_at",
            Stage::Cancelled => "cancelled_at",
        }
    }

    /// Whether reaching it lets a stage duration be timed: a later stage
    /// times itself, the placement times the later stages that came first.
    pub fn is_timed(self) -> bool {
        self != Stage::Cancelled
    }
}

/// What an event counts for in an order's `order_stages` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// The order reached a stage.
    Reached(Stage),
    /// A payment attempt failed.
    PaymentFailure,
}

/// What `event` counts for, if anything.
pub fn mark_of(event: &Payload) -> Option<Mark> {
    let stage = match event {
        Payload::OrderPlaced(_) => Stage::Placed,
        Payload::PaymentAuthorized(_) => Stage::Paid,
        Payload::OrderReadyForShipment(_) => Stage::ReadyForShipment,
        Payload::OrderShipped(_) => Stage::Shipped,
        Payload::OrderCancelled(_) => Stage::Cancelled,
        Payload::PaymentFailed(_) => return Some(Mark::PaymentFailure),
        _ => return None,
    };
    Some(Mark::Reached(stage))
}

/// When an order reached each timed stage, as far as it is known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stages {
    pub placed: Option<DateTime<Utc>>,
    pub paid: Option<DateTime<Utc>>,
    pub ready: Option<DateTime<Utc>>,
    pub shipped: Option<DateTime<Utc>>,
}

/// The stage durations (the `stage` label of the histogram and seconds)
/// that reaching `reached` completes in `stages`: the one from placement to
/// `reached`, or, when `reached` is the placement, those to the later stages
/// that arrived before it (they come from other topics).
pub fn durations(reached: Stage, stages: &Stages) -> Vec<(&'static str, f64)> {
    let later = [
        ("placed_to_paid", Stage::Paid, stages.paid),
        (
            "placed_to_ready_for_shipment",
            Stage::ReadyForShipment,
            stages.ready,
        ),
        ("placed_to_shipped", Stage::Shipped, stages.shipped),
    ];
    let Some(placed) = stages.placed else {
        return Vec::new();
    };
    later
        .into_iter()
        .filter(|(_, stage, _)| reached == Stage::Placed || reached == *stage)
        .filter_map(|(label, _, at)| at.map(|at| (label, seconds_between(placed, at))))
        .collect()
}

/// The seconds from `placed` to `reached`, to the microsecond the database
/// keeps; never negative, though the clocks of different services may put a
/// later stage before the placement.
pub fn seconds_between(placed: DateTime<Utc>, reached: DateTime<Utc>) -> f64 {
    let micros = (reached - placed).num_microseconds().unwrap_or(i64::MAX);
    (micros as f64 / 1e6).max(0.0)
}

/// The share of payment attempts that were authorised, none before the first.
pub fn success_share(authorized: i64, failed: i64) -> Option<f64> {
    let attempts = authorized + failed;
    (attempts != 0).then(|| authorized as f64 / attempts as f64)
}

/// A duration in milliseconds as the summary shows it: to a tenth.
pub fn to_tenths(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests;
