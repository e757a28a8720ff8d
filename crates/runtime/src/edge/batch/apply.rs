//! A checked batch applied once: under its `Batch-Id`, in one
//! transaction, or answered again when the id was applied before.

use axum::http::HeaderMap;
use serde_json::json;
use sqlx::PgPool;

use super::{batch_id, check, read, Importer, Outcome, MAX_LISTED};
use crate::edge::http::ApiError;

/// Imports the batch in `body` under the request's `Batch-Id`, applied by
/// `importer` in one transaction, or not at all: the answer to
/// `POST /v1/.../batch`. `subject` is who sent it.
pub async fn import<I: Importer>(
    pool: &PgPool,
    importer: &I,
    headers: &HeaderMap,
    body: &[u8],
    subject: &str,
) -> Result<Outcome, ApiError> {
    let batch_id = batch_id(headers)?;
    let rows = read(headers, body)?;
    let items = check(importer, &rows).map_err(|problems| {
        let invalid_rows = problems
            .iter()
            .map(|p| p.line)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let listed = &problems[..problems.len().min(MAX_LISTED)];
        ApiError::validation(format!(
            "{invalid_rows} of {} rows have problems ({} in all); nothing was applied",
            rows.len(),
            problems.len()
        ))
        .with_details(json!({
            "rows": rows.len(),
            "invalid_rows": invalid_rows,
            "problems": problems.len(),
            "errors": listed,
        }))
    })?;
    let digest = digest(body);
    let mut tx = pool.begin().await?;
    // The id's row first: a second request with it waits here for the first
    // to commit, then finds it.
    let claimed = sqlx::query(
        "INSERT INTO import_batches (kind, batch_id, body_sha256, rows, subject) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (kind, batch_id) DO NOTHING",
    )
    .bind(I::KIND)
    .bind(&batch_id)
    .bind(&digest[..])
    .bind(i32::try_from(rows.len()).unwrap_or(i32::MAX))
    .bind(subject)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !claimed {
        let earlier: Vec<u8> =
            sqlx::query_scalar("SELECT body_sha256 FROM import_batches WHERE kind = $1 AND batch_id = $2")
                .bind(I::KIND)
                .bind(&batch_id)
                .fetch_one(&mut *tx)
                .await?;
        if earlier != digest {
            return Err(ApiError::conflict(
                "batch_id_reused",
                format!("batch {batch_id} was applied with another file; a new file needs a new Batch-Id"),
            ));
        }
        return Ok(Outcome {
            batch_id,
            kind: I::KIND,
            rows: rows.len(),
            replayed: true,
        });
    }
    importer.apply(&mut tx, &items).await?;
    tx.commit().await?;
    tracing::info!(kind = I::KIND, batch_id = %batch_id, rows = rows.len(), "batch applied");
    Ok(Outcome {
        batch_id,
        kind: I::KIND,
        rows: rows.len(),
        replayed: false,
    })
}

fn digest(body: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(body).into()
}
