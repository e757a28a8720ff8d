//! What the customer is told, decided without I/O: which event gets which
//! message, which messages a cancellation makes stale, who receives them and
//! the text each one says; what becomes of a message the channel refuses
//! ([`RetryPolicy`]); and an order's messages as the aggregate the
//! dispatcher records them in (`crate::wire` maps it to the wire).

use std::time::Duration;

use omnisaga_proto::v1::{envelope::Payload, NotificationSent, OrderPlaced};
use omnisaga_runtime::aggregate::Decider;

/// What an order's notification stream (`notifications-<order id>`) holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The channel accepted a message for the customer.
    NotificationSent(NotificationSent),
}

/// What the dispatcher asks of an order's notification stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Record a message the channel accepted. The queue sends each message
    /// once, so there is nothing to refuse.
    RecordSent(NotificationSent),
}

/// An order's messages: how many were sent. The dispatcher decides over the
/// stream's version only (it reads it in the short transaction recording a
/// message), so no rule may depend on more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Messages {
    pub sent: u32,
}

/// The notification aggregate of one order, for the executor.
pub struct MessagesAggregate;

impl Decider for MessagesAggregate {
    type State = Messages;
    type Command = Command;
    type Event = Event;
    type Error = std::convert::Infallible;
    fn decide(_: &Messages, cmd: Command) -> Result<Vec<Event>, std::convert::Infallible> {
        match cmd {
            Command::RecordSent(sent) => Ok(vec![Event::NotificationSent(sent)]),
        }
    }
    fn evolve(state: Messages, event: &Event) -> Messages {
        match event {
            Event::NotificationSent(_) => Messages { sent: state.sent + 1 },
        }
    }
}

/// The customer id an order's messages go to: the one `placed` names, or
/// `guest` for an order placed without one.
pub fn recipient_of(placed: &OrderPlaced) -> &str {
    placed
        .customer
        .as_ref()
        .map(|c| c.customer_id.as_str())
        .unwrap_or("guest")
}

/// The messages a customer gets, one per step of the saga they are told of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    OrderCreated,
    PaymentConfirmed,
    PaymentFailed,
    ReadyForShipment,
    Shipped,
    OrderCancelled,
    PaymentDelayed,
    /// The order waited in a stage past that stage's deadline (`OrderEscalated`).
    OrderDelayed,
}

impl Template {
    /// The name the queue, the API and `NotificationSent` carry.
    pub fn name(self) -> &'static str {
        match self {
            Template::OrderCreated => "order_created",
            Template::PaymentConfirmed => "payment_confirmed",
            Template::PaymentFailed => "payment_failed",
            Template::ReadyForShipment => "ready_for_shipment",
            Template::Shipped => "shipped",
            Template::OrderCancelled => "order_cancelled",
            Template::PaymentDelayed => "payment_delayed",
            Template::OrderDelayed => "order_delayed",
        }
    }

    /// The messages that make this one stale: once one of them is queued
    /// or sent for the order, this one is not queued, and, queued already,
    /// not sent (it is left `STALE`). News that the order was paid or packed
    /// would mislead once it is cancelled (the authorisation is voided, the
    /// parcel unpacked); "shipped" is still sent: a parcel that left before
    /// the cancellation arrived does ship. "Payment delayed" would mislead
    /// once the payment is confirmed or the order went past it; a backlog
    /// read across topics can bring it after them.
    pub fn superseded_by(self) -> &'static [Template] {
        match self {
            Template::PaymentConfirmed | Template::ReadyForShipment => &[Template::OrderCancelled],
            Template::PaymentDelayed => &[
                Template::PaymentConfirmed,
                Template::ReadyForShipment,
                Template::Shipped,
                Template::OrderCancelled,
            ],
            // Told once per stage an order is escalated in; once it shipped
            // or was cancelled, a delay still queued would mislead.
            Template::OrderDelayed => &[Template::Shipped, Template::OrderCancelled],
            Template::OrderCreated
            | Template::PaymentFailed
            | Template::Shipped
            | Template::OrderCancelled => &[],
        }
    }

    /// The message that must be queued before this one, where the saga
    /// cannot reach this step without that one's: packed follows paid,
    /// shipped follows packed. Reading a backlog, the consumer takes the
    /// topics in fetch order, so a later step can be queued first; the
    /// dispatcher holds it until its predecessor is queued, for at most
    /// [`PREDECESSOR_WAIT`] (a predecessor parked as a dead letter, or
    /// from before this service read the topics, never comes).
    pub fn follows(self) -> Option<Template> {
        match self {
            Template::ReadyForShipment => Some(Template::PaymentConfirmed),
            Template::Shipped => Some(Template::ReadyForShipment),
            Template::OrderCreated
            | Template::PaymentConfirmed
            | Template::PaymentFailed
            | Template::OrderCancelled
            | Template::PaymentDelayed
            | Template::OrderDelayed => None,
        }
    }

    /// The message text for order `number`.
    pub fn render(self, number: &str) -> String {
        match self {
            Template::OrderCreated => format!("Order created: {number} is confirmed. We'll keep you posted."),
            Template::PaymentConfirmed => format!("Payment confirmed for order {number}."),
            Template::PaymentFailed => {
                format!("Payment failed: please retry. Order {number} is waiting for payment.")
            }
            Template::ReadyForShipment => format!("Ready for shipment: order {number} is packed."),
            Template::Shipped => format!("Shipped: order {number} is on its way."),
            Template::OrderCancelled => format!("Order {number} was cancelled."),
            Template::PaymentDelayed => format!(
                "Payment is delayed: order {number} is saved and will go ahead as soon as payment answers."
            ),
            Template::OrderDelayed => format!(
                "Order {number} is taking longer than usual. We are looking into it and will keep you posted."
            ),
        }
    }
}

/// The template a customer message uses for `event`, if the customer is told about it.
pub fn template_for(event: &Payload) -> Option<Template> {
    match event {
        Payload::OrderPlaced(_) => Some(Template::OrderCreated),
        Payload::PaymentAuthorized(_) => Some(Template::PaymentConfirmed),
        Payload::PaymentFailed(_) => Some(Template::PaymentFailed),
        Payload::OrderReadyForShipment(_) => Some(Template::ReadyForShipment),
        Payload::OrderShipped(_) | Payload::OrderShippedV2(_) => Some(Template::Shipped),
        Payload::OrderCancelled(_) => Some(Template::OrderCancelled),
        Payload::PaymentDelayed(_) => Some(Template::PaymentDelayed),
        Payload::OrderEscalated(_) => Some(Template::OrderDelayed),
        _ => None,
    }
}

/// The text of a queued message whose template is `name`. A name this
/// version does not know (queued by a newer one, then rolled back) still
/// gets a message that says what happened to which order.
pub fn render(name: &str, number: &str) -> String {
    match ALL.iter().find(|t| t.name() == name) {
        Some(template) => template.render(number),
        None => format!("Update on order {number}: {name}."),
    }
}

/// Every template.
/// Longest a message waits for the one it follows ([`Template::follows`]).
pub const PREDECESSOR_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

pub const ALL: [Template; 8] = [
    Template::OrderCreated,
    Template::PaymentConfirmed,
    Template::PaymentFailed,
    Template::ReadyForShipment,
    Template::Shipped,
    Template::OrderCancelled,
    Template::PaymentDelayed,
    Template::OrderDelayed,
];

/// What the dispatcher does with a message the channel refuses: try it
/// again after a wait that doubles with each refusal (from `base` up to
/// `cap`, each wait drawn between half and all of that), and give it up
/// (dead) at the `max_attempts`-th refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Sends tried before a message is dead (at least 1).
    pub max_attempts: u32,
    /// The wait after the first refusal, before jitter.
    pub base: Duration,
    /// The longest wait, before jitter.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    /// 8 sends over about 5 to 10 minutes: 5 s, 10 s, ... 320 s between them.
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base: Duration::from_secs(5),
            cap: Duration::from_secs(600),
        }
    }
}

/// What becomes of a refused message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterRefusal {
    /// Send it again once this has passed.
    RetryIn(Duration),
    /// Give it up: it stays, dead, until an operator retries it.
    Dead,
}

impl RetryPolicy {
    /// What becomes of a message refused at its `attempt`-th send (1 for the
    /// first); `jitter`, random in `[0, 1)`, places the wait between half and
    /// all of the doubled delay. The lower half is cut off so that one
    /// message's waits never shrink while the cap is not reached, the upper
    /// half spreads the retries of messages refused together.
    pub fn after_refusal(&self, attempt: u32, jitter: f64) -> AfterRefusal {
        if attempt >= self.max_attempts {
            return AfterRefusal::Dead;
        }
        let doublings = attempt.saturating_sub(1).min(31);
        let delay = self.base.saturating_mul(1 << doublings).min(self.cap);
        AfterRefusal::RetryIn(delay.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnisaga_proto::v1::{Customer, StockReserved};

    #[test]
    fn customers_hear_about_steps_not_internal_events() {
        assert_eq!(
            template_for(&Payload::OrderPlaced(OrderPlaced::default())),
            Some(Template::OrderCreated)
        );
        assert_eq!(
            template_for(&Payload::StockReserved(StockReserved::default())),
            None
        );
        // An order escalated at a stage's deadline: the customer is told it is delayed.
        assert_eq!(
            template_for(&Payload::OrderEscalated(Default::default())),
            Some(Template::OrderDelayed)
        );
    }

    #[test]
    fn after_a_cancellation_paid_and_packed_news_is_stale_but_shipped_is_not() {
        let stale: Vec<_> = ALL
            .into_iter()
            .filter(|t| t.superseded_by().contains(&Template::OrderCancelled))
            .collect();
        assert_eq!(
            stale,
            [
                Template::PaymentConfirmed,
                Template::ReadyForShipment,
                Template::PaymentDelayed,
                Template::OrderDelayed
            ]
        );
    }

    #[test]
    fn payment_delayed_news_is_stale_once_the_payment_is_confirmed_or_the_order_went_past_it() {
        for later in [
            Template::PaymentConfirmed,
            Template::ReadyForShipment,
            Template::Shipped,
        ] {
            assert!(
                Template::PaymentDelayed.superseded_by().contains(&later),
                "{later:?}"
            );
        }
        assert!(!Template::PaymentDelayed
            .superseded_by()
            .contains(&Template::PaymentFailed));
        // Nothing stale makes the news that replaces it stale in turn.
        for t in ALL {
            for by in t.superseded_by() {
                assert!(!by.superseded_by().contains(&t), "{t:?} and {by:?}");
            }
        }
    }

    #[test]
    fn packed_news_waits_for_paid_news_and_shipped_for_packed() {
        let chain: Vec<_> = ALL
            .into_iter()
            .filter_map(|t| t.follows().map(|before| (before, t)))
            .collect();
        assert_eq!(
            chain,
            [
                (Template::PaymentConfirmed, Template::ReadyForShipment),
                (Template::ReadyForShipment, Template::Shipped)
            ]
        );
    }

    #[test]
    fn messages_go_to_the_customer_who_placed_the_order_or_to_a_guest() {
        let placed = OrderPlaced {
            customer: Some(Customer {
                customer_id: "c-42".into(),
            }),
            ..Default::default()
        };
        assert_eq!(recipient_of(&placed), "c-42");
        assert_eq!(recipient_of(&OrderPlaced::default()), "guest");
    }

    #[test]
    fn every_template_names_the_order_and_an_unknown_one_still_says_something() {
        for template in ALL.map(Template::name).into_iter().chain(["renamed_later"]) {
            assert!(render(template, "OS-7").contains("OS-7"), "{template}");
        }
        let names: std::collections::HashSet<_> = ALL.map(Template::name).into_iter().collect();
        assert_eq!(names.len(), ALL.len(), "every template has its own name");
        assert_eq!(
            render("renamed_later", "OS-7"),
            "Update on order OS-7: renamed_later."
        );
    }

    #[test]
    fn the_failure_message_asks_for_a_retry() {
        assert!(render("payment_failed", "OS-1").starts_with("Payment failed: please retry"));
    }

    #[test]
    fn a_refused_message_waits_twice_as_long_each_time_up_to_the_cap_then_is_dead() {
        let policy = RetryPolicy {
            max_attempts: 6,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(500),
        };
        let waits = |jitter: f64| -> Vec<AfterRefusal> {
            (1..=6)
                .map(|attempt| policy.after_refusal(attempt, jitter))
                .collect()
        };
        let ms = |n| AfterRefusal::RetryIn(Duration::from_millis(n));
        assert_eq!(
            waits(1.0),
            [ms(100), ms(200), ms(400), ms(500), ms(500), AfterRefusal::Dead]
        );
        assert_eq!(
            waits(0.0),
            [ms(50), ms(100), ms(200), ms(250), ms(250), AfterRefusal::Dead]
        );
        // Below the cap, the shortest next wait is the longest last one.
        for attempt in 1..3 {
            let (AfterRefusal::RetryIn(longest), AfterRefusal::RetryIn(shortest)) = (
                policy.after_refusal(attempt, 1.0),
                policy.after_refusal(attempt + 1, 0.0),
            ) else {
                panic!("retried");
            };
            assert!(shortest >= longest, "attempt {attempt}");
        }
    }

    #[test]
    fn one_attempt_means_dead_at_the_first_refusal_and_huge_attempts_do_not_overflow() {
        let once = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
        assert_eq!(once.after_refusal(1, 0.5), AfterRefusal::Dead);
        let many = RetryPolicy {
            max_attempts: u32::MAX,
            ..RetryPolicy::default()
        };
        assert_eq!(
            many.after_refusal(1000, 1.0),
            AfterRefusal::RetryIn(RetryPolicy::default().cap)
        );
    }
}
