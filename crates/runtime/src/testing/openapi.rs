//! Checking a real response against the service's OpenAPI document in
//! `schemas/openapi/`: the schema documented for a path, method and status,
//! validated with a JSON Schema validator (OpenAPI 3.1 schemas are JSON
//! Schema 2020-12), so a document that drifts from the code fails a test.

use anyhow::{anyhow, Context, Result};
use serde_json::{json, Value};

/// The OpenAPI document of `service`.
pub fn document(service: &str) -> Result<Value> {
    let path = format!(
        "{}/../../schemas/openapi/{service}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    serde_json::from_str(&text).with_context(|| format!("{path} is not JSON"))
}

/// Where `generated` and the checked-in document of `service` first differ
/// (a JSON pointer and both values), or `None` when they are the same.
/// With `OMNISAGA_WRITE_OPENAPI=1` (`make openapi`) the file is written from
/// `generated` first, so it is what the code says.
pub fn checked_in_differs(service: &str, generated: &Value) -> Result<Option<String>> {
    let path = format!(
        "{}/../../schemas/openapi/{service}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    if std::env::var_os("OMNISAGA_WRITE_OPENAPI").is_some() {
        let text = serde_json::to_string_pretty(generated)? + "\n";
        std::fs::write(&path, text).with_context(|| format!("writing {path}"))?;
    }
    Ok(first_difference("", &document(service)?, generated))
}

/// Fails, naming the first difference and `make openapi`, unless the
/// checked-in document of `service` is `generated` (written first with
/// `OMNISAGA_WRITE_OPENAPI=1`).
pub fn assert_checked_in(service: &str, generated: &Value) {
    let differs = checked_in_differs(service, generated).unwrap();
    assert_eq!(
        differs, None,
        "schemas/openapi/{service}.json is not what the code says: run `make openapi`"
    );
}

fn first_difference(at: &str, file: &Value, code: &Value) -> Option<String> {
    match (file, code) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter().find_map(|k| {
                let here = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                first_difference(
                    &here,
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                )
            })
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(&format!("{at}/{i}"), x, y)),
        _ if file == code => None,
        _ => Some(format!("at {at}: the file has {file}, the code says {code}")),
    }
}

/// Checks that `body` matches the JSON schema `service`'s document gives
/// for `method` on `path` (as written in the document, e.g.
/// `/v1/orders/{id}/stages`) answering `status`; the error lists every
/// mismatch with where it is.
pub fn check_response(service: &str, method: &str, path: &str, status: u16, body: &Value) -> Result<()> {
    let doc = document(service)?;
    let pointer = format!(
        "/paths/{}/{method}/responses/{status}/content/application~1json/schema",
        path.replace('~', "~0").replace('/', "~1")
    );
    let schema = doc
        .pointer(&pointer)
        .with_context(|| format!("{service}.json documents no JSON {status} for {method} {path}"))?;
    // `$ref`s point into the document's components: keep them beside the schema.
    let rooted = json!({ "allOf": [schema], "components": doc["components"] });
    let validator = jsonschema::validator_for(&rooted).map_err(|e| anyhow!("{service}.json: {e}"))?;
    let problems: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(
            "{method} {path} {status} does not match {service}.json:\n  {}\nbody: {body}",
            problems.join("\n  ")
        ))
    }
}

/// Asks `service`'s admin listener at `admin_url` for its reconciliation
/// (`POST /v1/admin/reconcile`) with a `reconcile:read` token, checks the
/// answer against the service's OpenAPI document and returns its status
/// and body.
pub async fn reconcile(service: &str, admin_url: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let resp = super::auth::client_with(&super::auth::operator_token(&[
        omnisaga_auth::Scope::ReconcileRead,
    ]))
    .post(format!("{admin_url}/v1/admin/reconcile"))
    .json(body)
    .send()
    .await
    .expect("request sent");
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.expect("a JSON body");
    check_response(service, "post", "/v1/admin/reconcile", status, &body)
        .expect("the answer is the documented one");
    (status, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_difference_between_two_documents_is_named_by_its_pointer() {
        let file = json!({"paths": {"/v1/a": {"get": {"summary": "A"}}}, "tags": [1, 2]});
        assert_eq!(first_difference("", &file, &file), None);
        let code = json!({"paths": {"/v1/a": {"get": {"summary": "B"}}}, "tags": [1, 2]});
        assert_eq!(
            first_difference("", &file, &code).unwrap(),
            r#"at /paths/~1v1~1a/get/summary: the file has "A", the code says "B""#
        );
        let code = json!({"paths": {"/v1/a": {"get": {"summary": "A"}}}, "tags": [1]});
        assert!(first_difference("", &file, &code)
            .unwrap()
            .starts_with("at /tags:"));
    }

    #[test]
    fn a_response_that_drifts_from_its_schema_is_refused_with_where() {
        let error = json!({"code": "not_found", "message": "no such order", "request_id": "r-1"});
        check_response("analytics", "get", "/v1/orders/{id}/stages", 404, &error).unwrap();
        let drifted = json!({"code": 404, "message": "no such order"});
        let problem = check_response("analytics", "get", "/v1/orders/{id}/stages", 404, &drifted)
            .unwrap_err()
            .to_string();
        assert!(problem.contains("request_id"), "{problem}");
        assert!(problem.contains("/code"), "{problem}");
        assert!(check_response("analytics", "get", "/v1/nowhere", 200, &error).is_err());
    }
}
