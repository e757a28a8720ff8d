//! What analytics makes of an event, decided without I/O: which stage it
//! marks and how an order's row keeps it, which stage durations it lets time
//! and how long each took, and the summary's arithmetic.

use chrono::{DateTime, Utc};
use omnisaga_proto::v1::{envelope::Payload, Channel};

/// A saga stage event: one `dim_stage` row and one `stage_events` row per
/// event received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Placed,
    Paid,
    ReadyForShipment,
    Shipped,
    PaymentDeclined,
    PaymentVoided,
    Cancelled,
}

/// How an order's `fact_orders` row keeps a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// The first time the order reached it, in this column.
    FirstTime(&'static str),
    /// How many times, in this column.
    Count(&'static str),
}

impl Stage {
    /// Every stage, in `dim_stage`'s order.
    pub const ALL: [Stage; 7] = [
        Stage::Placed,
        Stage::Paid,
        Stage::ReadyForShipment,
        Stage::Shipped,
        Stage::PaymentDeclined,
        Stage::PaymentVoided,
        Stage::Cancelled,
    ];

    /// The stage `event` marks, if any.
    pub fn of(event: &Payload) -> Option<Stage> {
        Some(match event {
            Payload::OrderPlaced(_) => Stage::Placed,
            Payload::PaymentAuthorized(_) => Stage::Paid,
            Payload::OrderReadyForShipment(_) => Stage::ReadyForShipment,
            Payload::OrderShipped(_) | Payload::OrderShippedV2(_) => Stage::Shipped,
            Payload::PaymentFailed(_) => Stage::PaymentDeclined,
            Payload::PaymentVoided(_) => Stage::PaymentVoided,
            Payload::OrderCancelled(_) => Stage::Cancelled,
            Payload::StockReserved(_)
            | Payload::PickTaskCreated(_)
            | Payload::NotificationSent(_)
            | Payload::StockReleased(_)
            | Payload::StockUnavailable(_)
            | Payload::PaymentRetryRequested(_)
            | Payload::PaymentDelayed(_)
            | Payload::OrderEscalated(_)
            | Payload::GoodsReceived(_) => return None,
        })
    }

    /// Its key in `dim_stage`.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Placed => "placed",
            Stage::Paid => "paid",
            Stage::ReadyForShipment => "ready_for_shipment",
            Stage::Shipped => "shipped",
            Stage::PaymentDeclined => "payment_declined",
            Stage::PaymentVoided => "payment_voided",
            Stage::Cancelled => "cancelled",
        }
    }

    /// How `fact_orders` keeps it.
    pub fn kept(self) -> Kept {
        match self {
            Stage::Placed => Kept::FirstTime("placed_at"),
            Stage::Paid => Kept::FirstTime("paid_at"),
            Stage::ReadyForShipment => Kept::FirstTime("ready_at"),
            Stage::Shipped => Kept::FirstTime("shipped_at"),
            Stage::Cancelled => Kept::FirstTime("cancelled_at"),
            Stage::PaymentDeclined => Kept::Count("payment_failures"),
            Stage::PaymentVoided => Kept::Count("payment_voids"),
        }
    }

    /// Whether reaching it lets a stage duration be timed: a later stage of
    /// the happy path times itself, the placement times the later stages
    /// that came first.
    pub fn is_timed(self) -> bool {
        matches!(
            self,
            Stage::Placed | Stage::Paid | Stage::ReadyForShipment | Stage::Shipped
        )
    }
}

/// The sales channel as analytics names it (`dim_channel`, and the order
/// API's names).
pub fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Mobile => "mobile",
        Channel::Web => "web",
        Channel::Pos => "pos",
        Channel::Marketplace => "marketplace",
        Channel::Unspecified => "unspecified",
    }
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

/// The stage durations a batch of an order's events completed, with
/// `stages` as they are after it and `set` saying which stages' times one of
/// its events set: each duration whose end or whose placement it set, so
/// each is timed once, by whichever of its two events came later, as
/// [`durations`] does for the events one by one.
pub fn completed(stages: &Stages, set: impl Fn(Stage) -> bool) -> Vec<(&'static str, f64)> {
    let placed = set(Stage::Placed);
    [Stage::Paid, Stage::ReadyForShipment, Stage::Shipped]
        .into_iter()
        .filter(|stage| placed || set(*stage))
        .flat_map(|stage| durations(stage, stages))
        .collect()
}

/// The seconds from `placed` to `reached`, to the microsecond the database
/// keeps; never negative, though the clocks of different services may put a
/// later stage before the placement.
pub fn seconds_between(placed: DateTime<Utc>, reached: DateTime<Utc>) -> f64 {
    let micros = (reached - placed).num_microseconds().unwrap_or(i64::MAX);
    (micros as f64 / 1e6).max(0.0)
}

/// The definition shown with every payment success share.
pub const SUCCESS_SHARE_DEFINITION: &str =
    "Of the orders that had a payment answer, the share with an authorised \
     payment; an order declined and then paid counts as a success. Voided authorisations (the order was \
     cancelled after payment) are counted apart and still count as successes.";

/// The payment success share: of the orders that had a payment answer, the
/// share with an authorisation (whatever declines came before it); none
/// before the first answer.
pub fn success_share(authorized: i64, declined: i64) -> Option<f64> {
    let answered = authorized + declined;
    (answered != 0).then(|| authorized as f64 / answered as f64)
}

/// A duration in milliseconds as the summary shows it: to a tenth.
pub fn to_tenths(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests;
