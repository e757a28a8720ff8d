//! The event-sourcing core: events and their trace context, upcasting of
//! older event versions, the event store, the aggregate executor over it,
//! the outbox rows written in the same transaction, and the read models
//! kept from the events ([`projection`]) with their rebuild. It knows nothing of
//! Kafka or HTTP; it stands on [`crate::base`] and on the wakes of
//! [`crate::work`] (a commit that wrote outbox rows wakes the relay).

pub mod aggregate;
pub mod event;
pub mod outbox;
pub mod projection;
pub mod rebuild;
pub mod store;
pub mod upcast;
