//! Any text as a `traceparent` header (HTTP or Kafka): reading it never
//! panics, and a trace id read from it is 32 lowercase hex digits found in
//! the header and the very trace the OpenTelemetry propagator continues,
//! so the trace link an API answers with is the trace the saga is in.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omnisaga_runtime::TraceContext;

fuzz_target!(|header: &str| {
    let ctx = TraceContext {
        traceparent: Some(header.to_owned()),
        tracestate: None,
    };
    if let Some(trace) = ctx.trace_id() {
        assert_eq!(trace.len(), 32);
        assert!(trace.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        assert!(header.contains(trace));
        assert_eq!(ctx.propagated_trace_id().as_deref(), Some(trace));
    }
});
