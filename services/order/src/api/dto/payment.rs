//! Where an order's payment stands, as the app shows it: how many attempts,
//! the last decline and whether another card may help, and until when a
//! retry is taken.

use chrono::{DateTime, Utc};
use omnisaga_proto::v1::envelope::Payload;
use omnisaga_runtime::{event, store::StoredEvent};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{self, Status};

/// The order's payment.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api) struct PaymentState {
    /// Attempts made or asked for so far (the first is made when the order
    /// is placed, each retry adds one).
    pub attempts: u32,
    /// The latest declined attempt, unless one was authorised after it.
    pub last_failure: Option<PaymentFailure>,
    /// While the order awaits payment: until when a retry is taken
    /// (`POST /v1/orders/{id}/payment-retry`); then the order is cancelled
    /// (`payment_deadline_passed`). A retry asked for in time is answered
    /// first. Null otherwise.
    pub retry_by: Option<DateTime<Utc>>,
    /// A retry was asked for and payment has not answered it yet.
    pub retry_pending: bool,
}

/// A declined payment attempt.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::api) struct PaymentFailure {
    pub at: DateTime<Utc>,
    pub attempt: u32,
    /// The provider's reason (`card_declined`, `insufficient_funds`, ...).
    pub reason: String,
    /// Whether a retry with another payment method may succeed: offer
    /// "try another card" only then.
    pub retryable: bool,
}

impl PaymentState {
    /// From the order folded from `events`, and the payment deadline its
    /// view holds.
    pub fn of(order: &domain::Order, events: &[StoredEvent], deadline: Option<DateTime<Utc>>) -> Self {
        let last_failure = events
            .iter()
            .rev()
            .find_map(|e| match &e.envelope.payload {
                Some(Payload::PaymentFailed(f)) => Some(Some(PaymentFailure {
                    at: event::occurred_at(&e.envelope),
                    attempt: f.attempt,
                    reason: f.reason.clone(),
                    retryable: f.retryable,
                })),
                Some(Payload::PaymentAuthorized(_)) => Some(None),
                _ => None,
            })
            .flatten();
        Self {
            attempts: order.attempts,
            last_failure,
            retry_by: deadline.filter(|_| order.status == Status::AwaitingPayment),
            retry_pending: order.retry_pending,
        }
    }
}
