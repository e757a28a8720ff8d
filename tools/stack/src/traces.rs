//! What makes an order's trace whole, judged on the Jaeger JSON that the
//! trace viewer's query API serves (`/api/traces/{id}` for one trace,
//! `/api/traces?limit=N` for the complete ones it keeps). An order's trace is
//! whole when it is one tree rooted at its `POST /v1/orders` request, holds
//! spans of every service of the topic catalog, every record published on a
//! topic was processed by every consumer the catalog lists for that topic
//! (each `process` span a child of its `publish` span), and no other trace
//! holds a span of the order. A hop that loses the trace context starts a
//! new root: the order's trace then misses that hop's `process` spans and
//! another trace carries the order's `order.id`. Payment's call to the order
//! service for the payment method is answered inside the trace too.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use omnisaga_runtime::catalog;
use serde_json::Value;

/// The name of the span that starts every order's trace.
pub const ROOT: &str = "POST /v1/orders";

/// The span attribute naming the order: the runtime sets it on every
/// `publish` and `process` span, services on their own spans of an order.
pub const ORDER_ID: &str = "order.id";

/// The name of the order service's span answering payment's call for an
/// attempt's payment method, and of payment's client span of that call.
pub const PAYMENT_METHODS: &str = "GET /v1/internal/orders/{id}/payment-methods/{attempt}";

/// One topic of the catalog, as the trace checks read it.
#[derive(Debug, Clone)]
pub struct Topic {
    /// Its name in the stack checked.
    pub name: String,
    /// The only service that publishes on it.
    pub owner: String,
    /// Every service whose consumer reads every record of it.
    pub consumers: Vec<String>,
}

/// The topic catalog (`schemas/topics.json`, as the services read it:
/// `omnisaga_runtime::catalog`): who publishes and who reads each topic.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub topics: Vec<Topic>,
}

impl Catalog {
    /// The catalog as a stack whose topics start with `prefix` (its
    /// `KAFKA_TOPIC_PREFIX`) names them.
    pub fn under(prefix: &str) -> Self {
        let topics = catalog::catalog()
            .topics()
            .iter()
            .map(|t| Topic {
                name: t.name(prefix),
                owner: t.owner.clone(),
                consumers: t.consumers.clone(),
            })
            .collect();
        Self { topics }
    }

    /// Every service that owns or reads a topic.
    pub fn services(&self) -> BTreeSet<&str> {
        let owners = self.topics.iter().map(|t| t.owner.as_str());
        let readers = self
            .topics
            .iter()
            .flat_map(|t| t.consumers.iter().map(String::as_str));
        owners.chain(readers).collect()
    }
}

/// One span of a Jaeger JSON trace, as much of it as the checks read.
struct Span<'a> {
    id: &'a str,
    /// Its `CHILD_OF` references (links, `FOLLOWS_FROM`, are not parents).
    parents: Vec<&'a str>,
    name: &'a str,
    service: &'a str,
    order: Option<&'a str>,
    event_type: Option<&'a str>,
}

impl Span<'_> {
    fn parent(&self) -> Option<&str> {
        self.parents.first().copied()
    }
}

impl std::fmt::Display for Span<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} of {}", self.name, self.service)?;
        match self.event_type {
            Some(t) if !t.is_empty() => write!(f, " ({t})"),
            _ => Ok(()),
        }
    }
}

fn tag<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    let tags = span["tags"].as_array()?;
    tags.iter().find(|t| t["key"] == key)?["value"].as_str()
}

fn spans(trace: &Value) -> Vec<Span<'_>> {
    let processes = &trace["processes"];
    let all = trace["spans"].as_array().map(Vec::as_slice).unwrap_or_default();
    all.iter()
        .map(|s| Span {
            id: s["spanID"].as_str().unwrap_or("?"),
            parents: s["references"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| r["refType"] == "CHILD_OF")
                .filter_map(|r| r["spanID"].as_str())
                .collect(),
            name: s["operationName"].as_str().unwrap_or("?"),
            service: s["processID"]
                .as_str()
                .and_then(|p| processes[p]["serviceName"].as_str())
                .unwrap_or("?"),
            order: tag(s, ORDER_ID),
            event_type: tag(s, "event.type"),
        })
        .collect()
}

/// Everything that keeps `trace` (one element of the query API's `data`)
/// from being the whole happy-path trace of order `order_id`: one problem
/// per line, empty when it is whole. The happy path publishes on every topic
/// of `catalog`; a topic without consumers needs only its `publish` span.
pub fn trace_problems(trace: &Value, order_id: &str, catalog: &Catalog) -> Vec<String> {
    let spans = spans(trace);
    if spans.is_empty() {
        return vec!["the trace has no spans".into()];
    }
    let mut problems = shape_problems(&spans);
    problems.extend(service_problems(&spans, catalog));
    problems.extend(order_problems(&spans, order_id));
    for topic in &catalog.topics {
        problems.extend(hop_problems(&spans, topic));
    }
    problems.extend(call_problems(&spans));
    problems
}

/// Where the spans of `trace` break OpenTelemetry's semantic conventions
/// as the services follow them: a Kafka producer span `send <topic>` and a
/// consumer span `process <topic>` carry `messaging.operation.type` and
/// `messaging.operation.name` of that name and the partition id as a
/// string; a database client span names its database (`db.namespace`) and
/// server (`server.address`, `server.port`).
pub fn convention_problems(trace: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for span in trace["spans"].as_array().into_iter().flatten() {
        let name = span["operationName"].as_str().unwrap_or("?");
        // A tag as (its type, its value as text): the query API writes
        // integers as strings, under the type "int64".
        let tag = |key: &str| {
            span["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["key"] == key)
                .map(|t| {
                    let value = match &t["value"] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (t["type"].as_str().unwrap_or("string").to_owned(), value)
                })
        };
        let mut expect = |key: &str, ok: &dyn Fn(&str, &str) -> bool| match tag(key) {
            Some((kind, value)) if ok(&kind, &value) => {}
            found => problems.push(format!("{name:?}: {key} is {found:?}")),
        };
        let operation = ["send", "process"]
            .into_iter()
            .find(|op| name.starts_with(&format!("{op} omnisaga.")));
        if let Some(op) = operation {
            for key in ["messaging.operation.type", "messaging.operation.name"] {
                expect(key, &|kind, value| kind == "string" && value == op);
            }
            expect("messaging.destination.partition.id", &|kind, value| {
                kind == "string" && value.parse::<u32>().is_ok()
            });
        }
        if tag("db.system.name").is_some_and(|(_, v)| v == "postgresql") {
            for key in ["db.namespace", "server.address"] {
                expect(key, &|kind, value| kind == "string" && !value.is_empty());
            }
            expect("server.port", &|kind, value| {
                kind == "int64" && value.parse::<u16>().is_ok_and(|p| p > 0)
            });
        }
    }
    problems
}

/// One root, the order's request; every parent inside the trace.
fn shape_problems(spans: &[Span]) -> Vec<String> {
    let ids: BTreeSet<&str> = spans.iter().map(|s| s.id).collect();
    let mut problems = Vec::new();
    let roots: Vec<&Span> = spans.iter().filter(|s| s.parents.is_empty()).collect();
    if !roots.iter().any(|r| r.name == ROOT) {
        problems.push(format!("no {ROOT:?} root span"));
    }
    for root in roots.iter().filter(|r| r.name != ROOT) {
        problems.push(format!("{root} has no parent: it is a second root"));
    }
    for span in spans {
        match span.parents.as_slice() {
            [] => {}
            [p] if ids.contains(p) => {}
            [p] => problems.push(format!("{span} has parent {p}, which is not in the trace")),
            many => problems.push(format!("{span} has {} parents", many.len())),
        }
    }
    problems
}

/// A span of every service of the catalog.
fn service_problems(spans: &[Span], catalog: &Catalog) -> Vec<String> {
    let present: BTreeSet<&str> = spans.iter().map(|s| s.service).collect();
    catalog
        .services()
        .into_iter()
        .filter(|s| !present.contains(s))
        .map(|s| format!("no span of {s} (spans of {present:?})"))
        .collect()
}

/// Spans of this order and of no other.
fn order_problems(spans: &[Span], order_id: &str) -> Vec<String> {
    let mut problems: Vec<String> = spans
        .iter()
        .filter_map(|s| Some((s, s.order.filter(|o| *o != order_id)?)))
        .map(|(s, other)| format!("{s} carries {ORDER_ID} {other}, not {order_id}"))
        .collect();
    if !spans.iter().any(|s| s.order == Some(order_id)) {
        problems.push(format!("no span carries {ORDER_ID} {order_id}"));
    }
    problems
}

/// True when following `span`'s parents ends at the order's request.
fn leads_to_root(span: &Span, by_id: &HashMap<&str, &Span>) -> bool {
    let mut current = span;
    for _ in 0..=by_id.len() {
        match current.parent() {
            None => return current.name == ROOT,
            Some(p) => match by_id.get(p) {
                Some(parent) => current = parent,
                None => return false,
            },
        }
    }
    false // a cycle
}

/// Payment's call to the order service for the payment method, answered
/// in the order's trace: the order service's span of it is a child of
/// payment's client span.
fn call_problems(spans: &[Span]) -> Vec<String> {
    let by_id: HashMap<&str, &Span> = spans.iter().map(|s| (s.id, s)).collect();
    let answers: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == PAYMENT_METHODS && s.service == "order")
        .collect();
    if answers.is_empty() {
        return vec![format!(
            "no {PAYMENT_METHODS:?} span of order: payment's call for the payment method is not in the trace"
        )];
    }
    let mut problems = Vec::new();
    for answer in answers {
        match answer.parent().and_then(|p| by_id.get(p)) {
            Some(call) if call.service == "payment" && call.name == PAYMENT_METHODS => {}
            Some(other) => problems.push(format!("{answer} is a child of {other}, not of payment's call")),
            None => {} // a second root or a lost parent: told by shape_problems
        }
    }
    problems
}

/// Every record on `topic` published by its owner from within the order's
/// request, and read by each of its consumers in a span parented to it.
fn hop_problems(spans: &[Span], topic: &Topic) -> Vec<String> {
    let by_id: HashMap<&str, &Span> = spans.iter().map(|s| (s.id, s)).collect();
    let (publish, process) = (format!("send {}", topic.name), format!("process {}", topic.name));
    let publishes: Vec<&Span> = spans.iter().filter(|s| s.name == publish).collect();
    let mut problems = Vec::new();
    if publishes.is_empty() {
        problems.push(format!("no {publish:?} span"));
    }
    for p in &publishes {
        if p.service != topic.owner {
            problems.push(format!("{p} is not from the topic's owner, {}", topic.owner));
        }
        if !leads_to_root(p, &by_id) {
            problems.push(format!("{p}: its parents do not lead to {ROOT:?}"));
        }
    }
    for span in spans.iter().filter(|s| s.name == process) {
        if !topic.consumers.iter().any(|c| c == span.service) {
            problems.push(format!("{span}: the catalog lists no such consumer"));
        }
        match span.parent().and_then(|p| by_id.get(p)) {
            Some(parent) if parent.name == publish => {}
            Some(parent) => problems.push(format!(
                "{span} is a child of {parent}, not of a {publish:?} span"
            )),
            None => {} // a second root or a lost parent: told by shape_problems
        }
    }
    for p in &publishes {
        for consumer in &topic.consumers {
            let read = spans
                .iter()
                .any(|s| s.name == process && s.service == consumer && s.parent() == Some(p.id));
            if !read {
                problems.push(format!("no {process:?} span of {consumer} under {p}"));
            }
        }
    }
    problems
}

/// Every order of `own` (order id to the id of its trace) whose spans turn
/// up in another trace of `listing` (the `data` of `/api/traces?limit=N`),
/// with one line per stray trace. The viewer lists complete traces only, so
/// a stray trace whose root was never exported goes unseen here.
pub fn stray_traces(listing: &[Value], own: &BTreeMap<String, String>) -> BTreeMap<String, Vec<String>> {
    let mut problems: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for trace in listing {
        let trace_id = trace["traceID"].as_str().unwrap_or("?");
        let spans = spans(trace);
        let mut strays: BTreeMap<&str, Vec<&Span>> = BTreeMap::new();
        for span in &spans {
            let Some(order) = span.order else { continue };
            if own.get(order).is_some_and(|t| !t.eq_ignore_ascii_case(trace_id)) {
                strays.entry(order).or_default().push(span);
            }
        }
        let root = spans
            .iter()
            .find(|s| s.parents.is_empty())
            .map_or_else(|| "no root".to_owned(), |r| format!("root {r}"));
        for (order, found) in strays {
            problems.entry(order.to_owned()).or_default().push(format!(
                "another trace, {trace_id} ({root}), holds {} of its spans, first {}",
                found.len(),
                found[0]
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests;
