//! Any bytes as a Kafka record's value: the consumers' decoder refuses them
//! with a reason or gives back an envelope that has a payload, a UUID event
//! id and an order id, and survives being written and read again unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omnisaga_runtime::consumer::decode;
use prost::Message;

fuzz_target!(|bytes: &[u8]| {
    let Ok(env) = decode(bytes) else { return };
    assert!(env.payload.is_some());
    assert!(!env.order_id.is_empty());
    assert!(uuid::Uuid::parse_str(&env.event_id).is_ok());
    let again = decode(&env.encode_to_vec()).expect("a decoded envelope decodes again");
    assert_eq!(again, env);
});
