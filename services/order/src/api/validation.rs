//! Checks of a request's fields beyond its shape, reported together as one
//! `validation_failed` error listing every problem.

use std::collections::BTreeSet;

use omnisaga_runtime::http::ApiError;
use serde::Serialize;
use serde_json::json;

use super::dto::PlaceOrderRequest;
use crate::config::Config;

/// What a payment method token must be.
pub(super) const TOKEN_RULE: &str = "must be a payment method token (letters, digits, _ and -, at most 128)";

/// One field's problem, as the error's `details.fields` lists it.
#[derive(Debug, Serialize)]
struct FieldProblem {
    field: String,
    problem: String,
}

/// Field problems, reported together.
#[derive(Default)]
pub(super) struct Problems(Vec<FieldProblem>);

impl Problems {
    /// Notes `problem` with `field` unless `ok`.
    pub fn check(&mut self, ok: bool, field: &str, problem: &str) {
        if !ok {
            self.0.push(FieldProblem {
                field: field.to_owned(),
                problem: problem.to_owned(),
            });
        }
    }

    /// `Ok` without problems, else the `validation_failed` error listing them.
    pub fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            return Ok(());
        }
        Err(ApiError::validation("the order request is invalid").with_details(json!({ "fields": self.0 })))
    }
}

/// Whether `t` is a payment method token (see `TOKEN_RULE`).
pub(super) fn valid_token(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Text that is not blank, at most `max` characters trimmed, without control characters.
fn text_ok(s: &str, max: usize) -> bool {
    let t = s.trim();
    !t.is_empty() && t.chars().count() <= max && !t.chars().any(char::is_control)
}

/// Checks a `POST /v1/orders` body against the limits in `config`.
pub(super) fn validate(req: &PlaceOrderRequest, config: &Config) -> Result<(), ApiError> {
    validate_within(req, config.max_items, config.max_quantity)
}

/// Checks a `POST /v1/orders` body: at most `max_items` items of at most
/// `max_quantity` each.
pub fn validate_within(req: &PlaceOrderRequest, max_items: usize, max_quantity: u32) -> Result<(), ApiError> {
    let mut p = Problems::default();
    p.check(
        req.customer_id.is_none(),
        "customer_id",
        "is the bearer token's subject; leave it out of the body",
    );
    p.check(!req.items.is_empty(), "items", "at least one item is required");
    p.check(
        req.items.len() <= max_items,
        "items",
        &format!("at most {max_items} items"),
    );
    let mut seen = BTreeSet::new();
    for (i, item) in req.items.iter().enumerate() {
        p.check(
            text_ok(&item.sku, 64),
            &format!("items[{i}].sku"),
            "must be 1 to 64 characters",
        );
        p.check(
            seen.insert(item.sku.as_str()),
            &format!("items[{i}].sku"),
            "each SKU may appear once",
        );
        p.check(
            item.quantity >= 1 && item.quantity <= i64::from(max_quantity),
            &format!("items[{i}].quantity"),
            &format!("must be between 1 and {max_quantity}"),
        );
    }
    let a = &req.shipping_address;
    p.check(
        text_ok(&a.name, 200),
        "shipping_address.name",
        "must be 1 to 200 characters",
    );
    p.check(
        text_ok(&a.line1, 200),
        "shipping_address.line1",
        "must be 1 to 200 characters",
    );
    p.check(
        a.line2.chars().count() <= 200,
        "shipping_address.line2",
        "at most 200 characters",
    );
    p.check(
        text_ok(&a.city, 100),
        "shipping_address.city",
        "must be 1 to 100 characters",
    );
    p.check(
        text_ok(&a.postal_code, 20),
        "shipping_address.postal_code",
        "must be 1 to 20 characters",
    );
    p.check(
        a.country.len() == 2 && a.country.bytes().all(|b| b.is_ascii_uppercase()),
        "shipping_address.country",
        "must be an ISO 3166-1 alpha-2 code such as DE",
    );
    p.check(valid_token(&req.payment_method), "payment_method", TOKEN_RULE);
    p.into_result()
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_problem_reads_as_the_map_it_replaced() {
        let typed = FieldProblem {
            field: "items[0].sku".into(),
            problem: "each SKU may appear once".into(),
        };
        let was = json!({"field": "items[0].sku", "problem": "each SKU may appear once"});
        assert_eq!(
            serde_json::to_string(&typed).unwrap(),
            serde_json::to_string(&was).unwrap()
        );
    }
}
