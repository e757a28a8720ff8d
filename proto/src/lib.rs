//! Generated protobuf types of package `omnisaga.v1` (the canonical model and
//! the saga's events) and the encoded descriptor set. Generated code only.

/// `omnisaga.v1`: Money, LineItem, Address, the Envelope and every event.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/omnisaga.v1.rs"));
}

/// Serialized `FileDescriptorSet` of every `omnisaga.v1` file, for decoders.
pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/omnisaga_v1.bin"));

/// Schema version written into every envelope of this crate's messages.
pub const SCHEMA_VERSION: u32 = 1;

impl v1::envelope::Payload {
    /// The event type name carried in the envelope and the Kafka header.
    pub fn event_type(&self) -> &'static str {
        use v1::envelope::Payload as P;
        match self {
            P::OrderPlaced(_) => "OrderPlaced",
            P::PaymentAuthorized(_) => "PaymentAuthorized",
            P::PaymentFailed(_) => "PaymentFailed",
            P::StockReserved(_) => "StockReserved",
            P::PickTaskCreated(_) => "PickTaskCreated",
            P::OrderReadyForShipment(_) => "OrderReadyForShipment",
            P::OrderShipped(_) => "OrderShipped",
            P::NotificationSent(_) => "NotificationSent",
            P::OrderCancelled(_) => "OrderCancelled",
            P::StockReleased(_) => "StockReleased",
            P::StockUnavailable(_) => "StockUnavailable",
            P::PaymentVoided(_) => "PaymentVoided",
            P::PaymentRetryRequested(_) => "PaymentRetryRequested",
            P::PaymentDelayed(_) => "PaymentDelayed",
        }
    }
}

/// One payload of every type the `Envelope` carries, each with default
/// fields: for tests that ask each service what it does with every type.
pub fn every_payload() -> Vec<v1::envelope::Payload> {
    use v1::envelope::Payload as P;
    vec![
        P::OrderPlaced(Default::default()),
        P::PaymentAuthorized(Default::default()),
        P::PaymentFailed(Default::default()),
        P::StockReserved(Default::default()),
        P::PickTaskCreated(Default::default()),
        P::OrderReadyForShipment(Default::default()),
        P::OrderShipped(Default::default()),
        P::NotificationSent(Default::default()),
        P::OrderCancelled(Default::default()),
        P::StockReleased(Default::default()),
        P::StockUnavailable(Default::default()),
        P::PaymentVoided(Default::default()),
        P::PaymentRetryRequested(Default::default()),
        P::PaymentDelayed(Default::default()),
    ]
}
