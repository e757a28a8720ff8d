//! The trace checks on small hand-built Jaeger JSON traces: a whole one
//! passes, and each way a hop can break is named.

use serde_json::{json, Value};

use super::*;

const ORDER: &str = "0190c6a8-5b1e-7c3a-9a41-6f1d2e3c4b5a";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const OTHER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

fn catalog() -> Catalog {
    Catalog::under(omnisaga_runtime::catalog::DEFAULT_PREFIX)
}

/// A Jaeger JSON trace under construction.
struct Trace {
    id: &'static str,
    spans: Vec<Value>,
}

impl Trace {
    fn new(id: &'static str) -> Self {
        Self {
            id,
            spans: Vec::new(),
        }
    }

    /// Adds a span and returns its id.
    fn add(&mut self, service: &str, name: &str, parent: Option<&str>, order: Option<&str>) -> String {
        let id = format!("{}{:08x}", &self.id[..8], self.spans.len() + 1);
        let references = parent.map(|p| json!([{"refType": "CHILD_OF", "traceID": self.id, "spanID": p}]));
        let tags: Vec<Value> = order
            .map(|o| json!({"key": ORDER_ID, "type": "string", "value": o}))
            .into_iter()
            .collect();
        self.spans.push(json!({
            "traceID": self.id, "spanID": id, "operationName": name, "references": references,
            "tags": tags, "logs": [], "processID": format!("{service}-1"), "warnings": null,
        }));
        id
    }

    fn find(&mut self, service: &str, name: &str) -> &mut Value {
        let process = format!("{service}-1");
        self.spans
            .iter_mut()
            .find(|s| s["processID"] == process.as_str() && s["operationName"] == name)
            .unwrap_or_else(|| panic!("no {name:?} of {service}"))
    }

    fn id_of(&mut self, service: &str, name: &str) -> String {
        self.find(service, name)["spanID"].as_str().unwrap().to_owned()
    }

    fn reparent(&mut self, service: &str, name: &str, parent: Option<&str>) {
        let id = self.id;
        self.find(service, name)["references"] = parent.map_or(
            Value::Null,
            |p| json!([{"refType": "CHILD_OF", "traceID": id, "spanID": p}]),
        );
    }

    fn remove(&mut self, service: &str, name: Option<&str>) {
        let process = format!("{service}-1");
        self.spans
            .retain(|s| s["processID"] != process.as_str() || name.is_some_and(|n| s["operationName"] != n));
    }

    /// The trace as the query API serves it.
    fn json(&self) -> Value {
        let processes: serde_json::Map<String, Value> = self
            .spans
            .iter()
            .map(|s| {
                let key = s["processID"].as_str().unwrap();
                let service = key.trim_end_matches("-1");
                (
                    key.to_owned(),
                    json!({"key": key, "serviceName": service, "tags": []}),
                )
            })
            .collect();
        json!({"traceID": self.id, "spans": self.spans, "processes": processes})
    }
}

/// The whole happy path: the request, then on each topic one record
/// published by its owner (under the owner's first span) and read by every
/// consumer.
fn whole(catalog: &Catalog) -> Trace {
    let mut trace = Trace::new(TRACE);
    let root = trace.add("order", ROOT, None, None);
    for topic in &catalog.topics {
        let process = format!("{}-1", topic.owner);
        let from = trace
            .spans
            .iter()
            .find(|s| s["processID"] == process.as_str())
            .map_or(root.clone(), |s| s["spanID"].as_str().unwrap().to_owned());
        let publish = trace.add(
            &topic.owner,
            &format!("send {}", topic.name),
            Some(&from),
            Some(ORDER),
        );
        for consumer in &topic.consumers {
            trace.add(
                consumer,
                &format!("process {}", topic.name),
                Some(&publish),
                Some(ORDER),
            );
        }
    }
    // Payment asks the order service for the payment method, in the trace.
    let asking = trace
        .spans
        .iter()
        .find(|s| s["processID"] == "payment-1")
        .map(|s| s["spanID"].as_str().unwrap().to_owned());
    let call = trace.add("payment", PAYMENT_METHODS, asking.as_deref(), None);
    trace.add("order", PAYMENT_METHODS, Some(&call), None);
    trace
}

fn problems(trace: &Trace) -> Vec<String> {
    trace_problems(&trace.json(), ORDER, &catalog())
}

fn assert_named(problems: &[String], expected: &str) {
    assert!(
        problems.iter().any(|p| p == expected),
        "{expected:?} is not among {problems:#?}"
    );
}

#[test]
fn the_catalog_names_the_five_services() {
    let catalog = catalog();
    let services: Vec<&str> = catalog.services().into_iter().collect();
    assert_eq!(
        services,
        ["analytics", "notification", "order", "payment", "warehouse"]
    );
}

#[test]
fn a_whole_trace_has_no_problems() {
    assert_eq!(problems(&whole(&catalog())), Vec::<String>::new());
}

#[test]
fn an_empty_answer_is_no_trace() {
    assert_eq!(
        trace_problems(&Value::Null, ORDER, &catalog()),
        ["the trace has no spans"]
    );
}

#[test]
fn a_process_span_that_lost_its_parent_is_a_second_root() {
    let mut trace = whole(&catalog());
    trace.reparent("payment", "process omnisaga.orders.v1", None);
    let problems = problems(&trace);
    assert_named(
        &problems,
        r#""process omnisaga.orders.v1" of payment has no parent: it is a second root"#,
    );
    assert_named(
        &problems,
        r#"no "process omnisaga.orders.v1" span of payment under "send omnisaga.orders.v1" of order"#,
    );
    assert_named(
        &problems,
        r#""send omnisaga.payments.v1" of payment: its parents do not lead to "POST /v1/orders""#,
    );
}

#[test]
fn a_parent_outside_the_trace_is_named() {
    let mut trace = whole(&catalog());
    trace.reparent(
        "warehouse",
        "process omnisaga.payments.v1",
        Some("00000000deadbeef"),
    );
    assert_named(
        &problems(&trace),
        r#""process omnisaga.payments.v1" of warehouse has parent 00000000deadbeef, which is not in the trace"#,
    );
}

#[test]
fn a_consumer_that_never_read_a_record_is_named() {
    let mut trace = whole(&catalog());
    trace.remove("analytics", Some("process omnisaga.payments.v1"));
    assert_eq!(
        problems(&trace),
        [
            r#"no "process omnisaga.payments.v1" span of analytics under "send omnisaga.payments.v1" of payment"#
        ]
    );
}

#[test]
fn a_process_span_under_the_wrong_kind_of_span_is_named() {
    let mut trace = whole(&catalog());
    let root = trace.id_of("order", ROOT);
    trace.reparent("notification", "process omnisaga.warehouse.v1", Some(&root));
    let problems = problems(&trace);
    assert_named(
        &problems,
        r#""process omnisaga.warehouse.v1" of notification is a child of "POST /v1/orders" of order, not of a "send omnisaga.warehouse.v1" span"#,
    );
    assert_named(
        &problems,
        r#"no "process omnisaga.warehouse.v1" span of notification under "send omnisaga.warehouse.v1" of warehouse"#,
    );
}

#[test]
fn a_process_span_under_another_topics_publish_is_named() {
    let mut trace = whole(&catalog());
    let publish = trace.id_of("payment", "send omnisaga.payments.v1");
    trace.reparent("order", "process omnisaga.warehouse.v1", Some(&publish));
    assert_named(
        &problems(&trace),
        r#""process omnisaga.warehouse.v1" of order is a child of "send omnisaga.payments.v1" of payment, not of a "send omnisaga.warehouse.v1" span"#,
    );
}

#[test]
fn a_trace_without_a_service_names_it() {
    let mut trace = whole(&catalog());
    trace.remove("analytics", None);
    let problems = problems(&trace);
    assert!(
        problems.iter().any(|p| p.starts_with("no span of analytics")),
        "{problems:#?}"
    );
}

#[test]
fn a_topic_never_published_is_named() {
    let mut trace = whole(&catalog());
    trace.remove("notification", Some("send omnisaga.notifications.v1"));
    assert_eq!(problems(&trace), [r#"no "send omnisaga.notifications.v1" span"#]);
}

#[test]
fn a_span_of_another_order_is_named() {
    let mut trace = whole(&catalog());
    let span = trace.find("payment", "send omnisaga.payments.v1");
    span["tags"][0]["value"] = json!("another-order");
    assert_eq!(
        problems(&trace),
        [format!(
            r#""send omnisaga.payments.v1" of payment carries order.id another-order, not {ORDER}"#
        )]
    );
}

#[test]
fn a_payment_method_call_answered_outside_the_trace_is_named() {
    let mut trace = whole(&catalog());
    trace.remove("order", Some(PAYMENT_METHODS));
    assert_eq!(
        problems(&trace),
        [format!(
            "no {PAYMENT_METHODS:?} span of order: payment's call for the payment method is not in the trace"
        )]
    );
    let mut trace = whole(&catalog());
    let root = trace.id_of("order", ROOT);
    trace.reparent("order", PAYMENT_METHODS, Some(&root));
    assert_eq!(
        problems(&trace),
        [format!(
            "{PAYMENT_METHODS:?} of order is a child of {ROOT:?} of order, not of payment's call"
        )]
    );
}

fn own() -> BTreeMap<String, String> {
    BTreeMap::from([(ORDER.to_owned(), TRACE.to_uppercase())])
}

#[test]
fn an_order_alone_in_its_trace_has_no_strays() {
    let mut unrelated = Trace::new(OTHER_TRACE);
    let get = unrelated.add("order", "GET /v1/orders/{id}", None, None);
    unrelated.add("order", "load order", Some(&get), Some("another-order"));
    let listing = [whole(&catalog()).json(), unrelated.json()];
    assert_eq!(stray_traces(&listing, &own()), BTreeMap::new());
}

#[test]
fn an_order_whose_spans_start_another_trace_is_named() {
    let mut stray = Trace::new(OTHER_TRACE);
    let process = stray.add("payment", "process omnisaga.orders.v1", None, Some(ORDER));
    stray.add(
        "payment",
        "send omnisaga.payments.v1",
        Some(&process),
        Some(ORDER),
    );
    let listing = [whole(&catalog()).json(), stray.json()];
    let strays = stray_traces(&listing, &own());
    assert_eq!(strays.keys().collect::<Vec<_>>(), [ORDER]);
    assert_eq!(
        strays[ORDER],
        [format!(
            r#"another trace, {OTHER_TRACE} (root "process omnisaga.orders.v1" of payment), holds 2 of its spans, first "process omnisaga.orders.v1" of payment"#
        )]
    );
}

#[test]
fn spans_off_the_semantic_conventions_are_named() {
    // As the query API writes tags: integers as strings of type int64.
    let tag = |key: &str, kind: &str, value: &str| json!({"key": key, "type": kind, "value": value});
    let span = |name: &str, tags: Vec<Value>| json!({"operationName": name, "tags": tags});
    let good = json!({"spans": [
        span("send omnisaga.orders.v1", vec![
            tag("messaging.operation.type", "string", "send"),
            tag("messaging.operation.name", "string", "send"),
            tag("messaging.destination.partition.id", "string", "3"),
        ]),
        span("INSERT events", vec![
            tag("db.system.name", "string", "postgresql"),
            tag("db.namespace", "string", "omnisaga_order"),
            tag("server.address", "string", "127.0.0.1"),
            tag("server.port", "int64", "5432"),
        ]),
    ]});
    assert_eq!(convention_problems(&good), Vec::<String>::new());
    let bad = json!({"spans": [
        span("process omnisaga.orders.v1", vec![
            tag("messaging.operation.type", "string", "publish"),
            tag("messaging.destination.partition.id", "int64", "3"),
        ]),
        span("COMMIT", vec![tag("db.system.name", "string", "postgresql"), tag("db.namespace", "string", "")]),
    ]});
    assert_eq!(
        convention_problems(&bad),
        [
            r#""process omnisaga.orders.v1": messaging.operation.type is Some(("string", "publish"))"#,
            r#""process omnisaga.orders.v1": messaging.operation.name is None"#,
            r#""process omnisaga.orders.v1": messaging.destination.partition.id is Some(("int64", "3"))"#,
            r#""COMMIT": db.namespace is Some(("string", ""))"#,
            r#""COMMIT": server.address is None"#,
            r#""COMMIT": server.port is None"#,
        ]
    );
}
