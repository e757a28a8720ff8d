//! Properties of `POST /v1/orders` validation over hostile bodies: any
//! JSON-shaped body is either refused by its shape (the runtime's 400) or
//! validated without a panic, every refusal lists each problem with the field
//! it belongs to, a body built within the rules is accepted, and one broken
//! field is named as the one problem.

use std::time::Duration;

use axum::http::StatusCode;
use omnisaga_runtime::config::{CommonConfig, KafkaConfig};
use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;

/// The service's defaults: 50 items, 100 of each.
fn config() -> Config {
    Config::with_common(CommonConfig {
        service: "order",
        database_url: String::new(),
        database_migration_url: None,
        database_max_connections: 1,
        database_timeouts: Default::default(),
        kafka: KafkaConfig {
            brokers: String::new(),
            topic_prefix: String::new(),
            fetch_wait_max_ms: 0,
            fetch_min_bytes: 1,
            topic_partitions: 1,
            topic_replication_factor: 1,
            security: Default::default(),
        },
        http_addr: ([127, 0, 0, 1], 0).into(),
        admin_http_addr: ([127, 0, 0, 1], 0).into(),
        outbox_poll: Duration::from_millis(100),
        group_suffix: String::new(),
        consumer_batch_max: 1,
        inbox_retention: Duration::from_secs(7 * 24 * 3600),
        auth: omnisaga_runtime::testing::auth::config(),
        limits: Default::default(),
        tls: None,
        http_trust: Default::default(),
        server: Default::default(),
        shutdown_grace: Duration::from_secs(8),
    })
}

/// Text of every kind a client may send: ordinary, blank, padded, control
/// characters, any Unicode, too long.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9 ]{1,20}",
        Just(String::new()),
        "[ \t\n]{1,4}",
        r"[a-z]{0,3}[\x00-\x1f\x7f][a-z]{0,3}",
        any::<String>(),
        "[a-zé]{190,260}",
    ]
}

/// A JSON value of the wrong type, or none, in place of a field.
fn wrong() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!([])),
        Just(json!({})),
    ]
}

/// A field's value: mostly of the right type, now and then not.
fn field<S: Strategy<Value = Value>>(right: S) -> impl Strategy<Value = Value> {
    prop_oneof![9 => right, 1 => wrong()]
}

fn any_text() -> impl Strategy<Value = Value> {
    field(text().prop_map(Value::from))
}

fn hostile_item() -> impl Strategy<Value = Value> {
    let quantity = prop_oneof![-2i64..=102, any::<i64>()].prop_map(Value::from);
    (any_text(), field(quantity)).prop_map(|(sku, quantity)| json!({"sku": sku, "quantity": quantity}))
}

fn hostile_body() -> impl Strategy<Value = Value> {
    let items = prop_oneof![
        prop::collection::vec(hostile_item(), 0..4),
        prop::collection::vec(hostile_item(), 48..54),
    ];
    let address = (
        any_text(),
        any_text(),
        any_text(),
        any_text(),
        any_text(),
        any_text(),
    )
        .prop_map(|(name, line1, line2, city, postal_code, country)| {
            json!({"name": name, "line1": line1, "line2": line2, "city": city,
                   "postal_code": postal_code, "country": country})
        });
    let channel =
        prop::sample::select(vec!["mobile", "web", "pos", "marketplace", "fax", ""]).prop_map(Value::from);
    let customer = prop::option::of(any_text());
    (
        field(channel),
        field(items.prop_map(Value::from)),
        field(address),
        any_text(),
        customer,
    )
        .prop_map(|(channel, items, address, payment_method, customer_id)| {
            let mut body = json!({"channel": channel, "items": items,
                                  "shipping_address": address, "payment_method": payment_method});
            if let Some(c) = customer_id {
                body["customer_id"] = c;
            }
            body
        })
}

/// The field paths validation may name.
fn known_field(field: &str) -> bool {
    let item = field
        .strip_prefix("items[")
        .and_then(|rest| rest.split_once("]."))
        .is_some_and(|(i, f)| i.parse::<usize>().is_ok() && ["sku", "quantity"].contains(&f));
    item || [
        "items",
        "shipping_address.name",
        "shipping_address.line1",
        "shipping_address.line2",
        "shipping_address.city",
        "shipping_address.postal_code",
        "shipping_address.country",
        "payment_method",
        "customer_id",
    ]
    .contains(&field)
}

/// The problems a refusal lists, as `(field, problem)`, after checking it is
/// the documented `validation_failed` error.
fn problems(e: &ApiError) -> Vec<(String, String)> {
    assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e.code, "validation_failed");
    let fields = e
        .details
        .as_ref()
        .and_then(|d| d["fields"].as_array())
        .expect("details.fields");
    fields
        .iter()
        .map(|p| {
            let field = p["field"].as_str().expect("a field").to_owned();
            let problem = p["problem"].as_str().expect("a problem").to_owned();
            (field, problem)
        })
        .collect()
}

fn valid_text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Za-z0-9äöüß.,' -]{{0,{}}}[A-Za-zäöü0-9]", max - 1)).unwrap()
}

fn valid_body() -> impl Strategy<Value = Value> {
    let items = prop::collection::btree_set("[A-Z0-9-]{1,64}", 1..=50).prop_flat_map(|skus| {
        let n = skus.len();
        prop::collection::vec(1i64..=100, n).prop_map(move |quantities| {
            skus.iter()
                .zip(quantities)
                .map(|(sku, quantity)| json!({"sku": sku, "quantity": quantity}))
                .collect::<Vec<_>>()
        })
    });
    let address = (
        valid_text(200),
        valid_text(200),
        "[a-z ]{0,200}",
        valid_text(100),
        valid_text(20),
        "[A-Z]{2}",
    )
        .prop_map(|(name, line1, line2, city, postal_code, country)| {
            json!({"name": name, "line1": line1, "line2": line2, "city": city,
                   "postal_code": postal_code, "country": country})
        });
    let channel = prop::sample::select(vec!["mobile", "web", "pos", "marketplace"]);
    // No customer_id: the customer is the token's subject.
    (channel, items, address, "[A-Za-z0-9_-]{1,128}").prop_map(|(channel, items, address, payment_method)| {
        json!({"channel": channel, "items": items,
               "shipping_address": address, "payment_method": payment_method})
    })
}

/// Breaks one field of a valid body; the path validation must name.
fn break_one(body: &mut Value, how: usize) -> String {
    let (path, value): (String, Value) = match how {
        0 => ("items[0].sku".into(), json!("   ")),
        1 => ("items[0].quantity".into(), json!(0)),
        2 => ("items[0].quantity".into(), json!(101)),
        3 => ("shipping_address.name".into(), json!("x".repeat(201))),
        4 => ("shipping_address.line1".into(), json!("\t")),
        5 => ("shipping_address.line2".into(), json!("y".repeat(201))),
        6 => ("shipping_address.city".into(), json!("Ber\u{7}lin")),
        7 => ("shipping_address.postal_code".into(), json!("")),
        8 => ("shipping_address.country".into(), json!("de")),
        9 => ("payment_method".into(), json!("tok visa")),
        10 => ("customer_id".into(), json!("c@1")),
        _ => {
            // The first SKU again: on another line, or a line of its own.
            let items = body["items"].as_array_mut().unwrap();
            let first = items[0]["sku"].clone();
            if items.len() == 1 {
                items.push(json!({"sku": first, "quantity": 1}));
            } else {
                items.last_mut().unwrap()["sku"] = first;
            }
            return format!("items[{}].sku", items.len() - 1);
        }
    };
    match path.split_once('.') {
        Some(("shipping_address", f)) => body["shipping_address"][f] = value,
        Some(("items[0]", f)) => body["items"][0][f] = value,
        _ => body[path.as_str()] = value,
    }
    path
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_hostile_body_is_refused_field_by_field_and_never_panics(body in hostile_body()) {
        // A body of the wrong shape is the JSON extractor's 400, before validation.
        let Ok(req) = serde_json::from_value::<PlaceOrderRequest>(body) else { return Ok(()) };
        let config = config();
        match validate(&req, &config) {
            Ok(()) => {
                prop_assert!(!req.items.is_empty() && req.items.len() <= config.max_items);
                prop_assert!(req.items.iter().all(|i| (1..=100).contains(&i.quantity)));
                prop_assert!(valid_token(&req.payment_method));
                let country = &req.shipping_address.country;
                prop_assert!(country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()));
            }
            Err(e) => {
                let problems = problems(&e);
                prop_assert!(!problems.is_empty());
                for (field, problem) in problems {
                    prop_assert!(known_field(&field), "unknown field {:?}", field);
                    prop_assert!(!problem.trim().is_empty(), "{} has no problem", field);
                }
            }
        }
    }

    #[test]
    fn a_body_within_the_rules_is_accepted(body in valid_body()) {
        let req: PlaceOrderRequest = serde_json::from_value(body).unwrap();
        let accepted = validate(&req, &config()).map_err(|e| problems(&e));
        prop_assert_eq!(accepted, Ok(()));
    }

    #[test]
    fn one_broken_field_is_the_one_problem_named(mut body in valid_body(), how in 0usize..12) {
        let path = break_one(&mut body, how);
        let req: PlaceOrderRequest = serde_json::from_value(body).unwrap();
        let refusal = validate(&req, &config()).expect_err("a broken field is refused");
        let named: Vec<String> = problems(&refusal).into_iter().map(|(f, _)| f).collect();
        prop_assert_eq!(named, vec![path]);
    }
}
