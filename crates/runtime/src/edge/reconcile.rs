//! Reconciliation: the saga's invariants checked on a live system, over a
//! window of time, without stopping anything (`omnisaga reconcile`,
//! docs/reconcile.md). Each service owning an outbox answers
//! `POST /v1/admin/reconcile` with the counterexamples of the invariants
//! its own database can decide, read in one read-only snapshot
//! ([`snapshot`]) with a statement timeout; the CLI joins the answers.
//! This module holds what they share: the request and the report, the
//! names of the invariants, and the outbox's check, which every owner runs.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use omnisaga_proto::v1::Envelope;
use prost::Message as _;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::edge::http::ApiError;

/// Every invariant reconciliation checks: its name (the metrics' label),
/// the service that decides it, and what it says.
pub const INVARIANTS: [(&str, &str, &str); 6] = [
    (
        OUTBOX_PUBLISHED,
        "order, payment, warehouse, notification",
        "every outbox row written before the window's end is published",
    ),
    (
        NOTHING_STUCK,
        "order",
        "no order waits for payment past its deadline, none is PLACED, PAID or READY_FOR_SHIPMENT unchanged for ORDER_STUCK_AFTER_MS before the window's end",
    ),
    (
        LEDGER_MATCHES_STREAMS,
        "payment",
        "the provider holds money for exactly the authorisations the payment streams hold (approvals and authorisations of the window), at most one per order",
    ),
    (
        SHIPPED_PAID,
        "payment",
        "every order shipped in the window holds exactly one standing authorisation of its total, and the provider holds it",
    ),
    (
        SHIPPED_TOLD,
        "notification",
        "every order shipped in the window has its 'shipped' message sent",
    ),
    (
        STOCK_CONSERVED,
        "warehouse",
        "per SKU: reserved = what the open pick tasks hold, shipped = what the shipped pick tasks held, nothing negative, nothing reserved beyond what is on hand",
    ),
];

pub const OUTBOX_PUBLISHED: &str = "outbox_published";
pub const NOTHING_STUCK: &str = "nothing_stuck";
pub const LEDGER_MATCHES_STREAMS: &str = "ledger_matches_streams";
pub const SHIPPED_PAID: &str = "shipped_paid";
pub const SHIPPED_TOLD: &str = "shipped_told";
pub const STOCK_CONSERVED: &str = "stock_conserved";

/// Most shipped orders one request carries (and the order service lists).
pub const MAX_SHIPPED: usize = 5000;
/// Most counterexamples one service reports per invariant.
pub const MAX_COUNTEREXAMPLES: i64 = 500;
/// Longest window one request may span.
pub const MAX_WINDOW_DAYS: i64 = 7;
/// How long one statement of a check may run before it is given up.
const STATEMENT_TIMEOUT: &str = "15s";

/// What to check: the window `[since, until)` and, for the services that
/// check them, the orders shipped in it (the order service's answer).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReconcileRequest {
    /// The window's start (RFC 3339).
    pub since: DateTime<Utc>,
    /// The window's end (RFC 3339), before now: a settle margin, so that
    /// what is still in flight is not taken for a counterexample.
    pub until: DateTime<Utc>,
    /// The orders shipped in the window, from the order service's report
    /// (payment and notification check them), at most 5000.
    #[serde(default)]
    #[schema(max_items = 5000)]
    pub shipped: Vec<Shipped>,
}

impl ReconcileRequest {
    /// The request, or why it cannot be checked (422).
    pub fn validate(&self) -> Result<(), ApiError> {
        self.problem().map_or(Ok(()), |p| Err(ApiError::validation(p)))
    }

    /// Why the request cannot be checked, if it cannot.
    pub fn problem(&self) -> Option<String> {
        if self.since >= self.until {
            return Some("since must be before until".to_owned());
        }
        if self.until > crate::base::clock::now() {
            return Some("until must not be in the future".to_owned());
        }
        if self.until - self.since > Duration::days(MAX_WINDOW_DAYS) {
            return Some(format!("the window spans at most {MAX_WINDOW_DAYS} days"));
        }
        if self.shipped.len() > MAX_SHIPPED {
            return Some(format!("at most {MAX_SHIPPED} shipped orders per request"));
        }
        None
    }
}

/// An order shipped in the window, with its total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Shipped {
    pub order_id: Uuid,
    /// Its total in minor units, from its `OrderPlaced`.
    pub total_minor: i64,
}

/// One service's verdicts over the window.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ReconcileReport {
    /// The service that checked.
    pub service: String,
    /// Per invariant it checked, how many things it looked at.
    pub checked: BTreeMap<String, u64>,
    /// What broke an invariant.
    pub counterexamples: Vec<Counterexample>,
    /// The orders shipped in the window (the order service's report only).
    #[serde(default)]
    pub shipped: Vec<Shipped>,
    /// True when more orders shipped in the window than one request
    /// carries: only the first 5000 were listed (narrow the window).
    #[serde(default)]
    pub truncated: bool,
}

/// One thing that breaks an invariant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Counterexample {
    /// The invariant's name, e.g. `shipped_told`.
    pub invariant: String,
    /// The order it concerns, when it concerns one.
    pub order_id: Option<String>,
    /// What it is about: a payment id, a SKU, an outbox row.
    pub subject: String,
    /// What differs.
    pub detail: String,
}

impl ReconcileReport {
    pub fn new(service: &str) -> Self {
        Self {
            service: service.to_owned(),
            ..Self::default()
        }
    }

    /// Counts `n` things checked for `invariant`.
    pub fn checked(&mut self, invariant: &str, n: usize) {
        *self.checked.entry(invariant.to_owned()).or_default() += n as u64;
    }

    /// Records a counterexample of `invariant`.
    pub fn broken(
        &mut self,
        invariant: &str,
        order_id: Option<String>,
        subject: impl Into<String>,
        detail: impl Into<String>,
    ) {
        self.counterexamples.push(Counterexample {
            invariant: invariant.to_owned(),
            order_id,
            subject: subject.into(),
            detail: detail.into(),
        });
    }
}

/// A read-only transaction over one snapshot of `pool`'s database: every
/// check of a report sees the same moment, writes nothing, and each
/// statement gives up after a bound.
pub async fn snapshot(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'"))
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// `outbox_published`: the rows written before `until` still unpublished
/// (the relay publishes within a poll; a row older than the settle margin
/// is stuck). Reads the unpublished rows only (their partial index).
pub async fn outbox(
    conn: &mut PgConnection,
    until: DateTime<Utc>,
    report: &mut ReconcileReport,
) -> Result<(), sqlx::Error> {
    let (pending, stuck): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE created_at < $1) FROM outbox WHERE published_at IS NULL",
    )
    .bind(until)
    .fetch_one(&mut *conn)
    .await?;
    report.checked(OUTBOX_PUBLISHED, pending as usize);
    if stuck == 0 {
        return Ok(());
    }
    let rows: Vec<(i64, String, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, topic, message_key, created_at FROM outbox
         WHERE published_at IS NULL AND created_at < $1 ORDER BY id LIMIT $2",
    )
    .bind(until)
    .bind(MAX_COUNTEREXAMPLES)
    .fetch_all(&mut *conn)
    .await?;
    for (id, topic, key, created_at) in rows {
        report.broken(
            OUTBOX_PUBLISHED,
            Some(key),
            format!("outbox row {id}"),
            format!("for {topic}, written {}, unpublished", created_at.to_rfc3339()),
        );
    }
    Ok(())
}

/// The events of `types` in the streams of `order_ids`, decoded (and
/// upcast) in the order they were stored; a row that does not decode is
/// skipped (the consumers dead-letter such records, the event store holds none).
pub async fn events_of(
    conn: &mut PgConnection,
    order_ids: &[String],
    types: &[&str],
) -> Result<Vec<Envelope>, sqlx::Error> {
    let rows: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT envelope FROM events WHERE order_id = ANY($1) AND event_type = ANY($2) ORDER BY global_position",
    )
    .bind(order_ids)
    .bind(types)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .filter_map(|bytes| Envelope::decode(bytes.as_slice()).ok())
        .map(crate::es::upcast::envelope)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(since: &str, until: &str) -> ReconcileRequest {
        ReconcileRequest {
            since: since.parse().unwrap(),
            until: until.parse().unwrap(),
            shipped: vec![],
        }
    }

    #[test]
    fn a_window_must_be_in_order_past_and_at_most_a_week() {
        assert!(request("2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z")
            .validate()
            .is_ok());
        for (since, until) in [
            ("2026-01-01T01:00:00Z", "2026-01-01T00:00:00Z"),
            ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
            ("2026-01-01T00:00:00Z", "2026-01-09T00:00:00Z"),
            ("2026-01-01T00:00:00Z", "2999-01-01T00:00:00Z"),
        ] {
            assert!(request(since, until).validate().is_err(), "{since}..{until}");
        }
        let mut many = request("2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z");
        many.shipped = vec![
            Shipped {
                order_id: Uuid::nil(),
                total_minor: 1
            };
            MAX_SHIPPED + 1
        ];
        assert!(many.validate().is_err());
    }

    #[test]
    fn every_invariant_has_one_name() {
        let names: std::collections::BTreeSet<&str> = INVARIANTS.iter().map(|(n, _, _)| *n).collect();
        assert_eq!(names.len(), INVARIANTS.len());
    }
}
