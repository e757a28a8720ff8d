//! Generated protobuf types of package `omnisaga.v1` (the canonical model and
//! the saga's events) and the encoded descriptor set. Generated code only.

/// `omnisaga.v1`: Money, LineItem, Address, the Envelope and every event.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/omnisaga.v1.rs"));
}

/// `omnisaga.v2`: the second version of events whose v1 could not grow
/// (`OrderShipped`), carried in the same `v1::Envelope`.
pub mod v2 {
    include!(concat!(env!("OUT_DIR"), "/omnisaga.v2.rs"));
}

/// Serialized `FileDescriptorSet` of every `omnisaga.v1` and `omnisaga.v2` file, for decoders.
pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/omnisaga_v1.bin"));

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
            P::OrderShippedV2(_) => "OrderShipped",
            P::NotificationSent(_) => "NotificationSent",
            P::OrderCancelled(_) => "OrderCancelled",
            P::StockReleased(_) => "StockReleased",
            P::StockUnavailable(_) => "StockUnavailable",
            P::PaymentVoided(_) => "PaymentVoided",
            P::PaymentRetryRequested(_) => "PaymentRetryRequested",
            P::PaymentDelayed(_) => "PaymentDelayed",
            P::OrderEscalated(_) => "OrderEscalated",
            P::GoodsReceived(_) => "GoodsReceived",
        }
    }

    /// The envelope's `schema_version` for this payload: 2 for an
    /// `omnisaga.v2` message, 1 for the rest.
    pub fn schema_version(&self) -> u32 {
        if matches!(self, v1::envelope::Payload::OrderShippedV2(_)) {
            2
        } else {
            1
        }
    }
}

/// The newest schema version of `event_type` this build reads, `None` for a
/// type it does not know. An envelope of a known type with a newer version
/// and no payload this build can decode is a newer producer's, not broken.
pub fn newest_schema_version(event_type: &str) -> Option<u32> {
    every_payload()
        .iter()
        .filter(|p| p.event_type() == event_type)
        .map(|p| p.schema_version())
        .max()
}

/// One payload of every type and version the `Envelope` carries, each with default
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
        P::OrderShippedV2(Default::default()),
        P::NotificationSent(Default::default()),
        P::OrderCancelled(Default::default()),
        P::StockReleased(Default::default()),
        P::StockUnavailable(Default::default()),
        P::PaymentVoided(Default::default()),
        P::PaymentRetryRequested(Default::default()),
        P::PaymentDelayed(Default::default()),
        P::OrderEscalated(Default::default()),
        P::GoodsReceived(Default::default()),
    ]
}
