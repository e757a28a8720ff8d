//! `GET /v1/orders/events`: all of the caller's orders, live.
//!
//! A position here is `{tx}-{global_position}`: the transaction that
//! appended the event, then its place in the store. The stream sends only
//! events of transactions older than every one still running (settled), in
//! that order, so no event can later commit before a position already sent:
//! resuming after one misses nothing and repeats nothing. (The global
//! position alone is taken before commit: an earlier one can commit later.)
//! A long transaction anywhere on the server (transaction ids are the
//! server's) holds the stream back until it ends; nothing is lost.

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::{
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use omnisaga_runtime::{
    auth::Caller,
    http::{ApiError, ErrorBody},
    store::{self, StoreError, StoredEvent},
};
use sqlx::PgPool;
use tokio::{
    sync::broadcast::{self, error::RecvError},
    time::Instant,
};

use super::{
    channel,
    feed::{Change, Feed, Slot, REREAD},
    fold, last_event_id, Gone, Message, OrderEvent, Out,
};
use crate::{api::ApiState, domain::Order};

/// Rows read at once.
const BATCH: i64 = 200;

/// How soon to look again when a newer event waits on an older transaction.
const UNSETTLED_RETRY: Duration = Duration::from_millis(100);

/// Where a customer's stream is: `tx-position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
struct Position {
    tx: i64,
    at: i64,
}

impl Position {
    fn parse(s: &str) -> Option<Self> {
        let (tx, at) = s.split_once('-')?;
        let p = Self {
            tx: tx.parse().ok()?,
            at: at.parse().ok()?,
        };
        (p.tx >= 0 && p.at >= 0).then_some(p)
    }

    fn id(self) -> String {
        format!("{}-{}", self.tx, self.at)
    }
}

/// The caller's orders, live
///
/// Server-Sent Events of all the caller's orders (for the app's order list): first the current state of each of their open orders, then every event of any of their orders as it is recorded by any instance, with a `: heartbeat` comment after each `ORDER_EVENTS_HEARTBEAT_MS` of silence; it does not end by itself. Messages as for one order, but `id` is a position in all of the customer's events, `{transaction}-{position}`: reconnecting with `Last-Event-ID` sends exactly the events after it, of every order.
#[utoipa::path(get, path = "/v1/orders/events", tag = "orders",
    params(("Last-Event-ID" = Option<String>, Header, pattern = "^[0-9]+-[0-9]+$", description = "the id of the last message received: resume after it")),
    security(("bearer" = ["orders:read"])),
    responses(
        (status = 200, description = "the stream: messages whose data is an OrderEvent", body = OrderEvent, content_type = "text/event-stream"),
        (status = 422, description = "validation_failed: a Last-Event-ID this stream did not send", body = ErrorBody),
        (status = 429, description = "too_many_streams: the customer has ORDER_EVENTS_MAX_PER_CUSTOMER streams open on this instance; rate_limited (Retry-After says when to try again)", body = ErrorBody),
        (status = 503, description = "overloaded: the instance serves ORDER_EVENTS_MAX_STREAMS streams, or too many requests at once; timeout", body = ErrorBody),
    ))]
pub(in crate::api) async fn customer_events(
    State(s): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let after = last_event_id(&headers, Position::parse)?;
    let customer = caller.subject().to_owned();
    let slot = match s.feed.open(&customer) {
        Ok(slot) => slot,
        Err(refused) => return Ok(refused.into_response()),
    };
    let changes = s.feed.subscribe();
    let (first, cursor) = match after {
        Some(p) => (Vec::new(), p),
        None => snapshot(&s.pool, &customer).await.map_err(ApiError::internal)?,
    };
    let (out, sse) = channel(s.feed.settings.buffer, s.feed.settings.heartbeat);
    let follow = Follow {
        customer,
        cursor,
        pool: s.pool.clone(),
    };
    tokio::spawn(follow.run(s.feed.clone(), changes, first, after.is_some(), out, slot));
    Ok(sse.into_response())
}

/// The current state of each open order of `customer`, oldest change
/// first, and the position the stream goes on from (the last message's id).
async fn snapshot(pool: &PgPool, customer: &str) -> Result<(Vec<Message>, Position), StoreError> {
    let high = crate::store::live::customer_newest(pool, customer).await?;
    let Some((tx, at)) = high else {
        return Ok((Vec::new(), Position::default()));
    };
    let high = Position { tx, at };
    let latest = crate::store::live::customer_open_latest(pool, customer, (high.tx, high.at)).await?;
    let mut rows: Vec<(Position, String, i64)> = latest
        .into_iter()
        .map(|(tx, at, stream, version)| (Position { tx, at }, stream, version))
        .collect();
    rows.sort();
    let mut messages = messages(pool, &rows).await?;
    // The last one stands for everything up to the high-water mark: what
    // came before it of orders already finished is not the list's news.
    if let Some(last) = messages.last_mut() {
        last.id = high.id();
    }
    Ok((messages, high))
}

/// A message for each `(position, order, version)`, each order's stream read once.
async fn messages(pool: &PgPool, rows: &[(Position, String, i64)]) -> Result<Vec<Message>, StoreError> {
    let mut streams: HashMap<&str, Vec<StoredEvent>> = HashMap::new();
    let mut conn = pool.acquire().await?;
    let mut out = Vec::with_capacity(rows.len());
    for (pos, stream, version) in rows {
        if !streams.contains_key(stream.as_str()) {
            streams.insert(stream.as_str(), store::load(&mut conn, stream).await?);
        }
        let events = &streams[stream.as_str()];
        let mut state: Option<Order> = None;
        for e in events.iter().take_while(|e| e.version <= *version) {
            state = fold(state, e);
        }
        let event = events.iter().find(|e| e.version == *version);
        if let (Some(order), Some(event)) = (&state, event) {
            out.push(Message::new(pos.id(), order, event));
        }
    }
    Ok(out)
}

/// One customer's stream: where it is.
struct Follow {
    customer: String,
    cursor: Position,
    pool: PgPool,
}

impl Follow {
    async fn run(
        mut self,
        feed: Arc<Feed>,
        mut changes: broadcast::Receiver<Change>,
        first: Vec<Message>,
        resumed: bool,
        out: Out,
        _slot: Slot,
    ) {
        if let Err(e) = self.pump(&feed, &mut changes, first, resumed, &out).await {
            tracing::debug!(target: "omnisaga_order::api", reason = ?e, "live stream ended");
        }
    }

    async fn pump(
        &mut self,
        feed: &Feed,
        changes: &mut broadcast::Receiver<Change>,
        first: Vec<Message>,
        resumed: bool,
        out: &Out,
    ) -> Result<(), Ended> {
        for m in first {
            out.send(m).await?;
        }
        // A resumed stream catches up at once.
        let mut due = Instant::now() + if resumed { Duration::ZERO } else { REREAD };
        loop {
            tokio::select! {
                _ = feed.closed.cancelled() => return Ok(()),
                _ = out.closed() => return Err(Ended::Gone(Gone::Reader)),
                _ = tokio::time::sleep_until(due) => {}
                heard = changes.recv() => match heard {
                    Ok(Change::Appended { customer_id, .. }) if customer_id != self.customer => continue,
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return Ok(()),
                },
            }
            due = Instant::now() + self.catch_up(out).await?;
        }
    }

    /// Sends every settled event after the cursor; how long to wait before
    /// looking again unasked.
    async fn catch_up(&mut self, out: &Out) -> Result<Duration, Ended> {
        loop {
            let rows = crate::store::live::customer_after(
                &self.pool,
                &self.customer,
                (self.cursor.tx, self.cursor.at),
                BATCH,
            )
            .await
            .map_err(|e| Ended::Store(e.into()))?;
            let full = rows.len() as i64 == BATCH;
            // Settled rows sort before any unsettled one.
            let unsettled = rows.iter().any(|r| !r.4);
            let settled: Vec<(Position, String, i64)> = rows
                .into_iter()
                .filter(|r| r.4)
                .map(|(tx, at, stream, version, _)| (Position { tx, at }, stream, version))
                .collect();
            for m in messages(&self.pool, &settled).await.map_err(Ended::Store)? {
                out.send(m).await?;
            }
            if let Some((last, _, _)) = settled.last() {
                self.cursor = *last;
            }
            if unsettled {
                return Ok(UNSETTLED_RETRY);
            }
            if !full {
                return Ok(REREAD);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_reads_back_as_it_was_sent() {
        let p = Position { tx: 812, at: 1042 };
        assert_eq!(Position::parse(&p.id()), Some(p));
        for bad in ["", "12", "a-1", "1-", "-1-2", "1-2-3"] {
            assert_eq!(Position::parse(bad), None, "{bad}");
        }
        assert!(Position { tx: 1, at: 9 } < Position { tx: 2, at: 1 });
    }
}
