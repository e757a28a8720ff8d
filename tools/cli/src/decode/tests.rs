//! Real envelopes, encoded by the generated types, decode to the JSON the
//! CLI prints; garbage is kept with the reason.

use omnisaga_proto::v1::{envelope::Payload, Envelope, OrderPlaced};
use prost::Message;

use super::*;

fn placed() -> Vec<u8> {
    Envelope {
        event_id: "e-1".into(),
        event_type: "OrderPlaced".into(),
        order_id: "o-1".into(),
        producer: "order".into(),
        schema_version: 1,
        payload: Some(Payload::OrderPlaced(OrderPlaced {
            order_id: "o-1".into(),
            order_number: "ORD-1".into(),
            ..Default::default()
        })),
        ..Default::default()
    }
    .encode_to_vec()
}

fn record(value: &[u8]) -> Record<'_> {
    Record {
        topic: "omnisaga.orders.v1",
        partition: 2,
        offset: 7,
        timestamp_ms: Some(0),
        key: Some(b"o-1"),
        headers: vec![("traceparent", Some(b"00-abc-def-01")), ("bin", Some(&[0xff]))],
        value: Some(value),
    }
}

#[test]
fn an_envelope_decodes_with_its_payload_under_the_proto_field_names() {
    let decoder = Decoder::new(BUILT_IN).unwrap();
    let envelope = decoder.envelope(&placed()).unwrap();
    assert_eq!(envelope["event_type"], "OrderPlaced");
    assert_eq!(envelope["order_id"], "o-1");
    assert_eq!(envelope["schema_version"], 1);
    assert_eq!(envelope["order_placed"]["order_number"], "ORD-1");
}

#[test]
fn a_record_line_has_where_it_was_its_key_and_headers() {
    let decoder = Decoder::new(BUILT_IN).unwrap();
    let value = placed();
    let line = decoder.record(&record(&value));
    assert_eq!(
        (&line["topic"], &line["partition"], &line["offset"], &line["key"]),
        (&json!("omnisaga.orders.v1"), &json!(2), &json!(7), &json!("o-1"))
    );
    assert_eq!(line["timestamp"], "1970-01-01T00:00:00.000Z");
    assert_eq!(
        line["headers"],
        json!({"traceparent": "00-abc-def-01", "bin": "base64:/w=="})
    );
    assert_eq!(line["envelope"]["order_placed"]["order_id"], "o-1");
    assert!(line.get("error").is_none(), "{line}");
}

#[test]
fn garbage_is_printed_with_the_error_and_its_bytes() {
    let decoder = Decoder::new(BUILT_IN).unwrap();
    let garbage = b"\x08\x96\x01 definitely not an envelope";
    let line = decoder.record(&record(garbage));
    assert!(
        line["error"]
            .as_str()
            .unwrap()
            .contains("not an omnisaga.v1.Envelope"),
        "{line}"
    );
    assert_eq!(line["value_base64"], STANDARD.encode(garbage));
    assert!(line.get("envelope").is_none());
}

#[test]
fn a_descriptor_set_without_the_envelope_is_refused() {
    // Zero bytes are a FileDescriptorSet with no file.
    let e = Decoder::new(&[]).err().unwrap();
    assert!(format!("{e:#}").contains("has no omnisaga.v1.Envelope"), "{e:#}");
}
