//! Live order updates as Server-Sent Events: `GET /v1/orders/{id}/events`
//! follows one order (`order.rs`), `GET /v1/orders/events` all of the
//! caller's (`customer.rs`); `feed.rs` holds the fan-out they share and
//! the bound on streams open at once, `poll.rs` the poller that feeds it.
//!
//! Each message is the order at a position of the store: `id:` the
//! position (resume with `Last-Event-ID` exactly after it), `event:` the
//! event's type, `data:` an [`OrderEvent`]. A stream's messages are made
//! by a task of its own into a buffer of `ORDER_EVENTS_BUFFER` messages; a
//! reader that leaves it full for a heartbeat interval is disconnected
//! rather than buffered for without bound, and resumes where it was.

pub(super) mod customer;
pub mod feed;
pub(super) mod order;
pub mod poll;

use std::time::Duration;

use axum::{
    http::HeaderMap,
    response::sse::{Event, KeepAlive, Sse},
};
use futures::Stream;
use omnisaga_runtime::{http::ApiError, store::StoredEvent};
use serde::Serialize;
use tokio::sync::mpsc;
use utoipa::ToSchema;

use super::dto::TimelineEntry;
use crate::domain::{self, Order, Status};

/// One message of a live stream: the order after one of its events.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct OrderEvent {
    /// The event, as the order's timeline lists it.
    pub entry: TimelineEntry,
    #[schema(format = Uuid)]
    pub order_id: String,
    /// The order's status once the event happened.
    #[schema(value_type = domain::Status)]
    pub status: &'static str,
}

/// A message with its position.
struct Message {
    id: String,
    event_type: String,
    data: OrderEvent,
}

impl Message {
    fn new(id: String, order: &Order, event: &StoredEvent) -> Self {
        Self {
            id,
            event_type: event.envelope.event_type.clone(),
            data: OrderEvent {
                entry: TimelineEntry::from(event),
                order_id: order.placed.order_id.clone(),
                status: order.status.as_str(),
            },
        }
    }

    fn into_event(self) -> Event {
        let event = Event::default().id(self.id).event(self.event_type);
        match event.json_data(&self.data) {
            Ok(e) => e,
            // Cannot happen: the data is plain fields.
            Err(e) => Event::default().comment(format!("unserializable: {e}")),
        }
    }
}

/// `state` after one more event of its stream; the event kept only when
/// the order keeps events of its kind.
fn fold(state: Option<Order>, event: &StoredEvent) -> Option<Order> {
    match event.envelope.payload.as_ref().and_then(crate::wire::event) {
        Some(e) => domain::evolve(state, &e),
        None => state,
    }
}

/// Whether the order has reached a state its stream ends at.
fn is_final(order: &Order) -> bool {
    matches!(order.status, Status::Shipped | Status::Cancelled)
}

/// The `Last-Event-ID` header, parsed by `parse`: absent is `None`, one
/// `parse` refuses is 422 `validation_failed`.
fn last_event_id<T>(headers: &HeaderMap, parse: impl Fn(&str) -> Option<T>) -> Result<Option<T>, ApiError> {
    match headers.get("last-event-id") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| parse(v.trim()))
            .map(Some)
            .ok_or_else(|| ApiError::validation("Last-Event-ID must be an id this stream sent")),
    }
}

/// Where a stream's task writes: the reader's buffer.
struct Out {
    tx: mpsc::Sender<Message>,
    stall: Duration,
}

/// Why a stream's task stopped writing.
#[derive(Debug)]
enum Gone {
    /// The reader left (or was dropped for reading too slowly).
    Reader,
}

impl Out {
    /// Queues `m`; a reader gone, or leaving its buffer full for the stall
    /// time, ends the stream.
    async fn send(&self, m: Message) -> Result<(), Gone> {
        match self.tx.send_timeout(m, self.stall).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                tracing::info!(target: "omnisaga_order::api", "live stream dropped: its reader is too slow");
                Err(Gone::Reader)
            }
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(Gone::Reader),
        }
    }

    /// Resolves when the reader has left.
    async fn closed(&self) {
        self.tx.closed().await
    }
}

/// A buffer of `capacity` messages for a stream's task, and the response
/// that reads it with a comment every `heartbeat` of silence.
fn channel(
    capacity: usize,
    heartbeat: Duration,
) -> (
    Out,
    Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>,
) {
    let (tx, mut rx) = mpsc::channel::<Message>(capacity);
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|m| m.map(|m| Ok(m.into_event()))));
    let sse = Sse::new(stream).keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat"));
    (Out { tx, stall: heartbeat }, sse)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        Message {
            id: "1".into(),
            event_type: "OrderPlaced".into(),
            data: OrderEvent {
                entry: TimelineEntry {
                    event_id: "e".into(),
                    event_type: "OrderPlaced".into(),
                    occurred_at: chrono::Utc::now(),
                    service: "order".into(),
                },
                order_id: "o".into(),
                status: "PLACED",
            },
        }
    }

    #[tokio::test]
    async fn a_reader_that_leaves_its_buffer_full_is_dropped_not_buffered_for() {
        let (out, _unread) = channel(2, Duration::from_millis(50));
        out.send(message()).await.unwrap();
        out.send(message()).await.unwrap();
        assert!(matches!(out.send(message()).await, Err(Gone::Reader)));
    }

    #[tokio::test]
    async fn a_reader_gone_ends_the_stream() {
        let (out, sse) = channel(2, Duration::from_secs(5));
        drop(sse);
        tokio::time::timeout(Duration::from_secs(1), out.closed())
            .await
            .unwrap();
        assert!(matches!(out.send(message()).await, Err(Gone::Reader)));
    }
}
