//! What the live streams of one instance share: the one listener that hears
//! of every event appended to an order stream by any instance (PostgreSQL's
//! `LISTEN order_events`, sent by the trigger of migration 1006), fanned
//! out to the streams; and the bound on streams open at once.
//!
//! A stream never trusts a notification to carry the change: it re-reads
//! the store after the position it last sent. So a notification lost (the
//! listener's connection dropped, a stream lagging behind the fan-out)
//! costs a re-read, never an event: after each (re)connection, and on a
//! lag, every stream is told to re-read ([`Change::Resync`]), and each
//! re-reads on a slow timer besides ([`REREAD`]).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::http::{header::RETRY_AFTER, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use omnisaga_runtime::http::ApiError;
use sqlx::{postgres::PgListener, PgPool};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::config::Live;

/// The channel the trigger notifies on.
pub const CHANNEL: &str = "order_events";

/// How often a stream re-reads the store even when nothing was heard.
pub const REREAD: Duration = Duration::from_secs(30);

/// What the listener heard.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// An event was appended to this order's stream, of this customer.
    Appended { order_id: String, customer_id: String },
    /// Notifications may have been lost: every stream re-reads.
    Resync,
}

impl Change {
    /// A notification's payload: the order id, a space, the customer id.
    pub fn parse(payload: &str) -> Self {
        match payload.split_once(' ') {
            Some((order, customer)) => Change::Appended {
                order_id: order.to_owned(),
                customer_id: customer.to_owned(),
            },
            None => Change::Resync,
        }
    }
}

/// The instance's listener, its fan-out and its open streams.
pub struct Feed {
    pub settings: Live,
    changes: broadcast::Sender<Change>,
    open: Mutex<Open>,
    /// Cancelled when the service stops: every stream ends.
    pub closed: CancellationToken,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_customer: HashMap<String, usize>,
}

impl Feed {
    pub fn new(settings: Live) -> Arc<Self> {
        let (changes, _) = broadcast::channel(1024);
        Arc::new(Self {
            settings,
            changes,
            open: Mutex::new(Open::default()),
            closed: CancellationToken::new(),
        })
    }

    /// What the listener hears from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// A place for one more stream of `customer`, unless the customer's
    /// bound or the instance's is reached.
    pub fn open(self: &Arc<Self>, customer: &str) -> Result<Slot, Refused> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.total >= self.settings.max_streams {
            return Err(Refused::Instance);
        }
        let mine = open.by_customer.entry(customer.to_owned()).or_default();
        if *mine >= self.settings.max_per_customer {
            return Err(Refused::Customer(self.settings.max_per_customer));
        }
        *mine += 1;
        open.total += 1;
        Ok(Slot {
            feed: self.clone(),
            customer: customer.to_owned(),
        })
    }

    /// The listener: until `stop`, every notification to every stream;
    /// reconnects when its connection drops. Then every stream ends.
    pub async fn listen(self: Arc<Self>, pool: PgPool, stop: CancellationToken) -> anyhow::Result<()> {
        let _closing = self.closed.clone().drop_guard();
        loop {
            let listener = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                l = Self::connect(&pool) => l,
            };
            let mut listener = match listener {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "live updates: cannot listen; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            // Whatever was appended while no one listened is read again.
            let _ = self.changes.send(Change::Resync);
            loop {
                let heard = tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    heard = listener.try_recv() => heard,
                };
                match heard {
                    Ok(Some(n)) => {
                        let _ = self.changes.send(Change::parse(n.payload()));
                    }
                    // The connection dropped; the next call reconnects.
                    Ok(None) => {
                        let _ = self.changes.send(Change::Resync);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "live updates: the listener failed; reconnecting");
                        break;
                    }
                }
            }
        }
    }

    async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        Ok(listener)
    }
}

/// Why a stream was not opened.
#[derive(Debug, PartialEq)]
pub enum Refused {
    /// The customer has this many open already: 429 `too_many_streams`.
    Customer(usize),
    /// The instance serves as many as it may: 503 `overloaded`.
    Instance,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let e = match self {
            Refused::Instance => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "too many live streams open on this instance; retry shortly",
            ),
            Refused::Customer(n) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                format!("at most {n} live streams at once per customer; close one first"),
            ),
        };
        let mut resp = e.into_response();
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("5"));
        resp
    }
}

/// One open stream's place, given back when the stream ends.
pub struct Slot {
    feed: Arc<Feed>,
    customer: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.feed.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_customer.get_mut(&self.customer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_customer.remove(&self.customer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_names_the_order_and_its_customer() {
        assert_eq!(
            Change::parse("0190a1b2-0000-7000-8000-000000000001 cust 1"),
            Change::Appended {
                order_id: "0190a1b2-0000-7000-8000-000000000001".into(),
                customer_id: "cust 1".into()
            }
        );
        assert_eq!(Change::parse("garbage"), Change::Resync);
    }

    #[test]
    fn streams_are_bounded_per_customer_and_in_all() {
        let feed = Feed::new(Live {
            max_per_customer: 2,
            max_streams: 3,
            ..Live::default()
        });
        let a1 = feed.open("a").unwrap();
        let _a2 = feed.open("a").unwrap();
        assert_eq!(feed.open("a").err(), Some(Refused::Customer(2)));
        let _b1 = feed.open("b").unwrap();
        assert_eq!(feed.open("c").err(), Some(Refused::Instance));
        assert_eq!(
            Refused::Instance.into_response().status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let resp = Refused::Customer(2).into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[RETRY_AFTER], "5");
        drop(a1);
        assert!(feed.open("a").is_ok());
    }
}
