//! Wire compatibility inside omnisaga.v1: an old reader reads new events (it
//! skips fields and event types it does not know) and a new reader reads old
//! events (fields added later take their defaults).

use omnisaga_proto::v1::{envelope::Payload, Customer, Envelope, LineItem, Money, OrderPlaced};
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
