//! A read model kept from a service's own events, and what a rebuild needs
//! to know of it: the tables it writes, which of their columns and rows the
//! events decide, and how a batch of events is folded into them.
//!
//! A service keeps its projections in step as it records events (in the
//! same transaction). [`crate::es::rebuild`] makes them again from the
//! event store alone, online: into copies of the tables in the `rebuild`
//! schema, which is first on the search path while [`Projection::apply`]
//! runs, so the projection's statements name its tables unqualified and
//! land in the copies. It then compares the copies with the live tables
//! (`--verify`) or merges them in.

use async_trait::async_trait;
use omnisaga_proto::v1::Envelope;
use sqlx::PgConnection;

/// Where a service keeps the events its projections are folded from: a
/// table with an increasing position and the encoded envelope of each
/// event (a row whose envelope is NULL is skipped).
#[derive(Debug, Clone, Copy)]
pub struct Source {
    pub table: &'static str,
    /// A column that grows with each event appended (BIGINT).
    pub position: &'static str,
    /// The protobuf-encoded `omnisaga.v1.Envelope` (BYTEA).
    pub envelope: &'static str,
}

impl Source {
    /// The runtime's event store, `events`.
    pub const EVENTS: Source = Source {
        table: "events",
        position: "global_position",
        envelope: "envelope",
    };
}

/// One table a projection writes.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    /// The columns of its primary key.
    pub key: &'static [&'static str],
    /// The columns the events decide, the key's included: what a rebuild
    /// writes and `--verify` compares. Any other column (a lease, a retry
    /// count, the trace of the request that caused a row) is kept as it is
    /// on a row that exists, and takes its default on one a rebuild adds,
    /// so it must have one or be nullable. Never a generated column.
    pub columns: &'static [&'static str],
    /// Which rows the events decide, as an SQL condition on the table's
    /// columns (`None`: all of them), applied to the live table and to the
    /// rebuilt copy alike. Rows outside it are neither compared nor touched.
    pub rows: Option<&'static str>,
}

/// One event of the source, in position order.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub position: i64,
    /// Upcast to its newest version, as [`crate::es::store::load`] reads it.
    pub envelope: Envelope,
}

/// A read model a service keeps from its own events.
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// Its name, as operators ask for it (`order_view`, `stock`).
    fn name(&self) -> &'static str;
    /// Where its events are kept ([`Source::EVENTS`] unless the service
    /// keeps its own log).
    fn source(&self) -> Source {
        Source::EVENTS
    }
    /// The tables it writes, each table before those that refer to it.
    fn tables(&self) -> &'static [Table];
    /// Folds `events` into its tables, named unqualified, in the caller's
    /// transaction. Each event comes exactly once, in position order,
    /// except that one committed late (its position taken before an event
    /// already applied) comes in a later call: the result may not depend
    /// on the order of events of different streams. A rebuild starts from
    /// empty tables (the copies have the live ones' columns, defaults and
    /// unique indexes; no checks and no foreign keys).
    async fn apply(&self, conn: &mut PgConnection, events: &[Recorded]) -> anyhow::Result<()>;
}
