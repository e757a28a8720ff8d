//! Building and reading envelopes: event id (UUIDv7), time, correlation and
//! causation ids, and the W3C trace context that rides with every event.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use omnisaga_proto::v1::{envelope::Payload, Envelope};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

/// W3C trace context (`traceparent`, `tracestate`) carried from the HTTP
/// request through each outbox row and Kafka header to every consumer, so an
/// order's whole saga is one trace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceContext {
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// The context of the current span: what an event written now carries on.
    pub fn current() -> Self {
        let cx = tracing::Span::current().context();
        let mut carrier = HashMap::new();
        TraceContextPropagator::new().inject_context(&cx, &mut carrier);
        Self {
            traceparent: carrier.remove("traceparent"),
            tracestate: carrier.remove("tracestate").filter(|s| !s.is_empty()),
        }
    }

    /// Makes `span` a child of this context; a missing or malformed
    /// `traceparent` leaves it a root.
    pub fn attach(&self, span: &tracing::Span) {
        if self.trace_id().is_none() {
            return;
        }
        let cx = TraceContextPropagator::new().extract(self);
        let _ = span.set_parent(cx);
    }

    /// Links `span` to this context (when it is a valid one) without
    /// joining its trace: what a request from outside keeps of its caller's.
    pub fn link(&self, span: &tracing::Span) {
        use opentelemetry::trace::TraceContextExt;
        if self.trace_id().is_none() {
            return;
        }
        let cx = TraceContextPropagator::new().extract(self);
        let linked = cx.span().span_context().clone();
        span.add_link(linked);
    }

    /// The trace id the OpenTelemetry propagator reads from this context,
    /// whatever `trace_id` says: what the tests and fuzz targets hold
    /// `trace_id` to.
    #[doc(hidden)]
    pub fn propagated_trace_id(&self) -> Option<String> {
        use opentelemetry::trace::TraceContextExt;
        let cx = TraceContextPropagator::new().extract(self);
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid().then(|| sc.trace_id().to_string())
    }

    /// The 32-hex-digit trace id, if any.
    pub fn trace_id(&self) -> Option<&str> {
        self.traceparent
            .as_deref()
            .and_then(parse_traceparent)
            .map(|(t, _)| t)
    }
}

impl Extractor for TraceContext {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => self.traceparent.as_deref(),
            "tracestate" => self.tracestate.as_deref(),
            _ => None,
        }
    }
    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// The trace and span ids of a W3C `traceparent` the propagator accepts:
/// lowercase hex only, version `ff` refused, and version `00` exactly four
/// fields (a later version may append more).
fn parse_traceparent(tp: &str) -> Option<(&str, &str)> {
    let mut parts = tp.split('-');
    let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let more = parts.next().is_some();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let ok = hex(version, 2)
        && version != "ff"
        && !(version == "00" && more)
        && hex(trace, 32)
        && hex(span, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && span.bytes().any(|b| b != b'0');
    ok.then_some((trace, span))
}

/// Where an event comes from: the request that started the saga, the event
/// that caused it, and the trace it continues.
#[derive(Debug, Clone, Default)]
pub struct EventMeta {
    pub correlation_id: String,
    pub causation_id: String,
    pub trace: TraceContext,
}

impl EventMeta {
    /// Metadata of an event caused by `cause`, in the current span's trace.
    pub fn caused_by(cause: &Envelope) -> Self {
        Self {
            correlation_id: cause.correlation_id.clone(),
            causation_id: cause.event_id.clone(),
            trace: TraceContext::current(),
        }
    }
}

/// A new envelope around `payload` for `order_id`.
pub fn envelope(
    producer: &str,
    order_id: &str,
    payload: Payload,
    meta: &EventMeta,
    now: DateTime<Utc>,
) -> Envelope {
    Envelope {
        event_id: Uuid::now_v7().to_string(),
        event_type: payload.event_type().to_owned(),
        order_id: order_id.to_owned(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: now.timestamp(),
            nanos: now.timestamp_subsec_nanos() as i32,
        }),
        correlation_id: meta.correlation_id.clone(),
        causation_id: meta.causation_id.clone(),
        schema_version: payload.schema_version(),
        producer: producer.to_owned(),
        payload: Some(payload),
    }
}

/// The envelope's occurred-at time (the epoch when missing).
pub fn occurred_at(env: &Envelope) -> DateTime<Utc> {
    env.occurred_at
        .as_ref()
        .and_then(|t| Utc.timestamp_opt(t.seconds, t.nanos.max(0) as u32).single())
        .unwrap_or_default()
}

/// The envelope's event id, if it is a UUID.
pub fn event_id(env: &Envelope) -> Option<Uuid> {
    Uuid::parse_str(&env.event_id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::prelude::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn with_tracing<T>(f: impl FnOnce() -> T) -> T {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f)
    }

    #[test]
    fn a_child_span_carries_the_parents_trace_with_its_own_span_id() {
        let parent = TraceContext {
            traceparent: Some(PARENT.into()),
            tracestate: None,
        };
        let child = with_tracing(|| {
            let span = tracing::info_span!("hop");
            parent.attach(&span);
            span.in_scope(TraceContext::current)
        });
        assert_eq!(child.trace_id(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_ne!(child.traceparent.as_deref(), Some(PARENT));
    }

    #[test]
    fn a_malformed_traceparent_starts_a_new_trace() {
        let bad = TraceContext {
            traceparent: Some("00-xyz-abc-01".into()),
            tracestate: None,
        };
        assert_eq!(bad.trace_id(), None);
        let ctx = with_tracing(|| {
            let span = tracing::info_span!("root");
            bad.attach(&span);
            span.in_scope(TraceContext::current)
        });
        assert_eq!(ctx.trace_id().map(str::len), Some(32));
    }

    #[test]
    fn only_what_the_propagator_accepts_has_a_trace_id() {
        let refused = [
            // Uppercase hex, in each field.
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // Version ff is invalid; version 00 has exactly four fields.
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            // All-zero ids.
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        ];
        for tp in refused {
            let ctx = TraceContext {
                traceparent: Some(tp.into()),
                tracestate: None,
            };
            assert_eq!(ctx.trace_id(), None, "{tp}");
        }
        // A later version may carry more fields after the flags.
        let future = TraceContext {
            traceparent: Some(format!("01{}-more", &PARENT[2..])),
            tracestate: None,
        };
        assert_eq!(future.trace_id(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(future.propagated_trace_id().as_deref(), future.trace_id());
    }

    #[test]
    fn a_trace_id_read_is_the_one_the_propagator_continues() {
        for tp in [PARENT, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"] {
            let ctx = TraceContext {
                traceparent: Some(tp.into()),
                tracestate: None,
            };
            assert_eq!(ctx.propagated_trace_id().as_deref(), ctx.trace_id());
        }
    }

    #[test]
    fn without_a_span_there_is_no_context_to_carry() {
        assert_eq!(with_tracing(TraceContext::current), TraceContext::default());
    }
}
