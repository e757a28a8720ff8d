//! The document every service gets, and its page.

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
