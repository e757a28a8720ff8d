//! The inbox's retention: the event ids a consumer applied are remembered
//! (`inbox`, written with each record applied, see `apply`) as long as a
//! record can come back, and no longer.

use std::time::Duration;

use sqlx::PgPool;

/// Inbox rows deleted in one statement.
const PRUNE_BATCH: i64 = 5000;
/// Most statements of one [`prune`].
const PRUNE_BATCHES: usize = 20;

/// Deletes inbox rows older than `retention` (`CommonConfig::inbox_retention`),
/// at most `PRUNE_BATCHES` batches of `PRUNE_BATCH` a call so the outbox
/// relay, whose leader calls it among its passes, never waits long (a large
/// backlog goes over several calls).
pub async fn prune(pool: &PgPool, retention: Duration) -> Result<(), sqlx::Error> {
    for _ in 0..PRUNE_BATCHES {
        let pruned = sqlx::query(
            "DELETE FROM inbox WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM inbox WHERE processed_at < now() - make_interval(secs => $1) LIMIT $2))",
        )
        .bind(retention.as_secs_f64())
        .bind(PRUNE_BATCH)
        .execute(pool)
        .await?
        .rows_affected();
        crate::base::metrics::get().inbox_pruned.inc_by(pruned);
        if pruned < PRUNE_BATCH as u64 {
            break;
        }
    }
    Ok(())
}
