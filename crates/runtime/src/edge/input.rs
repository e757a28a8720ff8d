//! What the request middleware ([`crate::edge::context::request_context`]) refuses
//! before any handler sees a request: an `X-Request-Id` that is not 1 to
//! 128 visible ASCII characters (400 `invalid_request_id`: refused, not
//! replaced, as the OpenAPI documents say), and a path or query parameter
//! holding a control character (400 `bad_request`), percent-encoded or not:
//! no field of any API takes one, and PostgreSQL cannot store a NUL.
//!
//! The other headers the services read are held to their own forms where
//! they are read (`Idempotency-Key` and `Batch-Id` visible ASCII, a bearer
//! token, `traceparent` as the propagator takes it); the HTTP parser itself
//! refuses NUL, CR and LF in any header.

use axum::http::{HeaderMap, Uri};

use crate::edge::http::ApiError;

/// The request's `X-Request-Id`: none, a valid one, or the refusal of an
/// invalid one.
pub fn request_id(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("x-request-id") else {
        return Ok(None);
    };
    let v = value.as_bytes();
    if v.is_empty() || v.len() > 128 || !v.iter().all(u8::is_ascii_graphic) {
        return Err(ApiError::bad_request(
            "invalid_request_id",
            "X-Request-Id must be 1 to 128 visible ASCII characters",
        ));
    }
    Ok(Some(String::from_utf8_lossy(v).into_owned()))
}

/// The refusal of a path or query parameter holding a control character.
pub fn control_character(uri: &Uri) -> Option<ApiError> {
    if has_control(uri.path()) {
        return Some(ApiError::bad_request(
            "bad_request",
            "the path holds a control character",
        ));
    }
    let query = uri.query().unwrap_or_default();
    let name = query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (has_control(name) || has_control(value))
            .then(|| String::from_utf8_lossy(&decoded(name)).into_owned())
    })?;
    Some(ApiError::bad_request(
        "bad_request",
        format!("query parameter {name:?} holds a control character"),
    ))
}

/// Whether `s`, percent-decoded, holds a control character (C0, DEL or C1).
fn has_control(s: &str) -> bool {
    String::from_utf8_lossy(&decoded(s)).chars().any(char::is_control)
}

/// `s` with its `%XX` escapes decoded (a `%` without two hex digits kept).
fn decoded(s: &str) -> Vec<u8> {
    let (bytes, mut out, mut i) = (s.as_bytes(), Vec::with_capacity(s.len()), 0);
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(b) if bytes[i] == b'%' => {
                out.push(b);
                i += 3;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn refused(uri: &str) -> Option<String> {
        control_character(&uri.parse().unwrap()).map(|e| format!("{} {}", e.code, e.message))
    }

    #[test]
    fn a_control_character_in_any_query_parameter_or_the_path_is_refused() {
        for uri in [
            "/v1/admin/audit?method=a%00b",
            "/v1/admin/audit?limit=5&route=%0a",
            "/v1/orders?cursor=%7F",
            "/v1/orders?cursor=%C2%85",
            "/v1/stock/a%00b",
            "/v1/x?a%01=1",
        ] {
            let why = refused(uri).unwrap_or_else(|| panic!("{uri} was let through"));
            assert!(why.starts_with("bad_request "), "{why}");
        }
        assert_eq!(
            refused("/v1/admin/audit?limit=5&method=a%00b").unwrap(),
            r#"bad_request query parameter "method" holds a control character"#
        );
    }

    #[test]
    fn ordinary_parameters_pass() {
        for uri in [
            "/v1/orders",
            "/v1/orders?cursor=&limit=5",
            "/v1/admin/audit?method=POST&route=%2Fv1%2Forders&q=caf%C3%A9+au+lait",
            "/v1/x?broken=%zz&trailing=%",
        ] {
            assert_eq!(refused(uri), None, "{uri}");
        }
    }

    #[test]
    fn a_request_id_is_1_to_128_visible_ascii_characters_or_refused() {
        let with = |v: &[u8]| {
            let mut h = HeaderMap::new();
            h.insert("x-request-id", HeaderValue::from_bytes(v).unwrap());
            request_id(&h).map_err(|e| e.code)
        };
        assert_eq!(request_id(&HeaderMap::new()).map_err(|e| e.code), Ok(None));
        assert_eq!(with(b"req-1"), Ok(Some("req-1".to_owned())));
        assert_eq!(with(&[b'a'; 128]), Ok(Some("a".repeat(128))));
        for bad in [
            &[b'a'; 129][..],
            b"",
            b"two words",
            b"tab\there",
            "caf\u{e9}".as_bytes(),
        ] {
            assert_eq!(with(bad), Err("invalid_request_id"), "{bad:?}");
        }
    }
}
