//! Wire compatibility inside omnisaga.v1: an old reader reads new events (it
//! skips fields and event types it does not know) and a new reader reads old
//! events (fields added later take their defaults). And across a version:
//! `OrderShipped` v1 and v2 in the same `Envelope`, both ways (the runtime's
//! upcaster, `crates/runtime/src/es/upcast.rs`, turns v1 into v2 after this).

use omnisaga_proto::v1::{envelope::Payload, Customer, Envelope, LineItem, Money, OrderPlaced, OrderShipped};
use prost::Message;

/// `OrderPlaced` as a first release might have had it: fields 1 to 6 only.
#[derive(Clone, PartialEq, Message)]
struct OrderPlacedV1Early {
    #[prost(string, tag = "1")]
    order_id: String,
    #[prost(string, tag = "2")]
    order_number: String,
    #[prost(message, optional, tag = "3")]
    customer: Option<Customer>,
    #[prost(int32, tag = "4")]
    channel: i32,
    #[prost(message, repeated, tag = "5")]
    items: Vec<LineItem>,
    #[prost(message, optional, tag = "6")]
    total: Option<Money>,
}

/// A future envelope with an event type this build does not know (tag 99).
#[derive(Clone, PartialEq, Message)]
struct FutureEnvelope {
    #[prost(string, tag = "1")]
    event_id: String,
    #[prost(string, tag = "2")]
    event_type: String,
    #[prost(string, tag = "3")]
    order_id: String,
    #[prost(bytes = "vec", tag = "99")]
    order_teleported: Vec<u8>,
}

fn placed() -> OrderPlaced {
    OrderPlaced {
        order_id: "01a20d7d-1508-77c2-b4f0-33e1730bd575".into(),
        order_number: "OS-100001".into(),
        customer: Some(Customer {
            customer_id: "c-1".into(),
        }),
        channel: 1,
        items: vec![LineItem {
            sku: "SKU-MUG".into(),
            name: "Mug".into(),
            quantity: 2,
            unit_price: None,
        }],
        total: Some(Money {
            minor_units: 2500,
            currency: "EUR".into(),
        }),
        shipping_address: None,
        payment_method_token: "tok_visa".into(),
        estimated_delivery: "2026-11-27".into(),
    }
}

#[test]
fn an_old_reader_reads_a_new_event_and_skips_what_it_does_not_know() {
    let new = placed();
    let old = OrderPlacedV1Early::decode(new.encode_to_vec().as_slice()).unwrap();
    assert_eq!(old.order_id, new.order_id);
    assert_eq!(old.items, new.items);
    assert_eq!(old.total, new.total);
}

#[test]
fn a_new_reader_reads_an_old_event_with_defaults_for_later_fields() {
    let old = OrderPlacedV1Early {
        order_id: "o-1".into(),
        order_number: "OS-1".into(),
        customer: None,
        channel: 2,
        items: vec![],
        total: Some(Money {
            minor_units: 1,
            currency: "EUR".into(),
        }),
    };
    let new = OrderPlaced::decode(old.encode_to_vec().as_slice()).unwrap();
    assert_eq!((new.order_id.as_str(), new.channel), ("o-1", 2));
    assert_eq!(new.estimated_delivery, "");
    assert_eq!(new.payment_method_token, "");
}

#[test]
fn an_unknown_event_type_decodes_with_no_payload_so_consumers_can_set_it_aside() {
    let future = FutureEnvelope {
        event_id: "e".into(),
        event_type: "OrderTeleported".into(),
        order_id: "o".into(),
        order_teleported: vec![1, 2, 3],
    };
    let env = Envelope::decode(future.encode_to_vec().as_slice()).unwrap();
    assert_eq!(env.event_type, "OrderTeleported");
    assert!(env.payload.is_none());
    let known = Envelope {
        payload: Some(Payload::OrderPlaced(placed())),
        ..Default::default()
    };
    assert!(Envelope::decode(known.encode_to_vec().as_slice())
        .unwrap()
        .payload
        .is_some());
}

/// The `Envelope` as a build that reads `OrderShipped` version 1 only has
/// it: the header fields and the version-1 payload field (26).
#[derive(Clone, PartialEq, Message)]
struct EnvelopeBeforeV2 {
    #[prost(string, tag = "1")]
    event_id: String,
    #[prost(string, tag = "2")]
    event_type: String,
    #[prost(string, tag = "3")]
    order_id: String,
    #[prost(uint32, tag = "7")]
    schema_version: u32,
    #[prost(message, optional, tag = "26")]
    order_shipped: Option<OrderShipped>,
}

fn shipped_v1() -> OrderShipped {
    OrderShipped {
        order_id: "o-1".into(),
        carrier: "omnisaga-post".into(),
        tracking_number: "OSP1".into(),
    }
}

#[test]
fn a_version_1_reader_decodes_a_version_2_event_and_sees_a_version_newer_than_its_own() {
    let v2 = omnisaga_proto::v2::OrderShipped {
        order_id: "o-1".into(),
        parcels: vec![
            omnisaga_proto::v2::Parcel {
                carrier: "omnisaga-post".into(),
                tracking_number: "OSP1-1".into(),
            },
            omnisaga_proto::v2::Parcel {
                carrier: "omnisaga-post".into(),
                tracking_number: "OSP1-2".into(),
            },
        ],
    };
    let payload = Payload::OrderShippedV2(v2);
    let new = Envelope {
        event_id: "e".into(),
        event_type: payload.event_type().into(),
        order_id: "o-1".into(),
        schema_version: payload.schema_version(),
        payload: Some(payload),
        ..Default::default()
    };
    let old = EnvelopeBeforeV2::decode(new.encode_to_vec().as_slice()).unwrap();
    assert_eq!(old.event_type, "OrderShipped");
    assert_eq!(old.order_shipped, None, "no version-1 payload to misread");
    // What the tolerant reader goes by: a type it knows, at a version above
    // the one it reads (1), without a payload it can decode.
    assert_eq!(old.schema_version, 2);
}

#[test]
fn a_version_2_reader_decodes_a_version_1_event_whole() {
    let old = EnvelopeBeforeV2 {
        event_id: "e".into(),
        event_type: "OrderShipped".into(),
        order_id: "o-1".into(),
        schema_version: 1,
        order_shipped: Some(shipped_v1()),
    };
    let new = Envelope::decode(old.encode_to_vec().as_slice()).unwrap();
    assert_eq!(new.payload, Some(Payload::OrderShipped(shipped_v1())));
    assert_eq!(new.schema_version, 1);
    // It knows both versions and reads version 2 at most.
    assert_eq!(omnisaga_proto::newest_schema_version("OrderShipped"), Some(2));
    assert_eq!(omnisaga_proto::newest_schema_version("OrderPlaced"), Some(1));
    assert_eq!(omnisaga_proto::newest_schema_version("OrderTeleported"), None);
}
