//! The upcaster: an event of an older version becomes its newest before any
//! decider or fold sees it, so every stream reader handles one shape per
//! event type. It runs where events are read: the event store's loader
//! ([`crate::es::store::load`]) and each service's wire mapping (`wire.rs`,
//! through [`order_shipped`]). The consumers' decoder hands an event on as
//! it came, so a fact is stored as it came and the stored and published
//! bytes stay as they were written: a service rolled back to a release that
//! reads only version 1 still reads its streams.
//!
//! `OrderShipped` v1 (one carrier and tracking number per order) is
//! `omnisaga.v2.OrderShipped` with one parcel. The way back,
//! [`order_shipped_v1`], is for a producer that still publishes v1 during a
//! rolling upgrade: its first parcel, which is all a v1 reader can hold.

use omnisaga_proto::{
    v1::{self, envelope::Payload, Envelope},
    v2,
};

/// `envelope` with its payload at the newest version this build knows (and
/// its `schema_version` saying so); one already there is left as it is.
pub fn envelope(mut envelope: Envelope) -> Envelope {
    if let Some(Payload::OrderShipped(v1)) = &envelope.payload {
        envelope.payload = Some(Payload::OrderShippedV2(order_shipped(v1)));
        envelope.schema_version = 2;
    }
    envelope
}

/// `OrderShipped` v1 as v2: one parcel.
pub fn order_shipped(v1: &v1::OrderShipped) -> v2::OrderShipped {
    v2::OrderShipped {
        order_id: v1.order_id.clone(),
        parcels: vec![v2::Parcel {
            carrier: v1.carrier.clone(),
            tracking_number: v1.tracking_number.clone(),
        }],
    }
}

/// `OrderShipped` v2 as a v1 reader can hold it: its first parcel.
pub fn order_shipped_v1(v2: &v2::OrderShipped) -> v1::OrderShipped {
    let first = v2.parcels.first().cloned().unwrap_or_default();
    v1::OrderShipped {
        order_id: v2.order_id.clone(),
        carrier: first.carrier,
        tracking_number: first.tracking_number,
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    fn shipped_v1() -> v1::OrderShipped {
        v1::OrderShipped {
            order_id: "0192f1c4-6e1e-7c3a-9d55-0a4b2b0c9e01".into(),
            carrier: "DHL".into(),
            tracking_number: "OSP1".into(),
        }
    }

    fn wrapped(payload: Payload) -> Envelope {
        Envelope {
            event_type: payload.event_type().into(),
            schema_version: 1,
            payload: Some(payload),
            ..Default::default()
        }
    }

    #[test]
    fn a_v1_order_shipped_reaches_its_reader_as_v2_with_one_parcel() {
        let read = envelope(wrapped(Payload::OrderShipped(shipped_v1())));
        assert_eq!(read.schema_version, 2);
        assert_eq!(read.event_type, "OrderShipped");
        let Some(Payload::OrderShippedV2(v2)) = read.payload else {
            panic!("not upcast: {read:?}")
        };
        assert_eq!(v2.order_id, shipped_v1().order_id);
        assert_eq!(
            v2.parcels,
            [v2::Parcel {
                carrier: "DHL".into(),
                tracking_number: "OSP1".into()
            }]
        );
    }

    #[test]
    fn the_newest_version_and_every_other_type_pass_unchanged() {
        let v2 = wrapped(Payload::OrderShippedV2(order_shipped(&shipped_v1())));
        let v2 = Envelope {
            schema_version: 2,
            ..v2
        };
        assert_eq!(envelope(v2.clone()), v2);
        for payload in omnisaga_proto::every_payload() {
            if matches!(payload, Payload::OrderShipped(_)) {
                continue;
            }
            let env = Envelope {
                schema_version: payload.schema_version(),
                ..wrapped(payload)
            };
            assert_eq!(envelope(env.clone()), env);
        }
    }

    #[test]
    fn down_and_up_again_is_the_same_single_parcel_shipment() {
        let v2 = order_shipped(&shipped_v1());
        assert_eq!(order_shipped_v1(&v2), shipped_v1());
        assert_eq!(order_shipped(&order_shipped_v1(&v2)), v2);
    }

    fn with_event_id(mut env: Envelope) -> Envelope {
        env.event_id = uuid::Uuid::now_v7().to_string();
        env.order_id = shipped_v1().order_id;
        env
    }

    #[test]
    fn the_consumers_decoder_hands_a_v1_event_on_as_it_came_and_a_read_upcasts_it() {
        let v1 = with_event_id(wrapped(Payload::OrderShipped(shipped_v1())));
        let read = crate::messaging::consumer::decode(&v1.encode_to_vec()).unwrap();
        assert_eq!(read, v1, "a fact is stored as it came");
        let folded = envelope(read);
        assert_eq!(folded.schema_version, 2);
        assert_eq!(
            folded.payload,
            Some(Payload::OrderShippedV2(order_shipped(&shipped_v1())))
        );
    }

    #[test]
    fn a_newer_version_of_a_known_type_is_a_newer_producers_and_an_unversioned_gap_is_broken() {
        // Version 3 of OrderShipped, in a payload field this build lacks (99).
        let mut v3 = with_event_id(wrapped(Payload::OrderShipped(shipped_v1())));
        v3.payload = None;
        v3.schema_version = 3;
        let mut bytes = v3.encode_to_vec();
        bytes.extend_from_slice(&[0x9A, 0x06, 2, 0x0A, 0x00]);
        let read = crate::messaging::consumer::decode(&bytes).unwrap();
        assert_eq!((read.payload, read.schema_version), (None, 3));
        assert!(crate::messaging::consumer::is_newer(&v3));
        // Version 2, which this build reads, without its payload: broken.
        v3.schema_version = 2;
        let err = crate::messaging::consumer::decode(&v3.encode_to_vec()).unwrap_err();
        assert!(
            err.contains("OrderShipped event without its payload (schema version 2)"),
            "{err}"
        );
    }

    #[test]
    fn the_bytes_of_a_v1_event_decode_and_upcast_as_the_stored_ones_do() {
        let bytes = wrapped(Payload::OrderShipped(shipped_v1())).encode_to_vec();
        let read = envelope(Envelope::decode(bytes.as_slice()).unwrap());
        assert!(matches!(read.payload, Some(Payload::OrderShippedV2(_))));
    }
}
