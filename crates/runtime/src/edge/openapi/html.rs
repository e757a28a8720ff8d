//! The OpenAPI document as an HTML page (`GET /docs`): every operation
//! with its parameters, body, answers and scope, then every schema, all
//! text escaped.

use serde_json::Value;

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
