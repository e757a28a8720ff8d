//! Hostile input to what every service reads from outside: `traceparent`
//! headers (HTTP and Kafka) and the envelopes of Kafka records. Property
//! tests: whatever arrives, parsing never panics, accepts only what is
//! well-formed, and gives back exactly what a well-formed input holds.
//! (Coverage-guided fuzzing, cargo-fuzz, needs a nightly toolchain; these
//! run on stable in every `make test`.)

use omnisaga_proto::v1::{envelope::Payload, Envelope, OrderCancelled};
use proptest::prelude::*;
use prost::Message;

use crate::{es::event::TraceContext, messaging::consumer::decode};

fn context(traceparent: &str) -> TraceContext {
    TraceContext {
        traceparent: Some(traceparent.to_owned()),
        tracestate: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_traceparent_is_parsed_without_panic_and_only_a_well_formed_one_yields_a_trace(tp in ".{0,80}") {
        let ctx = context(&tp);
        if let Some(trace) = ctx.trace_id() {
            prop_assert_eq!(trace.len(), 32);
            prop_assert!(trace.bytes().all(|b| b.is_ascii_hexdigit()));
            prop_assert!(tp.contains(trace));
            prop_assert_eq!(ctx.propagated_trace_id(), Some(trace.to_owned()));
        }
    }

    #[test]
    fn a_nearly_well_formed_traceparent_has_a_trace_only_where_the_propagator_continues_it(
        version in "[0-9a-fA-F]{2}|ff|0|000",
        trace in "[0-9a-fA-F]{32}|[0-9a-f]{31}|0{32}",
        span in "[0-9a-fA-F]{16}|0{16}|[0-9a-f]{17}",
        flags in "[0-9a-fA-F]{2}",
        more in "(-[0-9a-z]{0,4})?",
    ) {
        let ctx = context(&format!("{version}-{trace}-{span}-{flags}{more}"));
        if let Some(trace) = ctx.trace_id() {
            prop_assert_eq!(ctx.propagated_trace_id(), Some(trace.to_owned()));
        }
    }

    #[test]
    fn a_well_formed_traceparent_gives_back_its_trace_id(
        trace in "[0-9a-f]{31}[1-9a-f]",
        span in "[0-9a-f]{15}[1-9a-f]",
        flags in "0[01]",
    ) {
        let tp = format!("00-{trace}-{span}-{flags}");
        let ctx = context(&tp);
        prop_assert_eq!(ctx.trace_id(), Some(trace.as_str()));
    }

    #[test]
    fn any_bytes_as_an_envelope_are_decoded_or_refused_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(env) = decode(&bytes) {
            prop_assert!(env.payload.is_some());
            prop_assert!(!env.order_id.is_empty());
            prop_assert!(uuid::Uuid::parse_str(&env.event_id).is_ok());
        }
    }

    #[test]
    fn a_well_formed_envelope_survives_the_trip_and_a_truncated_one_does_not_pass_as_another(
        order_id in "[a-z0-9-]{1,40}",
        reason in ".{0,40}",
        cut in 1usize..64,
    ) {
        let env = Envelope {
            event_id: uuid::Uuid::now_v7().to_string(),
            event_type: "OrderCancelled".into(),
            order_id: order_id.clone(),
            payload: Some(Payload::OrderCancelled(OrderCancelled { order_id, reason })),
            ..Default::default()
        };
        let bytes = env.encode_to_vec();
        prop_assert_eq!(decode(&bytes).unwrap(), env.clone());
        let truncated = &bytes[..bytes.len().saturating_sub(cut)];
        if let Ok(other) = decode(truncated) {
            // A prefix that still decodes must not claim to be the whole event.
            prop_assert_ne!(other, env);
        }
    }
}
