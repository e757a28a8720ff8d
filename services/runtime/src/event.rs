//! Building and reading envelopes: event id (UUIDv7), time, correlation and
//! causation ids, and the W3C trace context that rides with every event.

use chrono::{DateTime, TimeZone, Utc};
use omnisaga_proto::v1::{envelope::Payload, Envelope};
use uuid::Uuid;

/// W3C trace context (`traceparent`, `tracestate`) carried from the HTTP
/// request through each outbox row and Kafka header to every consumer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceContext {
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// Accepts a `traceparent` only when it is well formed, else starts a new trace.
    pub fn from_header_or_new(traceparent: Option<&str>, tracestate: Option<&str>) -> Self {
        match traceparent.filter(|tp| parse_traceparent(tp).is_some()) {
            Some(tp) => Self {
                traceparent: Some(tp.to_owned()),
                tracestate: tracestate.map(str::to_owned),
            },
            None => Self::new_root(),
        }
    }

    pub fn new_root() -> Self {
        let trace = Uuid::new_v4().simple().to_string();
        Self {
            traceparent: Some(format!("00-{trace}-{}-01", new_span_id())),
            tracestate: None,
        }
    }

    /// A new span in the trace `trace_id` (32 hex digits), or a new trace if malformed.
    pub fn for_trace(trace_id: &str) -> Self {
        Self::from_header_or_new(Some(&format!("00-{trace_id}-{}-01", new_span_id())), None)
    }

    /// The 32-hex-digit trace id, if any.
    pub fn trace_id(&self) -> Option<&str> {
        self.traceparent
            .as_deref()
            .and_then(parse_traceparent)
            .map(|(t, _)| t)
    }

    /// Same trace, new span id: the context a hop passes on.
    pub fn child(&self) -> Self {
        match self.trace_id() {
            Some(trace) => Self {
                traceparent: Some(format!("00-{trace}-{}-01", new_span_id())),
                tracestate: self.tracestate.clone(),
            },
            None => Self::new_root(),
        }
    }
}

fn new_span_id() -> String {
    Uuid::new_v4().simple().to_string()[..16].to_owned()
}

fn parse_traceparent(tp: &str) -> Option<(&str, &str)> {
    let mut parts = tp.split('-');
    let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let ok = hex(version, 2)
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
    /// Metadata of an event caused by `cause`, continuing `trace`.
    pub fn caused_by(cause: &Envelope, trace: &TraceContext) -> Self {
        Self {
            correlation_id: cause.correlation_id.clone(),
            causation_id: cause.event_id.clone(),
            trace: trace.child(),
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
        schema_version: omnisaga_proto::SCHEMA_VERSION,
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

    #[test]
    fn malformed_traceparent_starts_a_new_trace() {
        let ctx = TraceContext::from_header_or_new(Some("00-xyz-abc-01"), None);
        assert_ne!(ctx.traceparent.as_deref(), Some("00-xyz-abc-01"));
        assert_eq!(ctx.trace_id().map(str::len), Some(32));
    }

    #[test]
    fn child_keeps_the_trace_and_changes_the_span() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = TraceContext::from_header_or_new(Some(tp), Some("a=b"));
        let child = ctx.child();
        assert_eq!(child.trace_id(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_ne!(child.traceparent.as_deref(), Some(tp));
        assert_eq!(child.tracestate.as_deref(), Some("a=b"));
    }
}
