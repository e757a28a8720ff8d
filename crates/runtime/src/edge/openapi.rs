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

use std::sync::Arc;

use axum::{extract::State, response::IntoResponse, routing::get, Json, Router};
use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use omnisaga_auth::Scope;

use crate::{edge::http::ErrorBody, edge::routes::Listener};

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
        crate::edge::audit::list,
        openapi_json,
        docs,
    ),
    components(schemas(ErrorBody))
)]
struct Operational;

/// How a client proves who it is, as the document states it.
const BEARER: &str = "A JWT signed by a key of the service's JWKS (AUTH_JWKS_FILE): EdDSA, RS256 or ES256 as the key pins; iss, aud, exp and nbf checked; the customer is the subject. Scopes in the space-separated `scope` claim: orders:read, orders:write (customers, their own orders only), analytics:read (analysts), stock:read and payment-methods:read (services), admin (operators: the admin endpoints; with orders:read, every customer's orders), reconcile:read (reconciliation: the invariants' counterexamples, read-only). No scope implies another. An operation's security names the scope it needs; one needing admin, stock:read, payment-methods:read or reconcile:read is served on the admin listener (ADMIN_HTTP_ADDR, its servers), which only the cluster reaches.";

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

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A schema in one line where it is a reference or a plain type, else as JSON.
fn schema_html(schema: &Value) -> String {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!(r##"<a href="#schema-{0}">{0}</a>"##, esc(name));
    }
    format!(
        "<pre>{}</pre>",
        esc(&serde_json::to_string_pretty(schema).unwrap_or_default())
    )
}

/// The document as HTML: no script, nothing fetched from elsewhere.
pub fn page(doc: &Value) -> String {
    let title = doc["info"]["title"].as_str().unwrap_or("API");
    let mut out = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#222}}\
         section.op{{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.5rem 1rem}}\
         .method{{font-weight:bold;text-transform:uppercase;display:inline-block;min-width:4rem}}\
         code,pre{{background:#f6f6f6}}pre{{padding:.5rem;overflow:auto}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ddd;padding:.2rem .5rem;text-align:left;vertical-align:top}}\
         </style></head><body><h1>{t}</h1><p>{d}</p><p>Servers: {s}. The document itself: \
         <a href=\"/v1/openapi.json\">/v1/openapi.json</a>.</p><h2>Operations</h2>",
        t = esc(title),
        d = esc(doc["info"]["description"].as_str().unwrap_or("")),
        s = doc["servers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["url"].as_str())
            .map(|u| format!("<code>{}</code>", esc(u)))
            .collect::<Vec<_>>()
            .join(", "),
    );
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            out.push_str(&operation_html(path, method, op));
        }
    }
    out.push_str("<h2>Schemas</h2>");
    for (name, schema) in doc["components"]["schemas"].as_object().into_iter().flatten() {
        out.push_str(&format!(
            "<section id=\"schema-{n}\"><h3>{n}</h3>{s}</section>",
            n = esc(name),
            s = schema_html(schema)
        ));
    }
    out.push_str("</body></html>");
    out
}

fn operation_html(path: &str, method: &str, op: &Value) -> String {
    let mut out = format!(
        "<section class=\"op\"><h3><span class=\"method\">{m}</span> <code>{p}</code>{dep}</h3><p><b>{s}</b></p><p>{d}</p>",
        m = esc(method),
        p = esc(path),
        dep = if op["deprecated"] == true { " (deprecated)" } else { "" },
        s = esc(op["summary"].as_str().unwrap_or("")),
        d = esc(op["description"].as_str().unwrap_or("")),
    );
    let scopes: Vec<String> = op["security"]
        .as_array()
        .map(|reqs| {
            reqs.iter()
                .flat_map(|r| r["bearer"].as_array().into_iter().flatten())
                .filter_map(Value::as_str)
                .map(|s| format!("<code>{}</code>", esc(s)))
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&match op["security"].as_array() {
        Some(reqs) if reqs.is_empty() => "<p>No token needed.</p>".to_owned(),
        _ if scopes.is_empty() => "<p>Needs a bearer token.</p>".to_owned(),
        _ => format!("<p>Needs a bearer token with scope {}.</p>", scopes.join(" or ")),
    });
    if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
        out.push_str("<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>required</th><th>schema</th><th>description</th></tr>");
        for p in params {
            out.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(p["name"].as_str().unwrap_or("")),
                esc(p["in"].as_str().unwrap_or("")),
                p["required"] == true,
                schema_html(&p["schema"]),
                esc(p["description"].as_str().unwrap_or("")),
            ));
        }
        out.push_str("</table>");
    }
    if let Some(body) = op.get("requestBody") {
        out.push_str("<h4>Body</h4>");
        for (content_type, media) in body["content"].as_object().into_iter().flatten() {
            out.push_str(&format!(
                "<p><code>{}</code></p>{}",
                esc(content_type),
                schema_html(&media["schema"])
            ));
        }
    }
    out.push_str("<h4>Answers</h4><table><tr><th>status</th><th>description</th><th>body</th></tr>");
    for (status, response) in op["responses"].as_object().into_iter().flatten() {
        let body = response["content"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(ct, media)| format!("<code>{}</code> {}", esc(ct), schema_html(&media["schema"])))
            .collect::<Vec<_>>()
            .join("<br>");
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(status),
            esc(response["description"].as_str().unwrap_or("")),
            body
        ));
    }
    out.push_str("</table></section>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment_like() -> Value {
        #[derive(OpenApi)]
        #[openapi()]
        struct Nothing;
        document(
            &About {
                service: "test",
                description: "A test API.",
                port: 1,
            },
            Nothing::openapi(),
            vec![],
        )
    }

    #[test]
    fn every_service_document_has_the_operational_endpoints_with_the_runtimes_answers() {
        let doc = payment_like();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["title"], "omnisaga test API");
        for path in [
            "/healthz",
            "/readyz",
            "/metrics",
            "/v1/admin/consumers",
            "/v1/admin/audit",
        ] {
            assert!(doc["paths"][path]["get"].is_object(), "{path}");
        }
        let health = &doc["paths"]["/healthz"]["get"];
        assert_eq!(health["security"], json!([]));
        let codes = |op: &Value| {
            let mut codes: Vec<String> = op["responses"].as_object().unwrap().keys().cloned().collect();
            codes.sort();
            codes
        };
        assert_eq!(codes(health), ["200", "400", "500", "503"]);
        let replay = &doc["paths"]["/v1/admin/dead-letters/replay"]["post"];
        assert_eq!(replay["security"], json!([{"bearer": ["admin"]}]));
        assert_eq!(
            codes(replay),
            ["200", "400", "401", "403", "413", "415", "422", "429", "500", "503"]
        );
        let names: Vec<&str> = replay["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(names, ["X-Request-Id", "traceparent"]);
        assert_eq!(
            doc["paths"]["/v1/admin/audit"]["get"]["responses"]["422"]["description"],
            "validation_failed: limit out of range",
            "a handler's own answer is kept"
        );
        assert!(doc["components"]["schemas"]["Error"].is_object());
        let audit = doc["paths"]["/v1/admin/audit"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let schema = |name: &str| &audit.iter().find(|p| p["name"] == name).unwrap()["schema"];
        assert_eq!(schema("method")["pattern"], NO_CONTROL_CHARACTERS);
        assert_eq!(
            schema("since")["pattern"],
            Value::Null,
            "a date-time is narrower already"
        );
    }

    #[test]
    fn the_page_shows_every_operation_and_schema_escaped() {
        let doc = payment_like();
        let html = page(&doc);
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                assert!(
                    html.contains(&format!(
                        "<span class=\"method\">{method}</span> <code>{path}</code>"
                    )),
                    "{method} {path}"
                );
            }
        }
        assert!(html.contains("id=\"schema-Error\""));
        assert!(!html.contains("<script"));
        let mut hostile = doc.clone();
        hostile["info"]["description"] = json!("<script>alert(1)</script>");
        assert!(page(&hostile).contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }
}
