//! Each service's OpenAPI 3.1 document, generated from the code: the
//! service's handlers (`#[utoipa::path]`) and the types they take and
//! answer (`utoipa::ToSchema`), the operational endpoints every service has
//! (this crate's), and on every operation what the runtime's layers add to
//! any handler: the request id and trace context headers, and the answers
//! of authentication (401, 403), the rate limit (429), the bound on
//! requests at once and the deadline (503), the body extractor (413, 415,
//! 422) and a path or query of the wrong form (400).
//!
//! The document is served at `GET /v1/openapi.json`, and as a page a person
//! reads at `GET /docs`; `schemas/openapi/<service>.json` is the same
//! document checked in, and each service's test fails when the two differ
//! (`make openapi` writes them).
//!
//! The page is rendered in `html`.

use std::sync::Arc;

use axum::{extract::State, response::IntoResponse, routing::get, Json, Router};
use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use omnisaga_auth::Scope;

use crate::{edge::http::ErrorBody, edge::routes::Listener};

mod html;

pub use html::page;

/// The operational endpoints every service serves.
#[derive(OpenApi)]
#[openapi(
    paths(
        crate::edge::health::healthz,
        crate::edge::health::readyz,
        crate::edge::scrape::scrape,
        crate::edge::consumers::list,
        crate::edge::dead_letters::list,
        crate::edge::dead_letters::show,
        crate::edge::dead_letters::replay,
        crate::edge::dead_letters::discard,
        crate::edge::dead_letters::skip::skip,
        crate::edge::dead_letters::redrive::redrive,
        crate::edge::audit::list,
        crate::edge::rebuilds::start,
        crate::edge::rebuilds::show,
        openapi_json,
        docs,
    ),
    components(schemas(ErrorBody))
)]
struct Operational;

/// How a client proves who it is, as the document states it.
const BEARER: &str = "A JWT signed by a key of the service's JWKS (AUTH_JWKS_FILE): EdDSA, RS256 or ES256 as the key pins; iss, aud, exp and nbf checked; the customer is the subject. Scopes in the space-separated `scope` claim: orders:read, orders:write (customers, their own orders only), analytics:read (analysts), stock:read and payment-methods:read (services), admin (operators: the admin endpoints; with orders:read, every customer's orders), reconcile:read (reconciliation: the invariants' counterexamples, read-only), stock:import (the stock import: goods received, and nothing else). No scope implies another. An operation's security names the scope it needs; one needing admin, stock:read, payment-methods:read, reconcile:read or stock:import is served on the admin listener (ADMIN_HTTP_ADDR, its servers), which only the cluster reaches.";

/// The paths the documents are served at, which need no token.
pub const OPEN_PATHS: [&str; 2] = ["/v1/openapi.json", "/docs"];

/// What a service says about itself on top of its handlers' document.
pub struct About {
    /// `order`, `payment`...
    pub service: &'static str,
    /// One sentence: what the API is for.
    pub description: &'static str,
    /// Its default port.
    pub port: u16,
}

/// `about`'s whole document: `own` (the service's `#[derive(OpenApi)]`) and
/// `more` (path items built in code, e.g. `batch::path_item`) with the
/// operational endpoints and the runtime's parameters and answers.
pub fn document(about: &About, own: utoipa::openapi::OpenApi, more: Vec<(&str, Value)>) -> Value {
    let mut doc = own;
    doc.merge(Operational::openapi());
    let mut doc = serde_json::to_value(&doc).expect("an OpenAPI document serializes");
    for (path, item) in more {
        doc["paths"][path] = item;
    }
    doc["info"] = json!({
        "title": format!("omnisaga {} API", about.service),
        "version": "1.0.0",
        "description": about.description,
    });
    doc["servers"] = json!([{"url": format!("http://127.0.0.1:{}", about.port)}]);
    doc["security"] = json!([{"bearer": []}]);
    doc["components"]["securitySchemes"] = json!({"bearer": {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": BEARER,
    }});
    if let Some(paths) = doc["paths"].as_object_mut() {
        for item in paths.values_mut() {
            for op in item.as_object_mut().into_iter().flat_map(|m| m.values_mut()) {
                complete(op);
                on_its_listener(op, about.port);
            }
        }
    }
    doc
}

/// The scope `op`'s security requirement names, if one.
pub fn scope_of(op: &Value) -> Option<Scope> {
    op["security"]
        .as_array()?
        .iter()
        .find_map(|req| req["bearer"].as_array()?.first()?.as_str()?.parse().ok())
}

/// An operation of the admin listener says so: its `servers` is that
/// listener (`ADMIN_HTTP_ADDR`, by default the service's port + 100).
fn on_its_listener(op: &mut Value, port: u16) {
    if scope_of(op).is_some_and(|scope| Listener::of(scope) == Listener::Admin) {
        op["servers"] = json!([{
            "url": format!("http://127.0.0.1:{}", crate::edge::routes::admin_addr(([127, 0, 0, 1], port).into()).port()),
            "description": "the admin listener (ADMIN_HTTP_ADDR), which only the cluster reaches",
        }]);
    }
}

/// One operation with the runtime's headers and answers added where the
/// handler did not state its own.
fn complete(op: &mut Value) {
    // `security(())`: no token needed, said as OpenAPI says it.
    let public = match op.get("security") {
        Some(Value::Array(reqs)) => reqs.iter().all(|r| r.as_object().is_some_and(Map::is_empty)),
        _ => false,
    };
    if public {
        op["security"] = json!([]);
    }
    let params = op
        .as_object_mut()
        .expect("an operation is an object")
        .entry("parameters")
        .or_insert_with(|| json!([]));
    for param in params.as_array_mut().into_iter().flatten() {
        no_control_characters(param);
    }
    for (name, description, schema) in [
        (
            "X-Request-Id",
            "Echoed back; generated when absent. Appears in logs, events and spans. A value that is not 1 to 128 visible ASCII characters is refused (400 invalid_request_id).",
            json!({"type": "string", "pattern": "^[!-~]{1,128}$"}),
        ),
        (
            "traceparent",
            "W3C trace context. A caller with a service identity (a token with a service scope: stock:read, payment-methods:read) continues that trace; any other request starts a trace of its own and links to it.",
            json!({"type": "string"}),
        ),
    ] {
        if let Some(list) = params.as_array_mut() {
            if !list.iter().any(|p| p["name"] == name) {
                list.push(json!({"name": name, "in": "header", "required": false,
                                 "description": description, "schema": schema}));
            }
        }
    }
    let has_body = op.get("requestBody").is_some();
    let responses = op["responses"]
        .as_object_mut()
        .expect("an operation has responses");
    let mut add = |status: &str, description: &str| {
        responses
            .entry(status)
            .or_insert_with(|| error_response(status, description));
    };
    add("500", "internal error (opaque)");
    add(
        "400",
        "bad_request: a path or query parameter of the wrong form or holding a control character, or an unknown query parameter; invalid_request_id: an X-Request-Id that is not 1 to 128 visible ASCII characters",
    );
    if public {
        return;
    }
    add(
        "401",
        "unauthorized: no bearer token, or one that does not verify (WWW-Authenticate says why)",
    );
    add(
        "403",
        "forbidden: the token lacks the scope this needs (WWW-Authenticate names it)",
    );
    add(
        "429",
        "rate_limited: this client's requests are over HTTP_RATE_LIMIT_PER_SECOND; Retry-After says when to come back",
    );
    add(
        "503",
        "unavailable (database down), overloaded (more than HTTP_MAX_CONCURRENT_REQUESTS at once, Retry-After: 1) or timeout (over HTTP_REQUEST_TIMEOUT_MS)",
    );
    if has_body {
        add("413", "payload_too_large: the body is over the limit");
        add(
            "415",
            "unsupported_media_type: the body is not of a type this operation takes (Content-Type)",
        );
        add(
            "422",
            "validation_failed or unknown_field: the body is of the wrong shape, a value out of range, or a field this operation does not take",
        );
    }
}

/// What every service refuses in a path or query parameter
/// ([`crate::edge::input`]): a control character (C0, DEL, C1).
pub const NO_CONTROL_CHARACTERS: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";

/// A free-form string parameter of the path or query said to take no
/// control character, as the middleware refuses one; parameters of a
/// pattern, format or set of values are narrower already.
fn no_control_characters(param: &mut Value) {
    let free = matches!(param["in"].as_str(), Some("query" | "path"))
        && param["schema"]["type"] == "string"
        && ["pattern", "format", "enum"]
            .iter()
            .all(|k| param["schema"].get(k).is_none());
    if free {
        param["schema"]["pattern"] = json!(NO_CONTROL_CHARACTERS);
    }
}

/// An error answer of `status`: `description` and the error envelope (with
/// `Retry-After` on a 429).
pub(crate) fn error_response(status: &str, description: &str) -> Value {
    let mut response = json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    });
    if status == "429" {
        response["headers"] = json!({"Retry-After": {
            "description": "seconds to wait", "schema": {"type": "integer", "minimum": 1},
        }});
    }
    response
}

/// `GET /v1/openapi.json` and `GET /docs` for `document`; neither needs a
/// token (the service lists them as open).
pub fn routes(document: Value) -> Router {
    Router::new()
        .route("/v1/openapi.json", get(openapi_json))
        .route("/docs", get(docs))
        .with_state(Arc::new(document))
}

/// This API's OpenAPI document
///
/// The OpenAPI 3.1 document of this service's API, generated from its code (`schemas/openapi/<service>.json` is the same).
#[utoipa::path(get, path = "/v1/openapi.json", tag = "operations", security(()),
    responses((status = 200, description = "the OpenAPI 3.1 document", body = Object)))]
pub(crate) async fn openapi_json(State(doc): State<Arc<Value>>) -> impl IntoResponse {
    Json(doc.as_ref().clone())
}

/// This API's documentation page
///
/// The OpenAPI document as a page to read: every operation with its parameters, body, answers and the scope it needs, then every schema.
#[utoipa::path(get, path = "/docs", tag = "operations", security(()),
    responses((status = 200, description = "an HTML page", body = String, content_type = "text/html")))]
pub(crate) async fn docs(State(doc): State<Arc<Value>>) -> axum::response::Response {
    crate::edge::page::html(page(&doc), &crate::edge::page::Nonce::new())
}

#[cfg(test)]
mod tests;
