//! The instance's one poller: while at least one live stream is open on
//! this instance, every `ORDER_EVENTS_POLL_MS` one indexed query (on a
//! connection of its own) reads the events recorded since the last it saw,
//! by any instance, and tells the streams of their orders and of their
//! customers ([`Change::Appended`]), which re-read the store after the
//! position they last sent. With no stream open it runs no statement and
//! holds no connection; the write path pays nothing but the
//! `events_settled` index entry (migration 1007).
//!
//! Its position is `(tx, global_position)`, and it reads only events of
//! transactions older than every one still running, as the customer's feed
//! does: an event whose transaction commits after a later one's is not
//! passed over. When it (re)starts, it takes the newest such position and
//! tells every stream to re-read ([`Change::Resync`]): what came between a
//! stream's first read and that position is read then. A failed look (its
//! connection dropped) keeps the position: the next one reads from there.

use std::{collections::HashSet, sync::Arc};

use sqlx::{
    postgres::{PgConnectOptions, PgConnection},
    Connection as _, PgPool,
};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::feed::{Change, Feed};

/// The poller's connection's `application_name`.
pub const APPLICATION_NAME: &str = "omnisaga-order live updates";

/// Rows read at once.
const BATCH: i64 = 500;

impl Feed {
    /// The poller: until `stop`, while a stream is open, every change to
    /// every stream. Then every stream ends.
    pub async fn poll(self: Arc<Self>, pool: PgPool, stop: CancellationToken) -> anyhow::Result<()> {
        let _closing = self.closed.clone().drop_guard();
        let options = (*pool.connect_options())
            .clone()
            .application_name(APPLICATION_NAME);
        let mut streams = self.streams.subscribe();
        loop {
            // Idle, without a statement or a connection, while no stream is open.
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                open = streams.wait_for(|n| *n > 0) => if open.is_err() { return Ok(()) },
            }
            let mut poller = Poller {
                options: &options,
                conn: None,
                at: None,
            };
            while *streams.borrow() > 0 {
                if let Err(e) = poller.pass(&self.changes).await {
                    tracing::warn!(error = %e, "live updates: cannot read new events; retrying");
                    poller.conn = None;
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(self.settings.poll) => {}
                }
            }
            if let Some(conn) = poller.conn.take() {
                let _ = conn.close().await;
            }
            if stop.is_cancelled() {
                return Ok(());
            }
        }
    }
}

/// One run of the poller: its connection and position.
struct Poller<'a> {
    options: &'a PgConnectOptions,
    conn: Option<PgConnection>,
    /// `(tx, global_position)`; `None` until the first look.
    at: Option<(i64, i64)>,
}

impl Poller<'_> {
    /// One look: the first takes the newest position and has every stream
    /// re-read; each later one announces what was settled since.
    async fn pass(&mut self, changes: &broadcast::Sender<Change>) -> Result<(), sqlx::Error> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => PgConnection::connect_with(self.options).await?,
        };
        let conn = self.conn.insert(conn);
        let Some(mut at) = self.at else {
            let newest = crate::store::live::newest(conn).await?;
            self.at = Some(newest.unwrap_or_default());
            let _ = changes.send(Change::Resync);
            return Ok(());
        };
        loop {
            // Every committed event is announced, settled or not: one
            // order's stream reads by version, which needs no settling (a
            // customer's stream waits for it itself). The position moves
            // over settled events only, so one whose transaction commits
            // late is still read; an unsettled one is announced again at
            // each look until it settles.
            let rows = crate::store::live::committed_after(conn, at, BATCH).await?;
            let mut told = HashSet::new();
            for (_, _, order_id, customer_id, _) in &rows {
                if told.insert((order_id, customer_id)) {
                    let _ = changes.send(Change::Appended {
                        order_id: order_id.clone(),
                        customer_id: customer_id.clone(),
                    });
                }
            }
            let before = at;
            if let Some((tx, position, ..)) = rows.iter().take_while(|r| r.4).last() {
                at = (*tx, *position);
                self.at = Some(at);
            }
            if (rows.len() as i64) < BATCH || at == before {
                return Ok(());
            }
        }
    }
}
