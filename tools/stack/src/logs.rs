//! What the services' JSON logs must hold, checked by the e2e tests: every
//! line is a JSON object; a line about an order carries the trace it belongs
//! to; the order service's "order placed" line carries the order's trace id,
//! a span id and the request id; and no line holds a payment token or a
//! customer's name or address.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

/// The log lines of one service, each parsed.
pub fn read(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("Failed to read {}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| Value::String(l.to_owned())))
        .collect())
}

/// An order as the API answered it: its id and trace id.
pub struct PlacedOrder<'a> {
    pub order_id: &'a str,
    pub trace_id: &'a str,
}

/// What is wrong with `logs` (service name and its lines), or nothing.
/// `secrets` are strings no line may contain (tokens, names, addresses).
pub fn problems(logs: &[(&str, Vec<Value>)], orders: &[PlacedOrder<'_>], secrets: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    for (service, lines) in logs {
        for line in lines {
            let Some(fields) = line.as_object() else {
                problems.push(format!("{service}: a line is not a JSON object: {line}"));
                continue;
            };
            let text = line.to_string();
            if let Some(secret) = secrets.iter().find(|s| text.contains(*s)) {
                problems.push(format!("{service}: a line holds {secret:?}: {text}"));
            }
            let about_order = fields
                .get("order.id")
                .and_then(Value::as_str)
                .is_some_and(|o| !o.is_empty());
            if about_order && !fields.contains_key("trace_id") {
                problems.push(format!(
                    "{service}: a line about an order has no trace_id: {text}"
                ));
            }
        }
    }
    let order_lines = logs
        .iter()
        .find(|(s, _)| *s == "order")
        .map(|(_, l)| l.as_slice())
        .unwrap_or_default();
    for order in orders {
        let placed = order_lines
            .iter()
            .find(|l| l["message"] == "order placed" && l["order.id"] == order.order_id);
        match placed {
            None => problems.push(format!("order: no \"order placed\" line for {}", order.order_id)),
            Some(l) if l["trace_id"] != order.trace_id => problems.push(format!(
                "order: the line of {} has trace_id {} instead of {}",
                order.order_id, l["trace_id"], order.trace_id
            )),
            Some(l) if l["span_id"].as_str().is_none_or(str::is_empty) => {
                problems.push(format!("order: the line of {} has no span_id", order.order_id))
            }
            Some(l) if l["request.id"].as_str().is_none_or(str::is_empty) => {
                problems.push(format!("order: the line of {} has no request.id", order.order_id))
            }
            Some(_) => {}
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ORDER: PlacedOrder<'static> = PlacedOrder {
        order_id: "o-1",
        trace_id: "t-1",
    };

    fn placed() -> Value {
        json!({"message": "order placed", "order.id": "o-1", "trace_id": "t-1", "span_id": "s-1", "request.id": "r-1"})
    }

    #[test]
    fn whole_logs_have_no_problems() {
        let logs = [
            ("order", vec![placed()]),
            ("payment", vec![json!({"message": "x"})]),
        ];
        assert_eq!(problems(&logs, &[ORDER], &["tok_visa"]), Vec::<String>::new());
    }

    #[test]
    fn a_missing_request_id_a_wrong_trace_or_a_leaked_token_is_found() {
        let mut no_request = placed();
        no_request["request.id"] = json!("");
        assert_eq!(problems(&[("order", vec![no_request])], &[ORDER], &[]).len(), 1);
        let mut other_trace = placed();
        other_trace["trace_id"] = json!("t-2");
        assert_eq!(problems(&[("order", vec![other_trace])], &[ORDER], &[]).len(), 1);
        let leaked = json!({"message": "charging tok_visa"});
        let logs = [("order", vec![placed()]), ("payment", vec![leaked])];
        assert_eq!(problems(&logs, &[ORDER], &["tok_visa"]).len(), 1);
    }

    #[test]
    fn a_line_about_an_order_without_a_trace_or_not_json_is_found() {
        let untraced = json!({"message": "picked", "order.id": "o-1"});
        let logs = [
            ("order", vec![placed()]),
            ("warehouse", vec![untraced, json!("panicked at")]),
        ];
        assert_eq!(problems(&logs, &[ORDER], &[]).len(), 2);
        assert_eq!(
            problems(&[("order", vec![])], &[ORDER], &[]).len(),
            1,
            "no placed line"
        );
    }
}
