//! What handling a record leaves for operators: its span, a child of the
//! span that produced it, and its count by outcome.

use std::sync::atomic::{AtomicBool, Ordering};

use omnisaga_proto::v1::Envelope;

use super::{Consumer, Handler, Raw};
use crate::es::event::TraceContext;

/// Counts one handled record under `outcome`.
pub(super) fn count(consumer: &str, topic: &str, outcome: &str) {
    crate::base::metrics::get()
        .consumer_handled
        .with_label_values(&[consumer, topic, outcome])
        .inc();
}

static IGNORED_SPANS: AtomicBool = AtomicBool::new(true);

/// Whether a record a consumer passes over unread still gets its `process`
/// span (`TRACE_IGNORED_RECORDS`; on until turned off), for the whole
/// process.
pub fn set_ignored_spans(on: bool) {
    IGNORED_SPANS.store(on, Ordering::Relaxed);
}

/// See [`set_ignored_spans`].
pub(super) fn ignored_spans() -> bool {
    IGNORED_SPANS.load(Ordering::Relaxed)
}

impl<H: Handler> Consumer<H> {
    /// The span of handling one record: a child of the span that produced it.
    /// Handling it records its statements' count there ([`crate::base::db::counted`]).
    pub(super) fn record_span(&self, raw: &Raw, decoded: Option<&Envelope>) -> tracing::Span {
        let span = tracing::info_span!(
            "consume",
            otel.name = %format!("process {}", raw.topic),
            otel.kind = "consumer",
            messaging.system = "kafka",
            messaging.operation.type = "process",
            messaging.operation.name = "process",
            messaging.destination.name = %raw.topic,
            messaging.destination.partition.id = %raw.partition,
            messaging.kafka.offset = raw.offset,
            messaging.kafka.message.key = %raw.key,
            messaging.consumer.group.name = %self.group,
            messaging.message.id = decoded.map(|e| e.event_id.as_str()).unwrap_or(""),
            event.type = decoded.map(|e| e.event_type.as_str()).unwrap_or("undecodable"),
            order.id = decoded.map(|e| e.order_id.as_str()).unwrap_or(""),
            request.id = decoded.map(|e| e.correlation_id.as_str()).unwrap_or(""),
            trace_id = tracing::field::Empty,
            omnisaga.db.statement_count = tracing::field::Empty,
        );
        raw.trace().attach(&span);
        if let Some(t) = span.in_scope(TraceContext::current).trace_id() {
            span.record("trace_id", t);
        }
        span
    }
}
