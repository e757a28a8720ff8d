//! The provider simulator's ledger, `provider_ledger`: each payment id's
//! answer and its void. It stands for a real provider's own records, so it
//! is apart from the service's tables: the simulator (`crate::provider`)
//! writes it in statements of its own, never in the caller's transaction,
//! and reconciliation reads it as it would a provider's report.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

/// Records `payment_id`'s answer unless it has one; the first answer stands,
/// also when two callers ask at once: (outcome, reason, whether this call
/// recorded it).
pub async fn record_answer(
    pool: &PgPool,
    payment_id: &str,
    outcome: &str,
    reason: &str,
) -> Result<(String, String, bool), sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO provider_ledger (payment_id, outcome, reason) VALUES ($1, $2, $3)
         ON CONFLICT (payment_id) DO UPDATE SET outcome = provider_ledger.outcome
         RETURNING outcome, reason, xmax = 0",
    )
    .bind(payment_id)
    .bind(outcome)
    .bind(reason)
    .fetch_one(pool)
    .await
}

/// Voids `payment_id`'s approval, if it has one not yet voided.
pub async fn void(pool: &PgPool, payment_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE provider_ledger SET voided_at = now()
         WHERE payment_id = $1 AND outcome = 'APPROVED' AND voided_at IS NULL",
    )
    .bind(payment_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Whether `payment_id` is approved and not voided; `None` when it has no answer.
pub async fn holds(pool: &PgPool, payment_id: &str) -> Result<Option<bool>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT outcome = 'APPROVED' AND voided_at IS NULL FROM provider_ledger WHERE payment_id = $1",
    )
    .bind(payment_id)
    .fetch_optional(pool)
    .await
}

/// `payment_id`'s recorded answer: (outcome, reason).
pub async fn answer(pool: &PgPool, payment_id: &str) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as("SELECT outcome, reason FROM provider_ledger WHERE payment_id = $1")
        .bind(payment_id)
        .fetch_optional(pool)
        .await
}

/// Deletes up to 10 000 answers older than `retention_secs`; how many it deleted.
pub async fn prune(pool: &PgPool, retention_secs: f64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM provider_ledger WHERE ctid = ANY(ARRAY(
             SELECT ctid FROM provider_ledger
             WHERE answered_at < now() - make_interval(secs => $1) LIMIT 10000))",
    )
    .bind(retention_secs)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// The payment ids answered in `[since, until)`.
pub async fn answered_between(
    conn: &mut PgConnection,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT payment_id FROM provider_ledger WHERE answered_at >= $1 AND answered_at < $2")
        .bind(since)
        .bind(until)
        .fetch_all(conn)
        .await
}

/// The payment ids approved and not voided among those answered in
/// `[since, until)` and `ids`.
pub async fn held_among(
    conn: &mut PgConnection,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    ids: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT payment_id FROM provider_ledger
         WHERE outcome = 'APPROVED' AND voided_at IS NULL
           AND ((answered_at >= $1 AND answered_at < $2) OR payment_id = ANY($3))",
    )
    .bind(since)
    .bind(until)
    .bind(ids)
    .fetch_all(conn)
    .await
}
