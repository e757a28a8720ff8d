//! The `Idempotency-Key` header of the writing routes: reading it, hashing the
//! request it comes with, and the error for a key reused with another body.

use axum::http::{HeaderMap, StatusCode};
use omnisaga_runtime::http::ApiError;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The request's `Idempotency-Key`: required, 1 to 128 visible ASCII characters.
pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let key = headers.get("idempotency-key").ok_or_else(|| {
        ApiError::bad_request(
            "missing_idempotency_key",
            "the Idempotency-Key header is required",
        )
    })?;
    key.to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 128 && k.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 128 visible ASCII characters",
            )
        })
}

/// The SHA-256 of the request body's JSON, stored with the key so a replay
/// with another body is told apart.
pub fn request_hash(req: &impl Serialize) -> Result<Vec<u8>, ApiError> {
    Ok(Sha256::digest(serde_json::to_vec(req).map_err(ApiError::internal)?).to_vec())
}

/// The key was claimed by a request with a different body.
pub(super) fn idempotency_key_reused() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "this Idempotency-Key was already used with a different request body",
    )
}
