//! Every route needs the scope its OpenAPI document names, generated from
//! the document: for each operation with a bearer requirement, a token
//! holding every scope but that one gets 403, a token holding only that one
//! does not, and the other listener does not serve it (404). A service's
//! test calls [`assert_every_operation_needs_its_scope`] with its running
//! instance, so a new route is covered without a test of its own.

use omnisaga_auth::Scope;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::auth::token;
use crate::{edge::openapi::scope_of, edge::routes::Listener};

/// One operation of a document, with the scope it needs.
#[derive(Debug, Clone)]
pub struct Operation {
    pub method: Method,
    /// The path with its parameters filled in (a fresh UUID, or 1 for an integer).
    pub path: String,
    pub scope: Scope,
}

/// The operations of `document` that need a scope.
pub fn operations(document: &Value) -> Vec<Operation> {
    let mut found = Vec::new();
    for (template, item) in document["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            if let Some(scope) = scope_of(op) {
                found.push(Operation {
                    method,
                    path: filled(template, op),
                    scope,
                });
            }
        }
    }
    found
}

fn filled(template: &str, op: &Value) -> String {
    let mut path = template.to_owned();
    while let (Some(start), Some(end)) = (path.find('{'), path.find('}')) {
        let name = &path[start + 1..end];
        let integer = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["name"] == name && p["in"] == "path" && p["schema"]["type"] == "integer");
        let value = if integer {
            "1".to_owned()
        } else {
            uuid::Uuid::new_v4().to_string()
        };
        path.replace_range(start..=end, &value);
    }
    path
}

/// Calls every operation of `document` on the service listening at
/// `public` and `admin` (base URLs) and panics, naming each operation that
/// failed, unless: without its scope (every other scope held) it answers
/// 403; with only its scope it answers anything but 401 and 403; and the
/// listener its scope does not belong to answers 404. Returns how many
/// operations it checked.
pub async fn assert_every_operation_needs_its_scope(document: &Value, public: &str, admin: &str) -> usize {
    let http = reqwest::Client::new();
    let operations = operations(document);
    let mut failures = Vec::new();
    for op in &operations {
        let (own, other) = match Listener::of(op.scope) {
            Listener::Public => (public, admin),
            Listener::Admin => (admin, public),
        };
        let all_but: Vec<Scope> = Scope::ALL.into_iter().filter(|s| *s != op.scope).collect();
        let call = |base: &str, scopes: &[Scope]| {
            http.request(op.method.clone(), format!("{base}{}", op.path))
                .bearer_auth(token("scope-test", scopes))
                .send()
        };
        let status = |r: reqwest::Result<reqwest::Response>| r.map(|r| r.status()).expect("request sent");
        let without = status(call(own, &all_but).await);
        if without != StatusCode::FORBIDDEN {
            failures.push(format!(
                "{} {} without {}: {without}, not 403",
                op.method, op.path, op.scope
            ));
        }
        let with = status(call(own, &[op.scope]).await);
        if with == StatusCode::FORBIDDEN || with == StatusCode::UNAUTHORIZED {
            failures.push(format!("{} {} with {}: {with}", op.method, op.path, op.scope));
        }
        let elsewhere = status(call(other, &Scope::ALL).await);
        if elsewhere != StatusCode::NOT_FOUND {
            failures.push(format!(
                "{} {} on the other listener ({other}): {elsewhere}, not 404",
                op.method, op.path
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "routes and their scopes:\n{}",
        failures.join("\n")
    );
    operations.len()
}
