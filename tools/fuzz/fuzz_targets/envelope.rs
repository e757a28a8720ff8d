//! Any bytes as a Kafka record's value: the consumers' decoder refuses them
//! with a reason or gives back an envelope with a UUID event id and an order
//! id, and a payload, or none only for an event type or version this build
//! does not know (a newer producer's, which the consumer skips); it
//! survives being written and read again unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omnisaga_runtime::consumer::decode;
use prost::Message;

fuzz_target!(|bytes: &[u8]| {
    let Ok(env) = decode(bytes) else { return };
    if env.payload.is_none() {
        assert!(!env.event_type.is_empty(), "an envelope without payload or type");
        let newest = omnisaga_proto::newest_schema_version(&env.event_type);
        assert!(
            newest.is_none_or(|v| env.schema_version > v),
            "a known type {} (version {}) without its payload",
            env.event_type,
            env.schema_version
        );
    }
    assert!(!env.order_id.is_empty());
    assert!(uuid::Uuid::parse_str(&env.event_id).is_ok());
    let again = decode(&env.encode_to_vec()).expect("a decoded envelope decodes again");
    assert_eq!(again, env);
});
