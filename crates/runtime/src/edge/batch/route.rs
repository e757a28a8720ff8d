//! The route that imports batches, and its OpenAPI path item.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, DefaultBodyLimit, State},
    http::{HeaderMap, StatusCode},
    routing::post,
    Json,
};
use serde_json::{json, Value};
use sqlx::PgPool;

use super::{import, read::too_large, Importer, Outcome, MAX_BYTES, MAX_LISTED, MAX_ROWS};
use crate::{edge::auth::Caller, edge::http::ApiError, edge::openapi::error_response, edge::routes::Routes};

/// The OpenAPI path item of [`routes`] for `I`: the operation, its
/// `Batch-Id`, the three body types with `I::Row` as each row's schema, and
/// the answers [`import`] gives. `openapi::document` completes it.
pub fn path_item<I: Importer>() -> Value {
    use utoipa::PartialSchema;
    let mut outcome = serde_json::to_value(Outcome::schema()).expect("a schema serializes");
    outcome["properties"]["kind"] = json!({"const": I::KIND});
    let row = serde_json::to_value(I::Row::schema()).expect("a schema serializes");
    let documented: std::collections::BTreeSet<&str> = row["properties"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.keys().map(String::as_str))
        .collect();
    assert_eq!(
        documented,
        I::FIELDS.iter().copied().collect(),
        "the {} import's Row documents other fields than its FIELDS",
        I::KIND
    );
    json!({"post": {
        "tags": ["imports"],
        "summary": format!("Import {} rows in one batch, applied whole or not at all ({})", I::KIND, I::SCOPE),
        "description": format!(
            "{} The body is CSV with a header line (text/csv) or JSON lines (application/x-ndjson, \
             application/jsonl), a row per line. Every row is checked first; when any row has a problem \
             nothing is applied and the 422 lists each problem (line, field, problem; line 1 is a CSV \
             file's header). Otherwise every row is applied in one transaction. The same Batch-Id sent \
             again with the same body answers 200 with replayed: true and applies nothing; with another \
             body, 409. At most {} MiB and {} rows.",
            I::DESCRIPTION, MAX_BYTES >> 20, MAX_ROWS
        ),
        "operationId": format!("import_{}", I::KIND),
        "security": [{"bearer": [I::SCOPE.as_str()]}],
        "parameters": [{
            "name": "Batch-Id", "in": "header", "required": true,
            "description": "Names the batch: applied once, whatever number of times it is sent.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[!-~]+$"},
        }],
        "requestBody": {"required": true, "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/x-ndjson": {"schema": {"type": "string"}, "x-row-schema": row},
            "application/jsonl": {"schema": {"type": "string"}},
        }},
        "responses": {
            "200": {"description": "applied now, or before under this Batch-Id with this body (replayed)",
                    "content": {"application/json": {"schema": outcome}}},
            "400": error_response("400", "missing_batch_id, invalid_batch_id (1 to 128 visible ASCII characters) or unreadable_batch (not UTF-8, a CSV without a header, a line that is no JSON object)"),
            "409": error_response("409", "batch_id_reused: this Batch-Id was applied with another body"),
            "413": error_response("413", "payload_too_large: over the size or row limit"),
            "422": error_response("422", &format!("validation_failed: details.errors lists the problems as {{line, field, problem}} (the first {MAX_LISTED}; details.problems counts them all); nothing was applied")),
        },
    }})
}

/// The route `POST path` importing batches with `importer`, for holders of
/// its scope (`I::SCOPE`: operators' `admin` unless it has its own), taking
/// files of up to [`MAX_BYTES`].
pub fn routes<I: Importer + 'static>(path: &str, pool: PgPool, importer: I) -> Routes {
    Routes::new()
        .route(
            path,
            I::SCOPE,
            post(handle::<I>).layer(DefaultBodyLimit::max(MAX_BYTES)),
        )
        .with_state((pool, Arc::new(importer)))
}

async fn handle<I: Importer + 'static>(
    State((pool, importer)): State<(PgPool, Arc<I>)>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Outcome>, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(format!("a batch is at most {} MiB", MAX_BYTES >> 20))
        } else {
            ApiError::bad_request("bad_request", e.body_text())
        }
    })?;
    Ok(Json(
        import(&pool, &*importer, &headers, &body, caller.subject()).await?,
    ))
}
