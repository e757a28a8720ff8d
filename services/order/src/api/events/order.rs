//! `GET /v1/orders/{id}/events`: one order, live. Positions are the
//! order stream's versions (1 for `OrderPlaced`), which commit in order.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use omnisaga_runtime::{
    aggregate::Aggregate as _,
    auth::Caller,
    http::{ApiError, ErrorBody},
    store::{self, StoreError, StoredEvent},
};
use sqlx::PgPool;
use tokio::{
    sync::broadcast::{self, error::RecvError},
    time::Instant,
};
use uuid::Uuid;

use super::{
    channel,
    feed::{Change, Feed, Slot, REREAD},
    fold, is_final, last_event_id, Gone, Message, OrderEvent, Out,
};
use crate::{
    api::ApiState,
    domain::{Order, OrderAggregate},
};

/// An order's events, live
///
/// Server-Sent Events (`Accept: text/event-stream`) of the customer's own order (any for operators): first the order's current state (its last event), then each event as it is recorded by any instance, a `: heartbeat` comment after each `ORDER_EVENTS_HEARTBEAT_MS` (15 s) of silence; the stream ends after `SHIPPED` or `CANCELLED`. Each message: `id` the event's position in the order's stream (1, 2, ...), `event` its type, `data` an OrderEvent. Reconnecting with `Last-Event-ID` sends exactly the events after it (none repeated, none lost); 204 when there are none and the order is finished. The bearer token goes in the `Authorization` header, as for every route (a browser's `EventSource` cannot send one; the app's HTTP client does).
#[utoipa::path(get, path = "/v1/orders/{id}/events", tag = "orders",
    params(("id" = Uuid, Path, description = "the order's id"),
        ("Last-Event-ID" = Option<i64>, Header, description = "the id of the last message received: resume after it")),
    security(("bearer" = ["orders:read"])),
    responses(
        (status = 200, description = "the stream: messages whose data is an OrderEvent", body = OrderEvent, content_type = "text/event-stream"),
        (status = 204, description = "the order is finished and nothing came after Last-Event-ID"),
        (status = 404, description = "not_found: no such order, or another customer's", body = ErrorBody),
        (status = 422, description = "validation_failed: a Last-Event-ID this stream did not send", body = ErrorBody),
        (status = 429, description = "too_many_streams: the customer has ORDER_EVENTS_MAX_PER_CUSTOMER streams open on this instance; rate_limited (Retry-After says when to try again)", body = ErrorBody),
        (status = 503, description = "overloaded: the instance serves ORDER_EVENTS_MAX_STREAMS streams, or too many requests at once; timeout", body = ErrorBody),
    ))]
pub(in crate::api) async fn order_events(
    State(s): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let order_id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("no such order"))?;
    let after = last_event_id(&headers, |v| v.parse::<i64>().ok().filter(|v| *v >= 0))?;
    // Subscribing before reading: nothing announced in between is missed.
    let changes = s.feed.subscribe();
    let events = read_after(&s.pool, order_id, 0)
        .await
        .map_err(ApiError::internal)?;
    let mut follow = Follow {
        order_id,
        state: None,
        version: 0,
    };
    let mut first = Vec::new();
    for e in &events {
        follow.take(e, after.is_some_and(|a| e.version > a).then_some(&mut first));
    }
    let Some(order) = &follow.state else {
        return Err(ApiError::not_found("no such order"));
    };
    let owner = order
        .placed
        .customer
        .as_ref()
        .map_or("", |c| c.customer_id.as_str());
    if !caller.owns(owner) {
        return Err(ApiError::not_found("no such order"));
    }
    match after {
        Some(a) if a > follow.version => {
            return Err(ApiError::validation(
                "Last-Event-ID must be an id this stream sent",
            ))
        }
        Some(_) if first.is_empty() && is_final(order) => return Ok(StatusCode::NO_CONTENT.into_response()),
        Some(_) => {}
        // A new reader starts with the current state.
        None => first.extend(
            events
                .last()
                .map(|e| Message::new(e.version.to_string(), order, e)),
        ),
    }
    let slot = match s.feed.open(caller.subject()) {
        Ok(slot) => slot,
        Err(refused) => return Ok(refused.into_response()),
    };
    let (out, sse) = channel(s.feed.settings.buffer, s.feed.settings.heartbeat);
    tokio::spawn(follow.run(s.pool.clone(), s.feed.clone(), changes, first, out, slot));
    Ok(sse.into_response())
}

/// One order as its stream has been sent so far.
struct Follow {
    order_id: Uuid,
    state: Option<Order>,
    version: i64,
}

impl Follow {
    /// Folds `e` in; its message goes to `sent` when given.
    fn take(&mut self, e: &StoredEvent, sent: Option<&mut Vec<Message>>) {
        self.state = fold(self.state.take(), e);
        self.version = e.version;
        if let (Some(sent), Some(order)) = (sent, &self.state) {
            sent.push(Message::new(e.version.to_string(), order, e));
        }
    }

    fn finished(&self) -> bool {
        self.state.as_ref().is_some_and(is_final)
    }

    /// Sends `first`, then every later event, until the order is finished,
    /// the reader leaves or the service stops.
    async fn run(
        mut self,
        pool: PgPool,
        feed: Arc<Feed>,
        mut changes: broadcast::Receiver<Change>,
        first: Vec<Message>,
        out: Out,
        _slot: Slot,
    ) {
        let result = self.pump(&pool, &feed, &mut changes, first, &out).await;
        if let Err(e) = result {
            tracing::debug!(target: "omnisaga_order::api", { order.id = %self.order_id, reason = ?e }, "live stream ended");
        }
    }

    async fn pump(
        &mut self,
        pool: &PgPool,
        feed: &Feed,
        changes: &mut broadcast::Receiver<Change>,
        first: Vec<Message>,
        out: &Out,
    ) -> Result<(), Ended> {
        for m in first {
            out.send(m).await?;
        }
        let me = self.order_id.to_string();
        let mut due = Instant::now() + REREAD;
        while !self.finished() {
            tokio::select! {
                _ = feed.closed.cancelled() => return Ok(()),
                _ = out.closed() => return Err(Ended::Gone(Gone::Reader)),
                _ = tokio::time::sleep_until(due) => {}
                heard = changes.recv() => match heard {
                    Ok(Change::Appended { order_id, .. }) if order_id != me => continue,
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return Ok(()),
                },
            }
            due = Instant::now() + REREAD;
            for e in read_after(pool, self.order_id, self.version)
                .await
                .map_err(Ended::Store)?
            {
                let mut sent = Vec::with_capacity(1);
                self.take(&e, Some(&mut sent));
                for m in sent {
                    out.send(m).await?;
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
enum Ended {
    Gone(#[allow(dead_code)] Gone),
    Store(#[allow(dead_code)] StoreError),
}

impl From<Gone> for Ended {
    fn from(g: Gone) -> Self {
        Ended::Gone(g)
    }
}

/// The events of `order_id`'s stream after version `after`, in order.
async fn read_after(pool: &PgPool, order_id: Uuid, after: i64) -> Result<Vec<StoredEvent>, StoreError> {
    let rows =
        crate::store::live::stream_after(pool, &OrderAggregate::stream(&order_id.to_string()), after).await?;
    rows.into_iter()
        .map(|(version, envelope)| store::decode(version, &envelope))
        .collect()
}
